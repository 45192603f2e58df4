// Elementwise ops: unary maps and broadcasting binary ops, forward and backward, against float64
// references; accuracy in the tails; bad input.
//
// Tolerances are in units of u = 2^-24 (f32 unit roundoff; 1 ULP <= 2u relative). Inputs are
// rounded to f32 before both the GPU and the reference see them, so only the op's own error counts.
// WGSL accuracy rules used below (WGSL spec, "Floating Point Accuracy"): + - * correctly rounded
// (<= u); x / y 2.5 ULP (5u); exp(x) 3 + 2|x| ULP ((6 + 4|x|)u); log(x) 2^-21 absolute on [0.5, 2],
// else 3 ULP; sqrt inherited from 1 / inverseSqrt (2 + 2.5 ULP = 9u). Backward tolerances add 1u for
// the product with the output gradient and 1u for rounding that gradient (checkOp draws it in f64).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createDevice, ops, noGrad, type Device, type Tensor } from '../../src/index.js';
import { checkOp, expectClose, rng, randArr, randInt, toTensor, toArr, arr, type Arr } from '../helpers.js';
import {
  unaryRef, unaryRefBackward, binaryRef, binaryRefBackward, normalCdf64, collapseDims, type UnaryOp, type BinaryOp,
} from '../../src/ops/elementwise.js';

const u = 2 ** -24;

let dev: Device;
beforeAll(async () => {
  dev = await createDevice();
});
afterAll(() => dev.destroy());

/** Rounds an array's values to f32 (what the GPU sees). */
function f32(a: Arr): Arr {
  return { shape: a.shape, data: a.data.map((v) => Math.fround(v)) };
}

/** Uniform in [lo, hi), rounded to f32, with |x| >= minAbs (kinks and poles stay out of reach of the finite-difference steps). */
function input(shape: number[], rnd: () => number, lo: number, hi: number, minAbs = 0): Arr {
  const a = randArr(shape, rnd, lo, hi);
  for (let i = 0; i < a.data.length; i++) {
    let v = a.data[i]!;
    while (Math.abs(v) < minAbs) v = lo + (hi - lo) * rnd();
    a.data[i] = v;
  }
  return f32(a);
}

/** |actual - expected| <= bound elementwise (per-element error bounds). */
function expectWithin(actual: Arr, expected: Arr, bound: Float64Array, what: string): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i]!;
    const e = expected.data[i]!;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= bound[i]!)) {
      expect.fail(`${what}: element ${i} is ${a}, the reference is ${e}; error ${Math.abs(a - e)} > bound ${bound[i]} (${(Math.abs(a - e) / Math.abs(e) / u).toPrecision(3)}u relative)`);
    }
  }
}

const sig = (v: number): number => 1 / (1 + Math.exp(-v));
const GK = Math.sqrt(2 / Math.PI);
const gw = (v: number): number => 2 * GK * (v + 0.044715 * v ** 3); // gelu_tanh: 0.5 v (1 + tanh u) = v sigmoid(w)

interface UnarySpec {
  op: UnaryOp;
  gpu: (x: Tensor) => Tensor;
  /** checkOp input range */
  lo: number;
  hi: number;
  /** inputs keep |x| >= minAbs (kinks at 0, poles) */
  minAbs?: number;
  /** forward error bound relative to |y|, in u, for input x */
  fwdU: (x: number) => number;
  /** extra absolute forward error (log near 1) */
  fwdAbs?: (x: number) => number;
  /** backward error bound for x and output gradient g (absolute) */
  bwd: (x: number, g: number) => number;
  /** wide range for the accuracy test (tails), with the reason */
  wide?: [number, number];
}

const dRef = (op: UnaryOp, x: number): number => unaryRefBackward(op, arr([1], [x]), arr([1], [1]), ALPHA).data[0]!;
const relBwd = (op: UnaryOp, k: (x: number) => number) => (x: number, g: number) => k(x) * u * Math.abs(g * dRef(op, x));
const ALPHA = 1.5; // exact in f32, so the uniform carries no rounding of its own
const BETA = -0.375;

