// Reductions: sum, mean, max over any dims (keepDim), and sumTo (the adjoint of broadcasting).
// Each run of adjacent reduced dims (size-1 dims dropped first) is one pass of kernels/reduce.wgsl
// over the tensor viewed as [outer, R, inner]; a pass with a long R and little parallelism is split
// in two (chunks of R, then the partial results). See "Strategy" below.
import src from '../../kernels/reduce.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { noGrad, record } from '../autodiff.js';
import { checkShape, numel, sameShape, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { affine, checkTensor, fits4, range4 } from './elementwise.js';
import { dimOf, expand, reshape } from './shape_ops.js';
import { type Arr, arr, unravel, ravel } from '../reference.js';

const K = kernel('reduce.wgsl', src);

// Strategy (chosen per pass from the shape, never from the adapter's name):
// - a row (inner == 1) of at most THREAD_ROW_MAX elements gets one invocation: short rows do not
//   pay for a workgroup tree (on lavapipe a barrier costs ~0.6 us at 64 invocations, more than
//   summing a few hundred floats); vec4 loads when the row length is a multiple of 4.
// - a longer row gets a workgroup (TREE_WG invocations, strided loads, fan-in-8 tree), as GPUs want.
// - columns (inner > 1) get one invocation per output (4 adjacent outputs with vec4 loads when
//   inner % 4 == 0): neighbouring invocations read neighbouring addresses and no barrier is needed.
// - when a pass would have too little parallelism (few long rows, or few columns over a long R),
//   R is split into chunks reduced in parallel, then a second pass reduces the partial results.
//   Tree chunks are long (TREE_CHUNK): on lavapipe each workgroup with barriers costs tens of us,
//   so [1, 2^20] runs best as 64 workgroups (2.2 ms) rather than 256 (7.7 ms); a GPU still gets
//   64 workgroups streaming 64 KiB each.
/** Rows up to this length: one invocation per row. */
export const THREAD_ROW_MAX = 1024;
/** Workgroup size of the tree kernel for long rows. */
export const TREE_WG = 64;
/** Workgroup size of the one-invocation-per-output kernels. */
export const THREAD_WG = 64;
/** Long rows are split when there are fewer rows than this... */
export const TREE_MIN_ROWS = 64;
/** ...into chunks of this many elements (one workgroup each). */
export const TREE_CHUNK = 16384;
/** Columns are split when there are fewer outputs than this... */
export const COLS_MIN_OUTPUTS = 4096;
/** ...and the reduced axis is at least this long; chunks have at least COLS_MIN_CHUNK elements. */
export const COLS_SPLIT_R = 256;
export const COLS_MIN_CHUNK = 64;

/** [outer, r, inner] */
export interface Geom {
  outer: number;
  r: number;
  inner: number;
}

/** A pass: R cut into nchunks chunks of `chunk` elements (no split: chunk = r, nchunks = 1). */
export interface PassGeom extends Geom {
  chunk: number;
  nchunks: number;
}

/** The kernel a pass uses (exported for tests and benchmarks). */
export type ReduceKernel = 'reduce_thread' | 'reduce_thread4' | 'reduce_cols4' | 'reduce_tree';


/** Which kernel reduces a pass of this geometry. */
export function pickKernel(g: PassGeom, x?: Tensor): ReduceKernel {
  if (g.inner === 1) {
    if (g.chunk > THREAD_ROW_MAX) return 'reduce_tree';
    const n = g.outer * g.r;
    if (g.chunk % 4 === 0 && g.r % 4 === 0 && (!x || fits4(n, x))) return 'reduce_thread4';
    return 'reduce_thread';
  }
  if (g.inner % 4 === 0) return 'reduce_cols4';
  return 'reduce_thread';
}

/** How many chunks to split R into (1 = no split). */
export function splitCount(g: Geom): number {
  if (g.inner === 1) {
    if (g.r <= THREAD_ROW_MAX || g.outer >= TREE_MIN_ROWS || g.r < 2 * TREE_CHUNK) return 1;
    return Math.ceil(g.r / TREE_CHUNK);
  }
  const outputs = g.outer * g.inner;
  if (outputs >= COLS_MIN_OUTPUTS || g.r < COLS_SPLIT_R) return 1;
  return Math.max(1, Math.min(Math.ceil(COLS_MIN_OUTPUTS / outputs), Math.floor(g.r / COLS_MIN_CHUNK)));
}

/** One dispatch over [outer, R, inner] → [outer, nchunks, inner]; max also returns indices within R. */
function reducePass(
  x: Tensor, g: PassGeom, op: 'sum' | 'max', scale: number, idxIn: Tensor | null, force?: ReduceKernel,
): { y: Tensor; idx: Tensor | null } {
  const dev = x.device;
  const nOut = g.outer * g.nchunks * g.inner;
  const y = dev.empty([nOut]);
  const idx = dev.empty([op === 'max' ? nOut : 1], 'int32');
  const kern = force ?? pickKernel(g, x);
  const ok = kern === 'reduce_thread' || (kern === 'reduce_cols4' ? g.inner % 4 === 0 : g.inner === 1 && (kern === 'reduce_tree' || (g.chunk % 4 === 0 && g.r % 4 === 0)));
  if (!ok) throw new Error(`wgnn internal: ${kern} cannot reduce [${g.outer}, ${g.r}, ${g.inner}] in chunks of ${g.chunk}`);
  const uniforms = { outer: g.outer, r: g.r, inner: g.inner, chunk: g.chunk, nchunks: g.nchunks, scale };
  const overrides = { OP: op === 'sum' ? 0 : 1, IDX_IN: idxIn ? 1 : 0, WG: kern === 'reduce_tree' ? TREE_WG : THREAD_WG };
  const xi = idxIn ?? x; // bound but unread when IDX_IN = 0
  const nIn = g.outer * g.r * g.inner;
  if (kern === 'reduce_cols4') {
    dev.dispatch(K, kern, {
      bindings: { x4: range4(x, nIn), y4: range4(y, nOut), idx4: range4(idx, op === 'max' ? nOut : 1), xi },
      uniforms, overrides, workgroups: dev.grid1d(nOut / 4, THREAD_WG),
    });
  } else if (kern === 'reduce_thread4') {
    dev.dispatch(K, kern, { bindings: { x4: range4(x, nIn), y, idx, xi }, uniforms, overrides, workgroups: dev.grid1d(nOut, THREAD_WG) });
  } else if (kern === 'reduce_thread') {
    dev.dispatch(K, kern, { bindings: { x, y, idx, xi }, uniforms, overrides, workgroups: dev.grid1d(nOut, THREAD_WG) });
  } else {
    dev.dispatch(K, kern, { bindings: { x, y, idx, xi }, uniforms, overrides, workgroups: dev.grid1d(nOut, 1) });
  }
  if (op === 'max') return { y, idx };
  idx.dispose();
  return { y, idx: null };
}

/**
 * Reduces the middle axis of x viewed as [outer, r, inner] → [outer * inner] (flat), splitting R
 * when a single pass would lack parallelism. max also returns the index within R of the first
 * maximum of each output. `force` pins the kernel of an unsplit pass (tests cover every path).
 */
export function reduceAxis(
  x: Tensor, g: Geom, op: 'sum' | 'max', scale = 1, opts: { idxIn?: Tensor | null; force?: ReduceKernel; split?: number } = {},
): { y: Tensor; idx: Tensor | null } {
  const idxIn = opts.idxIn ?? null;
  const S = opts.split ?? (opts.force ? 1 : splitCount(g));
  if (S <= 1 || g.r <= 1) return reducePass(x, { ...g, chunk: g.r, nchunks: 1 }, op, scale, idxIn, opts.force);
  const chunk = Math.ceil(g.r / S);
  const n = Math.ceil(g.r / chunk);
  const part = reducePass(x, { ...g, chunk, nchunks: n }, op, 1, idxIn, opts.force);
  const fin = reduceAxis(part.y, { outer: g.outer, r: n, inner: g.inner }, op, scale, { idxIn: part.idx });
  part.y.dispose();
  part.idx?.dispose();
  return fin;
}

/** Normalises dim (a number, a list, or all dims when undefined) to sorted unique dims. */
function normDims(x: Tensor, dim: number | readonly number[] | undefined, op: string): number[] {
  if (dim === undefined) return x.shape.map((_, i) => i);
  check(typeof dim === 'number' || Array.isArray(dim), op, `dim must be a number or an array of numbers, got ${typeof dim} (x ${fmtShape(x.shape)})`);
  const ds = (typeof dim === 'number' ? [dim] : [...dim]).map((d) => dimOf(d, x.rank, op, x.shape));
  check(new Set(ds).size === ds.length, op, `dims ${fmtShape(typeof dim === 'number' ? [dim] : dim)} repeat a dim of x ${fmtShape(x.shape)}`);
  return ds.sort((a, b) => a - b);
}

/**
 * The passes that reduce dims ds of shape: size-1 dims are dropped (they change nothing), runs of
 * adjacent reduced dims become one pass, the last run goes first. Each pass is [outer, r, inner]
 * over the tensor as it is when the pass runs.
 */
export function planPasses(shape: Shape, ds: readonly number[]): Geom[] {
  const dims: { n: number; red: boolean }[] = [];
  shape.forEach((n, i) => {
    if (n !== 1) dims.push({ n, red: ds.includes(i) });
  });
  const runs: [number, number][] = [];
  dims.forEach((d, i) => {
    if (!d.red) return;
    const last = runs[runs.length - 1];
    if (last && last[1] === i) last[1] = i + 1;
    else runs.push([i, i + 1]);
  });
  const cur = dims.map((d) => d.n);
  const passes: Geom[] = [];
  for (let k = runs.length - 1; k >= 0; k--) {
    const [a, b] = runs[k]!;
    passes.push({ outer: numel(cur.slice(0, a)), r: numel(cur.slice(a, b)), inner: numel(cur.slice(b)) });
    for (let i = a; i < b; i++) cur[i] = 1;
  }
  return passes;
}

/** Sum over the sorted dims ds without autodiff; returns the keepDim-shaped result (a fresh tensor). */
function sumRaw(x: Tensor, ds: readonly number[], scale: number): Tensor {
  const keptShape = x.shape.map((d, i) => (ds.includes(i) ? 1 : d));
  const passes = planPasses(x.shape, ds);
  if (passes.length === 0) return noGrad(() => reshapeRaw(affine(x, scale), keptShape)); // nothing to reduce: a copy
  let cur = x;
  passes.forEach((p, k) => {
    const { y } = reduceAxis(cur, p, 'sum', k === passes.length - 1 ? scale : 1);
    if (cur !== x) cur.dispose();
    cur = y;
  });
  return reshapeRaw(cur, keptShape);
}

/** A new shape over t's storage; t itself is disposed (it was a temporary). */
function reshapeRaw(t: Tensor, shape: Shape): Tensor {
  if (sameShape(t.shape, shape)) return t;
  t.storage.retain();
  const out = new Tensor(t.device, t.storage, shape, t.dtype);
  t.dispose();
  return out;
}

function reduceSum(x: Tensor, dim: number | readonly number[] | undefined, keepDim: boolean, op: 'sum' | 'mean'): Tensor {
  checkTensor(x, op, 'x');
  check(typeof keepDim === 'boolean', op, `keepDim must be a boolean, got ${typeof keepDim} (x ${fmtShape(x.shape)})`);
  const ds = normDims(x, dim, op);
  const count = numel(ds.map((d) => x.shape[d]!));
  if (op === 'mean') check(count > 0, 'mean', `mean over dims ${fmtShape(ds)} of x ${fmtShape(x.shape)}, which hold no elements`);
  const scale = op === 'mean' ? 1 / count : 1;
  const keptShape = x.shape.map((d, i) => (ds.includes(i) ? 1 : d));
  const kept = sumRaw(x, ds, scale);
  const outShape = keepDim ? keptShape : x.shape.filter((_, i) => !ds.includes(i));
  const out = reshapeRaw(kept, outShape);
  return record(op, out, [x], (g) => {
    const gs = scale !== 1 ? affine(g, scale) : g; // scale the small tensor, then broadcast
    const gk = reshape(gs, keptShape);
    const gx = expand(gk, x.shape);
    gk.dispose();
    if (gs !== g) gs.dispose();
    return [gx];
  });
}

/** Sum over dim (a number, a list, or all dims when omitted); an empty list reduces nothing. */
export function sum(x: Tensor, dim?: number | readonly number[], keepDim = false): Tensor {
  return reduceSum(x, dim, keepDim, 'sum');
}

/** Mean over dim (a number, a list, or all dims when omitted). */
export function mean(x: Tensor, dim?: number | readonly number[], keepDim = false): Tensor {
  return reduceSum(x, dim, keepDim, 'mean');
}

/**
 * Max over dim (a number, a list, or all dims when omitted). The gradient goes to the first maximum
 * in row-major order over the reduced dims. NaN is not propagated (comparisons skip it).
 */
export function max(x: Tensor, dim?: number | readonly number[], keepDim = false): Tensor {
  checkTensor(x, 'max', 'x');
  check(typeof keepDim === 'boolean', 'max', `keepDim must be a boolean, got ${typeof keepDim} (x ${fmtShape(x.shape)})`);
  const ds = normDims(x, dim, 'max');
  check(ds.every((d) => x.shape[d]! > 0), 'max', `max over dims ${fmtShape(ds)} of x ${fmtShape(x.shape)}, which hold no elements`);
  const keptShape = x.shape.map((d, i) => (ds.includes(i) ? 1 : d));
  const outShape = keepDim ? keptShape : x.shape.filter((_, i) => !ds.includes(i));
  const passes = planPasses(x.shape, ds);
  if (passes.length === 0 || x.size === 0) {
    // only size-1 dims reduced (or nothing to compute): max is the identity
    const y = noGrad(() => reshapeRaw(affine(x, 1), outShape));
    return record('max', y, [x], (g) => [reshape(g, x.shape)]);
  }
  let cur = x;
  const idxs: Tensor[] = [];
  passes.forEach((p) => {
    const r = reduceAxis(cur, p, 'max');
    if (cur !== x) cur.dispose();
    cur = r.y;
    idxs.push(r.idx!);
  });
  const out = reshapeRaw(cur, outShape);
  const node = record('max', out, [x], (g) => {
    // scatter back through the passes, last first; each pass's input had outer * r * inner elements
    let gcur: Tensor = g;
    for (let k = passes.length - 1; k >= 0; k--) {
      const p = passes[k]!;
      const gin = x.device.zeros([p.outer * p.r * p.inner]);
      x.device.dispatch(K, 'max_bwd', {
        bindings: { gy: gcur, at: idxs[k]!, gx: gin },
        uniforms: { n: p.outer * p.inner, r: p.r, inner: p.inner },
        overrides: { WG: THREAD_WG },
        workgroups: x.device.grid1d(p.outer * p.inner, THREAD_WG),
      });
      if (gcur !== g) gcur.dispose();
      gcur = gin;
    }
    return [reshapeRaw(gcur, x.shape)];
  });
  if (!node.requiresGrad) idxs.forEach((t) => t.dispose());
  return node;
}

/**
 * Sums x down to `shape` (the adjoint of broadcasting x from `shape`: leading dims summed away,
 * dims where shape has 1 summed with keepDim). Returns x itself when the shapes are equal.
 */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  checkTensor(x, 'sumTo', 'x');
  check(Array.isArray(shape), 'sumTo', `shape must be an array, got ${typeof shape} (x ${fmtShape(x.shape)})`);
  checkShape(shape, 'sumTo', 'shape');
  if (sameShape(x.shape, shape)) return x;
  const off = x.rank - shape.length;
  check(off >= 0, 'sumTo', `cannot sum x ${fmtShape(x.shape)} to shape ${fmtShape(shape)} of larger rank`);
  const ds: number[] = [];
  x.shape.forEach((d, i) => {
    if (i < off) ds.push(i);
    else if (shape[i - off] === 1 && d !== 1) ds.push(i);
    else check(shape[i - off] === d, 'sumTo', `cannot sum x ${fmtShape(x.shape)} to shape ${fmtShape(shape)} (dim ${i} is ${d}, target ${shape[i - off]})`);
  });
  const out = reshapeRaw(sumRaw(x, ds, 1), shape);
  return record('sumTo', out, [x], (g) => [expand(g, x.shape)]);
}

