// matmul / matmulEx / linear: forward vs float64 references, reference backward vs central
// differences, GPU backward vs reference backward, gradcheck on the GPU; both kernel families
// (subgroup broadcast and workgroup-memory tiled), all B fetch paths, batches, 1-D operands, bad input.
//
// Tolerance (forward and backward alike): a K-term f32 dot product accumulated by FMAs has rounding
// error about sqrt(K)·2^-24·S, S = Σ_k|a_k||b_k| (random-walk growth; the worst case is K·2^-24·S).
// So each element may differ from float64 by atol = 8·sqrt(K)·2^-24·S_max (S_max = max over the
// outputs of S, computed from the actual data; 8 = margin over the 1-sigma estimate) plus
// rtol = 1e-4. Relative to S that is 8·sqrt(K)·2^-24 <= 1.5e-5 for K <= 1024, inside the 1e-4
// budget; a wrong index or a missed k term is off by O(1)·S and fails. For a gradient, K is its
// contraction length (N·batches for dA, M·batches for dB, rows for the bias) and S is the same sum
// over |output grad| and |other operand|.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createDevice, noGrad, ShapeError, type Device, type Tensor } from '../../src/index.js';
import {
  matmul, linear, matmulEx, matmulRef, matmulRefBackward, matmulExRef, matmulExRefBackward, linearRef, linearRefBackward,
  matmulKernelConfig,
} from '../../src/ops/matmul.js';
import { type Arr, arr, checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Tol } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => {
  matmulKernelConfig.variant = 'auto';
  dev.destroy();
});

const EPS32 = 2 ** -24;

/** atol from the f32 dot-product error model (see the header) for out = contraction over K terms. */
function dotTol(absSumMax: number, K: number): Tol {
  return { atol: 8 * Math.sqrt(Math.max(K, 1)) * EPS32 * absSumMax + 1e-30, rtol: 1e-4 };
}

function absArr(x: Arr): Arr {
  return { shape: x.shape, data: x.data.map(Math.abs) };
}

/** max over outputs of Σ_k |a||b| for a (reference) product function. */
function absSum(f: (...xs: Arr[]) => Arr, ...xs: Arr[]): number {
  const y = f(...xs.map(absArr));
  return y.data.reduce((m, v) => Math.max(m, v), 0);
}

/** fwd/bwd tolerances for checkOp (whose output grad R is uniform in [-1, 1], so |R| <= 1). */
function opTols(ref: (...xs: Arr[]) => Arr, refBackward: (g: Arr, ...xs: Arr[]) => readonly (Arr | null)[], inputs: Arr[], K: number,
                gradK: number): { fwdTol: Tol; bwdTol: Tol } {
  const y = ref(...inputs);
  const ones = { shape: y.shape, data: new Float64Array(y.data.length).fill(1) };
  const gmax = refBackward(ones, ...inputs.map(absArr)).reduce((m, g) => Math.max(m, g ? g.data.reduce((a, v) => Math.max(a, v), 0) : 0), 0);
  return { fwdTol: dotTol(absSum(ref, ...inputs), K), bwdTol: dotTol(gmax, gradK) };
}

// the variants every kernel-level test runs on
const variants = ['subgroup', 'tiled'] as const;

function withVariant(v: 'auto' | (typeof variants)[number]): void {
  matmulKernelConfig.variant = v;
}

/** Forward + backward (GPU vs float64 reference, without finite differences) for big shapes. */
async function checkLarge(
  name: string, inputs: Arr[], gpu: (...ts: Tensor[]) => Tensor, ref: (...xs: Arr[]) => Arr,
  refBackward: (g: Arr, ...xs: Arr[]) => readonly (Arr | null)[], K: number, gradK: number[],
): Promise<void> {
  const ts = inputs.map((a) => toTensor(dev, a, true));
  const out = gpu(...ts);
  const expected = ref(...inputs);
  expectClose(await toArr(out), expected, dotTol(absSum(ref, ...inputs), K), `${name} forward`);
  const R = randArr(expected.shape, rng(7));
  out.backward(toTensor(dev, R));
  const refGrads = refBackward(R, ...inputs);
  const absGrads = refBackward(absArr(R), ...inputs.map(absArr));
  for (let i = 0; i < inputs.length; i++) {
    const g = ts[i]!.grad;
    expect(g, `${name}: grad ${i}`).toBeTruthy();
    const gmax = absGrads[i]!.data.reduce((m, v) => Math.max(m, v), 0);
    expectClose(await toArr(g!), refGrads[i]!, dotTol(gmax, gradK[i]!), `${name} backward (input ${i})`);
  }
  out.dispose();
  ts.forEach((t) => {
    t.grad?.dispose();
    t.dispose();
  });
}

