// softmax and logSoftmax over any dim, forward and backward, one fused dispatch per direction.
// The reduced dim is addressed through strides (x seen as [outer, R, inner]), never permuted: a
// permute would cost two extra passes over memory. The layout (one invocation per row, per 4
// neighbouring rows, or one workgroup per row) is chosen here from the row count, the row length
// and the adapter; see kernels/softmax.wgsl.
import src from '../../kernels/softmax.wgsl';
import { kernel } from '../gpu/kernel.js';
import type { Device } from '../gpu/device.js';
import type { BufferRange } from '../graph/executor.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { normDim, numel } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkTensor } from './elementwise.js';
import { type Arr, arr } from '../reference.js';

const K = kernel('softmax.wgsl', src);

/** Kernel layouts (kernels/softmax.wgsl): invocation per row, per 4 rows (inner % 4 == 0), workgroup per row. */
export type SoftmaxPath = 'row' | 'col4' | 'wg';

interface Geom {
  outer: number;
  r: number;
  inner: number;
  rows: number;
}

function geometry(shape: readonly number[], d: number): Geom {
  const outer = numel(shape.slice(0, d));
  const r = shape[d] ?? 1;
  const inner = numel(shape.slice(d + 1));
  return { outer, r, inner, rows: outer * inner };
}


/**
 * Adapters where workgroup trees cost more than they save (measured at createDevice, see
 * gpu/profile.ts): CPU-like adapters that run invocations as SIMD lanes, with costly barriers.
 */
export function isCpuAdapter(dev: Device): boolean {
  return dev.profile.barrierBound;
}

/**
 * Layout and workgroup size for rows x R. Measured on lavapipe (2 cores, 8 lanes): one invocation
 * per row beats one workgroup per row (tree) at every R down to 4 rows (1024x1000: 3.6 vs 11 ms;
 * 8x131072: 3.5 vs 10 ms), so the tree only serves fewer rows than SIMD lanes. On a GPU an
 * invocation per row leaves the device idle unless rows are many, and with inner == 1 its loads
 * are not coalesced, so rows longer than a few elements get a workgroup each (not measured here).
 */
export function softmaxPlan(dev: Device, rows: number, r: number, inner: number): { path: SoftmaxPath; wg: number } {
  const path: SoftmaxPath = inner % 4 === 0 ? 'col4' : 'row';
  const n = path === 'col4' ? rows / 4 : rows; // invocations of the per-row layouts
  let wide: boolean;
  if (isCpuAdapter(dev)) wide = n < 4 && r >= 512;
  else wide = inner === 1 ? r >= 64 : rows < 8192 && r >= 256;
  if (wide) return { path: 'wg', wg: r >= 4096 && !isCpuAdapter(dev) ? 256 : 64 };
  // small workgroups when rows are few, so they still spread over every core / SM
  return { path, wg: Math.min(64, Math.max(8, 2 ** Math.floor(Math.log2(Math.max(1, n / 8))))) };
}

/** A vec4 view of t's buffer covering all its elements (null when the buffer is too short for one). */
function vecView(t: Tensor): BufferRange | null {
  const size = Math.max(16, Math.ceil((t.size * 4) / 16) * 16);
  const buffer = t.storage.buffer;
  return size <= buffer.size ? { buffer, offset: 0, size } : null;
}

/**
 * Binds vec4 views for the row layout; when a tensor's buffer cannot hold one (a caller's
 * buffer of an odd size), the kernel runs scalar-only and the view is bound to a scratch buffer.
 */
function vecViews(dev: Device, ts: Tensor[]): { views: BufferRange[]; vec: number; scratch: Tensor | null } {
  const v = ts.map(vecView);
  if (v.every((r) => r !== null)) return { views: v as BufferRange[], vec: 1, scratch: null };
  const scratch = dev.empty([4]);
  return { views: ts.map(() => scratch.range()), vec: 0, scratch };
}

function dispatchGrid(dev: Device, path: SoftmaxPath, n: number, wg: number): [number, number, number] {
  return path === 'wg' ? dev.grid1d(n, 1) : dev.grid1d(n, wg);
}

function forwardRaw(x: Tensor, g: Geom, log: boolean, force?: SoftmaxForce): Tensor {
  const dev = x.device;
  const y = dev.empty(x.shape);
  if (x.size === 0) return y;
  const plan = pathFor(dev, g, force);
  const overrides = { WG: plan.wg, LOG: log ? 1 : 0 };
  if (plan.path === 'col4') {
    const n = g.rows / 4;
    dev.dispatch(K, 'softmax_fwd_col4', {
      bindings: { x4: x, y4: y },
      uniforms: { rows: n, r: g.r, inner: g.inner / 4, vec: 1 },
      overrides,
      workgroups: dispatchGrid(dev, 'col4', n, plan.wg),
    });
  } else if (plan.path === 'row') {
    const { views, vec, scratch } = vecViews(dev, [x]);
    dev.dispatch(K, 'softmax_fwd_row', {
      bindings: { x, xa: views[0]!, y },
      uniforms: { rows: g.rows, r: g.r, inner: g.inner, vec },
      overrides,
      workgroups: dispatchGrid(dev, 'row', g.rows, plan.wg),
    });
    scratch?.dispose();
  } else {
    dev.dispatch(K, 'softmax_fwd_wg', {
      bindings: { x, y },
      uniforms: { rows: g.rows, r: g.r, inner: g.inner, vec: 0 },
      overrides,
      workgroups: dispatchGrid(dev, 'wg', g.rows, plan.wg),
    });
  }
  return y;
}

