// softmax / logSoftmax: every kernel layout (row, col4, wg) and the automatic choice, against the
// float64 references, over row lengths from 1 to 3000, dims other than the last, size-1 dims and
// +-1e4 offsets; gradcheck on the small cases; bad inputs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ops, ShapeError, type Device, type Tensor } from '../../src/index.js';
import {
  softmaxImpl, softmaxPlan, softmaxRef, logSoftmaxRef, softmaxRefBackward, logSoftmaxRefBackward, type SoftmaxForce, type SoftmaxPath,
} from '../../src/ops/softmax.js';
import { checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Arr, type Tol } from '../helpers.js';
import { mapArr } from '../../src/reference.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

const U = 2 ** -24; // f32 unit roundoff

/** Inputs rounded to f32, so the GPU and the float64 reference see the same numbers. */
const f32 = (a: Arr): Arr => mapArr(a, Math.fround);
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);

/**
 * Relative error of p = softmax(x) in f32, for rows of R whose values span `span` (|x - max| <= span):
 * WGSL exp is accurate to 3 + 2|x| ULP, once in the numerator and (worst case, all the same sign)
 * in the sum; the sum's rounding grows like sqrt(R) ULP (4 interleaved partial sums: less); 1/s is
 * 2.5 ULP and the product 0.5 ULP.
 */
function pRel(R: number, span: number): number {
  return (2 * (3 + 2 * span) + 2 * Math.sqrt(R) + 4) * U;
}

/** Tolerances for one case. `pmax`: largest softmax value in the case (bounds the backward terms). */
function tols(log: boolean, R: number, span: number, pmax: number): { fwd: Tol; bwd: Tol } {
  const dp = pRel(R, span);
  if (!log) {
    return {
      // relative, from pRel; atol only for values that underflow in f32
      fwd: { atol: 1e-30, rtol: dp },
      // gx = y (g - t), t = sum(g y): t's rounding ~ (2 sqrt(R) + 1) ULP of sum|g y| <= 1 (|g| < 1,
      // sum y = 1) plus dp; g - t rounds at 2 ULP of 2; times y <= pmax; the product adds dp relative
      bwd: { atol: pmax * ((2 * Math.sqrt(R) + 6) * U + dp), rtol: dp + U },
    };
  }
  // y = (x - m) - log(s): WGSL log is within 2^-21 absolute near 1 (3 ULP elsewhere), s's relative
  // error dp becomes an absolute error of log(s); each rounding is relative to |y| (both terms
  // have the sign of y), three of them
  const fwdAtol = 2 ** -21 + dp;
  return {
    fwd: { atol: fwdAtol, rtol: 8 * U },
    // gx = g - exp(y) t, t = sum(g), |t| <= R: t's rounding is ~ 2 sqrt(R) ULP of sum|g| <= R, times
    // exp(y) <= pmax; exp(y) is off by fwdAtol + 8 ULP of |y| (<= log R + span) plus exp's
    // 3 + 2|y| ULP, times |t| <= R; the subtraction rounds at 1 ULP of |g| + pmax R
    bwd: {
      atol: pmax * R * (2 * Math.sqrt(R) * U + fwdAtol + (11 + 10 * (Math.log(R) + span)) * U) + 2 * (1 + pmax * R) * U,
      rtol: U,
    },
  };
}

function pmaxOf(x: Arr, dim: number): number {
  const p = softmaxRef(x, dim);
  return p.data.reduce((a, v) => Math.max(a, v), 0);
}

interface Case {
  shape: number[];
  dim: number;
  lo?: number;
  hi?: number;
  /** add offsets[k % offsets.length] to every element of the k-th row along dim */
  offsets?: number[];
}

