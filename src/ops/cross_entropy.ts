// Cross-entropy with class-index targets, fused with log-softmax (PyTorch F.cross_entropy semantics:
// ignoreIndex, labelSmoothing, reduction 'mean' | 'sum' | 'none'). Forward: one kernel per row
// (logsumexp + loss, lse saved) and, for 'mean'/'sum', one single-workgroup reduction; backward: one
// kernel (softmax − smoothed one-hot, scaled). Many classes (S = 1, C > 64): a workgroup per row,
// reading vec4s when C % 4 == 0; otherwise an invocation per row / per element.
// See kernels/cross_entropy.wgsl.
import src from '../../kernels/cross_entropy.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, ShapeError } from '../errors.js';
import { needsGrad, record } from '../autodiff.js';
import { numel, sameShape, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { indexGuard } from './embedding.js';
import { add, affine, checkSameDevice, checkTensor, exp, log, mul, sub } from './elementwise.js';
import { max, sum } from './reduce.js';
import { reshape } from './shape_ops.js';
import { type Arr, arr } from '../reference.js';

const K = kernel('cross_entropy.wgsl', src);
const WG_SMALL = 128;
const WG_ROW = 128;
const WG_BWD = 256;
/** one workgroup per row above this many classes (when rows are contiguous) */
const ROW_KERNEL_MIN_CLASSES = 64;

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** target value that contributes neither loss nor gradient (default -100) */
  ignoreIndex?: number;
  /** ε in [0, 1]: the target distribution is (1-ε)·onehot + ε/C (default 0) */
  labelSmoothing?: number;
  /** default 'mean' (over non-ignored targets) */
  reduction?: Reduction;
}

interface Resolved {
  ignoreIndex: number;
  eps: number;
  reduction: Reduction;
}

function resolveOpts(opts: CrossEntropyOptions, op: string): Resolved {
  const ignoreIndex = opts.ignoreIndex ?? -100;
  check(Number.isInteger(ignoreIndex) && ignoreIndex >= -0x80000000 && ignoreIndex <= 0x7fffffff, op, `ignoreIndex must be a 32-bit integer, got ${ignoreIndex}`);
  const eps = opts.labelSmoothing ?? 0;
  check(typeof eps === 'number' && eps >= 0 && eps <= 1, op, `labelSmoothing must be in [0, 1], got ${eps}`);
  const reduction = opts.reduction ?? 'mean';
  check(reduction === 'mean' || reduction === 'sum' || reduction === 'none', op, `reduction must be 'mean', 'sum' or 'none', got '${String(reduction)}'`);
  return { ignoreIndex, eps, reduction };
}

/** [N, C, S] view of the logits and the expected targets shape. */
function layout(shape: Shape): { n: number; c: number; s: number; targetShape: number[] } {
  if (shape.length === 1) return { n: 1, c: shape[0]!, s: 1, targetShape: [] };
  return { n: shape[0]!, c: shape[1]!, s: numel(shape.slice(2)), targetShape: [shape[0]!, ...shape.slice(2)] };
}

/**
 * Cross-entropy between logits [N, C] (or [N, C, d1, ...], or [C]) and int32 class targets [N]
 * (or [N, d1, ...], or []), given as an int32 Tensor or an Int32Array. Returns a scalar for
 * 'mean'/'sum' and the per-target losses for 'none'. Gradient flows to logits.
 */