describe.each(variants)('matmul (%s kernels)', (variant) => {
  beforeAll(() => withVariant(variant));

  // small shapes: full checkOp (reference gradcheck + GPU gradcheck)
  const small: [string, number[], number[]][] = [
    ['1x1x1', [1, 1], [1, 1]],
    ['1xNx1 (N=9)', [1, 1], [1, 9]],
    ['Mx1xN outer product', [5, 1], [1, 3]],
    ['3x7x5 (K tail, N % 4 != 0)', [3, 7], [7, 5]],
    ['2x9x8 (K tail, N % 4 == 0)', [2, 9], [9, 8]],
    ['9x16x4 (full k groups)', [9, 16], [16, 4]],
  ];
  for (const [name, as, bs] of small) {
    it(`forward+backward ${name}`, async () => {
      const rnd = rng(11);
      const A = randArr(as, rnd);
      const B = randArr(bs, rnd);
      await checkOp({
        name: `matmul ${name}`, dev, inputs: [A, B], gpu: (a, b) => matmul(a!, b!), ref: matmulRef, refBackward: matmulRefBackward,
        ...opTols(matmulRef, matmulRefBackward, [A, B], as[1]!, Math.max(as[0]!, bs[1]!)),
      });
    });
  }

  // big shapes: forward and backward vs the reference (gradcheck of all elements would be too slow)
  const big: [number, number, number][] = [
    [65, 33, 129],
    [127, 255, 63],
    [64, 256, 128],
  ];
  for (const [M, K, N] of big) {
    it(`forward+backward ${M}x${K}x${N}`, async () => {
      const rnd = rng(M * 1000 + K);
      await checkLarge(`matmul ${M}x${K}x${N}`, [randArr([M, K], rnd), randArr([K, N], rnd)], (a, b) => matmul(a!, b!), matmulRef,
        matmulRefBackward, K, [N, M]);
    });
  }

  it('K = 1024 forward relative error <= 1e-4', async () => {
    const rnd = rng(5);
    const A = randArr([17, 1024], rnd);
    const B = randArr([1024, 12], rnd);
    const y = noGrad(() => matmul(toTensor(dev, A), toTensor(dev, B)));
    const got = await toArr(y);
    const want = matmulRef(A, B);
    // relative to the largest output magnitude (single entries can cancel to ~0, so not per element)
    let scale = 0;
    for (const v of want.data) scale = Math.max(scale, Math.abs(v));
    let worst = 0;
    for (let i = 0; i < got.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!) / scale);
    expect(worst).toBeLessThanOrEqual(1e-4);
    expectClose(got, want, dotTol(absSum(matmulRef, A, B), 1024), 'K=1024 forward');
  });

  it('batched with broadcasting [2,1,5,7]·[3,7,4]', async () => {
    const rnd = rng(21);
    const A = randArr([2, 1, 5, 7], rnd);
    const B = randArr([3, 7, 4], rnd);
    await checkOp({
      name: 'matmul batched broadcast', dev, inputs: [A, B], gpu: (a, b) => matmul(a!, b!), ref: matmulRef, refBackward: matmulRefBackward,
      ...opTols(matmulRef, matmulRefBackward, [A, B], 7, 3 * 5 * 2),
    });
  });

  it('batched: both operands batched, A broadcast, B broadcast, >2 batch levels', async () => {
    const rnd = rng(22);
    const cases: [number[], number[]][] = [
      [[4, 6, 5], [4, 5, 9]], // plain batch
      [[6, 5], [3, 5, 8]], // A broadcast over the batch
      [[3, 6, 5], [5, 8]], // B broadcast: folded into one GEMM
      [[2, 1, 3, 1, 4, 6], [1, 2, 1, 2, 6, 4]], // alternating broadcast: outer levels are separate dispatches
      [[2, 3, 6, 5], [2, 1, 5, 8]],
    ];
    for (const [as, bs] of cases) {
      const A = randArr(as, rnd);
      const B = randArr(bs, rnd);
      const K = as[as.length - 1]!;
      await checkLarge(`matmul ${JSON.stringify(as)}·${JSON.stringify(bs)}`, [A, B], (a, b) => matmul(a!, b!), matmulRef, matmulRefBackward,
        K, [bs[bs.length - 1]! * 12, as[as.length - 2]! * 12]); // contraction of dA / dB over (N or M) × at most 12 batches
    }
  });

  it('1-D operands: dot, vector·matrix, matrix·vector, vector·batched', async () => {
    const rnd = rng(31);
    const cases: [number[], number[]][] = [
      [[7], [7]],
      [[6], [6, 5]],
      [[4, 9], [9]],
      [[5], [2, 5, 3]],
      [[2, 3, 5], [5]],
    ];
    for (const [as, bs] of cases) {
      const A = randArr(as, rnd);
      const B = randArr(bs, rnd);
      const K = as[as.length - 1]!;
      await checkOp({
        name: `matmul ${JSON.stringify(as)}·${JSON.stringify(bs)}`, dev, inputs: [A, B], gpu: (a, b) => matmul(a!, b!), ref: matmulRef,
        refBackward: matmulRefBackward, ...opTols(matmulRef, matmulRefBackward, [A, B], K, 10),
      });
    }
    // shapes as torch.matmul
    const s = (as: number[], bs: number[]): readonly number[] => noGrad(() => matmul(dev.zeros(as), dev.zeros(bs))).shape;
    expect(s([7], [7])).toEqual([]);
    expect(s([6], [6, 5])).toEqual([5]);
    expect(s([4, 9], [9])).toEqual([4]);
    expect(s([5], [2, 5, 3])).toEqual([2, 3]);
    expect(s([2, 3, 5], [5])).toEqual([2, 3]);
  });

  it('transposed operands (every flag pair, every B fetch path) and the bias epilogue', async () => {
    const rnd = rng(41);
    // [M, K, N]: K % 4 == 0 with N even reaches A-along-k with B vec2 (plain) or B vec4 along k
    // (transB); transA with M % 4 == 0 and N even reaches A-along-m; the rest the scalar path (and
    // the tiled kernel throughout on that variant). K % 8 == 4 is the vec4 paths' K tail; 9 and 7
    // are scalar tails.
    const dims: [number, number, number][] = [[5, 12, 8], [6, 7, 5], [3, 16, 9], [9, 20, 12], [8, 12, 6], [16, 9, 6], [20, 24, 2]];
    for (const [di, [M, K, N]] of dims.entries()) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          // the bias epilogue on half the combinations: every fetch path and flag pair sees both
          {
            const withBias = (di + Number(transA) + Number(transB)) % 2 === 0;
            const A = randArr(transA ? [K, M] : [M, K], rnd);
            const B = randArr(transB ? [N, K] : [K, N], rnd);
            const bias = randArr([N], rnd);
            const o = { transA, transB };
            const ref = (a: Arr, b: Arr, c?: Arr): Arr => matmulExRef(a, b, { ...o, bias: withBias ? c : null });
            const refB = (g: Arr, a: Arr, b: Arr, c?: Arr): Arr[] => {
              const [ga, gb, gc] = matmulExRefBackward(g, a, b, { ...o, bias: withBias ? c : null });
              return withBias ? [ga, gb, gc!] : [ga, gb];
            };
            const inputs = withBias ? [A, B, bias] : [A, B];
            await checkLarge(`matmulEx ${M}x${K}x${N} ${JSON.stringify(o)} bias=${withBias}`, inputs,
              (a, b, c) => matmulEx(a!, b!, { ...o, bias: withBias ? c! : null }), ref, refB, K + 1, [N, M, M]);
          }
        }
      }
    }
    // gradcheck through the transposed paths (small)
    const A = randArr([4, 3], rnd);
    const B = randArr([5, 4], rnd);
    const bias = randArr([5], rnd);
    const o = { transA: true, transB: true };
    const ref = (a: Arr, b: Arr, c: Arr): Arr => matmulExRef(a, b, { ...o, bias: c });
    const refB = (g: Arr, a: Arr, b: Arr, c: Arr): Arr[] => matmulExRefBackward(g, a, b, { ...o, bias: c }) as Arr[];
    await checkOp({
      name: 'matmulEx transA+transB+bias', dev, inputs: [A, B, bias], gpu: (a, b, c) => matmulEx(a!, b!, { ...o, bias: c! }),
      ref: (a, b, c) => ref(a!, b!, c!), refBackward: (g, a, b, c) => refB(g, a!, b!, c!),
      ...opTols((a, b, c) => ref(a!, b!, c!), (g, a, b, c) => refB(g, a!, b!, c!), [A, B, bias], 5, 5),
    });
  });

  it('grid limits: batches and row groups past one grid dimension are split into dispatches', async () => {
    // maxGridDim pretends the device allows 3 workgroups per grid dimension
    matmulKernelConfig.maxGridDim = 3;
    try {
      const rnd = rng(61);
      await checkLarge('matmul 7 batches on a 3-wide grid', [randArr([7, 5, 6], rnd), randArr([7, 6, 9], rnd)], (a, b) => matmul(a!, b!),
        matmulRef, matmulRefBackward, 6, [9, 5]);
      // 200 rows: 25 (subgroup) resp. 4 (tiled) row groups; the weight grad runs with K = 200 rows
      await checkLarge('matmul 200 rows on a 3-wide grid', [randArr([200, 6], rnd), randArr([6, 3], rnd)], (a, b) => matmul(a!, b!),
        matmulRef, matmulRefBackward, 6, [3, 200]);
      // folded batch rows (B shared by every batch) split the same way
      await checkLarge('matmul [4,30,6]·[6,5] on a 3-wide grid', [randArr([4, 30, 6], rnd), randArr([6, 5], rnd)], (a, b) => matmul(a!, b!),
        matmulRef, matmulRefBackward, 6, [5, 120]);
      let err: unknown = null;
      try {
        noGrad(() => matmul(dev.empty([2, 4]), dev.empty([4, 10000])));
      } catch (e) {
        err = e;
      }
      expect((err as Error)?.message).toMatch(/columns need \d+ workgroups/);
    } finally {
      matmulKernelConfig.maxGridDim = 0;
    }
  });

  it('split-K: long contractions with few output tiles (K = 3001, 4100)', async () => {
    const rnd = rng(62);
    await checkLarge('matmul 3x3001x5', [randArr([3, 3001], rnd), randArr([3001, 5], rnd)], (a, b) => matmul(a!, b!), matmulRef,
      matmulRefBackward, 3001, [5, 3]);
    // the weight-gradient shape: dW = gᵀ·x over 4100 rows
    const g = randArr([4100, 6], rnd);
    const x = randArr([4100, 8], rnd);
    const ref = (a: Arr, b: Arr): Arr => matmulExRef(a, b, { transA: true });
    const refB = (gg: Arr, a: Arr, b: Arr): Arr[] => matmulExRefBackward(gg, a, b, { transA: true }).slice(0, 2) as Arr[];
    await checkLarge('matmulEx gᵀ·x over 4100 rows', [g, x], (a, b) => matmulEx(a!, b!, { transA: true }), ref, refB, 4100, [8, 6]);
  });

  it('random shapes (seeded)', async () => {
    const rnd = rng(1234);
    for (let t = 0; t < 12; t++) {
      const M = randInt(rnd, 1, 40);
      const K = randInt(rnd, 1, 70);
      const N = randInt(rnd, 1, 40);
      const bA = randInt(rnd, 0, 2) === 0 ? [] : [randInt(rnd, 1, 3)];
      const bB = randInt(rnd, 0, 2) === 0 ? [] : [bA.length && rnd() < 0.5 ? bA[0]! : 1];
      const A = randArr([...bA, M, K], rnd);
      const B = randArr([...bB, K, N], rnd);
      const batch = Math.max(bA[0] ?? 1, bB[0] ?? 1);
      await checkLarge(`matmul random ${JSON.stringify([...bA, M, K])}·${JSON.stringify([...bB, K, N])}`, [A, B], (a, b) => matmul(a!, b!),
        matmulRef, matmulRefBackward, K, [N * batch, M * batch]);
    }
  });
});