// ---- float64 references -------------------------------------------------------------------------

/** Sum (times scale) over dims; keepDim keeps them as size 1. */
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

/** Backward of sumRef: g (shaped like its output) broadcast back over the reduced dims, times scale. */
export function sumRefBackward(g: Arr, x: Arr, dims: readonly number[], scale = 1): Arr {
  const kept = x.shape.map((d, i) => (dims.includes(i) ? 1 : d));
  const out = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).map((k, d) => (dims.includes(d) ? 0 : k));
    out.data[i] = g.data[ravel(idx, kept)]! * scale;
  }
  return out;
}

/** Max over one dim: values (keepDim shape) and the index of the first maximum along dim. */
export function maxRef(x: Arr, dim: number): { y: Arr; idx: Int32Array } {
  const kept = x.shape.map((d, i) => (i === dim ? 1 : d));
  const y = arr(kept);
  y.data.fill(-Infinity);
  const idx = new Int32Array(y.data.length);
  const seen = new Uint8Array(y.data.length);
  for (let i = 0; i < x.data.length; i++) {
    const mi = unravel(i, x.shape);
    const j = mi[dim]!;
    mi[dim] = 0;
    const o = ravel(mi, kept);
    if (!seen[o] || x.data[i]! > y.data[o]!) {
      seen[o] = 1;
      y.data[o] = x.data[i]!;
      idx[o] = j;
    }
  }
  return { y, idx };
}

/**
 * Max over several dims: values and, per output, the flat index into x of the first maximum in
 * row-major order over the reduced dims (where the gradient goes).
 */
export function maxRefDims(x: Arr, dims: readonly number[], keepDim: boolean): { y: Arr; at: Int32Array } {
  const kept = x.shape.map((d, i) => (dims.includes(i) ? 1 : d));
  const y = arr(kept);
  const at = new Int32Array(y.data.length).fill(-1);
  for (let i = 0; i < x.data.length; i++) {
    const o = ravel(unravel(i, x.shape).map((k, d) => (dims.includes(d) ? 0 : k)), kept);
    if (at[o]! < 0 || x.data[i]! > y.data[o]!) {
      y.data[o] = x.data[i]!;
      at[o] = i;
    }
  }
  if (!keepDim) y.shape = x.shape.filter((_, i) => !dims.includes(i));
  return { y, at };
}

/** Backward of maxRefDims: each output's gradient goes to its first maximum. */
export function maxRefBackward(g: Arr, x: Arr, dims: readonly number[]): Arr {
  const { at } = maxRefDims(x, dims, true);
  const out = arr(x.shape);
  at.forEach((i, o) => {
    out.data[i] = g.data[o]!;
  });
  return out;
}
