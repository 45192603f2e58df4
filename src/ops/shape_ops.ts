// Shape ops. reshape/view share storage (no GPU work); permute, transpose, expand, slice and concat
// are one strided-copy kernel (kernels/layout.wgsl) with different strides and offsets.
import src from '../../kernels/layout.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { normDim, numel, sameShape, stridesOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkTensorAny, broadcastStrides, collapseDims } from './elementwise.js';
import { sumTo } from './reduce.js';
import { type Arr, arr, unravel, ravel, sumToRef } from '../reference.js';

const K = kernel('layout.wgsl', src);
const WG = 256;
/** The strided-copy kernel indexes with two vec4s: rank <= 8. */
export const MAX_LAYOUT_RANK = 8;

function vec8(v: readonly number[]): { lo: number[]; hi: number[] } {
  const p = [...v, ...new Array<number>(8 - v.length).fill(0)];
  return { lo: p.slice(0, 4), hi: p.slice(4, 8) };
}

/**
 * dst[dstOffset + Σ k·dstStrides] = src[srcOffset + Σ k·srcStrides] for every index k of `shape`
 * (a bit copy: any 32-bit dtype). `op` names the caller in errors.
 */
export function stridedCopy(
  source: Tensor, dest: Tensor, shape: Shape,
  srcStrides: readonly number[], srcOffset: number, dstStrides: readonly number[], dstOffset: number,
  op = 'strided copy',
): void {
  check(shape.length <= MAX_LAYOUT_RANK, op, `rank ${shape.length} > ${MAX_LAYOUT_RANK} is not supported (shape ${fmtShape(shape)})`);
  const n = numel(shape);
  if (n === 0) return;
  const c = collapseDims(shape, [srcStrides, dstStrides]);
  const s = vec8(c.shape);
  const a = vec8(c.strides[0]!);
  const b = vec8(c.strides[1]!);
  // last extent a multiple of 4: 4 elements per invocation (see layout.wgsl)
  const run4 = c.shape[c.shape.length - 1]! % 4 === 0;
  source.device.dispatch(K, run4 ? 'strided_copy_run4' : 'strided_copy', {
    bindings: { src: source, dst: dest },
    uniforms: {
      n, src_offset: srcOffset, dst_offset: dstOffset,
      shape_lo: s.lo, shape_hi: s.hi, src_lo: a.lo, src_hi: a.hi, dst_lo: b.lo, dst_hi: b.hi,
    },
    overrides: { WG, RANK: c.shape.length },
    workgroups: source.device.grid1d(run4 ? n / 4 : n, WG),
  });
}

/** normDim, with a message naming the argument and the shape for a dim that is not an integer. */
export function dimOf(dim: unknown, rank: number, op: string, shape: Shape, arg = 'dim'): number {
  check(typeof dim === 'number' && Number.isInteger(dim), op, `${arg} must be an integer, got ${typeof dim === 'number' ? dim : typeof dim} (x ${fmtShape(shape)})`);
  return normDim(dim, rank, op, shape);
}

function checkIntList(v: unknown, op: string, arg: string, x: Tensor): asserts v is readonly number[] {
  check(Array.isArray(v), op, `${arg} must be an array of integers, got ${v === null ? 'null' : typeof v} (x ${fmtShape(x.shape)})`);
  check(
    v.every((d) => typeof d === 'number' && Number.isInteger(d)), op,
    `${arg} must be an array of integers, got [${v.map(String).join(', ')}] (x ${fmtShape(x.shape)})`,
  );
}

function checkRank(shape: Shape, op: string, x: Tensor): void {
  check(shape.length <= MAX_LAYOUT_RANK, op, `rank ${shape.length} > ${MAX_LAYOUT_RANK} is not supported (x ${fmtShape(x.shape)} to ${fmtShape(shape)})`);
}

function resolveShape(x: Tensor, shape: unknown, op: string): number[] {
  checkIntList(shape, op, 'shape', x);
  const out = [...shape];
  const neg = out.filter((d) => d === -1).length;
  check(neg <= 1, op, `shape ${fmtShape(shape)} has more than one -1 (x ${fmtShape(x.shape)})`);
  check(out.every((d) => d >= -1), op, `shape ${fmtShape(shape)} has a negative size (x ${fmtShape(x.shape)})`);
  if (neg) {
    const known = out.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    check(known > 0 && x.size % known === 0, op, `cannot infer the -1 in shape ${fmtShape(shape)} for x ${fmtShape(x.shape)} (${x.size} elements)`);
    out[out.indexOf(-1)] = x.size / known;
  }
  check(numel(out) === x.size, op, `cannot reshape x ${fmtShape(x.shape)} (${x.size} elements) to shape ${fmtShape(shape)} (${numel(out)} elements)`);
  return out;
}