function makeInput(c: Case, rnd: () => number): Arr {
  const x = randArr(c.shape, rnd, c.lo ?? -1, c.hi ?? 1);
  if (c.offsets) {
    const d = c.dim < 0 ? c.dim + c.shape.length : c.dim;
    const inner = c.shape.slice(d + 1).reduce((a, b) => a * b, 1);
    const r = c.shape[d]!;
    for (let i = 0; i < x.data.length; i++) {
      const row = Math.floor(i / (r * inner)) * inner + (i % inner);
      x.data[i]! += c.offsets[row % c.offsets.length]!;
    }
  }
  return f32(x);
}

function rowLen(c: Case): number {
  return c.shape.length === 0 ? 1 : c.shape[c.dim < 0 ? c.dim + c.shape.length : c.dim]!;
}

/**
 * checkOp also checks the float64 reference backward against float64 central differences: O(n^2)
 * work, and for n in the thousands its rounding (~ sqrt(n) |L| 2^-53 / 1e-6 with L = sum(out * R))
 * passes the helper's fixed 1e-6 atol. So it runs on every case up to this size (row lengths up
 * to 1000 included), and larger cases compare the GPU forward and backward with the reference.
 */
const REF_GRADCHECK_MAX = 2000;

async function checkLarge(name: string, x: Arr, gpu: (a: Tensor) => Tensor, log: boolean, dim: number, t: { fwd: Tol; bwd: Tol }, seed: number): Promise<void> {
  const xt = toTensor(dev, x, true);
  const y = gpu(xt);
  expectClose(await toArr(y), log ? logSoftmaxRef(x, dim) : softmaxRef(x, dim), t.fwd, `${name} forward`);
  const g = f32(randArr(x.shape, rng(seed + 7919)));
  y.backward(toTensor(dev, g));
  const ref = log ? logSoftmaxRefBackward(g, x, dim) : softmaxRefBackward(g, x, dim);
  expectClose(await toArr(xt.grad!), ref, t.bwd, `${name} backward`);
  xt.grad!.dispose();
  xt.dispose();
  y.dispose();
}

async function runCase(c: Case, log: boolean, path: SoftmaxForce | undefined, seed: number, gradcheck: boolean): Promise<void> {
  const x = makeInput(c, rng(seed));
  const R = rowLen(c);
  const span = (c.hi ?? 1) - (c.lo ?? -1);
  const t = tols(log, R, span, pmaxOf(x, c.dim));
  const name = `${log ? 'logSoftmax' : 'softmax'} ${JSON.stringify(c.shape)} dim ${c.dim} path ${JSON.stringify(path ?? 'auto')}`;
  const gpu = (a: Tensor): Tensor => (path ? softmaxImpl(a, c.dim, log, path) : log ? ops.logSoftmax(a, c.dim) : ops.softmax(a, c.dim));
  if (x.data.length > REF_GRADCHECK_MAX) {
    await checkLarge(name, x, gpu, log, c.dim, t, seed);
    return;
  }
  await checkOp({
    name,
    dev,
    inputs: [x],
    gpu,
    ref: (a) => (log ? logSoftmaxRef(a, c.dim) : softmaxRef(a, c.dim)),
    refBackward: (g, a) => [log ? logSoftmaxRefBackward(g, a, c.dim) : softmaxRefBackward(g, a, c.dim)],
    fwdTol: t.fwd,
    bwdTol: t.bwd,
    // gradcheck (2 GPU forwards per element) only on small cases; its defaults (eps 1e-3, atol 1e-3,
    // rtol 1e-2) cover f32 central differences: rounding ~ sqrt(n) 2^-24 / eps, truncation ~ eps^2
    gradcheck: gradcheck ? {} : false,
    seed: seed + 7919, // the output grads' stream, not x's (equal streams would make them equal)
  });
}

const PATHS: (SoftmaxPath | undefined)[] = [undefined, 'row', 'wg'];

