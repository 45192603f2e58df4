// Optimizer base: holds the parameter list and per-parameter state tensors (long-lived, saved
// with checkpoints). Subclasses implement step() with fused WGSL update kernels.
import { ShapeError } from '../errors.js';
import { keep, Tensor } from '../tensor.js';

export abstract class Optimizer<Opts extends { lr: number }> {
  readonly params: Tensor[];
  /** per-parameter state tensors by name (e.g. exp_avg), same order as params */
  readonly state: Map<Tensor, Record<string, Tensor>> = new Map();
  stepCount = 0;

  constructor(params: Iterable<Tensor>, public options: Opts) {
    this.params = [...params];
    if (!this.params.length) throw new ShapeError(`${new.target.name}: got an empty parameter list`);
    for (const [i, p] of this.params.entries()) {
      if (!(p instanceof Tensor)) throw new ShapeError(`${new.target.name}: params[${i}] is not a Tensor`);
      if (!p.requiresGrad) throw new ShapeError(`${new.target.name}: params[${i}] does not require grad`);
    }
    if (!(Number.isFinite(options.lr) && options.lr >= 0)) throw new ShapeError(`${new.target.name}: lr must be a finite number >= 0, got ${options.lr}`);
  }

  get lr(): number {
    return this.options.lr;
  }
  set lr(v: number) {
    if (!(Number.isFinite(v) && v >= 0)) throw new ShapeError(`${this.constructor.name}: lr must be a finite number >= 0, got ${v}`);
    this.options.lr = v;
  }

  /** Drops every parameter's gradient (the next backward starts from zero). */
  zeroGrad(): void {
    for (const p of this.params) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** State tensor `name` of p, created zero-filled on first use. */
  protected stateOf(p: Tensor, name: string): Tensor {
    let s = this.state.get(p);
    if (!s) this.state.set(p, (s = {}));
    let t = s[name];
    if (!t) s[name] = t = keep(p.device.zeros(p.shape));
    return t;
  }

  abstract step(): void;

  /** Optimizer state by "<param index>.<name>" plus the step count, for checkpoints. */
  stateDict(): { step: number; tensors: Record<string, Tensor> } {
    const tensors: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      for (const [k, t] of Object.entries(this.state.get(p) ?? {})) tensors[`${i}.${k}`] = t;
    });
    return { step: this.stepCount, tensors };
  }

  loadStateDict(sd: { step: number; tensors: Record<string, Tensor> }): void {
    this.stepCount = sd.step;
    for (const [key, t] of Object.entries(sd.tensors)) {
      const dot = key.indexOf('.');
      const i = Number(key.slice(0, dot));
      const p = this.params[i];
      if (!p) throw new ShapeError(`${this.constructor.name}.loadStateDict: no parameter ${i} for state '${key}'`);
      this.stateOf(p, key.slice(dot + 1)).copy_(t);
    }
  }
}
