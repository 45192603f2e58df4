// Elementwise ops: unary maps (neg exp log sqrt tanh sigmoid relu gelu ...) and broadcasting binary
// ops (add sub mul div maximum). Backward of a binary op reduces over the dims it broadcast (sumTo).
// A number operand becomes a uniform of a unary map (no scalar tensor). Same-shape operands use the
// vec4 entry points when every buffer holds whole vec4s (pool buffers always do); broadcasting
// indexes a collapsed shape (size-1 dims dropped, contiguous dims merged) of rank RANK <= 8.
import src from '../../kernels/elementwise.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, DisposedError, fmtShape } from '../errors.js';
import type { BufferRange } from '../graph/executor.js';
import { record } from '../autodiff.js';
import { broadcastShapes, numel, sameShape, stridesOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { type Arr, arr, mapArr, sumToRef, zipArr } from '../reference.js';

const K = kernel('elementwise.wgsl', src);
const WG = 256;

/** Unary maps; maximum_scalar is max(x, alpha), div_scalar is x / alpha (binary ops with a number). */
export type UnaryOp =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'gelu' | 'gelu_tanh' | 'affine' | 'square' | 'reciprocal' | 'abs'
  | 'maximum_scalar' | 'div_scalar';
const UOP: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, tanh: 4, sigmoid: 5, relu: 6, gelu: 7, gelu_tanh: 8, affine: 9, square: 10, reciprocal: 11, abs: 12,
  maximum_scalar: 13, div_scalar: 14,
};
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum';
const BOP: Record<BinaryOp | 'ge', number> = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, ge: 5 };

/** "x [2, 3]": an argument name with its shape, for error messages. */
export function argDesc(t: Tensor, arg: string): string {
  return `${arg} ${fmtShape(t.shape)}`;
}

/** Rejects non-tensors and disposed tensors (any dtype), naming the op and the argument. */
export function checkTensorAny(t: unknown, op: string, arg: string): asserts t is Tensor {
  check(t instanceof Tensor, op, `${arg} must be a Tensor, got ${t === null ? 'null' : Array.isArray(t) ? 'an array' : typeof t}`);
  if (t.disposed) throw new DisposedError(`${op}: ${arg} ${fmtShape(t.shape)} (tensor #${t.id}) was disposed: it was used after dispose()`);
}

/** checkTensorAny, and the tensor must be float32. */
export function checkTensor(t: unknown, op: string, arg: string): asserts t is Tensor {
  checkTensorAny(t, op, arg);
  check(t.dtype === 'float32', op, `${arg} ${fmtShape(t.shape)} must be float32, got ${t.dtype}`);
}

/**
 * A scalar argument must be a finite number that stays finite in float32 (1e39 does not).
 * `context` (e.g. "x [2, 3]") is appended so the message names the shapes involved.
 */
export function checkFinite(v: number, op: string, arg: string, context?: string): void {
  const ctx = context ? ` (${context})` : '';
  check(typeof v === 'number', op, `${arg} must be a number, got ${typeof v}${ctx}`);
  check(Number.isFinite(v), op, `${arg} must be a finite number, got ${v}${ctx}`);
  check(Number.isFinite(Math.fround(v)), op, `${arg} = ${v} overflows float32${ctx}`);
}

/** Every given tensor (nulls skipped) must live on the first one's device; errors name both with shapes. */
export function checkSameDevice(op: string, args: Record<string, Tensor | null | undefined>): void {
  let first: [string, Tensor] | null = null;
  for (const [name, t] of Object.entries(args)) {
    if (!t) continue;
    if (!first) {
      first = [name, t];
      continue;
    }
    check(
      t.device === first[1].device, op,
      `${argDesc(first[1], first[0])} and ${argDesc(t, name)} live on different devices (${name} was created by another createDevice())`,
    );
  }
}

/** True when a vec4 view of n elements (ceil(n/4) vec4s) fits in every buffer. */
export function fits4(n: number, ...ts: Tensor[]): boolean {
  const bytes = Math.ceil(n / 4) * 16;
  return ts.every((t) => t.storage.buffer.size >= bytes);
}

/** A vec4 view of n elements of t (whole vec4s: the last one reaches into the buffer's padding). */
export function range4(t: Tensor, n: number): BufferRange {
  return { buffer: t.storage.buffer, offset: 0, size: Math.max(16, Math.ceil(n / 4) * 16) };
}

