// SGD with momentum, dampening, Nesterov momentum and (coupled) weight decay, PyTorch semantics:
//   g ← g + wd·p;  buf ← g on a parameter's first step, else momentum·buf + (1 − dampening)·g;
//   g ← g + momentum·buf (nesterov) or buf;  p ← p − lr·g.
// Fused multi-tensor update (kernels/optim.wgsl sgd_step): up to 4 parameters per dispatch, the
// momentum buffers in an arena (see adam.ts, FusedOptimizer).
import { check } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { checkHyper, dummies, FusedOptimizer, optimKernel, OPT_WG, SLOTS } from './adam.js';

export interface SGDOptions {
  /** default 1e-3 */
  lr?: number;
  /** default 0 (no momentum buffer) */
  momentum?: number;
  /** default 0 */
  dampening?: number;
  /** L2 penalty added to the gradient (default 0) */
  weightDecay?: number;
  /** Nesterov momentum (needs momentum > 0 and dampening 0); default false */
  nesterov?: boolean;
}

interface SGDResolved {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
}

function resolveSgd(o: SGDOptions): SGDResolved {
  const op = 'SGD';
  check(o && typeof o === 'object', op, 'options must be an object');
  const lr = checkHyper(o.lr ?? 1e-3, 'lr', op, 0, Infinity, true);
  const momentum = checkHyper(o.momentum ?? 0, 'momentum', op, 0, Infinity, true);
  const dampening = checkHyper(o.dampening ?? 0, 'dampening', op, 0, 1, false);
  const weightDecay = checkHyper(o.weightDecay ?? 0, 'weightDecay', op, 0, Infinity, true);
  const nesterov = o.nesterov ?? false;
  check(typeof nesterov === 'boolean', op, `nesterov must be a boolean, got ${String(nesterov)}`);
  check(!nesterov || (momentum > 0 && dampening === 0), op, `nesterov momentum needs momentum > 0 and dampening 0, got momentum ${momentum}, dampening ${dampening}`);
  return { lr, momentum, dampening, weightDecay, nesterov };
}

export class SGD extends FusedOptimizer<SGDResolved> {
  constructor(params: Iterable<Tensor>, opts: SGDOptions = {}) {
    const r = resolveSgd(opts);
    super(params, r, r.momentum > 0 ? ['momentum_buffer'] : []);
  }

  step(): void {
    // a parameter's buffer is fresh on its first step (paramSteps is advanced by collect())
    const batches = this.collect();
    const { lr, momentum, dampening, weightDecay, nesterov } = this.options;
    const dev = this.device;
    const hasBuf = this.stateNames.length > 0;
    for (const batch of batches) {
      const { bindings, ends, sizes, post } = this.slotBindings(batch);
      dev.dispatch(optimKernel, 'sgd_step', {
        bindings: {
          ...bindings,
          momentum_buffer: hasBuf ? this.arenaOf(batch, 'momentum_buffer') : dummies(dev, SLOTS + 2)[SLOTS + 1]!,
        },
        uniforms: {
          ends,
          sizes,
          buf_off: hasBuf ? this.offsets(batch, 'momentum_buffer') : [0, 0, 0, 0],
          first: Array.from({ length: SLOTS }, (_, k) => (batch[k] && this.paramSteps[batch[k]!.index] === 1 ? 1 : 0)),
          lr,
          momentum: hasBuf ? momentum : 0,
          dampening,
          weight_decay: weightDecay,
          nesterov: nesterov ? 1 : 0,
        },
        overrides: { WG: OPT_WG },
        workgroups: dev.grid1d(ends[SLOTS - 1]!, OPT_WG),
      });
      post.forEach((f) => f());
    }
  }
}
