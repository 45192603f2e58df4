// Reductions: sum, mean, max over any dims (keepDim), and sumTo (the adjoint of broadcasting).
// Each reduced axis is one pass of kernels/reduce.wgsl over the tensor viewed as [outer, R, inner];
// adjacent reduced axes are merged into one pass.
import src from '../../kernels/reduce.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { normDim, numel, sameShape, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkTensor, affine } from './elementwise.js';
import { expand, reshape } from './shape_ops.js';
import { type Arr, arr, unravel, ravel } from '../reference.js';

const K = kernel('reduce.wgsl', src);
const WG_ROWS = 64;
const WG_COLS = 64;

interface Pass {
  outer: number;
  r: number;
  inner: number;
}

/** One pass over [outer, R, inner] → [outer, inner]; max also returns argmax indices. */
function reducePass(x: Tensor, p: Pass, op: 'sum' | 'max', scale: number): { y: Tensor; idx: Tensor | null } {
  const dev = x.device;
  const y = dev.empty([p.outer * p.inner]);
  const idx = dev.empty([op === 'max' ? p.outer * p.inner : 1], 'int32');
  const rows = p.inner === 1;
  const workgroups = rows ? dev.grid1d(p.outer, 1) : dev.grid1d(p.outer * p.inner, WG_COLS);
  dev.dispatch(K, rows ? 'reduce_rows' : 'reduce_cols', {
    bindings: { x, y, idx },
    uniforms: { outer: p.outer, r: p.r, inner: p.inner, scale },
    overrides: { WG: rows ? WG_ROWS : WG_COLS, OP: op === 'sum' ? 0 : 1 },
    workgroups,
  });
  if (op === 'max') return { y, idx };
  idx.dispose();
  return { y, idx: null };
}

function normDims(x: Tensor, dim: number | readonly number[] | undefined, op: string): number[] {
  if (dim === undefined) return x.shape.map((_, i) => i);
  const ds = (typeof dim === 'number' ? [dim] : [...dim]).map((d) => normDim(d, x.rank, op, x.shape));
  check(new Set(ds).size === ds.length, op, `dims ${fmtShape(ds)} repeat a dim`);
  return ds.sort((a, b) => a - b);
}

/** Sum over the sorted dims ds without autodiff; returns the keepDim-shaped result. */
function sumRaw(x: Tensor, ds: readonly number[], scale: number): Tensor {
  const keptShape = x.shape.map((d, i) => (ds.includes(i) ? 1 : d));
  if (ds.length === 0) return affine(x, scale); // nothing to reduce: still a fresh tensor
  // group adjacent reduced dims into runs, reduce the last run first
  const runs: [number, number][] = [];
  for (const d of ds) {
    const last = runs[runs.length - 1];
    if (last && last[1] === d) last[1] = d + 1;
    else runs.push([d, d + 1]);
  }
  let cur = x;
  let shape = [...x.shape];
  for (let k = runs.length - 1; k >= 0; k--) {
    const [a, b] = runs[k]!;
    const outer = numel(shape.slice(0, a));
    const r = numel(shape.slice(a, b));
    const inner = numel(shape.slice(b));
    const { y } = reducePass(cur, { outer, r, inner }, 'sum', k === 0 ? scale : 1);
    if (cur !== x) cur.dispose();
    cur = y;
    shape = [...shape.slice(0, a), ...new Array<number>(b - a).fill(1), ...shape.slice(b)];
  }
  return reshapeRaw(cur, keptShape);
}

function reshapeRaw(t: Tensor, shape: Shape): Tensor {
  if (sameShape(t.shape, shape)) return t;
  t.storage.retain();
  const out = new Tensor(t.device, t.storage, shape, t.dtype);
  t.dispose();
  return out;
}

function reduceSum(x: Tensor, dim: number | readonly number[] | undefined, keepDim: boolean, op: 'sum' | 'mean'): Tensor {
  checkTensor(x, op, 'x');
  const ds = normDims(x, dim, op);
  const count = numel(ds.map((d) => x.shape[d]!));
  if (op === 'mean') check(count > 0, 'mean', `mean over an empty dim of ${fmtShape(x.shape)}`);
  const scale = op === 'mean' ? 1 / count : 1;
  const kept = sumRaw(x, ds, scale);
  const outShape = keepDim ? kept.shape : x.shape.filter((_, i) => !ds.includes(i));
  const out = reshapeRaw(kept, outShape);
  return record(op, out, [x], (g) => {
    const gk = reshape(g, x.shape.map((d, i) => (ds.includes(i) ? 1 : d)));
    let gx = expand(gk, x.shape);
    if (gx === gk) gx = affine(gk, 1); // nothing broadcast: still return a fresh tensor
    if (gk !== g) gk.dispose();
    if (op === 'mean') {
      const s = affine(gx, scale);
      gx.dispose();
      gx = s;
    }
    return [gx];
  });
}