function unaryRaw(x: Tensor, op: UnaryOp, alpha = 1, beta = 0): Tensor {
  const dev = x.device;
  const out = dev.empty(x.shape);
  const n = x.size;
  if (fits4(n, x, out)) {
    const n4 = Math.ceil(n / 4);
    dev.dispatch(K, 'unary_fwd4', {
      bindings: { x4: range4(x, n), out4: range4(out, n) },
      uniforms: { n: n4, alpha, beta },
      overrides: { UOP: UOP[op], WG },
      workgroups: dev.grid1d(n4, WG),
    });
  } else {
    dev.dispatch(K, 'unary_fwd', {
      bindings: { x, out },
      uniforms: { n, alpha, beta },
      overrides: { UOP: UOP[op], WG },
      workgroups: dev.grid1d(n, WG),
    });
  }
  return out;
}

function unaryGrad(x: Tensor, y: Tensor, gy: Tensor, op: UnaryOp, alpha = 1, beta = 0): Tensor {
  const dev = x.device;
  const out = dev.empty(x.shape);
  const n = x.size;
  if (fits4(n, x, y, gy, out)) {
    const n4 = Math.ceil(n / 4);
    dev.dispatch(K, 'unary_bwd4', {
      bindings: { x4: range4(x, n), y4: range4(y, n), gy4: range4(gy, n), out4: range4(out, n) },
      uniforms: { n: n4, alpha, beta },
      overrides: { UOP: UOP[op], WG },
      workgroups: dev.grid1d(n4, WG),
    });
  } else {
    dev.dispatch(K, 'unary_bwd', {
      bindings: { x, y, gy, out },
      uniforms: { n, alpha, beta },
      overrides: { UOP: UOP[op], WG },
      workgroups: dev.grid1d(n, WG),
    });
  }
  return out;
}

/** Applies a unary map; `affine` is alpha * x + beta. `name` is the op named in errors and the graph. */
export function unary(x: Tensor, op: UnaryOp, alpha = 1, beta = 0, name: string = op): Tensor {
  check(Object.prototype.hasOwnProperty.call(UOP, op), 'unary', `unknown op '${String(op)}'`);
  checkTensor(x, name, 'x');
  checkFinite(alpha, name, 'alpha', argDesc(x, 'x'));
  checkFinite(beta, name, 'beta', argDesc(x, 'x'));
  if (op === 'div_scalar') check(alpha !== 0, name, `division by the scalar 0 (x ${fmtShape(x.shape)})`);
  const y = unaryRaw(x, op, alpha, beta);
  return record(name, y, [x], (g) => [unaryGrad(x, y, g, op, alpha, beta)]);
}

export const neg = (x: Tensor): Tensor => unary(x, 'neg');
export const exp = (x: Tensor): Tensor => unary(x, 'exp');
export const log = (x: Tensor): Tensor => unary(x, 'log');
export const sqrt = (x: Tensor): Tensor => unary(x, 'sqrt');
export const tanh = (x: Tensor): Tensor => unary(x, 'tanh');
export const sigmoid = (x: Tensor): Tensor => unary(x, 'sigmoid');
export const relu = (x: Tensor): Tensor => unary(x, 'relu');
export const square = (x: Tensor): Tensor => unary(x, 'square');
export const reciprocal = (x: Tensor): Tensor => unary(x, 'reciprocal');
export const abs = (x: Tensor): Tensor => unary(x, 'abs');
/** GELU; erf form by default, `{ approximate: 'tanh' }` for the tanh approximation. */
export function gelu(x: Tensor, opts: { approximate?: 'none' | 'tanh' } = {}): Tensor {
  const a = opts?.approximate ?? 'none';
  check(a === 'none' || a === 'tanh', 'gelu', `approximate must be 'none' or 'tanh', got '${String(a)}'`);
  return unary(x, a === 'tanh' ? 'gelu_tanh' : 'gelu');
}
/** alpha * x + beta */
export const affine = (x: Tensor, alpha: number, beta = 0): Tensor => unary(x, 'affine', alpha, beta);

function splitVec(v: readonly number[]): { lo: number[]; hi: number[] } {
  const p = [...v, ...new Array<number>(8 - v.length).fill(0)];
  return { lo: p.slice(0, 4), hi: p.slice(4, 8) };
}