describe('linear', () => {
  beforeAll(() => withVariant('subgroup'));

  for (const withBias of [true, false]) {
    it(`x [2,3,6] · W [5,6]ᵀ ${withBias ? '+ b' : '(no bias)'} with gradcheck`, async () => {
      const rnd = rng(withBias ? 51 : 52);
      const x = randArr([2, 3, 6], rnd);
      const w = randArr([5, 6], rnd);
      const b = randArr([5], rnd);
      const inputs = withBias ? [x, w, b] : [x, w];
      await checkOp({
        name: `linear bias=${withBias}`, dev, inputs,
        gpu: (xt, wt, bt) => linear(xt!, wt!, withBias ? bt : undefined),
        ref: (xa, wa, ba) => linearRef(xa!, wa!, withBias ? ba : null),
        refBackward: (g, xa, wa, ba) => {
          const [gx, gw, gb] = linearRefBackward(g, xa!, wa!, withBias ? ba : null);
          return withBias ? [gx, gw, gb!] : [gx, gw];
        },
        ...opTols((xa, wa, ba) => linearRef(xa!, wa!, withBias ? ba : null), (g, xa, wa, ba) => {
          const [gx, gw, gb] = linearRefBackward(g, xa!, wa!, withBias ? ba : null);
          return withBias ? [gx, gw, gb!] : [gx, gw];
        }, inputs, 7, 6),
      });
    });
  }

  for (const variant of variants) {
    it(`[4096,256]-like shapes with bias (${variant}): [300,256]·[72,256]ᵀ and 1-D x`, async () => {
      withVariant(variant);
      const rnd = rng(53);
      const x = randArr([3, 100, 256], rnd);
      const w = randArr([72, 256], rnd);
      const b = randArr([72], rnd);
      await checkLarge('linear [3,100,256]·[72,256]ᵀ+b', [x, w, b], (xt, wt, bt) => linear(xt!, wt!, bt), (xa, wa, ba) => linearRef(xa!, wa!, ba),
        (g, xa, wa, ba) => linearRefBackward(g, xa!, wa!, ba) as Arr[], 257, [72, 300, 300]);
      const x1 = randArr([13], rnd);
      const w1 = randArr([6, 13], rnd);
      await checkLarge('linear [13]·[6,13]ᵀ', [x1, w1], (xt, wt) => linear(xt!, wt!), (xa, wa) => linearRef(xa!, wa!),
        (g, xa, wa) => linearRefBackward(g, xa!, wa!).slice(0, 2) as Arr[], 13, [6, 1]);
      withVariant('subgroup');
    });
  }

  it('equals matmul(x, Wᵀ) + b composed from the unfused ops', async () => {
    const rnd = rng(54);
    const X = randArr([7, 10], rnd);
    const W = randArr([3, 10], rnd);
    const Bv = randArr([3], rnd);
    const [x, w, b] = [X, W, Bv].map((a) => toTensor(dev, a));
    const fused = await toArr(noGrad(() => linear(x!, w!, b)));
    const { permute, add } = await import('../../src/ops/index.js');
    const composed = await toArr(noGrad(() => add(matmul(x!, permute(w!, [1, 0])), b!)));
    // both are f32 sums of the same 11 terms in possibly different order: twice the f32 error model
    expectClose(fused, composed, dotTol(2 * absSum((xa, wa, ba) => linearRef(xa!, wa!, ba), X, W, Bv), 11), 'linear vs composite');
  });
});

