import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, ops, noGrad } from '../../src/index.js';
import { embedding, embeddingRef, embeddingRefBackward, checkIndexErrors, buildCsr } from '../../src/ops/embedding.js';
import { Embedding } from '../../src/nn/embedding.js';
import { arr, checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Arr } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

/** Random f32-representable values (so the reference sees exactly what the GPU holds). */
function f32Arr(shape: number[], rnd: () => number): Arr {
  const a = randArr(shape, rnd);
  a.data.forEach((v, i) => { a.data[i] = Math.fround(v); });
  return a;
}

function randIdx(n: number, V: number, rnd: () => number): Int32Array {
  return Int32Array.from({ length: n }, () => randInt(rnd, 0, V - 1));
}

/** Largest number of positions sharing one index. */
function maxBucket(idx: Int32Array): number {
  const c = new Map<number, number>();
  for (const v of idx) c.set(v, (c.get(v) ?? 0) + 1);
  return Math.max(0, ...c.values());
}

/**
 * dW sums up to K terms of |g| <= 1 sequentially in f32: |error| <= (K-1)·2^-24·Σ|g| <= K²·2^-24.
 * The forward is a copy: exact.
 */
function bwdTol(idx: Int32Array): { atol: number; rtol: number } {
  const K = maxBucket(idx);
  return { atol: K * K * 2 ** -24, rtol: 0 };
}

