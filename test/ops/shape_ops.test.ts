// Layout ops: reshape/view, permute/transpose, expand, slice, concat, stack, squeeze/unsqueeze:
// forward and backward against float64 references, bit-exact int32 copies, bad input.
//
// Tolerances: every forward is a copy (exact: atol = rtol = 0). Backward copies or scatters g,
// which checkOp draws in float64 and rounds to f32 for the GPU (1u relative, u = 2^-24); expand's
// backward sums k copies of g: 2 sqrt(k) u sum|g| (Higham's probabilistic bound, lambda = 2).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createDevice, ops, type Device, type Tensor } from '../../src/index.js';
import { checkOp, expectClose, rng, randArr, randInt, toTensor, toArr, arr, type Arr } from '../helpers.js';
import {
  permuteRef, permuteRefBackward, sliceRef, sliceRefBackward, concatRef, concatRefBackward, expandRef, expandRefBackward,
  stackRef, stackRefBackward,
} from '../../src/ops/shape_ops.js';

const u = 2 ** -24;
const EXACT = { atol: 0, rtol: 0 };
const G_ROUNDING = { atol: 0, rtol: u };

let dev: Device;
beforeAll(async () => {
  dev = await createDevice();
});
afterAll(() => dev.destroy());

function f32(a: Arr): Arr {
  return { shape: a.shape, data: a.data.map((v) => Math.fround(v)) };
}
const numel = (s: readonly number[]): number => s.reduce((p, d) => p * d, 1);
const small = (s: readonly number[]): boolean => numel(s) <= 40; // gradcheck: 2 GPU passes per element

function shuffle(n: number, rnd: () => number): number[] {
  const p = [...Array(n).keys()];
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [p[i], p[j]] = [p[j]!, p[i]!];
  }
  return p;
}