const UNARY: UnarySpec[] = [
  // exact maps; backward: g * (+-1 or 0) is exact, only g's own rounding (1u)
  { op: 'neg', gpu: (x) => ops.neg(x), lo: -4, hi: 4, fwdU: () => 0, bwd: relBwd('neg', () => 1) },
  { op: 'relu', gpu: (x) => ops.relu(x), lo: -4, hi: 4, minAbs: 0.01, fwdU: () => 0, bwd: relBwd('relu', () => 1) },
  { op: 'abs', gpu: (x) => ops.abs(x), lo: -4, hi: 4, minAbs: 0.01, fwdU: () => 0, bwd: relBwd('abs', () => 1) },
  // one rounding; backward 2v exact, then *g and g's rounding
  { op: 'square', gpu: (x) => ops.square(x), lo: -4, hi: 4, fwdU: () => 1, bwd: relBwd('square', () => 2) },
  // alpha * v + beta: two roundings, the first relative to |alpha v| (cancellation with beta)
  {
    op: 'affine', gpu: (x) => ops.affine(x, ALPHA, BETA), lo: -4, hi: 4, fwdU: () => 1,
    fwdAbs: (x) => u * Math.abs(ALPHA * x), bwd: relBwd('affine', () => 2),
  },
  // exp: (3 + 2|x|) ULP; backward g * y: + 2u
  { op: 'exp', gpu: (x) => ops.exp(x), lo: -4, hi: 4, fwdU: (x) => 6 + 4 * Math.abs(x), bwd: relBwd('exp', (x) => 8 + 4 * Math.abs(x)), wide: [-80, 80] },
  // log: 2^-21 absolute on [0.5, 2], 3 ULP elsewhere; backward 1/v (5u) * g
  {
    op: 'log', gpu: (x) => ops.log(x), lo: 0.05, hi: 20, fwdU: (x) => (x >= 0.5 && x <= 2 ? 0 : 6),
    fwdAbs: (x) => (x >= 0.5 && x <= 2 ? 2 ** -21 : 0), bwd: relBwd('log', () => 7), wide: [1e-30, 1e30],
  },
  // sqrt: 9u; backward 0.5 / y: 9u + 5u + 2u
  { op: 'sqrt', gpu: (x) => ops.sqrt(x), lo: 0.01, hi: 16, fwdU: () => 9, bwd: relBwd('sqrt', () => 16), wide: [1e-30, 1e30] },
  // 1/v: 5u; backward -y*y: 2*5u + 1u + 2u
  // (wide range: 1/v^2 must stay a normal f32, GPUs may flush subnormals)
  { op: 'reciprocal', gpu: (x) => ops.reciprocal(x), lo: -5, hi: 5, minAbs: 0.2, fwdU: () => 5, bwd: relBwd('reciprocal', () => 13), wide: [-1e15, 1e15] },
  // tanh: Taylor polynomial below 0.5 (<= 4u), (1-e)/(1+e) above: exp's (6 + 8|v|)u on e enters
  // damped by 2e/(1-e^2) (<= 8.5u, at |v| = 0.5), plus 2 roundings and a division: 16u.
  // backward 4e/(1+e)^2: e's error at most doubled, 3 roundings + division, *g, g: (22 + 16|v|)u
  { op: 'tanh', gpu: (x) => ops.tanh(x), lo: -4, hi: 4, fwdU: () => 16, bwd: relBwd('tanh', (x) => 22 + 16 * Math.abs(x)), wide: [-9, 9] },
  // sigmoid: e/(1+e) or 1/(1+e): 1.5x exp's error + 2 roundings + division: (16 + 6|v|)u;
  // backward s(v) s(-v): twice that + 3u
  { op: 'sigmoid', gpu: (x) => ops.sigmoid(x), lo: -4, hi: 4, fwdU: (x) => 16 + 6 * Math.abs(x), bwd: relBwd('sigmoid', (x) => 35 + 12 * Math.abs(x)), wide: [-20, 20] },
  // gelu (erf): v Phi(v), Phi = erfc(t) / 2 = t P(t) exp(-v^2/2) / 2: exp's (6 + 2v^2)u plus
  // v^2/2 u when fma is not fused; the fitted P and t = 1/(1 + z/2) 11u (f32 simulation over
  // z in [0, 12], including the division's 2.5 ULP); 4 roundings: (21 + 2.5 v^2)u, relative in both tails.
  // backward Phi(v) + v phi(v): each term carries that error relative to itself; the terms cancel
  // near v = -0.75 (a root of gelu'), so the bound is absolute: (22 + 2.5 v^2)u (|Phi| + |v phi|) |g|.
  {
    op: 'gelu', gpu: (x) => ops.gelu(x), lo: -4, hi: 4, fwdU: (x) => 21 + 2.5 * x * x,
    bwd: (x, g) => (24 + 2.5 * x * x) * u * (normalCdf64(x) + Math.abs(x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI))) * Math.abs(g),
    wide: [-9, 9],
  },
  // gelu (tanh): v sigmoid(w), w = 2 sqrt(2/pi) (v + 0.044715 v^3): w carries ~7u relative error
  // (5 roundings and 2 rounded constants), which sigmoid turns into <= 7|w| u, plus sigmoid's
  // (16 + 6|w|)u and one product: (17 + 13|w|)u. backward s + 2 v s s(-w) w': both terms carry
  // about twice that; they cancel near the root of gelu', so the bound is absolute.
  {
    op: 'gelu_tanh', gpu: (x) => ops.gelu(x, { approximate: 'tanh' }), lo: -4, hi: 4, fwdU: (x) => 17 + 13 * Math.abs(gw(x)),
    bwd: (x, g) => {
      const w = gw(x);
      const t2 = 2 * x * sig(w) * sig(-w) * GK * (1 + 3 * 0.044715 * x * x);
      return (40 + 26 * Math.abs(w)) * u * (sig(w) + Math.abs(t2)) * Math.abs(g);
    },
    wide: [-9, 9],
  },
];

