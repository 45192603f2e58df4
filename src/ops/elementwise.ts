// Elementwise ops: unary maps (neg exp log sqrt tanh sigmoid relu gelu ...) and broadcasting binary
// ops (add sub mul div maximum). Backward of a binary op reduces over the dims it broadcast (sumTo).
import src from '../../kernels/elementwise.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { broadcastShapes, numel, sameShape, stridesOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { sumTo } from './reduce.js';
import { type Arr, arr, mapArr, zipArr } from '../reference.js';

const K = kernel('elementwise.wgsl', src);
const WG = 256;

export type UnaryOp = 'neg' | 'exp' | 'log' | 'sqrt' | 'tanh' | 'sigmoid' | 'relu' | 'gelu' | 'gelu_tanh' | 'affine' | 'square' | 'reciprocal' | 'abs';
const UOP: Record<UnaryOp, number> = {
  neg: 0, exp: 1, log: 2, sqrt: 3, tanh: 4, sigmoid: 5, relu: 6, gelu: 7, gelu_tanh: 8, affine: 9, square: 10, reciprocal: 11, abs: 12,
};
export type BinaryOp = 'add' | 'sub' | 'mul' | 'div' | 'maximum';
const BOP: Record<BinaryOp | 'ge', number> = { add: 0, sub: 1, mul: 2, div: 3, maximum: 4, ge: 5 };

export function checkTensor(t: unknown, op: string, arg: string): asserts t is Tensor {
  check(t instanceof Tensor, op, `${arg} must be a Tensor, got ${t === null ? 'null' : typeof t}`);
  t.storage; // throws DisposedError for a disposed tensor
  check(t.dtype === 'float32', op, `${arg} must be float32, got ${t.dtype}`);
}

export function checkFinite(v: number, op: string, arg: string): void {
  check(typeof v === 'number' && Number.isFinite(v), op, `${arg} must be a finite number, got ${v}`);
}

function checkSameDevice(a: Tensor, b: Tensor, op: string): void {
  check(a.device === b.device, op, `a ${fmtShape(a.shape)} and b ${fmtShape(b.shape)} live on different devices`);
}

function unaryRaw(x: Tensor, op: UnaryOp, alpha = 1, beta = 0): Tensor {
  const out = x.device.empty(x.shape);
  x.device.dispatch(K, 'unary_fwd', {
    bindings: { x, out },
    uniforms: { n: x.size, alpha, beta },
    overrides: { UOP: UOP[op], WG },
    workgroups: x.device.grid1d(x.size, WG),
  });
  return out;
}

function unaryGrad(x: Tensor, y: Tensor, gy: Tensor, op: UnaryOp, alpha = 1, beta = 0): Tensor {
  const out = x.device.empty(x.shape);
  x.device.dispatch(K, 'unary_bwd', {
    bindings: { x, y, gy, out },
    uniforms: { n: x.size, alpha, beta },
    overrides: { UOP: UOP[op], WG },
    workgroups: x.device.grid1d(x.size, WG),
  });
  return out;
}