describe('softmax / logSoftmax: last dim, row lengths 1..3000, every layout', () => {
  const lengths = [1, 3, 7, 64, 100, 257, 1000, 3000];
  for (const log of [false, true]) {
    for (const R of lengths) {
      it(`${log ? 'logSoftmax' : 'softmax'} R=${R}`, async () => {
        const rnd = rng(1000 + R + (log ? 7 : 0));
        // rows: random, fewer for long rows (the float64 reference gradcheck is O(n^2))
        const rows = R >= 1000 ? randInt(rnd, 1, 2) : randInt(rnd, 1, 5);
        const lead = R <= 7 ? [randInt(rnd, 1, 3)] : [];
        const shape = [...lead, rows, R];
        for (const path of PATHS) {
          const small = shape.reduce((a, b) => a * b, 1) <= 64;
          await runCase({ shape, dim: -1 }, log, path, R * 31 + (path?.length ?? 0), small && path !== 'row');
        }
      });
    }
  }
});

describe('softmax / logSoftmax: dims other than the last, size-1 dims', () => {
  // [outer, R, inner]: inner % 4 == 0 takes the col4 layout, other inners the strided row layout
  const cases: Case[] = [
    { shape: [2, 3, 4], dim: 1 },       // small enough for gradcheck: col4
    { shape: [3, 2, 5], dim: 0 },       // and strided rows
    { shape: [2, 7, 5], dim: 1 },
    { shape: [3, 100, 8], dim: 1 },
    { shape: [257, 4], dim: 0 },
    { shape: [64, 3], dim: 0 },
    { shape: [2, 3, 1000, 2], dim: 2 },
    { shape: [1, 300, 12], dim: -2 },
    { shape: [1, 7, 1], dim: 1 },
    { shape: [7, 1], dim: 0 },
    { shape: [4, 1, 6], dim: 1 },      // a row of one: softmax 1, logSoftmax 0, gradient 0
    { shape: [1, 1, 9], dim: -1 },
    { shape: [5], dim: 0 },
  ];
  for (const log of [false, true]) {
    it(`${log ? 'logSoftmax' : 'softmax'}`, async () => {
      let seed = 500;
      for (const c of cases) {
        const n = c.shape.reduce((a, b) => a * b, 1);
        for (const path of [undefined, 'row', 'col4', 'wg'] as const) {
          if (path === 'col4' && (c.shape.slice((c.dim < 0 ? c.dim + c.shape.length : c.dim) + 1).reduce((a, b) => a * b, 1) % 4 !== 0)) continue;
          await runCase(c, log, path, seed++, n <= 40 && path === undefined);
        }
      }
    });
  }
});

describe('softmax / logSoftmax: large offsets stay finite and exact', () => {
  // inputs are f32 (rounded), so x - max is exact (Sterbenz) and the tolerances are those of
  // offset-free rows: any overflow or cancellation would show as Inf/NaN or a large error
  const cases: Case[] = [
    { shape: [6, 257], dim: -1, offsets: [1e4, -1e4, 0, 5e3, -3e3, 1e4] },
    { shape: [3, 3000], dim: -1, offsets: [1e4, -1e4, 2e4] },
    { shape: [4, 64, 8], dim: 1, offsets: [1e4, -1e4, 0] },
    { shape: [3, 100, 5], dim: 1, offsets: [1e4, -1e4] },
  ];
  for (const log of [false, true]) {
    it(`${log ? 'logSoftmax' : 'softmax'} row offsets +-1e4`, async () => {
      let seed = 900;
      for (const c of cases) {
        for (const path of [undefined, 'row', 'col4', 'wg'] as const) {
          const x = makeInput(c, rng(seed++));
          const t = tols(log, rowLen(c), 2, pmaxOf(x, c.dim));
          const xt = toTensor(dev, x);
          const y = await toArr(softmaxImpl(xt, c.dim, log, path));
          expect(y.data.every(Number.isFinite), `${JSON.stringify(c)} ${path}: finite`).toBe(true);
          expectClose(y, log ? logSoftmaxRef(x, c.dim) : softmaxRef(x, c.dim), t.fwd, `offsets ${JSON.stringify(c.shape)} ${path ?? 'auto'}`);
          xt.dispose();
        }
      }
    });
    it(`${log ? 'logSoftmax' : 'softmax'} one element +1e4 in a row of noise (one-hot)`, async () => {
      const x = f32(randArr([5, 300], rng(77)));
      for (let r = 0; r < 5; r++) x.data[r * 300 + 37 * r]! += 1e4;
      for (const path of [undefined, 'row', 'wg'] as const) {
        const xt = toTensor(dev, x, true);
        const yt = softmaxImpl(xt, -1, log, path);
        const y = await toArr(yt);
        expect(y.data.every(Number.isFinite)).toBe(true);
        // the exact values: p is one-hot (exp(-1e4) underflows in f32 and float64 alike); logSoftmax
        // is x - max, rounded once at |y| ~ 1e4 (within rtol 8 ULP)
        expectClose(y, log ? logSoftmaxRef(x) : softmaxRef(x), tols(log, 300, 2, 1).fwd, `one-hot ${path ?? 'auto'}`);
        const g = f32(randArr([5, 300], rng(78)));
        yt.backward(toTensor(dev, g));
        const gx = await toArr(xt.grad!);
        expect(gx.data.every(Number.isFinite)).toBe(true);
        expectClose(gx, log ? logSoftmaxRefBackward(g, x) : softmaxRefBackward(g, x), tols(log, 300, 2, 1).bwd, `one-hot backward ${path ?? 'auto'}`);
        xt.grad!.dispose();
        xt.dispose();
      }
    });
  }
});