describe('bad input: ShapeError naming the op, the argument and the shapes, before any GPU work', () => {
  const expectShapeError = (fn: () => unknown, ...parts: string[]): void => {
    const pending = dev.exec.pendingCount;
    let err: unknown = null;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    for (const p of parts) expect((err as Error).message).toContain(p);
    expect(dev.exec.pendingCount, 'no GPU work recorded').toBe(pending);
  };

  // operands come from dev.empty (no recorded GPU work), so the pending-command count must not move
  const E = (shape: number[]): Tensor => dev.empty(shape);

  it('rank-0 operand', () => {
    expectShapeError(() => matmul(E([]), E([2, 2])), 'matmul', 'a', '[]');
    expectShapeError(() => matmul(E([2, 2]), E([])), 'matmul', 'b', '[]');
    expectShapeError(() => linear(E([]), E([2, 2])), 'linear', 'x', '[]');
  });

  it('inner-dimension mismatch', () => {
    expectShapeError(() => matmul(E([2, 3]), E([4, 5])), 'matmul', 'a [2, 3]', 'b [4, 5]', 'K = 3', 'K = 4');
    expectShapeError(() => matmulEx(E([2, 3]), E([5, 4]), { transB: true }), 'matmulEx', 'a [2, 3]', 'b [5, 4]', 'transposed');
    expectShapeError(() => matmul(E([3]), E([4])), 'matmul', 'a', 'b', '[3]', '[4]');
  });

  it('non-broadcastable batch dims', () => {
    expectShapeError(() => matmul(E([2, 5, 3, 4]), E([3, 3, 4, 5])), 'matmul', 'batch dims', 'a [2, 5, 3, 4]', 'b [3, 3, 4, 5]', '[2, 5] vs [3, 3]');
  });

  it('linear: weight shape mismatch', () => {
    expectShapeError(() => linear(E([2, 3]), E([4, 5])), 'linear', 'weight [4, 5]', 'x [2, 3]', 'in = 3');
    expectShapeError(() => linear(E([2, 3]), E([3])), 'linear', 'weight [3]', '[out, in]');
  });

  it('linear / matmulEx: bias shape mismatch', () => {
    expectShapeError(() => linear(E([2, 3]), E([4, 3]), E([3])), 'linear', 'bias [3]', '[4]', 'weight [4, 3]');
    expectShapeError(() => linear(E([2, 3]), E([4, 3]), E([1, 4])), 'linear', 'bias [1, 4]', '[4]');
    expectShapeError(() => matmulEx(E([2, 3]), E([3, 4]), { bias: E([5]) }), 'matmulEx', 'bias [5]', '[4]');
  });

  it('tensors from different devices', async () => {
    const other = await createDevice();
    try {
      const b = other.empty([3, 4]);
      const c = other.empty([3]);
      expectShapeError(() => matmul(E([2, 3]), b), 'matmul', 'a [2, 3]', 'b [3, 4]', 'different devices');
      expectShapeError(() => linear(E([2, 4]), E([3, 4]), c), 'linear', 'bias [3]', 'different devices');
    } finally {
      other.destroy();
    }
  });

  it('disposed tensors', () => {
    const a = E([2, 3]);
    a.dispose();
    expectShapeError(() => matmul(a, E([3, 4])), 'matmul', 'a [2, 3]', 'disposed');
    const w = E([4, 3]);
    w.dispose();
    expectShapeError(() => linear(E([2, 3]), w), 'linear', 'weight [4, 3]', 'disposed');
  });

  it('non-float32 and non-tensor arguments', () => {
    const i = dev.empty([2, 3], 'int32');
    expectShapeError(() => matmul(i, E([3, 4])), 'matmul', 'a', 'float32');
    expectShapeError(() => matmul(E([2, 3]), 5 as unknown as Tensor), 'matmul', 'b', 'Tensor');
  });
});

