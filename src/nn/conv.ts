import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { conv2d, pair, type Size2 } from '../ops/conv.js';
import { maxPool2d, type MaxPool2dOptions } from '../ops/pool.js';
import type { Tensor } from '../tensor.js';
import { Module, param } from './module.js';

export interface Conv2dOptions {
  inChannels: number;
  outChannels: number;
  kernelSize: Size2;
  /** default 1 */
  stride?: Size2;
  /** zero padding, default 0 */
  padding?: Size2;
  /** default 1 */
  dilation?: Size2;
  /** default true */
  bias?: boolean;
  seed?: number;
}

/**
 * 2-D convolution, PyTorch layout: weight [outChannels, inChannels, kh, kw], bias [outChannels],
 * both initialised U(±1/√fan_in) with fan_in = inChannels·kh·kw (torch's default init).
 */
export class Conv2d extends Module {
  weight: Tensor;
  bias: Tensor | null;
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];

  constructor(dev: Device, opts: Conv2dOptions) {
    super(dev);
    const { inChannels, outChannels } = opts;
    check(Number.isInteger(inChannels) && inChannels > 0, 'nn.Conv2d', `inChannels must be a positive integer, got ${inChannels}`);
    check(Number.isInteger(outChannels) && outChannels > 0, 'nn.Conv2d', `outChannels must be a positive integer, got ${outChannels}`);
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(opts.kernelSize, undefined, 'nn.Conv2d', 'kernelSize', 1);
    this.stride = pair(opts.stride, 1, 'nn.Conv2d', 'stride', 1);
    this.padding = pair(opts.padding, 0, 'nn.Conv2d', 'padding', 0);
    this.dilation = pair(opts.dilation, 1, 'nn.Conv2d', 'dilation', 1);
    const [kh, kw] = this.kernelSize;
    const bound = 1 / Math.sqrt(inChannels * kh * kw);
    const seed = opts.seed;
    this.weight = param(dev.rand([outChannels, inChannels, kh, kw], { low: -bound, high: bound, seed }));
    this.bias = opts.bias ?? true
      ? param(dev.rand([outChannels], { low: -bound, high: bound, seed: seed === undefined ? undefined : seed + 1 }))
      : null;
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation });
  }
}

/** 2-D max pooling (no parameters); options as ops.maxPool2d (stride defaults to kernelSize). */
export class MaxPool2d extends Module {
  readonly opts: MaxPool2dOptions;

  constructor(dev: Device, opts: MaxPool2dOptions) {
    super(dev);
    // the options alone are checked now; against the input's shape on every forward
    const k = pair(opts?.kernelSize, undefined, 'nn.MaxPool2d', 'kernelSize', 1);
    pair(opts.stride, k[0], 'nn.MaxPool2d', 'stride', 1);
    pair(opts.padding, 0, 'nn.MaxPool2d', 'padding', 0);
    pair(opts.dilation, 1, 'nn.MaxPool2d', 'dilation', 1);
    this.opts = { ...opts };
  }

  forward(x: Tensor): Tensor {
    return maxPool2d(x, this.opts);
  }
}