/** Strides of `shape` over the index space of `outShape` (0 on broadcast dims). */
export function broadcastStrides(shape: Shape, outShape: Shape): number[] {
  const st = stridesOf(shape);
  const off = outShape.length - shape.length;
  return outShape.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : st[i - off]!));
}

/**
 * Drops size-1 dims of an index space and merges adjacent dims that every operand walks
 * contiguously (stride of the outer dim = stride of the inner dim times its size; broadcast
 * dims, stride 0, merge with each other). The same elements, fewer dims to index.
 */
export function collapseDims(shape: readonly number[], strides: readonly (readonly number[])[]): { shape: number[]; strides: number[][] } {
  const outShape: number[] = [];
  const outStrides: number[][] = strides.map(() => []);
  shape.forEach((n, i) => {
    if (n === 1) return;
    const k = outShape.length - 1;
    if (k >= 0 && strides.every((st, j) => outStrides[j]![k] === st[i]! * n)) {
      outShape[k]! *= n;
      strides.forEach((st, j) => (outStrides[j]![k] = st[i]!));
    } else {
      outShape.push(n);
      strides.forEach((st, j) => outStrides[j]!.push(st[i]!));
    }
  });
  return { shape: outShape, strides: outStrides };
}

/** The broadcast kernels index with two vec4s: rank <= 8. */
export const MAX_BROADCAST_RANK = 8;

function binaryRaw(a: Tensor, b: Tensor, op: BinaryOp | 'ge', outShape: number[]): Tensor {
  const dev = a.device;
  const out = dev.empty(outShape);
  const n = numel(outShape);
  const contiguous = sameShape(a.shape, outShape) && sameShape(b.shape, outShape);
  if (contiguous && fits4(n, a, b, out)) {
    const n4 = Math.ceil(n / 4);
    dev.dispatch(K, 'binary_fwd4', {
      bindings: { a4: range4(a, n), b4: range4(b, n), c4: range4(out, n) },
      uniforms: { n: n4 },
      overrides: { BOP: BOP[op], WG },
      workgroups: dev.grid1d(n4, WG),
    });
    return out;
  }
  const c = collapseDims(outShape, [broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape)]);
  const s = splitVec(c.shape);
  const as = splitVec(c.strides[0]!);
  const bs = splitVec(c.strides[1]!);
  dev.dispatch(K, 'binary_fwd', {
    bindings: { a, b, c: out },
    uniforms: {
      n, contiguous: contiguous ? 1 : 0,
      shape_lo: s.lo, shape_hi: s.hi, astr_lo: as.lo, astr_hi: as.hi, bstr_lo: bs.lo, bstr_hi: bs.hi,
    },
    overrides: { BOP: BOP[op], WG, RANK: c.shape.length },
    workgroups: dev.grid1d(n, WG),
  });
  return out;
}

/** sumTo that disposes its input when it had to reduce (the input was a temporary of a rule). */
function sumToOwned(t: Tensor, shape: Shape): Tensor {
  const r = sumTo(t, shape);
  if (r !== t) t.dispose();
  return r;
}

