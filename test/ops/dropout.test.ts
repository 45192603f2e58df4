import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, type Tensor, noGrad } from '../../src/index.js';
import { dropout, dropoutMask, dropoutRef, dropoutRefBackward, dropoutHash } from '../../src/ops/dropout.js';
import { Dropout } from '../../src/nn/dropout.js';
import { checkOp, expectClose, makeDevice, randArr, rng, toArr, toTensor, type Arr } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

function f32Arr(shape: number[], rnd: () => number): Arr {
  const a = randArr(shape, rnd);
  a.data.forEach((v, i) => { a.data[i] = Math.fround(v); });
  return a;
}

/** The keep mask of a GPU dropout of ones (kept elements are 1/(1-p) > 0). */
async function gpuMask(n: number, p: number, seed: number): Promise<Uint8Array> {
  const x = dev.ones([n]);
  const y = dropout(x, p, { seed });
  const v = await y.toArray();
  x.dispose();
  y.dispose();
  return Uint8Array.from(v, (e) => (e !== 0 ? 1 : 0));
}

/** |observed - expected| count bound: 6 standard deviations of a Binomial(n, q) (P(fail) ~ 2e-9). */
function binomialBound(n: number, q: number): number {
  return 6 * Math.sqrt(n * q * (1 - q));
}

