// Reductions: sum, mean, max over any dims with keepDim, sumTo; every kernel path of
// kernels/reduce.wgsl (one invocation per row, vec4 rows, vec4 columns, workgroup tree, split R in
// two passes); max ties; bad input.
//
// Tolerances (u = 2^-24, the f32 unit roundoff; inputs are rounded to f32 before both sides see them):
// - sum of k terms in f32: error <= lambda sqrt(k) u sum|x| with high probability (Higham's
//   probabilistic bound; the deterministic one is (k-1) u sum|x|); lambda = 2, plus 2u for the final
//   rounding and the scale of mean.
// - max: a selection, exact (atol = rtol = 0).
// - backward of sum/max: copies or scatters of g, exact except for g's own rounding to f32 (1u);
//   mean multiplies by fround(1/k): +2u.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createDevice, ops, tidy, type Device, type Tensor } from '../../src/index.js';
import { checkOp, expectClose, rng, randArr, randInt, toTensor, toArr, arr, type Arr } from '../helpers.js';
import {
  sumRef, sumRefBackward, maxRef, maxRefDims, maxRefBackward, reduceAxis, pickKernel, splitCount, planPasses,
  THREAD_ROW_MAX, TREE_CHUNK, TREE_MIN_ROWS, type ReduceKernel,
} from '../../src/ops/reduce.js';
import { sumToRef } from '../../src/reference.js';

const u = 2 ** -24;

let dev: Device;
beforeAll(async () => {
  dev = await createDevice();
});
afterAll(() => dev.destroy());

function f32(a: Arr): Arr {
  return { shape: a.shape, data: a.data.map((v) => Math.fround(v)) };
}

/** All subsets of 0..rank-1. */
function subsets(rank: number): number[][] {
  const out: number[][] = [];
  for (let m = 0; m < 1 << rank; m++) out.push([...Array(rank).keys()].filter((i) => m & (1 << i)));
  return out;
}

/** Tolerance of a sum over dims of x: 2 sqrt(k) u times the largest sum|x| of one output, and 2u relative. */
function sumTol(x: Arr, dims: readonly number[], scale = 1): { atol: number; rtol: number } {
  const k = dims.reduce((p, d) => p * x.shape[d]!, 1);
  const absSum = sumRef({ shape: x.shape, data: x.data.map(Math.abs) }, dims, true, scale);
  const m = absSum.data.reduce((p, v) => Math.max(p, v), 0);
  return { atol: 2 * Math.sqrt(k) * u * m, rtol: 2 * u };
}

/** Distinct values (a shuffled grid with spacing 0.01): no ties within reach of the finite-difference steps. */
function distinct(shape: number[], rnd: () => number): Arr {
  const a = arr(shape);
  const n = a.data.length;
  const vals = Array.from({ length: n }, (_, i) => Math.fround((i - n / 2) * 0.01));
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [vals[i], vals[j]] = [vals[j]!, vals[i]!];
  }
  a.data.set(vals);
  return a;
}

/** Forward and GPU backward against the references, for shapes too large for checkOp's O(n^2) float64 central differences. */
async function checkLarge(spec: {
  name: string;
  x: Arr;
  gpu: (t: Tensor) => Tensor;
  ref: (a: Arr) => Arr;
  refBackward: (g: Arr, a: Arr) => Arr;
  fwdTol: { atol: number; rtol: number };
  bwdTol: { atol: number; rtol: number };
  seed: number;
}): Promise<void> {
  const t = toTensor(dev, spec.x, true);
  const y = spec.gpu(t);
  const yRef = spec.ref(spec.x);
  expectClose(await toArr(y), yRef, spec.fwdTol, `${spec.name} forward`);
  const g = f32(randArr(yRef.shape, rng(spec.seed)));
  y.backward(toTensor(dev, g));
  expectClose(await toArr(t.grad!), spec.refBackward(g, spec.x), spec.bwdTol, `${spec.name} backward`);
  y.dispose();
  t.grad!.dispose();
  t.dispose();
}