export function crossEntropy(logits: Tensor, targets: Tensor | Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropy';
  checkTensor(logits, op, 'logits');
  check(logits.rank >= 1, op, `logits must have at least 1 dim [C] or 2 dims [N, C, ...], got ${fmtShape(logits.shape)}`);
  const { ignoreIndex, eps, reduction } = resolveOpts(opts, op);
  const { n, c: C, s: S, targetShape } = layout(logits.shape);
  check(C > 0, op, `logits ${fmtShape(logits.shape)} has no classes (dim ${logits.rank === 1 ? 0 : 1} is 0)`);
  const dev = logits.device;
  let tT: Tensor;
  let fromCpu = false;
  if (targets instanceof Int32Array) {
    check(targets.length === numel(targetShape), op, `targets has ${targets.length} values but logits ${fmtShape(logits.shape)} needs targets of shape ${fmtShape(targetShape)}`);
    for (let i = 0; i < targets.length; i++) {
      const y = targets[i]!;
      if (y !== ignoreIndex && (y < 0 || y >= C)) {
        throw new ShapeError(`${op}: targets[${i}] = ${y} is out of range for logits ${fmtShape(logits.shape)} with ${C} classes (valid [0, ${C}) or ignoreIndex ${ignoreIndex})`);
      }
    }
    tT = dev.tensor(targets, targetShape, { dtype: 'int32' });
    fromCpu = true;
  } else {
    check(targets instanceof Tensor, op, `targets must be an int32 Tensor or an Int32Array, got ${targets === null ? 'null' : typeof targets}`);
    targets.storage; // throws DisposedError
    check(targets.dtype === 'int32', op, `targets must be int32, got ${targets.dtype} ${fmtShape(targets.shape)}`);
    checkSameDevice(op, { logits, targets });
    check(sameShape(targets.shape, targetShape), op, `targets ${fmtShape(targets.shape)} must have shape ${fmtShape(targetShape)} for logits ${fmtShape(logits.shape)} (batch ${n}${S > 1 ? `, trailing dims ${fmtShape(logits.shape.slice(2))}` : ''})`);
    tT = targets;
  }
  const rows = n * S;
  const guard = indexGuard(dev);
  const call = fromCpu
    ? 0
    : guard.register({
      op, arg: 'targets', what: `(int32 ${fmtShape(tT.shape)}, logits ${fmtShape(logits.shape)})`,
      tensor: new WeakRef(tT), lo: 0, hi: C, allowed: ignoreIndex,
    });
  const rowLoss = dev.empty(reduction === 'none' ? targetShape : [rows]);
  const lse = dev.empty([rows]);
  const useRow = S === 1 && C > ROW_KERNEL_MIN_CLASSES;
  const vec4 = useRow && C % 4 === 0;
  dev.dispatch(K, vec4 ? 'ce_fwd_row4' : useRow ? 'ce_fwd_row' : 'ce_fwd_small', {
    bindings: { [vec4 ? 'logits4' : 'logits']: logits, targets: tT, loss: rowLoss, lse, flag: guard.range },
    uniforms: { rows, classes: C, inner: S, ignore_index: ignoreIndex, smoothing: eps, call },
    overrides: { WG: useRow ? WG_ROW : WG_SMALL },
    workgroups: useRow ? dev.grid1d(rows, 1) : dev.grid1d(rows, WG_SMALL),
  });
  let out: Tensor;
  let stats: Tensor | null = null;
  if (reduction === 'none') out = rowLoss;
  else {
    out = dev.empty([]);
    stats = dev.empty([1]);
    dev.dispatch(K, 'ce_reduce', {
      bindings: { rloss: rowLoss, rtarget: tT, out, stats },
      uniforms: { rows, ignore_index: ignoreIndex, mean: reduction === 'mean' ? 1 : 0 },
      overrides: { WG: 256 },
      workgroups: [1],
    });
    rowLoss.dispose();
  }
  if (!needsGrad(logits)) {
    lse.dispose();
    stats?.dispose();
    if (fromCpu) tT.dispose();
    return out;
  }
  const savedT = fromCpu ? tT : tT.detach(); // keeps the targets alive if the caller disposes theirs
  return record(op, out, [logits], (g) => {
    const gx = dev.empty(logits.shape);
    dev.dispatch(K, vec4 ? 'ce_bwd_row4' : useRow ? 'ce_bwd_row' : 'ce_bwd', {
      bindings: { [vec4 ? 'blogits4' : 'blogits']: logits, btarget: savedT, blse: lse, gy: g, bstats: stats ?? lse, [vec4 ? 'gx4' : 'gx']: gx },
      uniforms: {
        rows, total: logits.size, classes: C, inner: S, ignore_index: ignoreIndex, smoothing: eps,
        mode: reduction === 'none' ? 0 : reduction === 'sum' ? 1 : 2,
      },
      overrides: { WG: useRow ? WG_ROW : WG_BWD },
      workgroups: useRow ? dev.grid1d(rows, 1) : dev.grid1d(logits.size, WG_BWD),
    });
    return [gx];
  });
}

/**
 * The unfused composite (logsumexp from max/exp/sum/log, then a masked one-hot dot product) for
 * 2-D logits [N, C]: the test oracle of the fused op. targets on the CPU.
 */