/** A view with another shape: shares x's storage (no GPU work). */
function viewOf(x: Tensor, shape: Shape, op: string): Tensor {
  x.storage.retain();
  const out = new Tensor(x.device, x.storage, shape, x.dtype);
  return record(op, out, [x], (g) => [reshape(g, x.shape)]);
}

/** A new shape over the same storage (tensors are always contiguous, so this never copies). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensorAny(x, 'reshape', 'x');
  return viewOf(x, resolveShape(x, shape, 'reshape'), 'reshape');
}
export const view = reshape;

/** Inserts a size-1 dim at dim (in [-rank-1, rank]). */
export function unsqueeze(x: Tensor, dim: number): Tensor {
  checkTensorAny(x, 'unsqueeze', 'x');
  const d = dimOf(dim, x.rank + 1, 'unsqueeze', x.shape);
  const s = [...x.shape];
  s.splice(d, 0, 1);
  return viewOf(x, s, 'unsqueeze');
}

/** Removes dim, which must have size 1; without dim, removes every size-1 dim. */
export function squeeze(x: Tensor, dim?: number): Tensor {
  checkTensorAny(x, 'squeeze', 'x');
  if (dim === undefined) return viewOf(x, x.shape.filter((n) => n !== 1), 'squeeze');
  const d = dimOf(dim, x.rank, 'squeeze', x.shape);
  check(x.shape[d] === 1, 'squeeze', `dim ${dim} of x ${fmtShape(x.shape)} has size ${x.shape[d]}, expected 1`);
  return viewOf(x, x.shape.filter((_, i) => i !== d), 'squeeze');
}

/** Reorders dims: out.shape[i] = x.shape[dims[i]]. */
export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensorAny(x, 'permute', 'x');
  checkIntList(dims, 'permute', 'dims', x);
  check(dims.length === x.rank, 'permute', `dims ${fmtShape(dims)} must list each of the ${x.rank} dims of x ${fmtShape(x.shape)} once`);
  const p = dims.map((d) => dimOf(d, x.rank, 'permute', x.shape));
  check(new Set(p).size === p.length, 'permute', `dims ${fmtShape(dims)} repeat a dim (x ${fmtShape(x.shape)}); expected a permutation of 0..${x.rank - 1}`);
  const outShape = p.map((d) => x.shape[d]!);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => (inv[d] = i));
  // moving only size-1 dims (the others keep their order) leaves the data in place: a view
  const big = p.filter((d) => x.shape[d] !== 1);
  if (big.every((d, i) => i === 0 || d > big[i - 1]!)) return viewOf(x, outShape, 'permute');
  checkRank(outShape, 'permute', x);
  const out = x.device.empty(outShape, x.dtype);
  const st = stridesOf(x.shape);
  stridedCopy(x, out, outShape, p.map((d) => st[d]!), 0, stridesOf(outShape), 0, 'permute');
  return record('permute', out, [x], (g) => [permute(g, inv)]);
}

/** Swaps two dims. */
export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensorAny(x, 'transpose', 'x');
  const a = dimOf(dim0, x.rank, 'transpose', x.shape);
  const b = dimOf(dim1, x.rank, 'transpose', x.shape);
  const p = x.shape.map((_, i) => i);
  p[a] = b;
  p[b] = a;
  return permute(x, p);
}

/**
 * Broadcasts x to `shape` (materialised; -1 keeps a dim of x); backward sums over the broadcast
 * dims. When nothing is broadcast the result is a view of x.
 */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensorAny(x, 'expand', 'x');
  checkIntList(shape, 'expand', 'shape', x);
  check(shape.length >= x.rank, 'expand', `cannot expand x ${fmtShape(x.shape)} to shape ${fmtShape(shape)} of lower rank`);
  const off = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off]! : d));
  check(target.every((d) => d >= 0), 'expand', `shape ${fmtShape(shape)} has a negative size (-1 may only stand for an existing dim of x ${fmtShape(x.shape)})`);
  x.shape.forEach((d, i) => {
    check(d === target[i + off] || d === 1, 'expand', `cannot expand x ${fmtShape(x.shape)} to shape ${fmtShape(shape)}: dim ${i} of x is ${d}, not 1 or ${target[i + off]}`);
  });
  if (sameShape(target, x.shape)) return viewOf(x, target, 'expand');
  checkRank(target, 'expand', x);
  const out = x.device.empty(target, x.dtype);
  stridedCopy(x, out, target, broadcastStrides(x.shape, target), 0, stridesOf(target), 0, 'expand');
  return record('expand', out, [x], (g) => [sumTo(g, x.shape)]);
}

