import { gelu, relu, tanh, sigmoid } from '../ops/elementwise.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';
import type { Device } from '../gpu/device.js';

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}
export class GELU extends Module {
  constructor(dev: Device, readonly opts: { approximate?: 'none' | 'tanh' } = {}) {
    super(dev);
  }
  forward(x: Tensor): Tensor {
    return gelu(x, this.opts);
  }
}
export class Tanh extends Module {
  forward(x: Tensor): Tensor {
    return tanh(x);
  }
}
export class Sigmoid extends Module {
  forward(x: Tensor): Tensor {
    return sigmoid(x);
  }
}

/** Applies single-input modules in order; parameters are named "<i>.<name>" as torch.nn.Sequential. */
export class Sequential extends Module {
  declare readonly layers: Module[];
  constructor(dev: Device, layers: Module[]) {
    super(dev);
    // children are the fields "0", "1", ... (as torch.nn.Sequential); `layers` is hidden from the walk
    Object.defineProperty(this, 'layers', { value: layers, enumerable: false });
    layers.forEach((m, i) => Object.defineProperty(this, String(i), { value: m, enumerable: true }));
  }
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) y = (m as unknown as { forward(t: Tensor): Tensor }).forward(y);
    return y;
  }
}