describe('dropout', () => {
  it('the GPU mask is exactly the CPU mirror of the counter-based hash; kept values are x·fl(1/(1-p))', async () => {
    const n = 10007; // not a multiple of the workgroup size
    const p = 0.3;
    const seed = 42;
    const xa = f32Arr([n], rng(1));
    const y = dropout(toTensor(dev, xa), p, { seed });
    const v = await y.toArray();
    const m = dropoutMask(n, p, seed);
    const scale = Math.fround(1 / (1 - p));
    // IEEE f32 multiply is correctly rounded (Vulkan requires it for OpFMul): exact comparison
    const expected = Float32Array.from(xa.data, (x, i) => (m[i] ? Math.fround(x * scale) : 0));
    expect(Array.from(v)).toEqual(Array.from(expected));
  });

  it('the scalar kernel (buffers too small for a vec4 view: a caller GPUBuffer of 7 floats) gives the same mask', async () => {
    const n = 7;
    const xa = f32Arr([n], rng(2));
    const buf = dev.gpu.createBuffer({ size: 4 * n, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    dev.gpu.queue.writeBuffer(buf, 0, Float32Array.from(xa.data));
    const x = dev.fromGPUBuffer(buf, [n]);
    const v = await dropout(x, 0.4, { seed: 9 }).toArray();
    const m = dropoutMask(n, 0.4, 9);
    const scale = Math.fround(1 / (1 - 0.4));
    expect(Array.from(v)).toEqual(Array.from(xa.data, (u, i) => (m[i] ? Math.fround(u * scale) : 0)));
    buf.destroy();
  });

  for (const p of [0.1, 0.5, 0.9]) {
    it(`kept fraction ≈ 1 - p (p = ${p}, 2^20 elements, 6σ binomial bound)`, async () => {
      const n = 1 << 20;
      const m = await gpuMask(n, p, 1234);
      const kept = m.reduce((a, b) => a + b, 0);
      expect(Math.abs(kept - n * (1 - p))).toBeLessThan(binomialBound(n, 1 - p));
    });
  }

  it('masks look independent: adjacent elements, different seeds, seeds differing only above 2^32', async () => {
    const n = 1 << 18;
    const p = 0.5;
    const q = (1 - p) ** 2; // P(both kept) under independence
    const a = await gpuMask(n, p, 7);
    const b = await gpuMask(n, p, 8);
    const c = await gpuMask(n, p, 7 + 2 ** 32);
    let adj = 0;
    let ab = 0;
    let ac = 0;
    for (let i = 0; i < n; i++) {
      if (i + 1 < n && a[i] && a[i + 1]) adj++;
      if (a[i] && b[i]) ab++;
      if (a[i] && c[i]) ac++;
    }
    expect(Math.abs(adj - (n - 1) * q)).toBeLessThan(binomialBound(n - 1, q));
    expect(Math.abs(ab - n * q)).toBeLessThan(binomialBound(n, q));
    expect(Math.abs(ac - n * q)).toBeLessThan(binomialBound(n, q));
    // and the hash of seed 7 + 2^32 is mirrored on the CPU too
    expect(dropoutHash(7 + 2 ** 32, 5)).not.toBe(dropoutHash(7, 5));
    expect(Array.from(c.slice(0, 64))).toEqual(Array.from(dropoutMask(64, p, 7 + 2 ** 32)));
  });

  it('same seed → same mask; different seed → different mask', async () => {
    const a = await gpuMask(4096, 0.4, 99);
    const b = await gpuMask(4096, 0.4, 99);
    const c = await gpuMask(4096, 0.4, 100);
    expect(Array.from(b)).toEqual(Array.from(a));
    expect(Array.from(c)).not.toEqual(Array.from(a));
  });

  it('forward/backward vs reference and gradcheck (backward recomputes the forward mask)', async () => {
    const p = 0.25;
    const seed = 5;
    await checkOp({
      name: 'dropout',
      dev,
      inputs: [f32Arr([3, 7], rng(2))],
      gpu: (x) => dropout(x, p, { seed }),
      ref: (x) => dropoutRef(x, p, seed),
      refBackward: (g) => [dropoutRefBackward(g, p, seed)],
      // one f32 multiply by fl(1/(1-p)): |error| <= 2^-24·|x/(1-p)| + |x|·|fl(s) - s| <= 2^-23·|ref|
      fwdTol: { atol: 0, rtol: 2 ** -23 },
      // gradcheck defaults (atol 1e-3, rtol 1e-2): the op is linear, so central differences are exact
      // up to f32 rounding of the projected loss (~1e-6)
    });
  });

  it('backward mask equals the forward mask (large tensor, no seed given)', async () => {
    const n = 50000;
    const x = dev.ones([n], { requiresGrad: true });
    const y = dropout(x, 0.6);
    const g = dev.full([n], 2);
    y.backward(g);
    const fwd = await y.toArray();
    const gx = await x.grad!.toArray();
    for (let i = 0; i < n; i++) {
      if ((fwd[i] !== 0) !== (gx[i] !== 0)) expect.fail(`element ${i}: forward ${fwd[i]}, grad ${gx[i]}`);
      if (gx[i] !== 0 && gx[i] !== Math.fround(2 * Math.fround(1 / 0.4))) expect.fail(`element ${i}: grad ${gx[i]}`);
    }
  });

  it('p = 0 and training: false are the identity (no GPU work, gradient passes through)', async () => {
    const x = dev.tensor([1, -2, 3], undefined, { requiresGrad: true });
    const before = dev.exec.pendingCount;
    const y = dropout(x, 0, { seed: 1 });
    const z = dropout(x, 0.7, { training: false });
    expect(dev.exec.pendingCount).toBe(before);
    expect(Array.from(await y.toArray())).toEqual([1, -2, 3]);
    expect(Array.from(await z.toArray())).toEqual([1, -2, 3]);
    y.backward(dev.tensor([4, 5, 6]));
    expect(Array.from(await x.grad!.toArray())).toEqual([4, 5, 6]);
    y.dispose(); // a view: disposing it leaves x alive
    expect(Array.from(await x.toArray())).toEqual([1, -2, 3]);
  });

  it('no grad: nothing recorded', async () => {
    const x = dev.ones([10], { requiresGrad: true });
    const y = noGrad(() => dropout(x, 0.5, { seed: 3 }));
    expect(y.requiresGrad).toBe(false);
    expectClose(await toArr(y), dropoutRef({ shape: [10], data: new Float64Array(10).fill(1) }, 0.5, 3), { atol: 0, rtol: 0 }, 'noGrad dropout');
  });

  it('bad inputs name the op and the argument', () => {
    const x = dev.ones([4]);
    expect(() => dropout(x, 1)).toThrow(/dropout: p must be in \[0, 1\), got 1 \(x \[4\]\)/);
    expect(() => dropout(x, -0.1)).toThrow(/dropout: p must be in \[0, 1\), got -0.1/);
    expect(() => dropout(x, Number.NaN)).toThrow(/dropout: p must be in \[0, 1\), got NaN/);
    expect(() => dropout(x, 0.5, { seed: -1 })).toThrow(/dropout: seed must be a non-negative integer/);
    expect(() => dropout(x, 0.5, { seed: 1.5 })).toThrow(/dropout: seed must be a non-negative integer/);
    expect(() => dropout(dev.tensor(Int32Array.from([1]), [1], { dtype: 'int32' }), 0.5)).toThrow(/dropout: x.* must be float32, got int32/);
    expect(() => dropout(null as unknown as Tensor, 0.5)).toThrow(/dropout: x must be a Tensor/);
  });
});

describe('nn.Dropout', () => {
  it('active only in training; each call draws a new mask; a seeded module is reproducible', async () => {
    const x = dev.ones([2048]);
    const a = new Dropout(dev, { p: 0.5, seed: 10 });
    const b = new Dropout(dev, { p: 0.5, seed: 10 });
    const a1 = await a.forward(x).toArray();
    const a2 = await a.forward(x).toArray();
    const b1 = await b.forward(x).toArray();
    expect(Array.from(b1)).toEqual(Array.from(a1));
    expect(Array.from(a2)).not.toEqual(Array.from(a1));
    expect(Array.from(a1)).toEqual(Array.from(await dropout(x, 0.5, { seed: 10 }).toArray()));
    a.eval();
    expect(a.forward(x)).toBe(x);
    a.train();
    expect(a.forward(x)).not.toBe(x);
    expect(a.parameters()).toEqual([]);
  });

  it('bad options name nn.Dropout', () => {
    expect(() => new Dropout(dev, { p: 1 })).toThrow(/nn.Dropout: p must be in \[0, 1\), got 1/);
    expect(() => new Dropout(dev, { p: 0.1, seed: -3 })).toThrow(/nn.Dropout: seed must be a non-negative integer/);
  });
});