/** Start, end and length of x[start:end:step] on a dim of size n (Python semantics: negative counts from the end, clamped). */
export function sliceRange(n: number, start: number, end: number | undefined, step: number): { start: number; end: number; len: number } {
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clamp(start);
  const e = end === undefined ? n : clamp(end);
  return { start: s, end: e, len: Math.max(0, Math.ceil((e - s) / step)) };
}

/** x[..., start:end:step, ...] along dim (negative start/end count from the end, as Python). */
export function slice(x: Tensor, dim: number, start: number, end?: number, step = 1): Tensor {
  checkTensorAny(x, 'slice', 'x');
  const d = dimOf(dim, x.rank, 'slice', x.shape);
  const ctx = `(x ${fmtShape(x.shape)}, dim ${dim})`;
  check(typeof start === 'number' && Number.isInteger(start), 'slice', `start must be an integer, got ${start} ${ctx}`);
  check(end === undefined || end === null || (typeof end === 'number' && Number.isInteger(end)), 'slice', `end must be an integer, got ${end} ${ctx}`);
  check(typeof step === 'number' && Number.isInteger(step) && step >= 1, 'slice', `step must be a positive integer, got ${step} ${ctx}`);
  const { start: s, len } = sliceRange(x.shape[d]!, start, end ?? undefined, step);
  const outShape = [...x.shape];
  outShape[d] = len;
  checkRank(outShape, 'slice', x);
  const out = x.device.empty(outShape, x.dtype);
  const st = stridesOf(x.shape);
  const srcStrides = [...st];
  srcStrides[d] = st[d]! * step;
  stridedCopy(x, out, outShape, srcStrides, s * st[d]!, stridesOf(outShape), 0, 'slice');
  return record('slice', out, [x], (g) => {
    const gx = x.device.zeros(x.shape);
    stridedCopy(g, gx, outShape, stridesOf(outShape), 0, srcStrides, s * st[d]!, 'slice');
    return [gx];
  });
}

function checkJoinable(xs: unknown, op: string): asserts xs is readonly Tensor[] {
  check(Array.isArray(xs), op, `tensors must be an array of tensors, got ${xs === null ? 'null' : typeof xs}`);
  check(xs.length > 0, op, 'tensors is empty; needs at least one tensor');
  xs.forEach((t, i) => checkTensorAny(t, op, `tensors[${i}]`));
  const first = xs[0] as Tensor;
  (xs as Tensor[]).forEach((t, i) => {
    check(t.device === first.device, op, `tensors[${i}] ${fmtShape(t.shape)} lives on another device than tensors[0] ${fmtShape(first.shape)}`);
    check(t.dtype === first.dtype, op, `tensors[${i}] ${fmtShape(t.shape)} is ${t.dtype} but tensors[0] ${fmtShape(first.shape)} is ${first.dtype}`);
  });
}

/** Joins tensors along dim; all other dims must match. */
export function concat(xs: readonly Tensor[], dim = 0): Tensor {
  checkJoinable(xs, 'concat');
  const ts = [...xs];
  const first = ts[0]!;
  check(first.rank > 0, 'concat', `tensors[0] is a scalar (shape []); concat needs rank >= 1`);
  const d = dimOf(dim, first.rank, 'concat', first.shape);
  ts.forEach((t, i) => {
    check(
      t.rank === first.rank && t.shape.every((s, k) => k === d || s === first.shape[k]),
      'concat', `tensors[${i}] has shape ${fmtShape(t.shape)}, tensors[0] has ${fmtShape(first.shape)}: they must match except along dim ${dim}`,
    );
  });
  const outShape = [...first.shape];
  outShape[d] = ts.reduce((a, t) => a + t.shape[d]!, 0);
  checkRank(outShape, 'concat', first);
  const out = first.device.empty(outShape, first.dtype);
  const ost = stridesOf(outShape);
  let off = 0;
  const offsets: number[] = [];
  for (const t of ts) {
    offsets.push(off);
    stridedCopy(t, out, t.shape, stridesOf(t.shape), 0, ost, off * ost[d]!, 'concat');
    off += t.shape[d]!;
  }
  return record('concat', out, ts, (g) => ts.map((t, i) => (t.requiresGrad ? slice(g, d, offsets[i]!, offsets[i]! + t.shape[d]!) : null)));
}

