// Shape ops. reshape/view share storage (no GPU work); permute, transpose, expand, slice and concat
// are one strided-copy kernel (kernels/layout.wgsl) with different strides and offsets.
import src from '../../kernels/layout.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, ShapeError } from '../errors.js';
import { record } from '../autodiff.js';
import { normDim, numel, sameShape, stridesOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkTensor, broadcastStrides } from './elementwise.js';
import { sumTo } from './reduce.js';
import { type Arr, arr, unravel, ravel } from '../reference.js';

const K = kernel('layout.wgsl', src);
const WG = 256;

function vec8(v: readonly number[]): { lo: number[]; hi: number[] } {
  const p = [...v, ...new Array<number>(8 - v.length).fill(0)];
  return { lo: p.slice(0, 4), hi: p.slice(4, 8) };
}

/** dst[dstOffset + Σ k·dstStrides] = src[srcOffset + Σ k·srcStrides] for every index k of `shape`. */
export function stridedCopy(
  source: Tensor, dest: Tensor, shape: Shape,
  srcStrides: readonly number[], srcOffset: number, dstStrides: readonly number[], dstOffset: number,
): void {
  if (shape.length > 8) throw new ShapeError(`strided copy: rank ${shape.length} > 8 is not supported (shape ${fmtShape(shape)})`);
  const n = numel(shape);
  const s = vec8(shape);
  const a = vec8(srcStrides);
  const b = vec8(dstStrides);
  source.device.dispatch(K, 'strided_copy', {
    bindings: { src: source, dst: dest },
    uniforms: {
      n, rank: shape.length, src_offset: srcOffset, dst_offset: dstOffset,
      shape_lo: s.lo, shape_hi: s.hi, src_lo: a.lo, src_hi: a.hi, dst_lo: b.lo, dst_hi: b.hi,
    },
    overrides: { WG },
    workgroups: source.device.grid1d(n, WG),
  });
}

function resolveShape(x: Tensor, shape: readonly number[], op: string): number[] {
  const out = [...shape];
  const neg = out.filter((d) => d === -1).length;
  check(neg <= 1, op, `at most one -1 in shape, got ${fmtShape(shape)}`);
  for (const d of out) check(Number.isInteger(d) && d >= -1, op, `invalid shape ${fmtShape(shape)}`);
  if (neg) {
    const known = out.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
    check(known > 0 && x.size % known === 0, op, `cannot infer -1 in ${fmtShape(shape)} for ${x.size} elements (input ${fmtShape(x.shape)})`);
    out[out.indexOf(-1)] = x.size / known;
  }
  check(numel(out) === x.size, op, `cannot reshape ${fmtShape(x.shape)} (${x.size} elements) to ${fmtShape(shape)} (${numel(out)} elements)`);
  return out;
}

/** A new shape over the same storage (tensors are always contiguous, so this never copies). */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, 'reshape', 'x');
  const s = resolveShape(x, shape, 'reshape');
  x.storage.retain();
  const out = new Tensor(x.device, x.storage, s, x.dtype);
  return record('reshape', out, [x], (g) => [reshape(g, x.shape)]);
}
export const view = reshape;

export function unsqueeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.rank + 1, 'unsqueeze', x.shape);
  const s = [...x.shape];
  s.splice(d, 0, 1);
  return reshape(x, s);
}

export function squeeze(x: Tensor, dim: number): Tensor {
  const d = normDim(dim, x.rank, 'squeeze', x.shape);
  check(x.shape[d] === 1, 'squeeze', `dim ${dim} of ${fmtShape(x.shape)} has size ${x.shape[d]}, expected 1`);
  return reshape(x, x.shape.filter((_, i) => i !== d));
}

export function permute(x: Tensor, dims: readonly number[]): Tensor {
  checkTensor(x, 'permute', 'x');
  check(dims.length === x.rank, 'permute', `dims ${fmtShape(dims)} must list every dim of ${fmtShape(x.shape)}`);
  const p = dims.map((d) => normDim(d, x.rank, 'permute', x.shape));
  check(new Set(p).size === p.length, 'permute', `dims ${fmtShape(dims)} repeat a dim`);
  const outShape = p.map((d) => x.shape[d]!);
  const out = x.device.empty(outShape, x.dtype);
  const st = stridesOf(x.shape);
  stridedCopy(x, out, outShape, p.map((d) => st[d]!), 0, stridesOf(outShape), 0);
  const inv = new Array<number>(p.length);
  p.forEach((d, i) => (inv[d] = i));
  return record('permute', out, [x], (g) => [permute(g, inv)]);
}