describe('softmax: workgroup sizes and the per-adapter plans', () => {
  const cases: Case[] = [
    { shape: [3, 1000], dim: -1 },
    { shape: [2, 257], dim: -1 },
    { shape: [2, 300, 8], dim: 1 },
    { shape: [5, 70, 3], dim: 1 },
  ];
  it('every layout at workgroup sizes 8 and 256 (one and three tree levels at FAN 8)', async () => {
    let seed = 1200;
    for (const log of [false, true]) {
      for (const c of cases) {
        for (const path of ['row', 'col4', 'wg'] as const) {
          for (const wg of [8, 256]) await runCase(c, log, { path, wg }, seed++, false);
        }
      }
    }
  });

  it('plans for a barrier-bound and a cooperative profile are valid and run', async () => {
    const gpuLike = { profile: { barrierBound: !dev.profile.barrierBound, treeMs: 0, loopMs: 0 }, limits: dev.limits } as unknown as Device;
    let seed = 1300;
    for (const d of [dev, gpuLike]) {
      for (const [rows, r, inner] of [[4096, 256, 1], [1, 100000, 1], [2, 3000, 1], [64, 7, 1], [16, 256, 4], [3, 5000, 12], [20000, 50, 8], [10, 64, 3]]) {
        const p = softmaxPlan(d, rows!, r!, inner!);
        expect(p.path === 'col4' ? inner! % 4 === 0 : true, `${JSON.stringify(p)} for inner ${inner}`).toBe(true);
        expect([8, 16, 32, 64, 128, 256]).toContain(p.wg);
      }
      // run what the plan picks for a few shapes on this device
      for (const c of [{ shape: [2, 3000], dim: -1 }, { shape: [64, 7], dim: -1 }, { shape: [3, 500, 12], dim: 1 }] as Case[]) {
        const d0 = c.dim < 0 ? c.dim + c.shape.length : c.dim;
        const inner = numel(c.shape.slice(d0 + 1));
        const p = softmaxPlan(d, numel(c.shape) / c.shape[d0]!, c.shape[d0]!, inner);
        await runCase(c, false, p, seed++, false);
      }
    }
  });
});