describe('sum and mean: every dim, several dims, all dims, keepDim (checkOp incl. gradcheck)', () => {
  for (const op of ['sum', 'mean'] as const) {
    it(op, async () => {
      const rnd = rng(op === 'sum' ? 11 : 12);
      // size-1 dims in the middle and at the ends; rank 0 (dims [] only)
      for (const shape of [[2, 3, 4], [3, 1, 5], [1, 4, 1, 3], []]) {
        const x = f32(randArr(shape, rnd));
        for (const dims of subsets(shape.length)) {
          for (const keepDim of [false, true]) {
            const k = dims.reduce((p, d) => p * shape[d]!, 1);
            const scale = op === 'mean' ? 1 / k : 1;
            // all dims: also through the omitted-dim form
            const all = dims.length === shape.length;
            await checkOp({
              name: `${op} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)} keepDim ${keepDim}`,
              dev,
              inputs: [x],
              gpu: (t) => (all && !keepDim ? ops[op](t) : ops[op](t, dims, keepDim)),
              ref: (a) => sumRef(a, dims, keepDim, scale),
              refBackward: (g, a) => [sumRefBackward(g, a, dims, scale)],
              fwdTol: sumTol(x, dims, scale),
              bwdTol: { atol: 0, rtol: (op === 'mean' ? 3 : 1) * u },
            });
          }
        }
      }
    });
  }

  it('a single dim as a number, negative dims, dims in any order', async () => {
    const rnd = rng(13);
    const x = f32(randArr([3, 4, 5], rnd));
    const cases: [number | number[], number[]][] = [[-1, [2]], [1, [1]], [[2, 0], [0, 2]], [[-3, -1], [0, 2]]];
    for (const [dim, dims] of cases) {
      await checkOp({
        name: `sum dim ${JSON.stringify(dim)}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.sum(t, dim),
        ref: (a) => sumRef(a, dims, false),
        refBackward: (g, a) => [sumRefBackward(g, a, dims)],
        fwdTol: sumTol(x, dims),
        bwdTol: { atol: 0, rtol: u },
        gradcheck: false, // same kernels as the gradchecked cases above; only the dim parsing differs
      });
    }
  });

  it('larger shapes: odd sizes, rows longer than a workgroup and than THREAD_ROW_MAX, split passes', async () => {
    const rnd = rng(14);
    const cases: [number[], number[]][] = [
      [[257, 3], [0]], [[257, 3], [1]], [[5, 1000], [1]], [[5, 1000], [0]], [[3, 5000], [1]], [[2, 40000], [1]],
      [[7, 33, 9], [0, 2]], [[7, 33, 9], [1]], [[4, 1, 1030], [0, 2]], [[100003], [0]], [[2, 100, 6], [1]],
    ];
    for (const [shape, dims] of cases) {
      for (const op of ['sum', 'mean'] as const) {
        const x = f32(randArr(shape, rnd));
        const k = dims.reduce((p, d) => p * shape[d]!, 1);
        const scale = op === 'mean' ? 1 / k : 1;
        await checkLarge({
          name: `${op} ${JSON.stringify(shape)} dims ${JSON.stringify(dims)}`,
          x,
          gpu: (t) => ops[op](t, dims),
          ref: (a) => sumRef(a, dims, false, scale),
          refBackward: (g, a) => sumRefBackward(g, a, dims, scale),
          fwdTol: sumTol(x, dims, scale),
          bwdTol: { atol: 0, rtol: (op === 'mean' ? 3 : 1) * u },
          seed: 5,
        });
      }
    }
  });

  it('positive data: relative error of a long sum stays within 2 sqrt(k) u', async () => {
    // with x > 0, sum|x| = |sum x|, so the probabilistic bound is a relative one
    const rnd = rng(15);
    for (const shape of [[3, 100000], [1000, 7]]) {
      const x = f32(randArr(shape, rnd, 0.5, 1));
      const dims = [shape[0] === 3 ? 1 : 0];
      const y = await toArr(ops.sum(toTensor(dev, x), dims));
      const k = shape[dims[0]!]!;
      expectClose(y, sumRef(x, dims, false), { atol: 0, rtol: (2 * Math.sqrt(k) + 2) * u }, `sum ${JSON.stringify(shape)}`);
    }
  });

  it('empty dims: a sum over an empty dim is 0, empty outputs work', async () => {
    const x = dev.zeros([2, 0, 3], { requiresGrad: true });
    const s1 = ops.sum(x, 1);
    expect(s1.shape).toEqual([2, 3]);
    expect(Array.from(await s1.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
    const s0 = ops.sum(x, 0, true);
    expect(s0.shape).toEqual([1, 0, 3]);
    const all = ops.sum(x);
    expect(await all.item()).toBe(0);
    all.backward();
    expect(x.grad!.shape).toEqual([2, 0, 3]);
    const m = ops.max(x, 0);
    expect(m.shape).toEqual([0, 3]);
    expect(Array.from(await ops.sum(dev.zeros([0])).toArray())).toEqual([0]);
  });

  it('an empty dims list reduces nothing (a copy)', async () => {
    const x = dev.tensor([[1, 2], [3, 4]]);
    const y = ops.sum(x, []);
    expect(y.shape).toEqual([2, 2]);
    expect(Array.from(await y.toArray())).toEqual([1, 2, 3, 4]);
    expect(y.gpuBuffer).not.toBe(x.gpuBuffer);
  });
});

describe('max', () => {
  it('every dim, several dims, all dims, keepDim (checkOp incl. gradcheck; distinct values)', async () => {
    const rnd = rng(21);
    for (const shape of [[2, 3, 4], [3, 1, 5], []]) {
      const x = distinct(shape, rnd);
      for (const dims of subsets(shape.length)) {
        for (const keepDim of [false, true]) {
          const all = dims.length === shape.length;
          await checkOp({
            name: `max ${JSON.stringify(shape)} dims ${JSON.stringify(dims)} keepDim ${keepDim}`,
            dev,
            inputs: [x],
            gpu: (t) => (all && !keepDim ? ops.max(t) : ops.max(t, dims, keepDim)),
            ref: (a) => maxRefDims(a, dims, keepDim).y,
            refBackward: (g, a) => [maxRefBackward(g, a, dims)],
            fwdTol: { atol: 0, rtol: 0 },
            bwdTol: { atol: 0, rtol: u },
          });
        }
      }
    }
  });

  it('ties: the gradient goes to the first maximum in row-major order over the reduced dims', async () => {
    const rnd = rng(22);
    for (const [shape, dims] of [
      [[4, 6], [1]], [[4, 6], [0]], [[3, 4, 5], [0, 2]], [[3, 4, 5], [0, 1, 2]], [[2, 300], [1]], [[5, 2000], [1]],
      [[3, 40000], [1]], [[1, 50000], [1]], [[9, 13, 8], [1]], [[2, 5000, 4], [1]], [[6, 7], [0, 1]],
    ] as [number[], number[]][]) {
      // values in {0, 1, 2}: every output has many tied maxima
      const x = arr(shape, Array.from({ length: shape.reduce((p, d) => p * d, 1) }, () => randInt(rnd, 0, 2)));
      for (const keepDim of [false, true]) {
        const t = toTensor(dev, x, true);
        const y = ops.max(t, dims, keepDim);
        const { y: yRef } = maxRefDims(x, dims, keepDim);
        expectClose(await toArr(y), yRef, { atol: 0, rtol: 0 }, `max ${JSON.stringify(shape)} ${JSON.stringify(dims)} forward`);
        // g exactly representable in f32: the scatter must reproduce it bit for bit
        const g = f32(randArr(yRef.shape, rnd));
        y.backward(toTensor(dev, g));
        expectClose(await toArr(t.grad!), maxRefBackward(g, x, dims), { atol: 0, rtol: 0 }, `max ${JSON.stringify(shape)} ${JSON.stringify(dims)} backward`);
        y.dispose();
        t.grad!.dispose();
        t.dispose();
      }
    }
  });

  it('rows of -Infinity give -Infinity (no finite identity value)', async () => {
    const ninf = -Infinity;
    const x = dev.tensor([ninf, ninf, ninf, ninf, 3, ninf, -3.4e38, ninf, ninf], [3, 3], { requiresGrad: true });
    const y = ops.max(x, 1);
    expect(Array.from(await y.toArray())).toEqual([ninf, 3, Math.fround(-3.4e38)]);
    y.backward(dev.tensor([1, 2, 3]));
    expect(Array.from(await x.grad!.toArray())).toEqual([1, 0, 0, 0, 2, 0, 3, 0, 0]);
    // columns (the strided kernel) and vec4 rows too
    const c = ops.max(dev.tensor([ninf, ninf, ninf, ninf, ninf, ninf, ninf, ninf], [2, 4]), 0);
    expect(Array.from(await c.toArray())).toEqual([ninf, ninf, ninf, ninf]);
    const r = ops.max(dev.tensor(new Float32Array(8).fill(ninf), [1, 8]), 1);
    expect(Array.from(await r.toArray())).toEqual([ninf]);
  });

  it('larger shapes (distinct values; no gradcheck: 2 GPU passes per element)', async () => {
    const rnd = rng(23);
    for (const [shape, dims] of [[[257, 3], [0]], [[5, 1000], [1]], [[3, 5000], [1]], [[2, 40000], [1]], [[7, 33, 9], [0, 2]], [[6, 700, 4], [1]]] as [number[], number[]][]) {
      const x = distinct(shape, rnd);
      await checkLarge({
        name: `max ${JSON.stringify(shape)} dims ${JSON.stringify(dims)}`,
        x,
        gpu: (t) => ops.max(t, dims),
        ref: (a) => maxRefDims(a, dims, false).y,
        refBackward: (g, a) => maxRefBackward(g, a, dims),
        fwdTol: { atol: 0, rtol: 0 },
        bwdTol: { atol: 0, rtol: 0 },
        seed: 6,
      });
    }
  });

  it('maxRef (one dim) agrees with maxRefDims and keeps the first maximum', () => {
    const x = arr([2, 3], [1, 5, 5, 7, 7, 2]);
    const r = maxRef(x, 1);
    expect(Array.from(r.y.data)).toEqual([5, 7]);
    expect(Array.from(r.idx)).toEqual([1, 0]);
    expect(Array.from(maxRefDims(x, [1], true).at)).toEqual([1, 3]);
  });
});

// ---- every kernel path, forced ------------------------------------------------------------------

describe('every kernel path of reduce.wgsl (forced) against the references', () => {
  interface Path {
    kernel: ReduceKernel;
    geoms: [number, number, number][];
  }
  // thread: any inner; thread4: inner 1 and R % 4 == 0 (and chunk % 4 == 0); cols4: inner % 4 == 0;
  // tree: inner 1, rows up to several workgroup widths (64) long, including non-multiples
  const paths: Path[] = [
    { kernel: 'reduce_thread', geoms: [[3, 7, 1], [2, 1000, 1], [1, 257, 5], [4, 65, 3], [1, 1, 1], [5, 0, 2], [2, 5000, 1]] },
    { kernel: 'reduce_thread4', geoms: [[3, 8, 1], [2, 1000, 1], [1, 4, 1], [5, 1032, 1], [1, 20000, 1]] },
    { kernel: 'reduce_cols4', geoms: [[3, 7, 4], [2, 300, 12], [1, 1, 8], [5, 65, 4], [1, 3000, 16]] },
    { kernel: 'reduce_tree', geoms: [[3, 7, 1], [2, 64, 1], [2, 65, 1], [1, 1000, 1], [4, 4099, 1], [1, 70000, 1]] },
  ];
  for (const p of paths) {
    it(p.kernel, async () => {
      const rnd = rng(31 + p.kernel.length);
      for (const [outer, r, inner] of p.geoms) {
        // split into S chunks as well (the second pass is picked automatically; max composes indices)
        const splits = [1, 3, 16].filter((S) => S <= Math.max(1, r) && (p.kernel !== 'reduce_thread4' || Math.ceil(r / S) % 4 === 0));
        for (const S of splits) {
          const x3 = f32(randArr([outer, r, inner], rnd));
          const xd = distinct([outer, r, inner], rnd);
          const what = `${p.kernel} [${outer}, ${r}, ${inner}] split ${S}`;
          // sum with a scale (as mean uses)
          const t = toTensor(dev, x3);
          const s = reduceAxis(t, { outer, r, inner }, 'sum', 0.5, { force: p.kernel, split: S });
          const sRef = sumRef(x3, [1], false, 0.5);
          expectClose(arr([outer * inner], await s.y.toArray()), { shape: [outer * inner], data: sRef.data }, sumTol(x3, [1], 0.5), `${what} sum`);
          s.y.dispose();
          t.dispose();
          if (r === 0) continue;
          // max: values and the index within R of the first maximum, on ties too
          for (const [name, x] of [['distinct', xd], ['ties', arr(x3.shape, x3.data.map((v) => Math.round(v)))]] as const) {
            const tx = toTensor(dev, x);
            const m = reduceAxis(tx, { outer, r, inner }, 'max', 1, { force: p.kernel, split: S });
            const mRef = maxRef(x, 1);
            expect(Array.from(await m.y.toArray()), `${what} max ${name} values`).toEqual(Array.from(mRef.y.data).map(Math.fround));
            expect(Array.from(await m.idx!.toInt32Array()), `${what} max ${name} indices`).toEqual(Array.from(mRef.idx));
            m.y.dispose();
            m.idx!.dispose();
            tx.dispose();
          }
        }
      }
    });
  }
});

describe('strategy: the kernel and the split follow the row length and the parallelism', () => {
  const plan = (outer: number, r: number, inner: number): { kernel: ReduceKernel; split: number } => {
    const split = splitCount({ outer, r, inner });
    const chunk = Math.ceil(r / split);
    return { kernel: pickKernel({ outer, r, inner, chunk, nchunks: Math.ceil(r / chunk) }), split };
  };
  it('short rows: one invocation per row (vec4 when the length is a multiple of 4)', () => {
    expect(plan(4096, 256, 1)).toEqual({ kernel: 'reduce_thread4', split: 1 });
    expect(plan(4096, 255, 1)).toEqual({ kernel: 'reduce_thread', split: 1 });
    expect(plan(1, THREAD_ROW_MAX, 1)).toEqual({ kernel: 'reduce_thread4', split: 1 });
  });
  it('long rows: a workgroup tree per row; few very long rows are split first', () => {
    expect(plan(TREE_MIN_ROWS, THREAD_ROW_MAX + 1, 1)).toEqual({ kernel: 'reduce_tree', split: 1 });
    expect(plan(TREE_MIN_ROWS, 1 << 20, 1)).toEqual({ kernel: 'reduce_tree', split: 1 });
    expect(plan(1, 1 << 20, 1)).toEqual({ kernel: 'reduce_tree', split: (1 << 20) / TREE_CHUNK });
    expect(plan(2, 2 * TREE_CHUNK - 1, 1)).toEqual({ kernel: 'reduce_tree', split: 1 });
  });
  it('columns: vec4 when inner % 4 == 0; a long R over few columns is split', () => {
    expect(plan(1, 4096, 256).kernel).toBe('reduce_cols4');
    expect(plan(1, 4096, 256).split).toBeGreaterThan(1);
    expect(plan(64, 64, 64)).toEqual({ kernel: 'reduce_cols4', split: 1 });
    expect(plan(8, 100, 3)).toEqual({ kernel: 'reduce_thread', split: 1 });
  });
  it('passes: size-1 dims are dropped, adjacent reduced dims merge, the last run goes first', () => {
    expect(planPasses([2, 3, 4], [0, 1, 2])).toEqual([{ outer: 1, r: 24, inner: 1 }]);
    expect(planPasses([2, 3, 4], [0, 2])).toEqual([{ outer: 6, r: 4, inner: 1 }, { outer: 1, r: 2, inner: 3 }]);
    expect(planPasses([2, 1, 4], [0, 2])).toEqual([{ outer: 1, r: 8, inner: 1 }]);
    expect(planPasses([5, 1, 3], [1])).toEqual([]);
  });
});

// ---- sumTo ---------------------------------------------------------------------------------------

describe('sumTo (the adjoint of broadcasting)', () => {
  it('checkOp over leading dims, size-1 targets, scalars', async () => {
    const rnd = rng(41);
    const cases: [number[], number[]][] = [[[2, 3, 4], [3, 4]], [[2, 3, 4], [1, 4]], [[2, 3, 4], [2, 1, 1]], [[2, 3, 4], []], [[3, 1, 5], [1, 5]], [[4, 5], [1, 1]]];
    for (const [from, to] of cases) {
      const x = f32(randArr(from, rnd));
      const off = from.length - to.length;
      const dims = from.map((_, i) => i).filter((i) => i < off || (to[i - off] === 1 && from[i] !== 1));
      await checkOp({
        name: `sumTo ${JSON.stringify(from)} -> ${JSON.stringify(to)}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.sumTo(t, to),
        ref: (a) => sumToRef(a, to),
        refBackward: (g, a) => [sumRefBackward({ shape: a.shape.map((d, i) => (dims.includes(i) ? 1 : d)), data: g.data }, a, dims)],
        fwdTol: sumTol(x, dims),
        bwdTol: { atol: 0, rtol: u },
      });
    }
  });
  it('returns x itself when the shapes are equal', () => {
    const x = dev.zeros([2, 3]);
    expect(ops.sumTo(x, [2, 3])).toBe(x);
  });
});