export function crossEntropyComposite(logits: Tensor, targets: Int32Array, opts: CrossEntropyOptions = {}): Tensor {
  const op = 'crossEntropyComposite';
  checkTensor(logits, op, 'logits');
  check(logits.rank === 2, op, `logits must be [N, C], got ${fmtShape(logits.shape)}`);
  const { ignoreIndex, eps, reduction } = resolveOpts(opts, op);
  const [N, C] = logits.shape as [number, number];
  check(targets.length === N, op, `targets has ${targets.length} values for logits ${fmtShape(logits.shape)}`);
  const dev = logits.device;
  // target distribution q = (1-ε)·onehot + ε/C on valid rows, 0 on ignored rows
  const q = new Float32Array(N * C);
  const valid = new Float32Array(N);
  let count = 0;
  for (let i = 0; i < N; i++) {
    const y = targets[i]!;
    if (y === ignoreIndex) continue;
    check(y >= 0 && y < C, op, `targets[${i}] = ${y} out of range`);
    valid[i] = 1;
    count++;
    for (let c = 0; c < C; c++) q[i * C + c] = eps / C + (c === y ? 1 - eps : 0);
  }
  const m = max(logits, 1, true);
  const sh = sub(logits, m);
  const lse = add(log(sum(exp(sh), 1, true)), m); // [N, 1]
  // Σ_c q_c (lse - x_c) = lse·Σq - Σ q·x, with Σq = valid
  const qT = dev.tensor(q, [N, C]);
  const vT = dev.tensor(valid, [N, 1]);
  const perRow = sub(mul(lse, vT), sum(mul(qT, logits), 1, true)); // [N, 1]
  const flat = reshape(perRow, [N]);
  if (reduction === 'none') return flat;
  const total = sum(flat);
  return reduction === 'sum' ? total : affine(total, 1 / count);
}

// ---- float64 references -------------------------------------------------------------------------

function refRows(logits: Arr): { n: number; c: number; s: number; targetShape: number[] } {
  return layout(logits.shape);
}

/** Per-row lse and the loss, float64. */
export function crossEntropyRef(logits: Arr, targets: Int32Array, opts: CrossEntropyOptions = {}): Arr {
  const { ignoreIndex, eps, reduction } = resolveOpts(opts, 'crossEntropyRef');
  const { n, c: C, s: S, targetShape } = refRows(logits);
  const rows = arr(targetShape);
  let total = 0;
  let count = 0;
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < S; s++) {
      const r = i * S + s;
      const y = targets[r]!;
      if (y === ignoreIndex) continue;
      const at = (c: number): number => logits.data[(i * C + c) * S + s]!;
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = Math.max(m, at(c));
      let se = 0;
      let sx = 0;
      for (let c = 0; c < C; c++) {
        se += Math.exp(at(c) - m);
        sx += at(c);
      }
      const lse = m + Math.log(se);
      const l = (1 - eps) * (lse - at(y)) + eps * (lse - sx / C);
      rows.data[r] = l;
      total += l;
      count++;
    }
  }
  if (reduction === 'none') return rows;
  return arr([], [reduction === 'sum' ? total : total / count]);
}

/** d loss / d logits times g (g is a scalar for 'mean'/'sum', per-target for 'none'). */
export function crossEntropyRefBackward(g: Arr, logits: Arr, targets: Int32Array, opts: CrossEntropyOptions = {}): Arr {
  const { ignoreIndex, eps, reduction } = resolveOpts(opts, 'crossEntropyRefBackward');
  const { n, c: C, s: S } = refRows(logits);
  const gx = arr(logits.shape);
  let count = 0;
  for (let r = 0; r < n * S; r++) if (targets[r] !== ignoreIndex) count++;
  for (let i = 0; i < n; i++) {
    for (let s = 0; s < S; s++) {
      const r = i * S + s;
      const y = targets[r]!;
      if (y === ignoreIndex) continue;
      const w = reduction === 'none' ? g.data[r]! : reduction === 'sum' ? g.data[0]! : g.data[0]! / count;
      const idx = (c: number): number => (i * C + c) * S + s;
      let m = -Infinity;
      for (let c = 0; c < C; c++) m = Math.max(m, logits.data[idx(c)]!);
      let se = 0;
      for (let c = 0; c < C; c++) se += Math.exp(logits.data[idx(c)]! - m);
      for (let c = 0; c < C; c++) {
        const p = Math.exp(logits.data[idx(c)]! - m) / se;
        gx.data[idx(c)] = w * (p - (c === y ? 1 - eps : 0) - eps / C);
      }
    }
  }
  return gx;
}