function fwdTolFor(s: UnarySpec, x: Arr): { atol: number; rtol: number } {
  let rtol = 0;
  let atol = 0;
  for (const v of x.data) {
    rtol = Math.max(rtol, s.fwdU(v) * u);
    atol = Math.max(atol, s.fwdAbs?.(v) ?? 0);
  }
  return { atol, rtol };
}

/** A scalar backward tolerance: the largest per-element bound for |g| <= 1, as atol. */
function bwdTolFor(s: UnarySpec, x: Arr): { atol: number; rtol: number } {
  let atol = 0;
  for (const v of x.data) atol = Math.max(atol, s.bwd(v, 1));
  return { atol, rtol: 0 };
}

describe('unary ops: checkOp (forward, reference backward vs central differences, GPU backward, gradcheck)', () => {
  for (const s of UNARY) {
    it(s.op, async () => {
      const rnd = rng(1000 + s.op.length * 17 + s.op.charCodeAt(0));
      // small shapes get the full check including gradcheck on the GPU (2 forward passes per element);
      // gradcheck uses its defaults (eps 1e-3, atol 1e-3, rtol 1e-2): in f32 each output rounds by
      // u|y|, which central differences divide by 2 eps (3e-5 |y|), and truncation is eps^2 |f'''| / 6
      const small: number[][] = [[], [1], [3, 4], [2, 1, 5]];
      // larger shapes, not multiples of the workgroup (256) or of the vec4 width: forward and
      // backward against the reference; no gradcheck (it would take 2 GPU passes per element)
      const large: number[][] = [[257], [1000], [7, 1, 33], [0, 5]];
      for (const shape of [...small, ...large]) {
        const x = input(shape, rnd, s.lo, s.hi, s.minAbs ?? 0);
        const gc = small.includes(shape);
        await checkOp({
          name: `${s.op} ${JSON.stringify(shape)}`,
          dev,
          inputs: [x],
          gpu: s.gpu,
          ref: (a) => unaryRef(s.op, a, ALPHA, BETA),
          refBackward: (g, a) => [unaryRefBackward(s.op, a, g, ALPHA)],
          fwdTol: fwdTolFor(s, x),
          bwdTol: bwdTolFor(s, x),
          gradcheck: gc ? {} : false,
        });
      }
    });
  }
});