describe('reshape, view, squeeze, unsqueeze (views: no copy)', () => {
  it('checkOp over shapes, -1, rank 0, empty', async () => {
    const rnd = rng(1);
    const cases: [number[], number[], number[]][] = [
      // [from, requested, resolved]
      [[2, 3, 4], [6, 4], [6, 4]], [[2, 3, 4], [-1], [24]], [[2, 3, 4], [4, -1, 2], [4, 3, 2]], [[1], [], []], [[], [1, 1], [1, 1]],
      [[257], [1, 257, 1], [1, 257, 1]], [[0, 3], [3, 0, 5], [3, 0, 5]], [[5, 7], [7, 5], [7, 5]],
    ];
    for (const [from, req, res] of cases) {
      const x = f32(randArr(from, rnd));
      for (const [name, f] of [['reshape', ops.reshape], ['view', ops.view]] as const) {
        await checkOp({
          name: `${name} ${JSON.stringify(from)} -> ${JSON.stringify(req)}`,
          dev,
          inputs: [x],
          gpu: (t) => f(t, req),
          ref: (a) => arr(res, a.data),
          refBackward: (g, a) => [arr(a.shape, g.data)],
          fwdTol: EXACT,
          bwdTol: G_ROUNDING,
          gradcheck: small(from) ? {} : false,
        });
      }
    }
  });

  it('share storage with the input', () => {
    const x = dev.zeros([2, 3]);
    for (const y of [ops.reshape(x, [3, 2]), ops.unsqueeze(x, 0), ops.squeeze(ops.unsqueeze(x, 1), 1), ops.expand(x, [2, 3]), ops.permute(ops.unsqueeze(x, 0), [1, 0, 2])]) {
      expect(y.gpuBuffer).toBe(x.gpuBuffer);
    }
  });

  it('unsqueeze at every position (negative too) and squeeze back', async () => {
    const rnd = rng(2);
    const x = f32(randArr([2, 3], rnd));
    for (const dim of [0, 1, 2, -1, -2, -3]) {
      const d = dim < 0 ? dim + 3 : dim;
      const shape = [2, 3];
      shape.splice(d, 0, 1);
      await checkOp({
        name: `unsqueeze ${dim}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.unsqueeze(t, dim),
        ref: (a) => arr(shape, a.data),
        refBackward: (g, a) => [arr(a.shape, g.data)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
      });
      await checkOp({
        name: `squeeze ${dim}`,
        dev,
        inputs: [arr(shape, x.data)],
        gpu: (t) => ops.squeeze(t, dim),
        ref: (a) => arr([2, 3], a.data),
        refBackward: (g, a) => [arr(a.shape, g.data)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: false, // the same view rule as unsqueeze, gradchecked just above
      });
    }
    const all = ops.squeeze(dev.zeros([1, 3, 1, 2, 1]));
    expect(all.shape).toEqual([3, 2]);
  });
});

describe('permute and transpose', () => {
  it('random permutations of random shapes (size-1 dims, odd sizes, rank 1..8)', async () => {
    const rnd = rng(3);
    for (let c = 0; c < 24; c++) {
      const rank = c < 20 ? randInt(rnd, 1, 5) : randInt(rnd, 6, 8);
      const shape = Array.from({ length: rank }, () => (rnd() < 0.25 ? 1 : randInt(rnd, 2, rank > 5 ? 3 : 7)));
      if (c === 5) shape[0] = 257; // more elements than a workgroup
      const dims = shuffle(rank, rnd);
      const x = f32(randArr(shape, rnd));
      await checkOp({
        name: `permute ${JSON.stringify(shape)} ${JSON.stringify(dims)}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.permute(t, dims),
        ref: (a) => permuteRef(a, dims),
        refBackward: (g) => [permuteRefBackward(g, dims)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: small(shape) ? {} : false,
      });
    }
  });

  it('long last dims, multiples of 4 (4 elements per invocation) and not, rank 5, millions of elements', async () => {
    const rnd = rng(31);
    const cases: [number[], number[]][] = [
      [[4, 6, 37], [1, 0, 2]],
      [[2, 3, 300], [1, 0, 2]],
      [[2, 5, 3, 2, 32], [2, 0, 3, 1, 4]], // attention's qkv head split
    ];
    for (const [shape, dims] of cases) {
      const x = f32(randArr(shape, rnd));
      await checkOp({
        name: `permute ${JSON.stringify(shape)} ${JSON.stringify(dims)}`, dev, inputs: [x],
        gpu: (t) => ops.permute(t, dims), ref: (a) => permuteRef(a, dims), refBackward: (g) => [permuteRefBackward(g, dims)],
        fwdTol: EXACT, bwdTol: G_ROUNDING, gradcheck: false,
      });
    }
    // 4.5M elements, forward and backward against the reference directly (too large for checkOp's
    // finite differences on the reference)
    const big = f32(randArr([70000, 2, 32], rnd));
    const bt = toTensor(dev, big, true);
    const y = ops.permute(bt, [1, 0, 2]);
    expectClose(await toArr(y), permuteRef(big, [1, 0, 2]), EXACT, 'permute [70000, 2, 32]');
    const g = f32(randArr([2, 70000, 32], rnd));
    y.backward(toTensor(dev, g));
    expectClose(await toArr(bt.grad!), permuteRefBackward(g, [1, 0, 2]), EXACT, 'permute [70000, 2, 32] backward');
    // concat along a middle dim: strided destination rows of 40
    const a = f32(randArr([3, 2, 40], rnd));
    const b = f32(randArr([3, 5, 40], rnd));
    const got = await toArr(ops.concat([toTensor(dev, a), toTensor(dev, b)], 1));
    expectClose(got, concatRef([a, b], 1), EXACT, 'concat rows of 40');
  });

  it('negative dims and the identity', async () => {
    const rnd = rng(4);
    const x = f32(randArr([2, 3, 4], rnd));
    for (const [dims, norm] of [[[-1, 0, -2], [2, 0, 1]], [[0, 1, 2], [0, 1, 2]]] as const) {
      await checkOp({
        name: `permute ${JSON.stringify(dims)}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.permute(t, [...dims]),
        ref: (a) => permuteRef(a, norm),
        refBackward: (g) => [permuteRefBackward(g, norm)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: false, // covered by the random permutations above
      });
    }
  });

  it('transpose: default last two dims, any pair', async () => {
    const rnd = rng(5);
    const x = f32(randArr([3, 4, 5], rnd));
    for (const [d0, d1, perm] of [[undefined, undefined, [0, 2, 1]], [0, 2, [2, 1, 0]], [-3, 1, [1, 0, 2]], [1, 1, [0, 1, 2]]] as const) {
      await checkOp({
        name: `transpose ${d0} ${d1}`,
        dev,
        inputs: [x],
        gpu: (t) => (d0 === undefined ? ops.transpose(t) : ops.transpose(t, d0, d1)),
        ref: (a) => permuteRef(a, perm),
        refBackward: (g) => [permuteRefBackward(g, perm)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: false, // permute's rule, gradchecked above
      });
    }
    const m = dev.tensor([[1, 2, 3], [4, 5, 6]]);
    expect(Array.from(await ops.transpose(m).toArray())).toEqual([1, 4, 2, 5, 3, 6]);
  });
});

describe('expand', () => {
  it('checkOp: new leading dims, size-1 dims, -1, scalars, same shape (a view)', async () => {
    const rnd = rng(6);
    const cases: [number[], number[], number[]][] = [
      [[3, 1], [2, 3, 4], [2, 3, 4]], [[1], [5], [5]], [[], [2, 3], [2, 3]], [[2, 1, 3], [-1, 4, -1], [2, 4, 3]],
      [[4, 1], [4, 1], [4, 1]], [[1, 1], [257, 3], [257, 3]], [[3], [2, 0, 3], [2, 0, 3]],
    ];
    for (const [from, req, to] of cases) {
      const x = f32(randArr(from, rnd));
      const k = numel(to) / Math.max(1, numel(from)); // copies of each element summed in backward
      await checkOp({
        name: `expand ${JSON.stringify(from)} -> ${JSON.stringify(req)}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.expand(t, req),
        ref: (a) => expandRef(a, to),
        refBackward: (g, a) => [expandRefBackward(g, a.shape)],
        fwdTol: EXACT,
        // k terms of |g| <= 1 summed: 2 sqrt(k) u k, plus g's rounding
        bwdTol: { atol: (2 * Math.sqrt(k) + 1) * u * k, rtol: 0 },
        gradcheck: small(to) ? {} : false,
      });
    }
  });
});

/** Python's x[start:end:step] indices on a dim of size n (step >= 1), written independently of the op. */
function pyIndices(n: number, start: number, end: number | undefined, step: number): number[] {
  const norm = (v: number): number => {
    let w = v < 0 ? v + n : v;
    if (w < 0) w = 0;
    if (w > n) w = n;
    return w;
  };
  const out: number[] = [];
  for (let i = norm(start); i < (end === undefined ? n : norm(end)); i += step) out.push(i);
  return out;
}

describe('slice', () => {
  it('checkOp over dims, negative and out-of-range bounds, steps, empty results', async () => {
    const rnd = rng(7);
    const shape = [4, 5, 6];
    const x = f32(randArr(shape, rnd));
    const cases: [number, number, number | undefined, number][] = [
      [0, 1, 3, 1], [1, 0, undefined, 2], [2, -4, -1, 1], [2, -100, 100, 3], [1, 3, 3, 1], [0, 4, 10, 1], [-1, 1, 6, 5], [1, -1, undefined, 1], [2, 5, 2, 1],
    ];
    for (const [dim, start, end, step] of cases) {
      const d = dim < 0 ? dim + shape.length : dim;
      const idx = pyIndices(shape[d]!, start, end, step);
      const s0 = idx[0] ?? 0;
      const ref = (a: Arr): Arr => sliceRef(a, d, s0, s0 + idx.length * step, step);
      expect(ref(x).shape[d], `slice ${dim} ${start}:${end}:${step} length`).toBe(idx.length);
      await checkOp({
        name: `slice dim ${dim} ${start}:${end}:${step}`,
        dev,
        inputs: [x],
        gpu: (t) => ops.slice(t, dim, start, end, step),
        ref,
        refBackward: (g, a) => [sliceRefBackward(g, a.shape, d, s0, step)],
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: false, // 120 inputs: the small case below runs gradcheck
      });
    }
    const y = f32(randArr([3, 5], rnd));
    await checkOp({
      name: 'slice [3, 5] dim 1 1:5:2 with gradcheck',
      dev,
      inputs: [y],
      gpu: (t) => ops.slice(t, 1, 1, 5, 2),
      ref: (a) => sliceRef(a, 1, 1, 5, 2),
      refBackward: (g, a) => [sliceRefBackward(g, a.shape, 1, 1, 2)],
      fwdTol: EXACT,
      bwdTol: G_ROUNDING,
    });
  });

  it('literal values', async () => {
    const x = dev.arange(10);
    expect(Array.from(await ops.slice(x, 0, -3).toArray())).toEqual([7, 8, 9]);
    expect(Array.from(await ops.slice(x, 0, 1, 8, 3).toArray())).toEqual([1, 4, 7]);
    expect(ops.slice(x, 0, 8, 2).shape).toEqual([0]);
  });

  it('a long slice (more elements than a workgroup, not a multiple of it)', async () => {
    const rnd = rng(8);
    const x = f32(randArr([3, 1000], rnd));
    await checkOp({
      name: 'slice [3, 1000] dim 1 13:-7:3',
      dev,
      inputs: [x],
      gpu: (t) => ops.slice(t, 1, 13, -7, 3),
      ref: (a) => sliceRef(a, 1, 13, 993, 3),
      refBackward: (g, a) => [sliceRefBackward(g, a.shape, 1, 13, 3)],
      fwdTol: EXACT,
      bwdTol: G_ROUNDING,
      gradcheck: false, // 3000 inputs
    });
  });
});

describe('concat and stack', () => {
  it('concat along every dim, pieces of different and zero sizes, one piece, many pieces', async () => {
    const rnd = rng(9);
    const cases: [number[][], number][] = [
      [[[2, 3], [4, 3]], 0], [[[2, 3], [2, 1], [2, 4]], 1], [[[2, 3], [2, 0], [2, 2]], -1], [[[3, 2, 2]], 1],
      [[[1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3], [1, 2, 3]], 0], [[[2, 1, 4], [2, 3, 4]], -2], [[[257], [100]], 0],
    ];
    for (const [shapes, dim] of cases) {
      const xs = shapes.map((s) => f32(randArr(s, rnd)));
      const d = dim < 0 ? dim + shapes[0]!.length : dim;
      await checkOp({
        name: `concat ${JSON.stringify(shapes)} dim ${dim}`,
        dev,
        inputs: xs,
        gpu: (...ts) => ops.concat(ts, dim),
        ref: (...as) => concatRef(as, d),
        refBackward: (g, ...as) => concatRefBackward(g, as.map((a) => a.shape), d),
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
        gradcheck: shapes.every(small) ? {} : false,
      });
    }
  });

  it('concat where only some inputs require grad', async () => {
    const rnd = rng(10);
    const xs = [[2, 2], [2, 3], [2, 1]].map((s) => f32(randArr(s, rnd)));
    await checkOp({
      name: 'concat, grad for inputs 0 and 2',
      dev,
      inputs: xs,
      wrt: [0, 2],
      gpu: (...ts) => ops.concat(ts, 1),
      ref: (...as) => concatRef(as, 1),
      refBackward: (g, ...as) => concatRefBackward(g, as.map((a) => a.shape), 1),
      fwdTol: EXACT,
      bwdTol: G_ROUNDING,
    });
  });

  it('stack along every new dim', async () => {
    const rnd = rng(11);
    for (const dim of [0, 1, 2, -1]) {
      const xs = [0, 1, 2].map(() => f32(randArr([2, 3], rnd)));
      const d = dim < 0 ? dim + 3 : dim;
      await checkOp({
        name: `stack dim ${dim}`,
        dev,
        inputs: xs,
        gpu: (...ts) => ops.stack(ts, dim),
        ref: (...as) => stackRef(as, d),
        refBackward: (g) => stackRefBackward(g, 3, d),
        fwdTol: EXACT,
        bwdTol: G_ROUNDING,
      });
    }
    const s = ops.stack([dev.tensor([1, 2]), dev.tensor([3, 4])], 1);
    expect(s.shape).toEqual([2, 2]);
    expect(Array.from(await s.toArray())).toEqual([1, 3, 2, 4]);
  });

  it('stack of scalars and of a large tensor', async () => {
    const rnd = rng(12);
    const xs = [f32(randArr([], rnd)), f32(randArr([], rnd))];
    await checkOp({
      name: 'stack scalars',
      dev,
      inputs: xs,
      gpu: (...ts) => ops.stack(ts),
      ref: (...as) => stackRef(as, 0),
      refBackward: (g) => stackRefBackward(g, 2, 0),
      fwdTol: EXACT,
      bwdTol: G_ROUNDING,
    });
    const big = [f32(randArr([3, 333], rnd)), f32(randArr([3, 333], rnd))];
    await checkOp({
      name: 'stack [3, 333] x2 dim 1',
      dev,
      inputs: big,
      gpu: (...ts) => ops.stack(ts, 1),
      ref: (...as) => stackRef(as, 1),
      refBackward: (g) => stackRefBackward(g, 2, 1),
      fwdTol: EXACT,
      bwdTol: G_ROUNDING,
      gradcheck: false, // 2000 inputs
    });
  });
});

describe('int32 tensors and bit patterns', () => {
  it('layout ops copy 32-bit patterns exactly (int32 values whose bits are NaNs, NaN payloads)', async () => {
    const vals = Int32Array.from([-1, 0x7fc00001, -0x800000 + 1, 2147483647, -2147483648, 0x7f800001, 5, -6]);
    const t = dev.tensor(vals, [2, 4]);
    const same = async (x: Tensor, expected: number[]): Promise<void> => {
      expect(x.dtype).toBe('int32');
      expect(Array.from(await x.toInt32Array())).toEqual(expected);
    };
    const v = Array.from(vals);
    await same(ops.reshape(t, [4, 2]), v);
    await same(ops.permute(t, [1, 0]), [v[0]!, v[4]!, v[1]!, v[5]!, v[2]!, v[6]!, v[3]!, v[7]!]);
    await same(ops.slice(t, 1, 1, 4, 2), [v[1]!, v[3]!, v[5]!, v[7]!]);
    await same(ops.concat([t, t], 0), [...v, ...v]);
    await same(ops.stack([ops.slice(t, 0, 0, 1), ops.slice(t, 0, 1, 2)], 0), v);
    await same(ops.expand(ops.slice(t, 0, 0, 1), [3, 4]), [...v.slice(0, 4), ...v.slice(0, 4), ...v.slice(0, 4)]);
    // a float NaN with a payload survives a permute bit for bit
    const bits = new Uint32Array([0x7fc12345, 0xffc00001, 0x3f800000, 0x7f800001]);
    const f = dev.tensor(new Float32Array(bits.buffer), [2, 2]);
    const p = new Uint32Array((await ops.permute(f, [1, 0]).toArray()).buffer);
    expect(Array.from(p)).toEqual([0x7fc12345, 0x3f800000, 0xffc00001, 0x7f800001]);
  });
});

describe('memory', () => {
  it('forward and backward leave no live temporaries', async () => {
    await dev.sync();
    const before = dev.memory().liveTensors;
    const a = dev.randn([2, 3, 4], { requiresGrad: true });
    const b = dev.randn([2, 1, 4], { requiresGrad: true });
    const mine: Tensor[] = [a, b];
    const k = <T extends Tensor>(t: T): T => (mine.push(t), t);
    const c = k(ops.concat([a, k(ops.expand(b, [2, 2, 4]))], 1));
    const s = k(ops.stack([k(ops.slice(c, 1, 1, 5, 2)), k(ops.permute(k(ops.slice(c, 1, 0, 2)), [0, 1, 2]))], 0));
    const y = k(ops.sum(k(ops.reshape(k(ops.transpose(s, 1, 3)), [-1]))));
    y.backward();
    mine.push(a.grad!, b.grad!);
    await a.grad!.toArray();
    for (const t of mine) t.dispose();
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
  it('reshape to a different number of elements', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.reshape(x, [4, 2]), ['reshape', 'x [2, 3]', 'shape [4, 2]']);
  });
  it('reshape with two -1', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.view(x, [-1, -1]), ['reshape', 'shape [-1, -1]', 'x [2, 3]']);
  });
  it('reshape with a -1 that cannot be inferred', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.reshape(x, [4, -1]), ['reshape', 'shape [4, -1]', 'x [2, 3]']);
  });
  it('reshape with a negative or fractional size', () => {
    const x = dev.zeros([6]);
    expectRejected(() => ops.reshape(x, [-2, -3]), ['reshape', 'shape [-2, -3]', 'x [6]']);
    expectRejected(() => ops.reshape(x, [1.5, 4]), ['reshape', 'shape', '1.5', 'x [6]']);
  });
  it('permute with a repeated dim', () => {
    const x = dev.zeros([2, 3, 4]);
    expectRejected(() => ops.permute(x, [0, 1, 1]), ['permute', 'dims [0, 1, 1]', 'x [2, 3, 4]']);
  });
  it('permute with the wrong number of dims', () => {
    const x = dev.zeros([2, 3, 4]);
    expectRejected(() => ops.permute(x, [1, 0]), ['permute', 'dims [1, 0]', 'x [2, 3, 4]']);
  });
  it('permute with a dim out of range', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.permute(x, [0, 2]), ['permute', 'dim 2', '[2, 3]']);
  });
  it('transpose with a dim out of range', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.transpose(x, 0, 5), ['transpose', 'dim 5', '[2, 3]']);
  });
  it('expand a dim that is not 1', () => {
    const x = dev.zeros([3, 2]);
    expectRejected(() => ops.expand(x, [3, 4]), ['expand', 'x [3, 2]', 'shape [3, 4]']);
  });
  it('expand to a lower rank', () => {
    const x = dev.zeros([2, 1, 3]);
    expectRejected(() => ops.expand(x, [2, 3]), ['expand', 'x [2, 1, 3]', 'shape [2, 3]']);
  });
  it('expand with -1 for a new dim', () => {
    const x = dev.zeros([3]);
    expectRejected(() => ops.expand(x, [-1, 3]), ['expand', 'shape [-1, 3]', 'x [3]']);
  });
  it('slice with step 0', () => {
    const x = dev.zeros([4, 5]);
    expectRejected(() => ops.slice(x, 1, 0, 5, 0), ['slice', 'step', '0', 'x [4, 5]']);
  });
  it('slice with a negative step', () => {
    const x = dev.zeros([4, 5]);
    expectRejected(() => ops.slice(x, 0, 3, 0, -1), ['slice', 'step', '-1', 'x [4, 5]']);
  });
  it('slice with a fractional start', () => {
    const x = dev.zeros([4, 5]);
    expectRejected(() => ops.slice(x, 0, 0.5), ['slice', 'start', '0.5', 'x [4, 5]']);
  });
  it('slice along a dim out of range', () => {
    const x = dev.zeros([4, 5]);
    expectRejected(() => ops.slice(x, 2, 0, 1), ['slice', 'dim 2', '[4, 5]']);
  });
  it('concat of mismatched shapes', () => {
    const a = dev.zeros([2, 3]);
    const b = dev.zeros([3, 4]);
    expectRejected(() => ops.concat([a, b], 0), ['concat', 'tensors[1]', '[3, 4]', '[2, 3]']);
  });
  it('concat of mismatched ranks', () => {
    const a = dev.zeros([2, 3]);
    const b = dev.zeros([2, 3, 1]);
    expectRejected(() => ops.concat([a, b], 1), ['concat', 'tensors[1]', '[2, 3, 1]', '[2, 3]']);
  });
  it('concat of no tensors', () => {
    expectRejected(() => ops.concat([], 0), ['concat', 'tensors', 'empty']);
  });
  it('concat of float32 and int32', () => {
    const a = dev.zeros([2]);
    const b = dev.tensor([1, 2], [2], { dtype: 'int32' });
    expectRejected(() => ops.concat([a, b]), ['concat', 'tensors[1] [2]', 'int32', 'float32']);
  });
  it('concat along a dim out of range', () => {
    const a = dev.zeros([2, 3]);
    expectRejected(() => ops.concat([a, a], 2), ['concat', 'dim 2', '[2, 3]']);
  });
  it('concat of tensors from two devices', async () => {
    const dev2 = await createDevice();
    try {
      const a = dev.zeros([2, 3]);
      const b = dev2.zeros([1, 3]);
      expectRejected(() => ops.concat([a, b], 0), ['concat', 'tensors[1] [1, 3]', 'another device', 'tensors[0] [2, 3]']);
    } finally {
      dev2.destroy();
    }
  });
  it('stack of different shapes', () => {
    const a = dev.zeros([2, 3]);
    const b = dev.zeros([3, 2]);
    expectRejected(() => ops.stack([a, b], 0), ['stack', 'tensors[1]', '[3, 2]', '[2, 3]']);
  });
  it('squeeze a dim that is not 1', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.squeeze(x, 1), ['squeeze', 'dim 1', 'x [2, 3]', 'size 3']);
  });
  it('unsqueeze at a dim out of range', () => {
    const x = dev.zeros([2, 3]);
    expectRejected(() => ops.unsqueeze(x, 4), ['unsqueeze', 'dim 4', '[2, 3]']);
  });
  it('a disposed tensor', () => {
    const x = dev.zeros([2, 3]);
    x.dispose();
    expectRejected(() => ops.permute(x, [1, 0]), ['permute', 'x [2, 3]', 'dispose']);
  });
  it('a disposed tensor among concat inputs', () => {
    const a = dev.zeros([2, 3]);
    const b = dev.zeros([2, 3]);
    b.dispose();
    expectRejected(() => ops.concat([a, b]), ['concat', 'tensors[1] [2, 3]', 'dispose']);
  });
  it('rank above 8 for a copying op', () => {
    const x = dev.zeros([1, 1, 1, 1, 1, 1, 1, 2, 3]);
    expectRejected(() => ops.transpose(x), ['permute', 'rank 9', 'x [1, 1, 1, 1, 1, 1, 1, 2, 3]']);
  });
});