describe('autodiff and memory', () => {
  it('a tensor reduced several ways gets the summed gradient', async () => {
    const rnd = rng(51);
    const x = distinct([3, 4], rnd);
    // d/dx [sum(x) + mean(x, 0) . 1 + max(x, 1) . 1] = 1 + 1/3 + [x is its row's max]
    await checkOp({
      name: 'sum + mean + max of one tensor',
      dev,
      inputs: [x],
      gpu: (t) => ops.add(ops.add(ops.sum(t), ops.sum(ops.mean(t, 0))), ops.sum(ops.max(t, 1))),
      ref: (a) => {
        const s = sumRef(a, [0, 1], false).data[0]! + sumRef(a, [0, 1], false, 1 / 3).data[0]! + sumRef(maxRefDims(a, [1], false).y, [0], false).data[0]!;
        return arr([], [s]);
      },
      refBackward: (g, a) => {
        const m = maxRefBackward(arr([3], [1, 1, 1]), a, [1]);
        return [arr(a.shape, m.data.map((v) => g.data[0]! * (1 + 1 / 3 + v)))];
      },
      // three sums of 12 terms of size <= 0.06 and their adds; backward: a few roundings of g (1 + 1/3 + 1)
      fwdTol: { atol: 8 * Math.sqrt(12) * u * 12 * 0.06, rtol: 4 * u },
      bwdTol: { atol: 0, rtol: 4 * u },
    });
  });

  it('forward and backward leave no live temporaries', async () => {
    await dev.sync();
    const before = dev.memory().liveTensors;
    const x = dev.randn([3, 4, 5], { requiresGrad: true });
    const mine: Tensor[] = [x];
    const k = <T extends Tensor>(t: T): T => (mine.push(t), t);
    const m = k(ops.mean(x, [0, 2], true));
    const s2 = k(ops.sum(x, [0, 2]));
    const y = k(ops.add(k(ops.sum(m)), k(ops.sum(k(ops.sumTo(s2, [1]))))));
    k(ops.sum(k(dev.randn([1, 1 << 16])))); // the split path
    k(ops.max(k(dev.randn([2, 70000])))); // split max without grad: the indices are freed at once
    y.backward();
    mine.push(x.grad!);
    await x.grad!.toArray();
    for (const t of mine) t.dispose();
    expect(dev.memory().liveTensors).toBe(before);
  });

  it('max saves its indices for backward; tidy() around the step frees them', async () => {
    await dev.sync();
    const before = dev.memory().liveTensors;
    const x = dev.randn([3, 4, 5], { requiresGrad: true });
    tidy(() => {
      const y = ops.sum(ops.max(x, [0, 2]));
      y.backward();
    });
    await x.grad!.toArray();
    x.grad!.dispose();
    x.dispose();
    expect(dev.memory().liveTensors).toBe(before);
  });
});