describe('unary ops: accuracy over wide ranges (tails), per-element bounds', () => {
  for (const s of UNARY.filter((q) => q.wide)) {
    it(`${s.op} on [${s.wide![0]}, ${s.wide![1]}]`, async () => {
      const rnd = rng(77 + s.op.length);
      const [lo, hi] = s.wide!;
      const n = 4099;
      const xs = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        // half uniform, half log-uniform in magnitude (tiny arguments: tanh's polynomial branch)
        if (lo > 0) xs[i] = Math.exp(Math.log(lo) + (Math.log(hi) - Math.log(lo)) * rnd());
        else if (i % 2) xs[i] = lo + (hi - lo) * rnd();
        else xs[i] = (rnd() < 0.5 ? -1 : 1) * Math.exp(Math.log(1e-6) + (Math.log(Math.max(-lo, hi)) - Math.log(1e-6)) * rnd());
        xs[i] = Math.fround(Math.min(Math.max(xs[i]!, lo), hi));
      }
      const x = arr([n], xs);
      // |g| in [0.5, 1]: gradients stay normal f32 numbers (GPUs may flush subnormals to 0)
      const g = f32(arr([n], Float64Array.from({ length: n }, () => (rnd() < 0.5 ? -1 : 1) * (0.5 + 0.5 * rnd()))));
      const xt = toTensor(dev, x, true);
      const y = s.gpu(xt);
      const yRef = unaryRef(s.op, x, ALPHA, BETA);
      const fb = new Float64Array(n);
      for (let i = 0; i < n; i++) fb[i] = s.fwdU(xs[i]!) * u * Math.abs(yRef.data[i]!) + (s.fwdAbs?.(xs[i]!) ?? 0);
      expectWithin(await toArr(y), yRef, fb, `${s.op} forward`);
      y.backward(toTensor(dev, g));
      const gRef = unaryRefBackward(s.op, x, g, ALPHA);
      const bb = new Float64Array(n);
      for (let i = 0; i < n; i++) bb[i] = s.bwd(xs[i]!, g.data[i]!);
      expectWithin(await toArr(xt.grad!), gRef, bb, `${s.op} backward`);
      y.dispose();
      xt.grad!.dispose();
      xt.dispose();
    });
  }

  it('tanh keeps full relative accuracy for tiny arguments (no 1 - e cancellation)', async () => {
    const x = [1e-7, -3e-6, 1e-4, 0.01, 0.3, 0.49, 0.5, 0.51].map(Math.fround);
    const y = await ops.tanh(dev.tensor(x)).toArray();
    // 16u relative: see the tanh row above
    x.forEach((v, i) => expect(Math.abs(y[i]! - Math.tanh(v)), `tanh(${v})`).toBeLessThanOrEqual(16 * u * Math.abs(Math.tanh(v))));
  });

  it('saturating maps stay finite at huge arguments', async () => {
    const x = dev.tensor([-1e30, -200, 200, 1e30]);
    expect(Array.from(await ops.tanh(x).toArray())).toEqual([-1, -1, 1, 1]);
    expect(Array.from(await ops.sigmoid(x).toArray())).toEqual([0, 0, 1, 1]);
    expect(Array.from(await ops.gelu(x).toArray()).map((v) => v + 0)).toEqual([0, 0, 200, 1e30].map(Math.fround));
    expect(Array.from(await ops.gelu(x, { approximate: 'tanh' }).toArray()).map((v) => v + 0)).toEqual([0, 0, 200, 1e30].map(Math.fround));
  });
});