describe('embedding', () => {
  const cases: { name: string; shape: number[]; V: number; D: number; gpuIdx: boolean }[] = [
    { name: 'CPU indices [3, 5] into [7, 5]', shape: [3, 5], V: 7, D: 5, gpuIdx: false },
    { name: 'GPU indices [3, 5] into [7, 5]', shape: [3, 5], V: 7, D: 5, gpuIdx: true },
    { name: 'GPU indices [1] into [1, 1]', shape: [1], V: 1, D: 1, gpuIdx: true },
    // 300 positions: the GPU stable fill walks 3 chunks of 128 with buckets spanning chunks
    { name: 'GPU indices [300] into [13, 3]', shape: [300], V: 13, D: 3, gpuIdx: true },
    { name: 'CPU indices [2, 2, 3] into [40, 9]', shape: [2, 2, 3], V: 40, D: 9, gpuIdx: false },
  ];
  for (const c of cases) {
    it(`forward and backward vs reference: ${c.name}`, async () => {
      const rnd = rng(c.V * 31 + c.D);
      const n = c.shape.reduce((a, b) => a * b, 1);
      const idx = randIdx(n, c.V, rnd);
      const w = f32Arr([c.V, c.D], rnd);
      const small = c.V * c.D <= 40;
      await checkOp({
        name: `embedding ${c.name}`,
        dev,
        inputs: [w],
        gpu: (wt) => (c.gpuIdx ? embedding(dev.tensor(idx, c.shape, { dtype: 'int32' }), wt) : embedding(idx, wt, { shape: c.shape })),
        ref: (wa) => embeddingRef(idx, c.shape, wa),
        refBackward: (g) => [embeddingRefBackward(g, idx, [c.V, c.D])],
        fwdTol: { atol: 0, rtol: 0 },
        bwdTol: bwdTol(idx),
        // the op is linear in weight: f32 central differences of step 1e-3 on sums of <= n terms
        // of |R| <= 1 are within gradcheck's default atol 1e-3 / rtol 1e-2; large tables skip the
        // GPU gradcheck for time (2 forward passes per weight element); the reference check covers them
        gradcheck: small ? {} : false,
      });
    });
  }

  it('CPU CSR and GPU CSR backward are bit-identical and repeatable (heavy duplicates)', async () => {
    const rnd = rng(5);
    const V = 5;
    const D = 4;
    const idx = randIdx(2000, V, rnd);
    const w = toTensor(dev, f32Arr([V, D], rnd), true);
    const g = toTensor(dev, f32Arr([2000, D], rnd));
    const grads: Float32Array[] = [];
    for (const mode of ['cpu', 'gpu', 'gpu'] as const) {
      const out = mode === 'cpu' ? embedding(idx, w) : embedding(dev.tensor(idx, undefined, { dtype: 'int32' }), w);
      out.backward(g);
      grads.push(await w.grad!.toArray());
      w.grad!.dispose();
      w.grad = null;
    }
    expect(Array.from(grads[1]!)).toEqual(Array.from(grads[0]!));
    expect(Array.from(grads[2]!)).toEqual(Array.from(grads[0]!));
    // and it is the ascending-position f32 sum, exactly
    const gv = await g.toArray();
    const expected = new Float32Array(V * D);
    for (let t = 0; t < idx.length; t++) {
      for (let d = 0; d < D; d++) expected[idx[t]! * D + d] = Math.fround(expected[idx[t]! * D + d]! + gv[t * D + d]!);
    }
    expect(Array.from(grads[0]!)).toEqual(Array.from(expected));
  });

  it('buildCsr is a stable counting sort', () => {
    const { offsets, order } = buildCsr(Int32Array.from([2, 0, 2, 1, 0]), 4);
    expect(Array.from(offsets)).toEqual([0, 2, 3, 5, 5]);
    expect(Array.from(order)).toEqual([1, 4, 3, 0, 2]);
  });

  it('paddingIdx: that row gets no gradient (CPU and GPU indices, negative paddingIdx)', async () => {
    const rnd = rng(8);
    const idx = Int32Array.from([0, 2, 2, 3, 1, 2]);
    const wa = f32Arr([4, 3], rnd);
    const g = f32Arr([6, 3], rnd);
    const expected = embeddingRefBackward(g, idx, [4, 3], 2);
    for (const gpu of [false, true]) {
      const w = toTensor(dev, wa, true);
      const out = gpu ? embedding(dev.tensor(idx, undefined, { dtype: 'int32' }), w, { paddingIdx: -2 }) : embedding(idx, w, { paddingIdx: 2 });
      out.backward(toTensor(dev, g));
      const got = await toArr(w.grad!);
      expectClose(got, expected, bwdTol(idx), `paddingIdx grad (gpu indices: ${gpu})`);
      expect(Array.from(got.data.slice(6, 9))).toEqual([0, 0, 0]);
    }
  });

  it('empty indices give an empty output and a zero gradient', async () => {
    const w = dev.randn([3, 2], { requiresGrad: true, seed: 1 });
    const out = embedding(dev.tensor(new Int32Array(0), [0, 4], { dtype: 'int32' }), w);
    expect(out.shape).toEqual([0, 4, 2]);
    out.backward(dev.zeros([0, 4, 2]));
    expect(Array.from(await w.grad!.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('CPU indices out of range: ShapeError before any GPU work', () => {
    const w = dev.randn([5, 2], { seed: 2 });
    const before = dev.exec.pendingCount;
    expect(() => embedding(Int32Array.from([0, 5]), w)).toThrow(/embedding: indices\[1\] = 5 is out of range for weight \[5, 2\]/);
    expect(() => embedding(Int32Array.from([-1]), w)).toThrow(/embedding: indices\[0\] = -1 is out of range/);
    expect(dev.exec.pendingCount).toBe(before);
  });

  it('GPU indices out of range: never read, NaN rows, reported by checkIndexErrors', async () => {
    await checkIndexErrors(dev); // clean slate
    const wa = f32Arr([4, 2], rng(3));
    const w = toTensor(dev, wa, true);
    const idx = dev.tensor(Int32Array.from([1, 7, 3, -2, 0]), [5], { dtype: 'int32' });
    const out = embedding(idx, w);
    const o = await out.toArray();
    expect(Array.from(o.slice(0, 2))).toEqual([Math.fround(wa.data[2]!), Math.fround(wa.data[3]!)]);
    expect(Number.isNaN(o[2]!) && Number.isNaN(o[3]!) && Number.isNaN(o[6]!) && Number.isNaN(o[7]!)).toBe(true);
    expect(Array.from(o.slice(4, 6))).toEqual([Math.fround(wa.data[6]!), Math.fround(wa.data[7]!)]);
    // the backward skips the bad positions
    out.backward(dev.ones([5, 2]));
    expect(Array.from(await w.grad!.toArray())).toEqual([1, 1, 1, 1, 0, 0, 1, 1]);
    await expect(checkIndexErrors(dev)).rejects.toThrow(/embedding: indices \(int32 \[5\], weight \[4, 2\]\) contained values outside \[0, 4\); the first is indices\[1\] \(flat\) = 7 \(2 out-of-range values/);
    // the flag was reset
    await expect(checkIndexErrors(dev)).resolves.toBeUndefined();
    // valid GPU indices leave it clean
    embedding(dev.tensor(Int32Array.from([0, 3]), [2], { dtype: 'int32' }), w);
    await expect(checkIndexErrors(dev)).resolves.toBeUndefined();
  });

  it('bad inputs name the op and the argument', () => {
    const w = dev.randn([5, 2], { seed: 4 });
    const f = dev.tensor([1, 2]);
    const i32 = dev.tensor(Int32Array.from([1, 2]), [2], { dtype: 'int32' });
    expect(() => embedding(f, w)).toThrow(/embedding: indices must be int32, got float32 \[2\]/);
    expect(() => embedding(i32, dev.randn([10], { seed: 1 }))).toThrow(/embedding: weight must be 2-D \[numEmbeddings, embeddingDim\], got \[10\]/);
    expect(() => embedding(i32, i32)).toThrow(/embedding: weight.* must be float32, got int32/);
    expect(() => embedding([1, 2] as unknown as Int32Array, w)).toThrow(/embedding: indices must be an int32 Tensor or an Int32Array/);
    expect(() => embedding(Int32Array.from([1, 2, 3]), w, { shape: [2, 2] })).toThrow(/embedding: indices has 3 values but shape is \[2, 2\]/);
    expect(() => embedding(i32, w, { paddingIdx: 5 })).toThrow(/embedding: paddingIdx must be an integer in \[-5, 5\), got 5/);
    const gone = dev.tensor(Int32Array.from([1]), [1], { dtype: 'int32' });
    gone.dispose();
    expect(() => embedding(gone, w)).toThrow(/used after dispose/);
  });

  it('no grad: nothing saved, output correct', async () => {
    const wa = f32Arr([6, 3], rng(9));
    const w = toTensor(dev, wa, true);
    const idx = Int32Array.from([5, 0, 5]);
    const out = noGrad(() => embedding(idx, w));
    expect(out.requiresGrad).toBe(false);
    expectClose(await toArr(out), embeddingRef(idx, [3], wa), { atol: 0, rtol: 0 }, 'noGrad forward');
  });
});

describe('nn.Embedding', () => {
  it('N(0,1) init, padding row zero, forward = ops.embedding, parameter name weight', async () => {
    const V = 200;
    const D = 50;
    const m = new Embedding(dev, { numEmbeddings: V, embeddingDim: D, paddingIdx: -1, seed: 11 });
    expect(m.paddingIdx).toBe(V - 1);
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['weight', [V, D]]]);
    const w = await m.weight.toArray();
    expect(Array.from(w.slice((V - 1) * D))).toEqual(new Array(D).fill(0));
    // the other 9950 values: mean within 6/sqrt(n) of 0 and variance within 6·sqrt(2/n) of 1
    const vals = w.slice(0, (V - 1) * D);
    const n = vals.length;
    const mean = vals.reduce((a, b) => a + b, 0) / n;
    const v = vals.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
    expect(Math.abs(mean)).toBeLessThan(6 / Math.sqrt(n));
    expect(Math.abs(v - 1)).toBeLessThan(6 * Math.sqrt(2 / n));
    const idx = dev.tensor(Int32Array.from([0, V - 1, 3, 3]), [2, 2], { dtype: 'int32' });
    const out = m.forward(idx);
    expect(out.shape).toEqual([2, 2, D]);
    const ref = embeddingRef(Int32Array.from([0, V - 1, 3, 3]), [2, 2], arr([V, D], w));
    expectClose(await toArr(out), ref, { atol: 0, rtol: 0 }, 'nn.Embedding forward');
    // gradient of the padding row stays 0
    ops.sum(out).backward();
    const g = await m.weight.grad!.toArray();
    expect(Array.from(g.slice((V - 1) * D))).toEqual(new Array(D).fill(0));
    expect(Array.from(g.slice(3 * D, 4 * D))).toEqual(new Array(D).fill(2));
  });

  it('bad options name nn.Embedding and the option', () => {
    expect(() => new Embedding(dev, { numEmbeddings: 0, embeddingDim: 2 })).toThrow(/nn.Embedding: numEmbeddings must be a positive integer, got 0/);
    expect(() => new Embedding(dev, { numEmbeddings: 3, embeddingDim: 1.5 })).toThrow(/nn.Embedding: embeddingDim must be a positive integer/);
    expect(() => new Embedding(dev, { numEmbeddings: 3, embeddingDim: 2, paddingIdx: 3 })).toThrow(/nn.Embedding: paddingIdx must be an integer in \[-3, 3\)/);
  });
});