// ---- bad input -----------------------------------------------------------------------------------

function expectRejected(fn: () => unknown, patterns: string[]): void {
  const pending = dev.exec.pendingCount;
  const live = dev.memory().liveTensors;
  let err: unknown = null;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected an error').toBeInstanceOf(Error);
  for (const p of patterns) expect((err as Error).message).toContain(p);
  expect(dev.exec.pendingCount, 'GPU work was recorded before the error').toBe(pending);
  expect(dev.memory().liveTensors, 'a tensor was created before the error').toBe(live);
}

describe('bad input', () => {
  it('dim out of range', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.sum(x, 2), ['sum', 'dim 2', '[2, 3]']);
  });
  it('negative dim out of range', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.max(x, -3), ['max', 'dim -3', '[2, 3]']);
  });
  it('a non-integer dim', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.mean(x, 0.5), ['mean', 'dim', '0.5', '[2, 3]']);
  });
  it('a repeated dim', () => {
    const x = dev.zeros([2, 3, 4]);
    expectRejected(() => ops.sum(x, [1, -2]), ['sum', 'dims', 'repeat', 'x [2, 3, 4]']);
  });
  it('dim of the wrong type', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.sum(x, '1' as unknown as number), ['sum', 'dim', 'string', 'x [2, 3]']);
  });
  it('mean over an empty dim', () => {
    const x = dev.zeros([2, 0]);
    expectRejected(() => ops.mean(x, 1), ['mean', 'dims [1]', 'x [2, 0]']);
  });
  it('max over an empty dim', () => {
    const x = dev.zeros([0, 3]);
    expectRejected(() => ops.max(x, 0), ['max', 'dims [0]', 'x [0, 3]']);
  });
  it('keepDim that is not a boolean', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.sum(x, 0, 1 as unknown as boolean), ['sum', 'keepDim', 'x [2, 3]']);
  });
  it('a disposed tensor', () => {
    const x = dev.zeros([4, 2]);
    x.dispose();
    expectRejected(() => ops.sum(x, 0), ['sum', 'x [4, 2]', 'dispose']);
  });
  it('not a tensor', () => {
    expectRejected(() => ops.max([1, 2] as unknown as Tensor), ['max', 'x', 'array']);
  });
  it('sumTo a shape that x does not broadcast from', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.sumTo(x, [2]), ['sumTo', 'x [2, 3]', 'shape [2]']);
  });
  it('sumTo a larger rank', () => {
    const x = dev.zeros([3]);
    expectRejected(() => ops.sumTo(x, [2, 3]), ['sumTo', 'x [3]', 'shape [2, 3]']);
  });
  it('sumTo an invalid shape', () => {
    const x = dev.zeros([3]);
    expectRejected(() => ops.sumTo(x, [-3]), ['sumTo', 'shape', '[-3]']);
  });
});
