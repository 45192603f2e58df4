import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { dropout, nextDropoutSeed } from '../ops/dropout.js';
import type { Tensor } from '../tensor.js';
import { Module } from './module.js';

export interface DropoutOptions {
  /** probability of zeroing an element, in [0, 1) (default 0.5) */
  p?: number;
  /** base seed: call k of forward uses seed + k, so a run is reproducible (default: drawn) */
  seed?: number;
}

/** Dropout while module.training; the identity in eval mode. */
export class Dropout extends Module {
  readonly p: number;
  private readonly baseSeed: number;
  private calls = 0;

  constructor(dev: Device, opts: DropoutOptions = {}) {
    super(dev);
    const p = opts.p ?? 0.5;
    check(typeof p === 'number' && p >= 0 && p < 1, 'nn.Dropout', `p must be in [0, 1), got ${p}`);
    const seed = opts.seed ?? nextDropoutSeed();
    check(Number.isSafeInteger(seed) && seed >= 0, 'nn.Dropout', `seed must be a non-negative integer, got ${seed}`);
    this.p = p;
    this.baseSeed = seed;
  }

  forward(x: Tensor): Tensor {
    if (!this.training || this.p === 0) return x;
    const seed = (this.baseSeed + this.calls++) % Number.MAX_SAFE_INTEGER;
    return dropout(x, this.p, { seed });
  }
}
