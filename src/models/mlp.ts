// A multilayer perceptron classifier (Linear → GELU/ReLU → ... → Linear), flattening its input.
import type { Device } from '../gpu/device.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { gelu, relu } from '../ops/elementwise.js';
import { reshape } from '../ops/shape_ops.js';
import type { Tensor } from '../tensor.js';

export interface MLPConfig {
  inputSize: number;
  hiddenSizes: number[];
  numClasses: number;
  activation?: 'relu' | 'gelu';
  seed?: number;
}

export class MLP extends Module {
  readonly layers: Linear[];
  readonly config: MLPConfig;

  constructor(dev: Device, config: MLPConfig) {
    super(dev);
    this.config = config;
    const sizes = [config.inputSize, ...config.hiddenSizes, config.numClasses];
    this.layers = sizes.slice(1).map((out, i) => new Linear(dev, { inFeatures: sizes[i]!, outFeatures: out, seed: (config.seed ?? 0) * 100 + i * 2 }));
  }

  forward(x: Tensor): Tensor {
    let h = reshape(x, [x.shape[0]!, -1]);
    this.layers.forEach((l, i) => {
      h = l.forward(h);
      if (i < this.layers.length - 1) h = this.config.activation === 'relu' ? relu(h) : gelu(h);
    });
    return h;
  }
}
