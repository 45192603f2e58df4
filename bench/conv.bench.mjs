// Convolution family: the CCT conv tokenizer (conv 3×3 1→64, stride 1, padding 1 → ReLU →
// maxPool 3×3 stride 2 padding 1) on an MNIST-sized batch [64, 1, 28, 28], forward and
// forward+backward (weight and bias grads; the input image needs none), plus its pieces and a
// ViT patchify. GFLOP/s count the convolution's multiply-adds (2 per MAC): forward 2·B·O·L·C·kh·kw,
// backward the same again for the weight grad (elementwise work is not counted).
import { ops, noGrad } from 'wgnn';
import { measure } from './lib.mjs';

export default async function (dev) {
  const rows = [];
  const B = 64, C = 1, H = 28, W = 28, O = 64, k = 3;
  const x = dev.randn([B, C, H, W], { seed: 1 });
  const bound = 1 / Math.sqrt(C * k * k);
  const w = dev.rand([O, C, k, k], { low: -bound, high: bound, seed: 2, requiresGrad: true });
  const b = dev.rand([O], { low: -bound, high: bound, seed: 3, requiresGrad: true });
  const L = H * W; // stride 1, padding 1: same size
  const convFlops = 2 * B * O * L * C * k * k;
  const convOpts = { stride: 1, padding: 1 };
  const poolOpts = { kernelSize: 3, stride: 2, padding: 1 };
  const tokenizer = () => ops.maxPool2d(ops.relu(ops.conv2d(x, w, b, convOpts)), poolOpts);
  const shape = `[${B}, ${C}, ${H}, ${W}]`;

  rows.push(await measure(dev, `im2col ${shape} 3×3 p1`, () => ops.im2col(x, { kernelSize: 3, padding: 1 }), { bytes: 4 * (B * C * H * W + B * C * k * k * L) }));
  const h = dev.randn([B, O, H, W], { seed: 4 });
  rows.push(await measure(dev, `maxPool2d [${B}, ${O}, ${H}, ${W}] 3×3 s2 p1`, () => ops.maxPool2d(h, poolOpts), { bytes: 4 * (B * O * H * W + 2 * B * O * 14 * 14) }));
  rows.push(await measure(dev, `conv2d ${shape} 3×3 1→${O} p1 fwd`, () => noGrad(() => ops.conv2d(x, w, b, convOpts)), { flops: convFlops }));
  rows.push(await measure(dev, `CCT tokenizer ${shape} fwd`, () => noGrad(tokenizer), { flops: convFlops }));
  const gy = dev.ones([B, O, 14, 14]);
  rows.push(await measure(dev, `CCT tokenizer ${shape} fwd+bwd`, () => {
    const y = tokenizer();
    y.backward(gy);
    for (const p of [w, b]) {
      p.grad.dispose();
      p.grad = null;
    }
  }, { flops: 2 * convFlops }));

  const img = dev.randn([32, 3, 224, 224], { seed: 5 });
  rows.push(await measure(dev, 'patchify [32, 3, 224, 224] p=16', () => ops.patchify(img, 16), { bytes: 2 * 4 * img.size }));
  [x, w, b, h, img, gy].forEach((t) => t.dispose());
  return { title: 'Convolution: CCT conv tokenizer and pieces', rows };
}
