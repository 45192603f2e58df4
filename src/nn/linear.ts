import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { linear } from '../ops/matmul.js';
import type { Tensor } from '../tensor.js';
import { Module, param } from './module.js';

export interface LinearOptions {
  inFeatures: number;
  outFeatures: number;
  /** default true */
  bias?: boolean;
  seed?: number;
}

/** y = x·weightᵀ + bias, weight [out, in] (PyTorch layout and initialisation U(±1/√in)). */
export class Linear extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly inFeatures: number;
  readonly outFeatures: number;

  constructor(dev: Device, opts: LinearOptions) {
    super(dev);
    const { inFeatures, outFeatures } = opts;
    check(Number.isInteger(inFeatures) && inFeatures > 0, 'nn.Linear', `inFeatures must be a positive integer, got ${inFeatures}`);
    check(Number.isInteger(outFeatures) && outFeatures > 0, 'nn.Linear', `outFeatures must be a positive integer, got ${outFeatures}`);
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = 1 / Math.sqrt(inFeatures);
    const seed = opts.seed;
    this.weight = param(dev.rand([outFeatures, inFeatures], { low: -bound, high: bound, seed }));
    this.bias = opts.bias ?? true ? param(dev.rand([outFeatures], { low: -bound, high: bound, seed: seed === undefined ? undefined : seed + 1 })) : null;
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