/** Applies a unary map; `affine` is alpha * x + beta. */
export function unary(x: Tensor, op: UnaryOp, alpha = 1, beta = 0): Tensor {
  checkTensor(x, op, 'x');
  checkFinite(alpha, op, 'alpha');
  checkFinite(beta, op, 'beta');
  const y = unaryRaw(x, op, alpha, beta);
  return record(op, y, [x], (g) => [unaryGrad(x, y, g, op, alpha, beta)]);
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
  const a = opts.approximate ?? 'none';
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

function binaryRaw(a: Tensor, b: Tensor, op: BinaryOp | 'ge', outShape: number[]): Tensor {
  const dev = a.device;
  check(outShape.length <= 8, op, `broadcasting supports rank <= 8, got ${fmtShape(outShape)}`);
  const out = dev.empty(outShape);
  const n = numel(outShape);
  const contiguous = sameShape(a.shape, outShape) && sameShape(b.shape, outShape) ? 1 : 0;
  const s = splitVec(outShape);
  const as = splitVec(broadcastStrides(a.shape, outShape));
  const bs = splitVec(broadcastStrides(b.shape, outShape));
  dev.dispatch(K, 'binary_fwd', {
    bindings: { a, b, c: out },
    uniforms: {
      n, rank: outShape.length, contiguous,
      shape_lo: s.lo, shape_hi: s.hi, astr_lo: as.lo, astr_hi: as.hi, bstr_lo: bs.lo, bstr_hi: bs.hi,
    },
    overrides: { BOP: BOP[op], WG },
    workgroups: dev.grid1d(n, WG),
  });
  return out;
}

function scalarLike(x: Tensor, v: number, op: string): Tensor {
  checkFinite(v, op, 'b');
  return x.device.full([], v);
}

/** Binary op with broadcasting; a number operand is a scalar. */
export function binary(a: Tensor, bIn: Tensor | number, op: BinaryOp): Tensor {
  checkTensor(a, op, 'a');
  if (typeof bIn === 'number') {
    checkFinite(bIn, op, 'b');
    // scalar fast paths through the affine map keep the graph small
    if (op === 'add') return affine(a, 1, bIn);
    if (op === 'sub') return affine(a, 1, -bIn);
    if (op === 'mul') return affine(a, bIn, 0);
    if (op === 'div') {
      check(bIn !== 0, op, 'division by the scalar 0');
      return affine(a, 1 / bIn, 0);
    }
  }
  const b = typeof bIn === 'number' ? scalarLike(a, bIn, op) : bIn;
  checkTensor(b, op, 'b');
  checkSameDevice(a, b, op);
  const outShape = broadcastShapes(a.shape, b.shape, op);
  const out = binaryRaw(a, b, op, outShape);
  // sumTo that frees its input when it had to reduce (the input was a temporary of this rule)
  const st = (t: Tensor, shape: Shape): Tensor => {
    const r = sumTo(t, shape);
    if (r !== t) t.dispose();
    return r;
  };
  return record(op, out, [a, b], (g) => {
    const ga = a.requiresGrad;
    const gb = b.requiresGrad;
    switch (op) {
      case 'add':
        return [ga ? sumTo(g, a.shape) : null, gb ? sumTo(g, b.shape) : null];
      case 'sub':
        return [ga ? sumTo(g, a.shape) : null, gb ? st(neg(g), b.shape) : null];
      case 'mul':
        return [ga ? st(mul(g, b), a.shape) : null, gb ? st(mul(g, a), b.shape) : null];
      case 'div': {
        // d(a/b)/db = -g * out / b
        let gbv: Tensor | null = null;
        if (gb) {
          const q = div(out, b);
          const gq = mul(g, q);
          q.dispose();
          gbv = st(affine(gq, -1), b.shape);
          gq.dispose();
        }
        return [ga ? st(div(g, b), a.shape) : null, gbv];
      }
      case 'maximum': {
        // ties send the gradient to a (deterministic; torch splits it evenly)
        const ind = binaryRaw(a, b, 'ge', outShape);
        const gInd = mul(g, ind);
        ind.dispose();
        const res = [ga ? sumTo(gInd, a.shape) : null, gb ? st(sub(g, gInd), b.shape) : null];
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

function erf64(x: number): number {
  // series / continued fraction accurate to ~1e-15 (W. J. Cody style split)
  const t = Math.abs(x);
  if (t < 2.5) {
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
  // continued fraction for erfc
  let f = 0;
  for (let n = 60; n >= 1; n--) f = (n / 2) / (t + f);
  const erfc = Math.exp(-t * t) / Math.sqrt(Math.PI) / (t + f);
  return Math.sign(x) * (1 - erfc);
}

export function unaryRef(op: UnaryOp, x: Arr, alpha = 1, beta = 0): Arr {
  const f: Record<UnaryOp, (v: number) => number> = {
    neg: (v) => -v, exp: Math.exp, log: Math.log, sqrt: Math.sqrt, tanh: Math.tanh,
    sigmoid: (v) => 1 / (1 + Math.exp(-v)), relu: (v) => Math.max(v, 0),
    gelu: (v) => 0.5 * v * (1 + erf64(v / Math.SQRT2)),
    gelu_tanh: (v) => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3))),
    affine: (v) => alpha * v + beta, square: (v) => v * v, reciprocal: (v) => 1 / v, abs: Math.abs,
  };
  return mapArr(x, f[op]);
}

/** d/dx of unaryRef, times g. */
export function unaryRefBackward(op: UnaryOp, x: Arr, g: Arr, alpha = 1): Arr {
  const c = Math.sqrt(2 / Math.PI);
  const d: Record<UnaryOp, (v: number) => number> = {
    neg: () => -1, exp: Math.exp, log: (v) => 1 / v, sqrt: (v) => 0.5 / Math.sqrt(v),
    tanh: (v) => 1 - Math.tanh(v) ** 2,
    sigmoid: (v) => { const s = 1 / (1 + Math.exp(-v)); return s * (1 - s); },
    relu: (v) => (v > 0 ? 1 : 0),
    gelu: (v) => 0.5 * (1 + erf64(v / Math.SQRT2)) + (v * Math.exp(-0.5 * v * v)) / Math.sqrt(2 * Math.PI),
    gelu_tanh: (v) => {
      const t = Math.tanh(c * (v + 0.044715 * v ** 3));
      return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v);
    },
    affine: () => alpha, square: (v) => 2 * v, reciprocal: (v) => -1 / (v * v), abs: (v) => Math.sign(v),
  };
  return zipArr(x, g, (v, gv) => gv * d[op](v));
}

export function binaryRef(op: BinaryOp, a: Arr, b: Arr): Arr {
  const f: Record<BinaryOp, (u: number, v: number) => number> = {
    add: (u, v) => u + v, sub: (u, v) => u - v, mul: (u, v) => u * v, div: (u, v) => u / v, maximum: Math.max,
  };
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
    out.data[i] = f[op](a.data[ia]!, b.data[ib]!);
  }
  return out;
}