describe('edge sizes', () => {
  it('empty dims and K = 0', async () => {
    withVariant('auto');
    const y = noGrad(() => matmul(dev.zeros([0, 3]), dev.zeros([3, 4])));
    expect(y.shape).toEqual([0, 4]);
    const z = noGrad(() => matmulEx(dev.ones([2, 0]), dev.ones([0, 3]), { bias: dev.tensor([1, 2, 3]) }));
    expect(Array.from(await z.toArray())).toEqual([1, 2, 3, 1, 2, 3]);
    const w = noGrad(() => matmul(dev.ones([2, 0]), dev.ones([0, 5])));
    expect(Array.from(await w.toArray())).toEqual(new Array(10).fill(0));
  });

  it('one tensor as both operands: x·x and its gradient (both contributions)', async () => {
    withVariant('auto');
    const X = randArr([6, 6], rng(71));
    await checkLarge('matmul x·x', [X], (x) => matmul(x!, x!), (x) => matmulRef(x, x), (g, x) => {
      const [ga, gb] = matmulRefBackward(g, x!, x!);
      return [{ shape: ga.shape, data: ga.data.map((v, i) => v + gb.data[i]!) }];
    }, 6, [12]);
  });

  it('matmulRef agrees with a hand-computed product', () => {
    const a = arr([2, 3], [1, 2, 3, 4, 5, 6]);
    const b = arr([3, 2], [7, 8, 9, 10, 11, 12]);
    expect(Array.from(matmulRef(a, b).data)).toEqual([58, 64, 139, 154]);
  });
});
