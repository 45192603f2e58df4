import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { embedding } from '../ops/embedding.js';
import type { Tensor } from '../tensor.js';
import { Module, param } from './module.js';

export interface EmbeddingOptions {
  numEmbeddings: number;
  embeddingDim: number;
  /** this row is initialised to 0 and never receives a gradient; negative counts from the end */
  paddingIdx?: number | null;
  seed?: number;
}

/** A lookup table weight [numEmbeddings, embeddingDim], initialised N(0, 1) as in PyTorch. */
export class Embedding extends Module {
  weight: Tensor;
  readonly numEmbeddings: number;
  readonly embeddingDim: number;
  readonly paddingIdx: number | null;

  constructor(dev: Device, opts: EmbeddingOptions) {
    super(dev);
    const op = 'nn.Embedding';
    const { numEmbeddings: V, embeddingDim: D } = opts;
    check(Number.isInteger(V) && V > 0, op, `numEmbeddings must be a positive integer, got ${V}`);
    check(Number.isInteger(D) && D > 0, op, `embeddingDim must be a positive integer, got ${D}`);
    let pad = opts.paddingIdx ?? null;
    if (pad !== null) {
      check(Number.isInteger(pad) && pad >= -V && pad < V, op, `paddingIdx must be an integer in [${-V}, ${V}), got ${pad}`);
      if (pad < 0) pad += V;
    }
    this.numEmbeddings = V;
    this.embeddingDim = D;
    this.paddingIdx = pad;
    const w = dev.randn([V, D], { seed: opts.seed });
    if (pad !== null) dev.exec.upload(w.storage.buffer, pad * D * 4, new Float32Array(D));
    this.weight = param(w);
  }

  /** indices: an int32 tensor of any shape (or an Int32Array) → [...shape, embeddingDim] */
  forward(indices: Tensor | Int32Array): Tensor {
    return embedding(indices, this.weight, { paddingIdx: this.paddingIdx });
  }
}
