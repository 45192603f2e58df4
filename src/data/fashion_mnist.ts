// Fashion-MNIST from Debian's dataset-fashion-mnist package (gzip IDX files). Node only.
import { WgnnError } from '../errors.js';
import { readIdxFile } from './idx.js';

export const FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist';
export const FASHION_MNIST_CLASSES = ['T-shirt/top', 'Trouser', 'Pullover', 'Dress', 'Coat', 'Sandal', 'Shirt', 'Sneaker', 'Bag', 'Ankle boot'];

export interface ImageDataset {
  /** images as float32 in [0, 1], [n, 1, rows, cols] row-major */
  images: Float32Array;
  labels: Int32Array;
  n: number;
  channels: number;
  rows: number;
  cols: number;
  classes: string[];
}

export async function loadFashionMnist(split: 'train' | 'test', dir = FASHION_MNIST_DIR): Promise<ImageDataset> {
  const prefix = split === 'train' ? 'train' : 't10k';
  const { existsSync } = await import('node:fs');
  const imgPath = `${dir}/${prefix}-images-idx3-ubyte.gz`;
  if (!existsSync(imgPath)) {
    throw new WgnnError(`Fashion-MNIST not found at ${imgPath}: install Debian's dataset-fashion-mnist (\`npm run setup -- --data\` does it)`);
  }
  const img = await readIdxFile(imgPath);
  const lab = await readIdxFile(`${dir}/${prefix}-labels-idx1-ubyte.gz`);
  const [n, rows, cols] = img.dims as [number, number, number];
  if (lab.dims[0] !== n) throw new WgnnError(`Fashion-MNIST ${split}: ${n} images but ${lab.dims[0]} labels`);
  const images = new Float32Array(img.data.length);
  for (let i = 0; i < images.length; i++) images[i] = img.data[i]! / 255;
  return { images, labels: Int32Array.from(lab.data), n, channels: 1, rows, cols, classes: FASHION_MNIST_CLASSES };
}