/** Sum over dim (a number, a list, or all dims when omitted). */
export function sum(x: Tensor, dim?: number | readonly number[], keepDim = false): Tensor {
  return reduceSum(x, dim, keepDim, 'sum');
}

/** Mean over dim (a number, a list, or all dims when omitted). */
export function mean(x: Tensor, dim?: number | readonly number[], keepDim = false): Tensor {
  return reduceSum(x, dim, keepDim, 'mean');
}

/** Max over one dim (or over all elements when dim is omitted). The gradient goes to the first maximum. */
export function max(x: Tensor, dim?: number, keepDim = false): Tensor {
  checkTensor(x, 'max', 'x');
  let pass: Pass;
  let keptShape: number[];
  if (dim === undefined) {
    pass = { outer: 1, r: x.size, inner: 1 };
    keptShape = x.shape.map(() => 1);
  } else {
    const d = normDim(dim, x.rank, 'max', x.shape);
    pass = { outer: numel(x.shape.slice(0, d)), r: x.shape[d]!, inner: numel(x.shape.slice(d + 1)) };
    keptShape = x.shape.map((s, i) => (i === d ? 1 : s));
  }
  check(pass.r > 0, 'max', `max over an empty dim of ${fmtShape(x.shape)}`);
  const { y, idx } = reducePass(x, pass, 'max', 1);
  const outShape = keepDim ? keptShape : dim === undefined ? [] : keptShape.filter((_, i) => i !== normDim(dim, x.rank, 'max', x.shape));
  const out = reshapeRaw(y, outShape);
  const node = record('max', out, [x], (g) => {
    const gx = x.device.zeros(x.shape);
    x.device.dispatch(K, 'max_bwd', {
      bindings: { gy: g, at: idx!, gx },
      uniforms: { n: pass.outer * pass.inner, r: pass.r, inner: pass.inner },
      overrides: { WG: WG_COLS },
      workgroups: x.device.grid1d(pass.outer * pass.inner, WG_COLS),
    });
    return [gx];
  });
  if (!node.requiresGrad) idx!.dispose();
  return node;
}

/** Sums x down to `shape` (the adjoint of broadcasting x from `shape`). Returns x itself if equal. */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const off = x.rank - shape.length;
  check(off >= 0, 'sumTo', `cannot sum ${fmtShape(x.shape)} to the larger rank ${fmtShape(shape)}`);
  const ds: number[] = [];
  x.shape.forEach((d, i) => {
    if (i < off) ds.push(i);
    else if (shape[i - off] === 1 && d !== 1) ds.push(i);
    else check(shape[i - off] === d, 'sumTo', `cannot sum ${fmtShape(x.shape)} to ${fmtShape(shape)}`);
  });
  return reshape(sum(x, ds, true), shape);
}

// ---- float64 references -------------------------------------------------------------------------

export function sumRef(x: Arr, dims: readonly number[], keepDim: boolean, scale = 1): Arr {
  const kept = x.shape.map((d, i) => (dims.includes(i) ? 1 : d));
  const out = arr(kept);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).map((k, d) => (dims.includes(d) ? 0 : k));
    out.data[ravel(idx, kept)]! += x.data[i]! * scale;
  }
  if (!keepDim) out.shape = x.shape.filter((_, i) => !dims.includes(i));
  return out;
}

export function maxRef(x: Arr, dim: number): { y: Arr; idx: Int32Array } {
  const kept = x.shape.map((d, i) => (i === dim ? 1 : d));
  const y = arr(kept);
  y.data.fill(-Infinity);
  const idx = new Int32Array(y.data.length);
  for (let i = 0; i < x.data.length; i++) {
    const mi = unravel(i, x.shape);
    const j = mi[dim]!;
    mi[dim] = 0;
    const o = ravel(mi, kept);
    if (x.data[i]! > y.data[o]!) {
      y.data[o] = x.data[i]!;
      idx[o] = j;
    }
  }
  return { y, idx };
}