describe('softmax: shapes', () => {
  it('empty tensors and a scalar', async () => {
    for (const shape of [[0, 5], [3, 0], [2, 0, 4]]) {
      const x = dev.zeros(shape, { requiresGrad: true });
      const y = ops.softmax(x, 1 % shape.length);
      expect(y.shape).toEqual(shape);
      y.backward(dev.zeros(shape));
      expect(x.grad!.shape).toEqual(shape);
    }
    const s = dev.tensor([3.5], []);
    expect(Array.from(await ops.softmax(s).toArray())).toEqual([1]);
    expect(Array.from(await ops.logSoftmax(s, 0).toArray())).toEqual([0]);
  });

  it('a caller buffer too short for a vec4 view runs the scalar-only row kernel', async () => {
    // 7 floats = 28 bytes: a vec4 view over the whole tensor would need 32
    const x = f32(randArr([7], rng(5)));
    const buf = dev.gpu.createBuffer({ size: 28, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    dev.gpu.queue.writeBuffer(buf, 0, Float32Array.from(x.data));
    const xt = dev.fromGPUBuffer(buf, [1, 7], { requiresGrad: true });
    const y = softmaxImpl(xt, -1, false, 'row');
    const ref = softmaxRef({ shape: [1, 7], data: x.data });
    const t = tols(false, 7, 2, pmaxOf({ shape: [1, 7], data: x.data }, -1));
    expectClose(await toArr(y), ref, t.fwd, 'caller buffer forward');
    const g = f32(randArr([1, 7], rng(6)));
    y.backward(toTensor(dev, g));
    expectClose(await toArr(xt.grad!), softmaxRefBackward(g, { shape: [1, 7], data: x.data }), t.bwd, 'caller buffer backward');
    xt.dispose();
    buf.destroy();
  });

  it('the Tensor methods are the ops', async () => {
    const x = dev.tensor([[1, 2, 3], [0, 0, 0]]);
    const a = await x.softmax(1).toArray();
    expectClose({ shape: [6], data: Float64Array.from(a) }, { shape: [6], data: softmaxRef({ shape: [2, 3], data: Float64Array.from([1, 2, 3, 0, 0, 0]) }).data }, { atol: 0, rtol: pRel(3, 2) }, 'method');
  });
});

describe('softmax: bad inputs throw ShapeError before any GPU work', () => {
  function expectBad(fn: () => unknown, op: string, arg: RegExp): void {
    const pending = dev.exec.pendingCount;
    const live = dev.memory().liveTensors;
    let err: unknown;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    const msg = (err as Error).message;
    expect(msg.startsWith(`${op}:`), msg).toBe(true);
    expect(msg).toMatch(arg);
    expect(dev.exec.pendingCount, 'no GPU work recorded').toBe(pending);
    expect(dev.memory().liveTensors, 'no tensor allocated').toBe(live);
  }

  it('dim out of range, not an integer', () => {
    const x = dev.zeros([2, 3]);
    for (const op of ['softmax', 'logSoftmax'] as const) {
      const f = op === 'softmax' ? ops.softmax : ops.logSoftmax;
      expectBad(() => f(x, 2), op, /dim 2 .*\[2, 3\]/);
      expectBad(() => f(x, -3), op, /dim -3 .*\[2, 3\]/);
      expectBad(() => f(x, 0.5), op, /dim/);
    }
    const s = dev.zeros([]);
    expectBad(() => ops.softmax(s, 1), 'softmax', /dim 1/);
  });

  it('non-tensor, disposed or int32 input', () => {
    const bad: unknown[] = [null, undefined, 3, [1, 2], { shape: [2] }];
    for (const b of bad) {
      expectBad(() => ops.softmax(b as Tensor), 'softmax', /x must be a Tensor/);
      expectBad(() => ops.logSoftmax(b as Tensor), 'logSoftmax', /x must be a Tensor/);
    }
    const d = dev.zeros([4]);
    d.dispose();
    expectBad(() => ops.softmax(d), 'softmax', /x .*dispose/);
    expectBad(() => ops.logSoftmax(d), 'logSoftmax', /x .*dispose/);
    const i = dev.tensor([1, 2], [2], { dtype: 'int32' });
    expectBad(() => ops.softmax(i), 'softmax', /x .*must be float32/);
  });
});