/** Binary op with broadcasting; a number operand is a scalar. */
export function binary(a: Tensor, bIn: Tensor | number, op: BinaryOp): Tensor {
  check(Object.prototype.hasOwnProperty.call(BOP, op) && op !== ('ge' as BinaryOp), 'binary', `unknown op '${String(op)}'`);
  checkTensor(a, op, 'a');
  if (typeof bIn === 'number') {
    checkFinite(bIn, op, 'b', argDesc(a, 'a'));
    // a number operand is a uniform of a unary map: no scalar tensor, a small graph
    if (op === 'add') return unary(a, 'affine', 1, bIn, op);
    if (op === 'sub') return unary(a, 'affine', 1, -bIn, op);
    if (op === 'mul') return unary(a, 'affine', bIn, 0, op);
    if (op === 'maximum') return unary(a, 'maximum_scalar', bIn, 0, op);
    check(bIn !== 0, op, `b is the scalar 0 (division by zero; a ${fmtShape(a.shape)})`);
    return unary(a, 'div_scalar', bIn, 0, op);
  } else {
    checkTensor(bIn, op, 'b');
    checkSameDevice(op, { a, b: bIn });
  }
  const b = bIn;
  const outShape = broadcastShapes(a.shape, b.shape, op);
  check(
    outShape.length <= MAX_BROADCAST_RANK, op,
    `broadcasting supports rank <= ${MAX_BROADCAST_RANK}: a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} broadcast to ${fmtShape(outShape)}`,
  );
  const out = binaryRaw(a, b, op, outShape);
  return record(op, out, [a, b], (g) => {
    const ga = a.requiresGrad;
    const gb = b.requiresGrad;
    switch (op) {
      case 'add':
        return [ga ? sumTo(g, a.shape) : null, gb ? sumTo(g, b.shape) : null];
      case 'sub': {
        let gbv: Tensor | null = null;
        if (gb) {
          const s = sumTo(g, b.shape);
          gbv = neg(s);
          if (s !== g) s.dispose();
        }
        return [ga ? sumTo(g, a.shape) : null, gbv];
      }
      case 'mul':
        return [ga ? sumToOwned(mul(g, b), a.shape) : null, gb ? sumToOwned(mul(g, a), b.shape) : null];
      case 'div': {
        // d(a/b)/db = -g a / b^2 = -(g * out) / b; b is constant over the dims it was broadcast
        // along, so the division happens after summing down to b's shape (fewer elements)
        let gbv: Tensor | null = null;
        if (gb) {
          const s = sumToOwned(mul(g, out), b.shape);
          const q = div(s, b);
          s.dispose();
          gbv = neg(q);
          q.dispose();
        }
        return [ga ? sumToOwned(div(g, b), a.shape) : null, gbv];
      }
      case 'maximum': {
        // ties send the gradient to a (deterministic; torch splits it evenly)
        const ind = binaryRaw(a, b, 'ge', outShape);
        const gInd = mul(g, ind);
        ind.dispose();
        const res = [ga ? sumTo(gInd, a.shape) : null, gb ? sumToOwned(sub(g, gInd), b.shape) : null];
        if (res[0] !== gInd) gInd.dispose();
        return res;
      }
    }
  });
}

export const add = (a: Tensor, b: Tensor | number): Tensor => binary(a, b, 'add');
export const sub = (a: Tensor, b: Tensor | number): Tensor => binary(a, b, 'sub');
export const mul = (a: Tensor, b: Tensor | number): Tensor => binary(a, b, 'mul');
export const div = (a: Tensor, b: Tensor | number): Tensor => binary(a, b, 'div');
export const maximum = (a: Tensor, b: Tensor | number): Tensor => binary(a, b, 'maximum');

// ---- float64 references -------------------------------------------------------------------------

/** erf in float64: Taylor series below 2.5 (terms stay < 20, so ~1e-15 absolute), else 1 - erfc. */
export function erf64(x: number): number {
  const t = Math.abs(x);
  if (t >= 2.5) return Math.sign(x) * (1 - erfc64(t));
  let sum = t;
  let term = t;
  for (let n = 1; n < 100; n++) {
    term *= (-t * t) / n;
    const add = term / (2 * n + 1);
    sum += add;
    if (Math.abs(add) < 1e-17 * Math.abs(sum)) break;
  }
  return Math.sign(x) * (2 / Math.sqrt(Math.PI)) * sum;
}

/**
 * erfc in float64 with relative accuracy in the upper tail: 1 - erf below 2.5 (erfc >= 4e-4 there,
 * so ~1e-12 relative), Laplace's continued fraction from 2.5 on; erfc(-x) = 2 - erfc(x).
 */
export function erfc64(x: number): number {
  if (x < 0) return 2 - erfc64(-x);
  if (x < 2.5) return 1 - erf64(x);
  let f = 0;
  for (let n = 80; n >= 1; n--) f = n / 2 / (x + f);
  return Math.exp(-x * x) / Math.sqrt(Math.PI) / (x + f);
}

/** The standard normal CDF, accurate relative to its value in both tails. */
export function normalCdf64(v: number): number {
  return 0.5 * erfc64(-v / Math.SQRT2);
}

const sigmoid64 = (v: number): number => (v >= 0 ? 1 / (1 + Math.exp(-v)) : Math.exp(v) / (1 + Math.exp(v)));
const GELU_K = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