/** Joins tensors of one shape along a new dim. */
export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  checkJoinable(xs, 'stack');
  const ts = [...xs];
  const first = ts[0]!;
  const d = dimOf(dim, first.rank + 1, 'stack', first.shape);
  ts.forEach((t, i) => {
    check(sameShape(t.shape, first.shape), 'stack', `tensors[${i}] has shape ${fmtShape(t.shape)}, tensors[0] has ${fmtShape(first.shape)}: they must be equal`);
  });
  const outShape = [...first.shape];
  outShape.splice(d, 0, ts.length);
  checkRank(outShape, 'stack', first);
  const out = first.device.empty(outShape, first.dtype);
  const ost = stridesOf(outShape);
  const place = ost.filter((_, k) => k !== d); // strides of one stacked tensor inside out
  ts.forEach((t, i) => stridedCopy(t, out, t.shape, stridesOf(t.shape), 0, place, i * ost[d]!, 'stack'));
  return record('stack', out, ts, (g) =>
    ts.map((t, i) => {
      if (!t.requiresGrad) return null;
      const gi = t.device.empty(t.shape);
      stridedCopy(g, gi, t.shape, place, i * ost[d]!, stridesOf(t.shape), 0, 'stack');
      return gi;
    }),
  );
}

// ---- float64 references -------------------------------------------------------------------------

export function permuteRef(x: Arr, dims: readonly number[]): Arr {
  const outShape = dims.map((d) => x.shape[d]!);
  const out = arr(outShape);
  for (let i = 0; i < out.data.length; i++) {
    const oi = unravel(i, outShape);
    const xi = new Array<number>(dims.length);
    dims.forEach((d, k) => (xi[d] = oi[k]!));
    out.data[i] = x.data[ravel(xi, x.shape)]!;
  }
  return out;
}

export function sliceRef(x: Arr, dim: number, start: number, end: number, step = 1): Arr {
  const outShape = [...x.shape];
  outShape[dim] = Math.max(0, Math.ceil((end - start) / step));
  const out = arr(outShape);
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, outShape);
    idx[dim] = start + idx[dim]! * step;
    out.data[i] = x.data[ravel(idx, x.shape)]!;
  }
  return out;
}

export function concatRef(xs: readonly Arr[], dim: number): Arr {
  const outShape = [...xs[0]!.shape];
  outShape[dim] = xs.reduce((a, t) => a + t.shape[dim]!, 0);
  const out = arr(outShape);
  let off = 0;
  for (const t of xs) {
    for (let i = 0; i < t.data.length; i++) {
      const idx = unravel(i, t.shape);
      idx[dim] = idx[dim]! + off;
      out.data[ravel(idx, outShape)] = t.data[i]!;
    }
    off += t.shape[dim]!;
  }
  return out;
}

export function expandRef(x: Arr, shape: readonly number[]): Arr {
  const out = arr(shape);
  const off = shape.length - x.shape.length;
  for (let i = 0; i < out.data.length; i++) {
    const idx = unravel(i, shape).slice(off).map((k, d) => (x.shape[d] === 1 ? 0 : k));
    out.data[i] = x.data[ravel(idx, x.shape)]!;
  }
  return out;
}

/** Backward of permuteRef: the inverse permutation of g. */
export function permuteRefBackward(g: Arr, dims: readonly number[]): Arr {
  const inv = new Array<number>(dims.length);
  dims.forEach((d, i) => (inv[d] = i));
  return permuteRef(g, inv);
}

/** Backward of sliceRef: g scattered into zeros of x's shape. */
export function sliceRefBackward(g: Arr, xShape: readonly number[], dim: number, start: number, step = 1): Arr {
  const out = arr(xShape);
  for (let i = 0; i < g.data.length; i++) {
    const idx = unravel(i, g.shape);
    idx[dim] = start + idx[dim]! * step;
    out.data[ravel(idx, xShape)] = g.data[i]!;
  }
  return out;
}

/** Backward of concatRef: g cut back into pieces of the input shapes. */
export function concatRefBackward(g: Arr, shapes: readonly (readonly number[])[], dim: number): Arr[] {
  let off = 0;
  return shapes.map((s) => {
    const piece = sliceRef(g, dim, off, off + s[dim]!);
    off += s[dim]!;
    return piece;
  });
}

/** Backward of expandRef: g summed back to x's shape. */
export function expandRefBackward(g: Arr, xShape: readonly number[]): Arr {
  return sumToRef(g, xShape);
}

/** Stacks arrays of one shape along a new dim. */
export function stackRef(xs: readonly Arr[], dim: number): Arr {
  const shape = [...xs[0]!.shape];
  shape.splice(dim, 0, 1);
  return concatRef(xs.map((x) => ({ shape, data: x.data })), dim);
}

/** Backward of stackRef. */
export function stackRefBackward(g: Arr, n: number, dim: number): Arr[] {
  const shape = [...g.shape];
  shape[dim] = 1;
  return concatRefBackward(g, new Array<number[]>(n).fill(shape), dim).map((p) => ({ shape: p.shape.filter((_, k) => k !== dim), data: p.data }));
}
