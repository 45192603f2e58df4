// Learning-rate schedules: objects that set opt.lr. Call sched.step() once after each opt.step();
// lrAt(s) is the learning rate used by the optimizer step that follows s scheduler steps (the
// constructor applies lrAt(0), as PyTorch schedulers do).
import { check } from '../errors.js';

/** Anything with a settable learning rate (every wgnn optimizer). */
export interface HasLr {
  lr: number;
}

export abstract class LRScheduler {
  /** scheduler steps taken */
  stepCount = 0;
  /** the optimizer's lr when the schedule was created: the peak / starting value */
  readonly baseLr: number;

  constructor(readonly optimizer: HasLr) {
    check(optimizer && typeof optimizer.lr === 'number' && Number.isFinite(optimizer.lr), this.constructor.name, 'optimizer must have a finite lr');
    this.baseLr = optimizer.lr;
  }

  /** The learning rate after s scheduler steps. */
  abstract lrAt(s: number): number;

  /** Applies lrAt(stepCount) (subclass constructors call this once their fields are set). */
  protected apply(): void {
    this.optimizer.lr = this.lrAt(this.stepCount);
  }

  /** Advances one step and sets the optimizer's lr; returns it. */
  step(): number {
    this.stepCount++;
    this.apply();
    return this.optimizer.lr;
  }

  /** The current learning rate. */
  get lr(): number {
    return this.optimizer.lr;
  }

  stateDict(): { step: number } {
    return { step: this.stepCount };
  }

  loadStateDict(sd: { step: number }): void {
    check(Number.isInteger(sd?.step) && sd.step >= 0, `${this.constructor.name}.loadStateDict`, `step must be a non-negative integer, got ${sd?.step}`);
    this.stepCount = sd.step;
    this.apply();
  }
}

function int(v: unknown, name: string, op: string, min: number): number {
  check(Number.isInteger(v) && (v as number) >= min, op, `${name} must be an integer >= ${min}, got ${String(v)}`);
  return v as number;
}

export interface StepLROptions {
  /** decay every stepSize steps */
  stepSize: number;
  /** multiplicative factor (default 0.1) */
  gamma?: number;
}

/** lr = baseLr · gamma^floor(s / stepSize) (PyTorch StepLR). */
export class StepLR extends LRScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: HasLr, opts: StepLROptions) {
    super(optimizer);
    const op = 'StepLR';
    this.stepSize = int(opts?.stepSize, 'stepSize', op, 1);
    const gamma = opts.gamma ?? 0.1;
    check(typeof gamma === 'number' && Number.isFinite(gamma) && gamma >= 0, op, `gamma must be a finite number >= 0, got ${String(gamma)}`);
    this.gamma = gamma;
    this.apply();
  }
  lrAt(s: number): number {
    return this.baseLr * this.gamma ** Math.floor(s / this.stepSize);
  }
}

export interface WarmupCosineOptions {
  /** linear warmup from 0 to baseLr over this many steps (default 0) */
  warmupSteps?: number;
  /** the step at which the cosine reaches minLr (it stays there afterwards) */
  totalSteps: number;
  /** default 0 */
  minLr?: number;
}

/**
 * Linear warmup then cosine decay:
 *   s < warmup:  baseLr · s / warmup
 *   else:        minLr + (baseLr − minLr) · ½(1 + cos(π · min(1, (s − warmup) / (total − warmup))))
 */
export class WarmupCosineLR extends LRScheduler {
  readonly warmupSteps: number;
  readonly totalSteps: number;
  readonly minLr: number;
  constructor(optimizer: HasLr, opts: WarmupCosineOptions) {
    super(optimizer);
    const op = 'WarmupCosineLR';
    this.warmupSteps = int(opts?.warmupSteps ?? 0, 'warmupSteps', op, 0);
    this.totalSteps = int(opts.totalSteps, 'totalSteps', op, 1);
    check(this.totalSteps >= this.warmupSteps, op, `totalSteps (${this.totalSteps}) must be >= warmupSteps (${this.warmupSteps})`);
    const minLr = opts.minLr ?? 0;
    check(typeof minLr === 'number' && Number.isFinite(minLr) && minLr >= 0, op, `minLr must be a finite number >= 0, got ${String(minLr)}`);
    this.minLr = minLr;
    this.apply();
  }
  lrAt(s: number): number {
    const w = this.warmupSteps;
    if (s < w) return (this.baseLr * s) / w;
    const span = this.totalSteps - w;
    const progress = span === 0 ? 1 : Math.min(1, (s - w) / span);
    return this.minLr + (this.baseLr - this.minLr) * 0.5 * (1 + Math.cos(Math.PI * progress));
  }
}

/** lr = baseLr · factor(s), for any schedule. */
export class LambdaLR extends LRScheduler {
  constructor(optimizer: HasLr, readonly factor: (s: number) => number) {
    super(optimizer);
    check(typeof factor === 'function', 'LambdaLR', 'factor must be a function of the step');
    this.apply();
  }
  lrAt(s: number): number {
    const f = this.factor(s);
    check(Number.isFinite(f) && f >= 0, 'LambdaLR', `factor(${s}) must be a finite number >= 0, got ${f}`);
    return this.baseLr * f;
  }
}