describe('scalar and vec4 paths', () => {
  it('a tensor over an exactly-sized GPUBuffer (no vec4 padding) takes the scalar path and agrees', async () => {
    const rnd = rng(5);
    const n = 257; // not a multiple of 4: the buffer is 1028 bytes, a vec4 view would need 1040
    const x = input([n], rnd, -3, 3);
    const buf = dev.gpu.createBuffer({ size: n * 4, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    dev.gpu.queue.writeBuffer(buf, 0, Float32Array.from(x.data));
    const t = dev.fromGPUBuffer(buf, [n], { requiresGrad: true });
    const pooled = toTensor(dev, x, true);
    for (const [name, f] of [['exp', ops.exp], ['gelu', ops.gelu], ['tanh', ops.tanh]] as const) {
      const a = f(t);
      const b = f(pooled);
      // both paths evaluate the same f32 expression: bit-identical
      expect(Array.from(await a.toArray()), `${name} forward`).toEqual(Array.from(await b.toArray()));
      const g = f32(randArr([n], rnd));
      a.backward(toTensor(dev, g));
      b.backward(toTensor(dev, g));
      expect(Array.from(await t.grad!.toArray()), `${name} backward`).toEqual(Array.from(await pooled.grad!.toArray()));
      t.grad!.dispose();
      t.grad = null;
      pooled.grad!.dispose();
      pooled.grad = null;
      // exact forward check against the reference too (exp: (6 + 4|x|)u)
      if (name === 'exp') expectClose(await toArr(a), unaryRef('exp', x), { atol: 0, rtol: 18 * u }, 'exp scalar path');
    }
    const s = ops.add(t, t);
    expectClose(await toArr(s), binaryRef('add', x, x), { atol: 0, rtol: 0 }, 'add scalar path (2x is exact)');
    t.dispose();
    pooled.dispose();
    buf.destroy();
  });
});

// ---- binary ops -------------------------------------------------------------------------------

interface BinarySpec {
  op: BinaryOp;
  /** forward error relative to |out|, in u */
  fwdU: number;
  /** backward error per summed term, relative, in u */
  bwdU: number;
  /** b's range keeps |b| >= this (div) */
  minAbsB?: number;
}
const BINARY: BinarySpec[] = [
  // correctly rounded: u; backward g (or g*b): 1u product + 1u for g's rounding
  { op: 'add', fwdU: 1, bwdU: 1 },
  { op: 'sub', fwdU: 1, bwdU: 1 },
  { op: 'mul', fwdU: 1, bwdU: 2 },
  // 2.5 ULP; backward g/b (5u + 1u) and -(g*out)/b (out 5u, 3 more operations)
  { op: 'div', fwdU: 5, bwdU: 14, minAbsB: 0.25 },
  // exact; backward g * [a >= b] exact, g's rounding
  { op: 'maximum', fwdU: 0, bwdU: 1 },
];

// broadcasting in all directions, scalars, size-1 and empty dims; the second group is larger and
// not a multiple of the workgroup (256) or of 4 (the vec4 path)
const PAIRS_SMALL: [number[], number[]][] = [
  [[3, 1, 5], [4, 1]], [[4, 1], [3, 1, 5]], [[], [2, 3]], [[2, 3], []], [[], []], [[1], [5]], [[5], [1]],
  [[2, 1, 4], [1, 3, 1]], [[2, 3], [2, 3]], [[1, 1, 3], [2, 1, 1, 1]],
];
const PAIRS_LARGE: [number[], number[]][] = [
  [[257], [257]], [[1000], [1000]], [[33, 31], [31]], [[9, 1, 7], [1, 11, 1]], [[0, 3], [3]], [[4, 1], [1, 0]],
  // alternating broadcast dims: nothing collapses, the kernel indexes all 8 dims
  [[2, 1, 2, 1, 2, 1, 3, 1], [1, 2, 1, 2, 1, 3, 1, 2]],
];

/** Values on disjoint grids (a = k/10, b = k/10 + 1/20), so maximum never ties within reach of the finite-difference step. */
function gridInput(shape: number[], rnd: () => number, off: number): Arr {
  const a = arr(shape);
  for (let i = 0; i < a.data.length; i++) a.data[i] = Math.fround(randInt(rnd, -20, 20) / 10 + off);
  return a;
}

function binaryInputs(s: BinarySpec, sa: number[], sb: number[], rnd: () => number): [Arr, Arr] {
  if (s.op === 'maximum') return [gridInput(sa, rnd, 0), gridInput(sb, rnd, 0.05)];
  return [input(sa, rnd, -2, 2), input(sb, rnd, -2, 2, s.minAbsB ?? 0)];
}

/** Largest number of output elements that sum into one element of an input of shape s. */
function fanIn(s: number[], out: number[]): number {
  const off = out.length - s.length;
  return out.reduce((p, d, i) => p * (i < off || s[i - off] === 1 ? d : 1), 1);
}

describe('binary ops: checkOp with broadcasting', () => {
  for (const s of BINARY) {
    it(s.op, async () => {
      const rnd = rng(300 + s.op.charCodeAt(0) + s.op.length);
      for (const [sa, sb] of [...PAIRS_SMALL, ...PAIRS_LARGE]) {
        const [a, b] = binaryInputs(s, sa, sb, rnd);
        const out = binaryRef(s.op, a, b);
        // backward sums fan-in terms (sumTo over broadcast dims): each term carries bwdU u relative
        // error and the f32 sum adds ~sqrt(k) u per unit of sum |term| (probabilistic bound, factor 2)
        const k = Math.max(fanIn(sa, out.shape), fanIn(sb, out.shape));
        // termMax: the largest sum of |partials| over one input element's fan-in (|g| <= 1); the
        // partials of add/sub/mul/div keep one sign on |a|, |b|, so their sums there are that;
        // maximum's are 0 or 1
        let termMax = k;
        if (s.op !== 'maximum') {
          const absA = { shape: a.shape, data: a.data.map(Math.abs) };
          const absB = { shape: b.shape, data: b.data.map(Math.abs) };
          const [ga, gb] = binaryRefBackward(s.op, arr(out.shape, new Float64Array(out.data.length).fill(1)), absA, absB);
          termMax = 0;
          for (const v of [...ga.data, ...gb.data]) termMax = Math.max(termMax, Math.abs(v));
        }
        const small = PAIRS_SMALL.some(([x, y]) => x === sa && y === sb);
        await checkOp({
          name: `${s.op} ${JSON.stringify(sa)} ${JSON.stringify(sb)}`,
          dev,
          inputs: [a, b],
          gpu: (x, y) => ops[s.op](x, y),
          ref: (x, y) => binaryRef(s.op, x, y),
          refBackward: (g, x, y) => binaryRefBackward(s.op, g, x, y),
          fwdTol: { atol: 0, rtol: s.fwdU * u },
          // termMax bounds the sum of |terms| (|g| <= 1); per-term errors bwdU u, summation 2 sqrt(k) u
          bwdTol: { atol: (s.bwdU + 2 * Math.sqrt(k)) * u * termMax, rtol: 0 },
          // gradcheck: 2 GPU passes per input element, so only on the small pairs
          gradcheck: small ? {} : false,
        });
      }
    });
  }

  it('scalar operands (numbers) for every op, both as b', async () => {
    const rnd = rng(41);
    const a = input([3, 5], rnd, -2, 2);
    for (const [op, v] of [['add', 0.75], ['sub', -1.25], ['mul', 3], ['div', 3], ['maximum', 0.125]] as const) {
      const b = arr([], [v]);
      // a number operand is a uniform of a unary map: add/sub/mul/maximum one rounding (or exact),
      // div a division (2.5 ULP); backward g * (1 or v or [x >= v]), div g * (1/v): 5u + 1u, plus g's rounding
      await checkOp({
        name: `${op} number`,
        dev,
        inputs: [a],
        wrt: [0],
        gpu: (x) => ops[op](x, v),
        ref: (x) => binaryRef(op, x, b),
        refBackward: (g, x) => [binaryRefBackward(op, g, x, b)[0]],
        fwdTol: { atol: 0, rtol: (op === 'div' ? 5 : 1) * u },
        bwdTol: { atol: 0, rtol: (op === 'div' ? 7 : 2) * u },
      });
    }
  });

  it('maximum with a number: ties send the gradient to x', async () => {
    const x = dev.tensor([0.5, 2, -1, 0.5], [4], { requiresGrad: true });
    const y = ops.maximum(x, 0.5);
    expect(Array.from(await y.toArray())).toEqual([0.5, 2, 0.5, 0.5]);
    y.backward(dev.tensor([1, 2, 3, 4]));
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 2, 0, 4]);
  });

  it('maximum with ties sends the gradient to a', async () => {
    const a = dev.tensor([1, 2, 3, -1], [4], { requiresGrad: true });
    const b = dev.tensor([1, 5, 3, -1], [4], { requiresGrad: true });
    const y = ops.maximum(a, b);
    expect(Array.from(await y.toArray())).toEqual([1, 5, 3, -1]);
    y.backward(dev.tensor([10, 20, 30, 40]));
    expect(Array.from(await a.grad!.toArray())).toEqual([10, 0, 30, 40]);
    expect(Array.from(await b.grad!.toArray())).toEqual([0, 20, 0, 0]);
    const ref = binaryRefBackward('maximum', arr([4], [10, 20, 30, 40]), arr([4], [1, 2, 3, -1]), arr([4], [1, 5, 3, -1]));
    expect(Array.from(ref[0].data)).toEqual([10, 0, 30, 40]);
  });
});