export function transpose(x: Tensor, dim0 = -2, dim1 = -1): Tensor {
  checkTensor(x, 'transpose', 'x');
  const a = normDim(dim0, x.rank, 'transpose', x.shape);
  const b = normDim(dim1, x.rank, 'transpose', x.shape);
  const p = x.shape.map((_, i) => i);
  p[a] = b;
  p[b] = a;
  return permute(x, p);
}

/** Broadcasts x to `shape` (materialised); backward sums over the broadcast dims. */
export function expand(x: Tensor, shape: readonly number[]): Tensor {
  checkTensor(x, 'expand', 'x');
  check(shape.length >= x.rank, 'expand', `cannot expand ${fmtShape(x.shape)} to fewer dims ${fmtShape(shape)}`);
  const off = shape.length - x.rank;
  const target = shape.map((d, i) => (d === -1 && i >= off ? x.shape[i - off]! : d));
  x.shape.forEach((d, i) => {
    check(d === target[i + off] || d === 1, 'expand', `cannot expand ${fmtShape(x.shape)} to ${fmtShape(shape)} (dim ${i} is ${d})`);
  });
  if (sameShape(target, x.shape)) return x;
  const out = x.device.empty(target, x.dtype);
  stridedCopy(x, out, target, broadcastStrides(x.shape, target), 0, stridesOf(target), 0);
  return record('expand', out, [x], (g) => [sumTo(g, x.shape)]);
}

/** x[..., start:end:step, ...] along dim (negative start/end count from the end, as Python). */
export function slice(x: Tensor, dim: number, start: number, end?: number, step = 1): Tensor {
  checkTensor(x, 'slice', 'x');
  const d = normDim(dim, x.rank, 'slice', x.shape);
  const n = x.shape[d]!;
  check(Number.isInteger(start) && (end === undefined || Number.isInteger(end)), 'slice', `start/end must be integers, got ${start}, ${end}`);
  check(Number.isInteger(step) && step >= 1, 'slice', `step must be a positive integer, got ${step}`);
  const clamp = (v: number): number => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clamp(start);
  const e = end === undefined ? n : clamp(end);
  const len = Math.max(0, Math.ceil((e - s) / step));
  const outShape = [...x.shape];
  outShape[d] = len;
  const out = x.device.empty(outShape, x.dtype);
  const st = stridesOf(x.shape);
  const srcStrides = [...st];
  srcStrides[d] = st[d]! * step;
  stridedCopy(x, out, outShape, srcStrides, s * st[d]!, stridesOf(outShape), 0);
  return record('slice', out, [x], (g) => {
    const gx = x.device.zeros(x.shape);
    stridedCopy(g, gx, outShape, stridesOf(outShape), 0, srcStrides, s * st[d]!);
    return [gx];
  });
}

/** Joins tensors along dim; all other dims must match. */
export function concat(xs: readonly Tensor[], dim = 0): Tensor {
  check(xs.length > 0, 'concat', 'needs at least one tensor');
  xs.forEach((t, i) => checkTensor(t, 'concat', `tensors[${i}]`));
  const first = xs[0]!;
  const d = normDim(dim, first.rank, 'concat', first.shape);
  xs.forEach((t, i) => {
    check(t.device === first.device, 'concat', `tensors[${i}] lives on another device`);
    check(
      t.rank === first.rank && t.shape.every((s, k) => k === d || s === first.shape[k]),
      'concat', `tensors[${i}] has shape ${fmtShape(t.shape)}, expected ${fmtShape(first.shape)} except along dim ${d}`,
    );
  });
  const outShape = [...first.shape];
  outShape[d] = xs.reduce((a, t) => a + t.shape[d]!, 0);
  const out = first.device.empty(outShape);
  const ost = stridesOf(outShape);
  let off = 0;
  const offsets: number[] = [];
  for (const t of xs) {
    offsets.push(off);
    stridedCopy(t, out, t.shape, stridesOf(t.shape), 0, ost, off * ost[d]!);
    off += t.shape[d]!;
  }
  return record('concat', out, xs, (g) => xs.map((t, i) => (t.requiresGrad ? slice(g, d, offsets[i]!, offsets[i]! + t.shape[d]!) : null)));
}

export function stack(xs: readonly Tensor[], dim = 0): Tensor {
  check(xs.length > 0, 'stack', 'needs at least one tensor');
  const d = normDim(dim, xs[0]!.rank + 1, 'stack', xs[0]!.shape);
  return concat(xs.map((t) => unsqueeze(t, d)), d);
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