function backwardRaw(yo: Tensor, gy: Tensor, g: Geom, log: boolean, force?: SoftmaxForce): Tensor {
  const dev = yo.device;
  const gx = dev.empty(yo.shape);
  if (yo.size === 0) return gx;
  const plan = pathFor(dev, g, force);
  const overrides = { WG: plan.wg, LOG: log ? 1 : 0 };
  if (plan.path === 'col4') {
    const n = g.rows / 4;
    dev.dispatch(K, 'softmax_bwd_col4', {
      bindings: { yo4: yo, g4: gy, gx4: gx },
      uniforms: { rows: n, r: g.r, inner: g.inner / 4, vec: 1 },
      overrides,
      workgroups: dispatchGrid(dev, 'col4', n, plan.wg),
    });
  } else if (plan.path === 'row') {
    const { views, vec, scratch } = vecViews(dev, [yo, gy]);
    dev.dispatch(K, 'softmax_bwd_row', {
      bindings: { yo, yoa: views[0]!, g: gy, ga: views[1]!, gx },
      uniforms: { rows: g.rows, r: g.r, inner: g.inner, vec },
      overrides,
      workgroups: dispatchGrid(dev, 'row', g.rows, plan.wg),
    });
    scratch?.dispose();
  } else {
    dev.dispatch(K, 'softmax_bwd_wg', {
      bindings: { yo, g: gy, gx },
      uniforms: { rows: g.rows, r: g.r, inner: g.inner, vec: 0 },
      overrides,
      workgroups: dispatchGrid(dev, 'wg', g.rows, plan.wg),
    });
  }
  return gx;
}

/** A forced layout (tests): a path, or a path and its workgroup size. */
export type SoftmaxForce = SoftmaxPath | { path: SoftmaxPath; wg: number };

function pathFor(dev: Device, g: Geom, force?: SoftmaxForce): { path: SoftmaxPath; wg: number } {
  if (!force) return softmaxPlan(dev, g.rows, g.r, g.inner);
  const f = typeof force === 'string' ? { path: force, wg: 64 } : force;
  if (f.path === 'col4' && g.inner % 4 !== 0) return { path: 'row', wg: f.wg };
  return f;
}

/**
 * softmax / logSoftmax with an explicit layout. @internal Tests use `force` to run every kernel
 * layout on the same inputs; the public ops pick the layout themselves.
 */
export function softmaxImpl(x: Tensor, dim: number, log: boolean, force?: SoftmaxForce): Tensor {
  const op = log ? 'logSoftmax' : 'softmax';
  checkTensor(x, op, 'x');
  let d: number;
  let g: Geom;
  if (x.rank === 0) {
    // a scalar is a row of one (torch accepts dim 0 or -1)
    check(dim === 0 || dim === -1, op, `dim ${dim} is out of range for a tensor of shape ${fmtShape(x.shape)} (rank 0: use 0 or -1)`);
    d = 0;
    g = { outer: 1, r: 1, inner: 1, rows: 1 };
  } else {
    d = normDim(dim, x.rank, op, x.shape);
    g = geometry(x.shape, d);
  }
  const y = forwardRaw(x, g, log, force);
  return record(op, y, [x], (gy) => [backwardRaw(y, gy, g, log, force)]);
}

/** softmax(x) along dim: exp(x - max) / sum(exp(x - max)). */
export function softmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl(x, dim, false);
}

/** log(softmax(x)) along dim, computed as (x - max) - log(sum(exp(x - max))). */
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  return softmaxImpl(x, dim, true);
}

// ---- float64 references -------------------------------------------------------------------------

function refGeom(x: Arr, dim: number): Geom {
  const d = x.shape.length === 0 ? 0 : dim < 0 ? dim + x.shape.length : dim;
  return geometry(x.shape, d);
}

function eachRow(x: Arr, dim: number, f: (idx: number[]) => void): void {
  const { outer, r, inner } = refGeom(x, dim);
  const idx = new Array<number>(r);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      for (let j = 0; j < r; j++) idx[j] = (o * r + j) * inner + i;
      f(idx);
    }
  }
}

function refForward(x: Arr, dim: number, log: boolean): Arr {
  const y = arr(x.shape);
  eachRow(x, dim, (idx) => {
    let m = -Infinity;
    for (const i of idx) m = Math.max(m, x.data[i]!);
    let s = 0;
    for (const i of idx) s += Math.exp(x.data[i]! - m);
    const ls = Math.log(s);
    for (const i of idx) y.data[i] = log ? x.data[i]! - m - ls : Math.exp(x.data[i]! - m) / s;
  });
  return y;
}

export function softmaxRef(x: Arr, dim = -1): Arr {
  return refForward(x, dim, false);
}

export function logSoftmaxRef(x: Arr, dim = -1): Arr {
  return refForward(x, dim, true);
}

/** dx = y * (g - sum(g * y)) with y = softmax(x). */
export function softmaxRefBackward(g: Arr, x: Arr, dim = -1): Arr {
  const y = softmaxRef(x, dim);
  const gx = arr(x.shape);
  eachRow(x, dim, (idx) => {
    let t = 0;
    for (const i of idx) t += g.data[i]! * y.data[i]!;
    for (const i of idx) gx.data[i] = y.data[i]! * (g.data[i]! - t);
  });
  return gx;
}

/** dx = g - softmax(x) * sum(g). */
export function logSoftmaxRefBackward(g: Arr, x: Arr, dim = -1): Arr {
  const p = softmaxRef(x, dim);
  const gx = arr(x.shape);
  eachRow(x, dim, (idx) => {
    let t = 0;
    for (const i of idx) t += g.data[i]!;
    for (const i of idx) gx.data[i] = g.data[i]! - p.data[i]! * t;
  });
  return gx;
}