describe('collapseDims (fewer dims for the broadcast and copy kernels)', () => {
  it('drops size-1 dims and merges dims every operand walks contiguously', () => {
    // [2, 3, 4] + [3, 4]: the inner two dims merge for both, the outer does not (b broadcasts there)
    expect(collapseDims([2, 3, 4], [[12, 4, 1], [0, 4, 1]])).toEqual({ shape: [2, 12], strides: [[12, 1], [0, 1]] });
    // [4, 1, 5] + [1, 1, 5]
    expect(collapseDims([4, 1, 5], [[5, 5, 1], [0, 0, 1]])).toEqual({ shape: [4, 5], strides: [[5, 1], [0, 1]] });
    // a scalar broadcast over everything: one dim
    expect(collapseDims([2, 3, 4], [[12, 4, 1], [0, 0, 0]])).toEqual({ shape: [24], strides: [[1], [0]] });
    // a transpose does not merge
    expect(collapseDims([3, 4], [[1, 3], [4, 1]])).toEqual({ shape: [3, 4], strides: [[1, 3], [4, 1]] });
    expect(collapseDims([1, 1], [[1, 1]])).toEqual({ shape: [], strides: [[]] });
  });
});

describe('autodiff through elementwise ops', () => {
  it('a tensor used several times gets the summed gradient (y = x*x + x, z = exp(x) * x)', async () => {
    const rnd = rng(8);
    const x = input([5, 3], rnd, -2, 2);
    // d/dx (x*x + x) = 2x + 1; d/dx (exp(x) * x) = exp(x)(x + 1): a few roundings and exp's
    // (6 + 8)u for |x| <= 2, plus the sum of three gradient contributions: 24u
    await checkOp({
      name: 'x*x + x',
      dev,
      inputs: [x],
      gpu: (t) => ops.add(ops.mul(t, t), t),
      ref: (a) => binaryRef('add', binaryRef('mul', a, a), a),
      refBackward: (g, a) => [arr(a.shape, a.data.map((v, i) => g.data[i]! * (2 * v + 1)))],
      fwdTol: { atol: 2 * u * 6, rtol: 2 * u },
      bwdTol: { atol: 4 * u * 5, rtol: 0 },
    });
    await checkOp({
      name: 'exp(x) * x + x with broadcasting against itself',
      dev,
      inputs: [x],
      gpu: (t) => ops.add(ops.mul(ops.exp(t), t), ops.sum(t, 0, true)),
      ref: (a) => {
        const e = unaryRef('exp', a);
        const col = arr([1, 3]);
        a.data.forEach((v, i) => (col.data[i % 3]! += v));
        return binaryRef('add', binaryRef('mul', e, a), col);
      },
      refBackward: (g, a) => {
        const colG = [0, 0, 0];
        g.data.forEach((v, i) => (colG[i % 3]! += v));
        return [arr(a.shape, a.data.map((v, i) => g.data[i]! * Math.exp(v) * (v + 1) + colG[i % 3]!))];
      },
      fwdTol: { atol: 24 * u * 2 * Math.exp(2), rtol: 24 * u },
      bwdTol: { atol: 24 * u * (3 * Math.exp(2) + 5), rtol: 0 },
    });
  });

  it('forward and backward dispose every temporary (live tensor count returns to its start)', async () => {
    const rnd = rng(9);
    await dev.sync();
    const before = dev.memory().liveTensors;
    const a = toTensor(dev, input([4, 1, 3], rnd, -2, 2), true);
    const b = toTensor(dev, input([5, 1], rnd, 0.5, 2), true);
    // every tensor this test makes by hand is listed; anything else still alive is a leak
    const mine: Tensor[] = [a, b];
    const keep = <T extends Tensor>(t: T): T => (mine.push(t), t);
    const d = keep(ops.sub(a, b));
    const m = keep(ops.mul(d, b));
    const mx = keep(ops.maximum(m, a));
    const q = keep(ops.div(mx, keep(ops.gelu(b))));
    const y = keep(ops.sum(q));
    keep(ops.add(keep(ops.exp(a)), 2));
    keep(ops.maximum(a, 0.5));
    y.backward();
    await a.grad!.toArray();
    mine.push(a.grad!, b.grad!);
    for (const t of mine) t.dispose();
    expect(dev.memory().liveTensors).toBe(before);
  });

  it('under noGrad nothing is recorded', () => {
    const a = dev.tensor([1, 2], [2], { requiresGrad: true });
    const y = noGrad(() => ops.exp(ops.mul(a, a)));
    expect(y.requiresGrad).toBe(false);
    expect(y._node).toBeNull();
  });
});