export function unaryRef(op: UnaryOp, x: Arr, alpha = 1, beta = 0): Arr {
  const f: Record<UnaryOp, (v: number) => number> = {
    neg: (v) => -v, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, tanh: Math.tanh,
    sigmoid: sigmoid64, relu: (v) => Math.max(v, 0),
    gelu: (v) => v * normalCdf64(v),
    // 0.5 v (1 + tanh u) = v sigmoid(2u): no cancellation for v < 0
    gelu_tanh: (v) => v * sigmoid64(2 * GELU_K * (v + GELU_C * v ** 3)),
    affine: (v) => alpha * v + beta, square: (v) => v * v, reciprocal: (v) => 1 / v, abs: Math.abs,
    maximum_scalar: (v) => Math.max(v, alpha), div_scalar: (v) => v / alpha,
  };
  return mapArr(x, f[op]);
}

/** d/dx of unaryRef, times g (relu, abs: derivative 0 at 0, as torch). */
export function unaryRefBackward(op: UnaryOp, x: Arr, g: Arr, alpha = 1): Arr {
  const d: Record<UnaryOp, (v: number) => number> = {
    neg: () => -1, exp: Math.exp, log: (v) => 1 / v, sqrt: (v) => 0.5 / Math.sqrt(v),
    // 1 - tanh^2 = 4e / (1 + e)^2, e = exp(-2|v|): no cancellation for large |v|
    tanh: (v) => { const e = Math.exp(-2 * Math.abs(v)); return (4 * e) / ((1 + e) * (1 + e)); },
    sigmoid: (v) => sigmoid64(v) * sigmoid64(-v),
    relu: (v) => (v > 0 ? 1 : 0),
    gelu: (v) => normalCdf64(v) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI),
    gelu_tanh: (v) => {
      const u2 = 2 * GELU_K * (v + GELU_C * v ** 3);
      const s = sigmoid64(u2);
      return s + 2 * v * s * sigmoid64(-u2) * GELU_K * (1 + 3 * GELU_C * v * v);
    },
    affine: () => alpha, square: (v) => 2 * v, reciprocal: (v) => -1 / (v * v), abs: (v) => Math.sign(v),
    maximum_scalar: (v) => (v >= alpha ? 1 : 0), div_scalar: () => 1 / alpha,
  };
  return zipArr(x, g, (v, gv) => gv * d[op](v));
}

const BINARY64: Record<BinaryOp, (u: number, v: number) => number> = {
  add: (u, v) => u + v, sub: (u, v) => u - v, mul: (u, v) => u * v, div: (u, v) => u / v, maximum: Math.max,
};

/** Applies f over the broadcast of a and b (numpy rules). */
export function broadcastZipRef(a: Arr, b: Arr, f: (u: number, v: number) => number, op = 'broadcast'): Arr {
  const shape = broadcastShapes(a.shape, b.shape, op);
  const out = arr(shape);
  const sa = broadcastStrides(a.shape, shape);
  const sb = broadcastStrides(b.shape, shape);
  const st = stridesOf(shape);
  for (let i = 0; i < out.data.length; i++) {
    let ia = 0;
    let ib = 0;
    for (let d = 0; d < shape.length; d++) {
      const k = Math.floor(i / st[d]!) % shape[d]!;
      ia += k * sa[d]!;
      ib += k * sb[d]!;
    }
    out.data[i] = f(a.data[ia]!, b.data[ib]!);
  }
  return out;
}

export function binaryRef(op: BinaryOp, a: Arr, b: Arr): Arr {
  return broadcastZipRef(a, b, BINARY64[op], op);
}

/**
 * Gradients of binaryRef for the output gradient g: the elementwise partials, summed down to each
 * input's shape over the dims it was broadcast along. maximum: ties send the gradient to a.
 */
export function binaryRefBackward(op: BinaryOp, g: Arr, a: Arr, b: Arr): [Arr, Arr] {
  const pa: Record<BinaryOp, (u: number, v: number) => number> = {
    add: () => 1, sub: () => 1, mul: (_u, v) => v, div: (_u, v) => 1 / v, maximum: (u, v) => (u >= v ? 1 : 0),
  };
  const pb: Record<BinaryOp, (u: number, v: number) => number> = {
    add: () => 1, sub: () => -1, mul: (u) => u, div: (u, v) => -u / (v * v), maximum: (u, v) => (u >= v ? 0 : 1),
  };
  const da = broadcastZipRef(a, b, pa[op]);
  const db = broadcastZipRef(a, b, pb[op]);
  const ga = sumToRef(zipArr(g, da, (x, y) => x * y), a.shape);
  const gb = sumToRef(zipArr(g, db, (x, y) => x * y), b.shape);
  return [ga, gb];
}
