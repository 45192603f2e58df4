import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { layerNorm } from '../ops/layernorm.js';
import type { Tensor } from '../tensor.js';
import { Module, param } from './module.js';

export interface LayerNormOptions {
  normalizedShape: number | readonly number[];
  eps?: number;
  /** learnable weight and bias (default true) */
  elementwiseAffine?: boolean;
  bias?: boolean;
}

/** Layer normalisation over the trailing normalizedShape dims (PyTorch semantics: weight 1, bias 0). */
export class LayerNorm extends Module {
  weight: Tensor | null;
  bias: Tensor | null;
  readonly normalizedShape: number[];
  readonly eps: number;

  constructor(dev: Device, opts: LayerNormOptions) {
    super(dev);
    this.normalizedShape = typeof opts.normalizedShape === 'number' ? [opts.normalizedShape] : [...opts.normalizedShape];
    check(this.normalizedShape.every((d) => Number.isInteger(d) && d > 0), 'nn.LayerNorm', `normalizedShape must be positive integers, got [${this.normalizedShape.join(', ')}]`);
    this.eps = opts.eps ?? 1e-5;
    const affine = opts.elementwiseAffine ?? true;
    this.weight = affine ? param(dev.ones(this.normalizedShape)) : null;
    this.bias = affine && (opts.bias ?? true) ? param(dev.zeros(this.normalizedShape)) : null;
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}