// ---- bad input: each throws an Error naming the op, the argument and the shapes, before any GPU work

/** Asserts fn throws an Error whose message contains every pattern, and that it recorded no GPU work and made no tensor. */
function expectRejected(fn: () => unknown, patterns: (string | RegExp)[]): void {
  const pending = dev.exec.pendingCount;
  const live = dev.memory().liveTensors;
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(Error);
  const msg = (err as Error).message;
  for (const p of patterns) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
  expect(dev.exec.pendingCount, 'GPU work was recorded before the error').toBe(pending);
  expect(dev.memory().liveTensors, 'a tensor was created before the error').toBe(live);
}

describe('bad input', () => {
  it('non-broadcastable shapes', () => {
    const a = dev.zeros([2, 3]);
    const b = dev.zeros([4]);
    expectRejected(() => ops.add(a, b), ['add', 'a [2, 3]', 'b [4]', 'broadcastable']);
  });
  it('non-broadcastable shapes in the middle dim', () => {
    const a = dev.zeros([3, 2, 5]);
    const b = dev.zeros([4, 1]);
    expectRejected(() => ops.mul(a, b), ['mul', 'a [3, 2, 5]', 'b [4, 1]']);
  });
  it('b is not a tensor or a number', () => {
    const a = dev.zeros([2]);
    expectRejected(() => ops.sub(a, '1' as unknown as number), ['sub', 'b', 'string']);
  });
  it('a is not a tensor', () => {
    expectRejected(() => ops.add(null as unknown as Tensor, 1), ['add', 'a', 'null']);
  });
  it('a disposed tensor (unary)', () => {
    const x = dev.zeros([2, 2]);
    x.dispose();
    expectRejected(() => ops.exp(x), ['exp', 'x [2, 2]', 'dispose']);
  });
  it('a disposed tensor (binary, second argument)', () => {
    const a = dev.zeros([3]);
    const b = dev.zeros([3]);
    b.dispose();
    expectRejected(() => ops.add(a, b), ['add', 'b [3]', 'dispose']);
  });
  it('tensors from two devices', async () => {
    const dev2 = await createDevice();
    try {
      const a = dev.zeros([2, 3]);
      const b = dev2.zeros([3]);
      expectRejected(() => ops.add(a, b), ['add', 'a [2, 3]', 'b [3]', 'different devices']);
    } finally {
      dev2.destroy();
    }
  });
  it('NaN scalar operand', () => {
    const a = dev.zeros([2, 3]);
    expectRejected(() => ops.add(a, NaN), ['add', 'b', 'NaN', 'a [2, 3]']);
  });
  it('infinite scalar operand (maximum)', () => {
    const a = dev.zeros([4]);
    expectRejected(() => ops.maximum(a, -Infinity), ['maximum', 'b', '-Infinity', 'a [4]']);
  });
  it('a scalar that overflows float32', () => {
    const a = dev.zeros([4]);
    expectRejected(() => ops.mul(a, 1e39), ['mul', 'b', '1e+39', 'float32', 'a [4]']);
  });
  it('division by the scalar 0', () => {
    const a = dev.zeros([2]);
    expectRejected(() => ops.div(a, 0), ['div', 'b', 'zero', 'a [2]']);
  });
  it('affine with an infinite alpha', () => {
    const x = dev.zeros([5]);
    expectRejected(() => ops.affine(x, Infinity, 0), ['affine', 'alpha', 'Infinity', 'x [5]']);
  });
  it('affine with a NaN beta', () => {
    const x = dev.zeros([1, 2]);
    expectRejected(() => ops.affine(x, 1, NaN), ['affine', 'beta', 'NaN', 'x [1, 2]']);
  });
  it('gelu with an unknown approximation', () => {
    const x = dev.zeros([2]);
    expectRejected(() => ops.gelu(x, { approximate: 'sigmoid' as 'tanh' }), ['gelu', 'approximate', 'sigmoid']);
  });
  it('an int32 tensor', () => {
    const x = dev.tensor([1, 2, 3], [3], { dtype: 'int32' });
    expectRejected(() => ops.sqrt(x), ['sqrt', 'x [3]', 'float32', 'int32']);
  });
  it('broadcast rank above 8', () => {
    const a = dev.zeros([1, 1, 1, 1, 1, 1, 1, 1, 2]);
    const b = dev.zeros([2]);
    expectRejected(() => ops.add(a, b), ['add', 'rank', 'a [1, 1, 1, 1, 1, 1, 1, 1, 2]', 'b [2]']);
  });
});
