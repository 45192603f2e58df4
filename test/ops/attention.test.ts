// scaledDotProductAttention: the fused kernels against the float64 reference (forward and all
// gradients), the float64 reference against central differences, the composite oracle built from
// core ops (matmul → scale → mask → softmax → matmul), gradcheck on the GPU, masking edge cases
// (fully masked rows, keyLengths 0 and full, causal with Nq != Nk), dropout statistics and exact
// forward/backward consistency, memory (no Nq x Nk buffer), and every bad-input error.
//
// Tolerances (f32 vs float64): a score is a D-term dot product, an output a Nk-term weighted sum,
// and gradients chain three such sums; f32 rounding grows like sqrt(terms)·2^-24 relative to the
// magnitudes (here O(1) inputs, D <= 128, Nk <= 80: about 1e-6 absolute), plus exp/log at ~3 ULP.
// FWD allows 10x that; BWD 30x (dK/dS sum over queries of products of recomputed P and dP).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, type Tensor, ShapeError, gradcheck, noGrad } from '../../src/index.js';
import {
  scaledDotProductAttention, attentionRef, attentionRefBackward, attentionConfig, attentionPlan,
  attentionDropoutHash, dropoutThreshold, type AttentionRefOptions,
} from '../../src/ops/attention.js';
import { makeDevice, rng, randArr, toTensor, toArr, expectClose, refGradcheck, arr, type Arr, type Tol } from '../helpers.js';
import { attentionComposite, prepareAttentionComposite } from '../composites/attention_composite.js';

const FWD: Tol = { atol: 1e-5, rtol: 1e-4 };
const BWD: Tol = { atol: 3e-5, rtol: 3e-4 };
const OP = 'scaledDotProductAttention';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

interface Case extends AttentionRefOptions {
  name: string;
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  D: number;
  /** the mask's shape when `mask` is generated here: bool (random, with fully masked rows) or float */
  maskShape?: number[];
  seedData?: number;
}

/** Random inputs (and mask) of a case, deterministic in its seed. */
function inputs(c: Case): { q: Arr; k: Arr; v: Arr; g: Arr; opts: AttentionRefOptions } {
  const rnd = rng(c.seedData ?? 11);
  const q = randArr([c.B, c.H, c.Nq, c.D], rnd);
  const k = randArr([c.B, c.H, c.Nk, c.D], rnd);
  const v = randArr([c.B, c.H, c.Nk, c.D], rnd);
  const g = randArr([c.B, c.H, c.Nq, c.D], rnd);
  const opts: AttentionRefOptions = { ...c };
  if (c.maskShape) {
    const m = randArr(c.maskShape, rnd, -2, 2);
    if (c.maskKind === 'bool') {
      m.data.forEach((x, i) => (m.data[i] = x > -0.6 ? 1 : 0));
      // fully mask the first row (of each broadcast (b, h) slice)
      const nk = c.maskShape[c.maskShape.length - 1]!;
      if (c.maskShape.length >= 2 && c.maskShape[c.maskShape.length - 2]! > 1) {
        for (let s = 0; s < m.data.length; s += nk * c.maskShape[c.maskShape.length - 2]!) for (let j = 0; j < nk; j++) m.data[s + j] = 0;
      }
    }
    opts.mask = m;
  }
  return { q, k, v, g, opts };
}

function maskTensor(opts: AttentionRefOptions, requiresGrad: boolean): Tensor | null {
  if (!opts.mask) return null;
  if (opts.maskKind === 'bool') return dev.tensor(Uint8Array.from(opts.mask.data), opts.mask.shape);
  return toTensor(dev, opts.mask, requiresGrad);
}

function gpuOpts(opts: AttentionRefOptions, mask: Tensor | null) {
  return {
    mask, isCausal: opts.isCausal, scale: opts.scale, dropoutP: opts.dropoutP, seed: opts.seed,
    keyLengths: opts.keyLengths ? Int32Array.from(opts.keyLengths) : null,
  };
}

/** GPU forward and every gradient vs the float64 reference. */
async function vsReference(c: Case): Promise<void> {
  const { q, k, v, g, opts } = inputs(c);
  const floatMask = !!opts.mask && opts.maskKind !== 'bool';
  const tq = toTensor(dev, q, true);
  const tk = toTensor(dev, k, true);
  const tv = toTensor(dev, v, true);
  const tm = maskTensor(opts, floatMask);
  const out = scaledDotProductAttention(tq, tk, tv, gpuOpts(opts, tm));
  expectClose(await toArr(out), attentionRef(q, k, v, opts), FWD, `${c.name}: forward`);
  const tg = toTensor(dev, g);
  out.backward(tg);
  const [dq, dk, dv, dm] = attentionRefBackward(g, q, k, v, opts);
  expectClose(await toArr(tq.grad!), dq, BWD, `${c.name}: dq`);
  expectClose(await toArr(tk.grad!), dk, BWD, `${c.name}: dk`);
  expectClose(await toArr(tv.grad!), dv, BWD, `${c.name}: dv`);
  if (floatMask) expectClose(await toArr(tm!.grad!), dm!, BWD, `${c.name}: dmask`);
  for (const t of [tq, tk, tv, tm, out, tg]) {
    t?.grad?.dispose();
    t?.dispose();
  }
}

// Shapes that are not multiples of the 32-row teams / 32-row tiles, heads 1..8, Nq != Nk.
const CASES: Case[] = [
  { name: 'plain D=32 H=3 Nq>Nk', B: 2, H: 3, Nq: 37, Nk: 29, D: 32 },
  { name: 'plain D=16 H=8 Nq<Nk', B: 1, H: 8, Nq: 9, Nk: 41, D: 16 },
  { name: 'causal Nq=Nk D=64', B: 2, H: 1, Nq: 70, Nk: 70, D: 64, isCausal: true },
  { name: 'causal Nq>Nk', B: 1, H: 2, Nq: 40, Nk: 20, D: 16, isCausal: true },
  { name: 'causal Nq<Nk', B: 1, H: 2, Nq: 20, Nk: 45, D: 16, isCausal: true },
  { name: 'keyLengths 0/full/partial', B: 3, H: 2, Nq: 20, Nk: 33, D: 64, keyLengths: [0, 33, 7] },
  { name: 'bool mask [Nq,Nk] with masked rows', B: 2, H: 2, Nq: 20, Nk: 33, D: 20, maskKind: 'bool', maskShape: [20, 33] },
  { name: 'bool mask [B,1,Nq,Nk] + causal', B: 2, H: 3, Nq: 35, Nk: 35, D: 32, maskKind: 'bool', maskShape: [2, 1, 35, 35], isCausal: true },
  { name: 'bool mask [B,1,1,Nk]', B: 2, H: 2, Nq: 12, Nk: 50, D: 16, maskKind: 'bool', maskShape: [2, 1, 1, 50] },
  { name: 'float mask [H,Nq,Nk] (grad) D=128', B: 2, H: 2, Nq: 20, Nk: 33, D: 128, maskKind: 'float', maskShape: [2, 20, 33] },
  { name: 'float mask [B,1,1,Nk] + causal + keyLengths + dropout', B: 2, H: 2, Nq: 21, Nk: 33, D: 16, maskKind: 'float', maskShape: [2, 1, 1, 33], isCausal: true, keyLengths: [5, 33], dropoutP: 0.25, seed: 9 },
  { name: 'dropout 0.3 scale 0.5', B: 2, H: 2, Nq: 20, Nk: 33, D: 16, dropoutP: 0.3, seed: 123, scale: 0.5 },
];

describe('scaledDotProductAttention: float64 reference', () => {
  it('reference backward matches central differences (masks, causal, keyLengths, dropout)', () => {
    const cases: Case[] = [
      { name: 'ref plain', B: 1, H: 2, Nq: 3, Nk: 4, D: 3 },
      { name: 'ref causal+kl', B: 2, H: 1, Nq: 4, Nk: 3, D: 2, isCausal: true, keyLengths: [2, 0] },
      { name: 'ref bool', B: 1, H: 2, Nq: 3, Nk: 5, D: 2, maskKind: 'bool', maskShape: [3, 5] },
      { name: 'ref float', B: 2, H: 2, Nq: 3, Nk: 4, D: 2, maskKind: 'float', maskShape: [2, 1, 3, 4] },
      { name: 'ref dropout', B: 1, H: 2, Nq: 3, Nk: 4, D: 2, dropoutP: 0.4, seed: 3 },
    ];
    for (const c of cases) {
      const { q, k, v, opts } = inputs(c);
      const floatMask = !!opts.mask && opts.maskKind !== 'bool';
      const xs = floatMask ? [q, k, v, opts.mask!] : [q, k, v];
      const ref = (...a: Arr[]): Arr => attentionRef(a[0]!, a[1]!, a[2]!, { ...opts, mask: floatMask ? a[3]! : opts.mask });
      const refB = (gr: Arr, ...a: Arr[]) => {
        const r = attentionRefBackward(gr, a[0]!, a[1]!, a[2]!, { ...opts, mask: floatMask ? a[3]! : opts.mask });
        return floatMask ? r : r.slice(0, 3);
      };
      const R = randArr([c.B, c.H, c.Nq, c.D], rng(5));
      refGradcheck(ref, refB, xs, R, xs.map((_, i) => i), c.name);
    }
  });

  it('a fully masked row has zero output and zero gradients in the reference', () => {
    const q = randArr([1, 1, 2, 3], rng(1));
    const k = randArr([1, 1, 4, 3], rng(2));
    const mask = arr([2, 4], [0, 0, 0, 0, 1, 0, 1, 1]);
    const o = attentionRef(q, k, k, { mask, maskKind: 'bool' });
    expect(Array.from(o.data.slice(0, 3))).toEqual([0, 0, 0]);
    const [dq] = attentionRefBackward(randArr([1, 1, 2, 3], rng(3)), q, k, k, { mask, maskKind: 'bool' });
    expect(Array.from(dq.data.slice(0, 3))).toEqual([0, 0, 0]);
  });
});

describe('scaledDotProductAttention: fused kernels vs float64 reference', () => {
  it('uses the subgroup fast path for D % 4 == 0 in [16, 128] and the portable kernels otherwise', () => {
    const sg = dev.features.has('subgroups');
    expect(attentionPlan(dev, 32).fast).toBe(sg);
    expect(attentionPlan(dev, 128).fast).toBe(sg);
    for (const D of [4, 5, 12, 33, 130]) expect(attentionPlan(dev, D).fast).toBe(false);
  });

  for (const c of CASES) {
    it(c.name, async () => {
      await vsReference(c);
    });
  }

  it('portable kernels: head dims 5, 33 (five 8-column chunks), 4, and a fast-path shape forced onto them', async () => {
    await vsReference({ name: 'generic D=5 causal', B: 2, H: 3, Nq: 13, Nk: 9, D: 5, isCausal: true });
    await vsReference({ name: 'generic D=33 bool+kl', B: 2, H: 1, Nq: 19, Nk: 23, D: 33, maskKind: 'bool', maskShape: [2, 1, 19, 23], keyLengths: [23, 4] });
    await vsReference({ name: 'generic D=4 float grad + dropout', B: 1, H: 2, Nq: 7, Nk: 70, D: 4, maskKind: 'float', maskShape: [7, 70], dropoutP: 0.2, seed: 1 });
    attentionConfig.variant = 'generic';
    try {
      await vsReference({ name: 'generic forced D=32', B: 2, H: 2, Nq: 37, Nk: 29, D: 32, isCausal: true, keyLengths: [29, 10] });
    } finally {
      attentionConfig.variant = 'auto';
    }
  });

  it('accumulators in the output buffers instead of workgroup memory (the GPU layout)', async () => {
    // same pipelines, the F_ACC_SHARED flag off: O, dQ, dK, dV are read-modified-written in storage
    attentionConfig.sharedAcc = false;
    try {
      await vsReference({ name: 'storage accumulators', B: 2, H: 2, Nq: 150, Nk: 37, D: 20, isCausal: true, maskKind: 'float', maskShape: [2, 1, 150, 37] });
      await vsReference({ name: 'storage accumulators, no keys for batch 1', B: 2, H: 1, Nq: 9, Nk: 40, D: 128, keyLengths: [40, 0], dropoutP: 0.1, seed: 5 });
    } finally {
      attentionConfig.sharedAcc = 'auto';
    }
  });

  it('keyLengths as an int32 tensor (values clamped to [0, Nk] on the GPU)', async () => {
    const { q, k, v } = inputs({ name: '', B: 3, H: 1, Nq: 6, Nk: 10, D: 16 });
    const kl = dev.tensor(Int32Array.from([-4, 99, 3]), [3]);
    const out = scaledDotProductAttention(toTensor(dev, q), toTensor(dev, k), toTensor(dev, v), { keyLengths: kl });
    expectClose(await toArr(out), attentionRef(q, k, v, { keyLengths: [0, 10, 3] }), FWD, 'keyLengths tensor');
  });
});

describe('scaledDotProductAttention: masking edge cases', () => {
  it('fully masked rows (bool row, keyLengths 0, -inf float row, Nk = 0) give zeros and zero grads, never NaN', async () => {
    for (const D of [16, 5]) {
      const rnd = rng(D);
      const q = toTensor(dev, randArr([2, 1, 3, D], rnd), true);
      const k = toTensor(dev, randArr([2, 1, 4, D], rnd), true);
      const v = toTensor(dev, randArr([2, 1, 4, D], rnd), true);
      const fm = new Float32Array(2 * 3 * 4).fill(0.5);
      fm.fill(-Infinity, 4, 8); // b=0, row 1 fully masked by -inf
      const mask = dev.tensor(fm, [2, 1, 3, 4], { requiresGrad: true });
      const out = scaledDotProductAttention(q, k, v, { mask, keyLengths: [4, 0] }); // b=1: every row masked
      const o = await out.toArray();
      const row = (b: number, i: number) => Array.from(o.slice((b * 3 + i) * D, (b * 3 + i + 1) * D));
      expect(row(0, 1).every((x) => x === 0), 'row masked by -inf').toBe(true);
      for (let i = 0; i < 3; i++) expect(row(1, i).every((x) => x === 0), 'keyLengths 0').toBe(true);
      expect(row(0, 0).some((x) => x !== 0)).toBe(true);
      out.backward(dev.ones(out.shape as number[]));
      for (const t of [q, k, v, mask]) expect((await t.grad!.toArray()).every(Number.isFinite)).toBe(true);
      const gq = await q.grad!.toArray();
      expect(Array.from(gq.slice(D, 2 * D)).every((x) => x === 0)).toBe(true);
      expect(Array.from(gq.slice(3 * D)).every((x) => x === 0)).toBe(true);
      const gv = await v.grad!.toArray();
      expect(Array.from(gv.slice(4 * D)).every((x) => x === 0), 'no query sees batch 1 keys').toBe(true);
      const gm = await mask.grad!.toArray();
      expect(Array.from(gm.slice(4, 8)).every((x) => x === 0)).toBe(true);
    }
    // Nk = 0: no keys at all
    const q = dev.randn([1, 2, 3, 16], { requiresGrad: true });
    const e = dev.zeros([1, 2, 0, 16], { requiresGrad: true });
    const out = scaledDotProductAttention(q, e, e);
    expect(Array.from(await out.toArray()).every((x) => x === 0)).toBe(true);
    out.backward(dev.ones([1, 2, 3, 16]));
    expect(Array.from(await q.grad!.toArray()).every((x) => x === 0)).toBe(true);
  });

  it('empty query/batch dims give empty outputs', async () => {
    const out = scaledDotProductAttention(dev.zeros([2, 1, 0, 8]), dev.randn([2, 1, 5, 8]), dev.randn([2, 1, 5, 8]));
    expect(out.shape).toEqual([2, 1, 0, 8]);
    expect(scaledDotProductAttention(dev.zeros([0, 2, 3, 8]), dev.zeros([0, 2, 3, 8]), dev.zeros([0, 2, 3, 8])).shape).toEqual([0, 2, 3, 8]);
  });
});

describe('scaledDotProductAttention: composite oracle (matmul → scale → mask → softmax → matmul)', () => {
  const cases: Case[] = [
    { name: 'causal Nq=Nk', B: 2, H: 2, Nq: 33, Nk: 33, D: 32, isCausal: true },
    { name: 'causal Nq>Nk + keyLengths', B: 2, H: 1, Nq: 40, Nk: 25, D: 16, isCausal: true, keyLengths: [25, 0] },
    { name: 'bool mask with masked rows', B: 1, H: 3, Nq: 17, Nk: 40, D: 20, maskKind: 'bool', maskShape: [17, 40] },
    { name: 'float bias [H,Nq,Nk] with grad + dropout', B: 2, H: 2, Nq: 24, Nk: 19, D: 64, maskKind: 'float', maskShape: [2, 24, 19], dropoutP: 0.2, seed: 77 },
    { name: 'generic D=6 float bias [B,1,1,Nk]', B: 2, H: 2, Nq: 9, Nk: 11, D: 6, maskKind: 'float', maskShape: [2, 1, 1, 11] },
  ];
  for (const c of cases) {
    it(c.name, async () => {
      const { q, k, v, g, opts } = inputs(c);
      const floatMask = !!opts.mask && opts.maskKind !== 'bool';
      const consts = prepareAttentionComposite(dev, {
        B: c.B, H: c.H, Nq: c.Nq, Nk: c.Nk, isCausal: c.isCausal, keyLengths: c.keyLengths,
        boolMask: opts.maskKind === 'bool' && opts.mask ? { data: opts.mask.data, shape: opts.mask.shape } : null,
        dropoutP: c.dropoutP, seed: c.seed,
      });
      const run = (fused: boolean) => {
        const ts = [q, k, v].map((a) => toTensor(dev, a, true));
        const tm = maskTensor(opts, floatMask);
        const out = fused
          ? scaledDotProductAttention(ts[0]!, ts[1]!, ts[2]!, gpuOpts(opts, tm))
          : attentionComposite(ts[0]!, ts[1]!, ts[2]!, consts, { mask: floatMask ? tm : null });
        out.backward(toTensor(dev, g));
        return { out, grads: [...ts, ...(floatMask ? [tm!] : [])].map((t) => t.grad!) };
      };
      const f = run(true);
      const m = run(false);
      // both sides are f32: the composite's rounding (separate passes) adds to the fused one's
      expectClose(await toArr(f.out), await toArr(m.out), FWD, `${c.name}: forward`);
      for (let i = 0; i < f.grads.length; i++) {
        expectClose(await toArr(f.grads[i]!), await toArr(m.grads[i]!), BWD, `${c.name}: grad ${['q', 'k', 'v', 'mask'][i]}`);
      }
      consts.dispose();
    });
  }
});

describe('scaledDotProductAttention: gradcheck (f32 central differences on the GPU)', () => {
  // gradcheck defaults: eps 1e-3, atol 1e-3, rtol 1e-2 — the f32 central difference of L = Σ out·R
  // carries ~2^-24·|L|/eps ≈ 1e-4 rounding and O(eps²) truncation, well inside them.
  const check = async (c: Case, wantMask: boolean) => {
    const { q, k, v, opts } = inputs(c);
    const xs = [q, k, v, ...(wantMask ? [opts.mask!] : [])].map((a) => toTensor(dev, a, true));
    const bool = opts.maskKind === 'bool' ? maskTensor(opts, false) : null;
    const fn = (...t: Tensor[]) => scaledDotProductAttention(t[0]!, t[1]!, t[2]!, gpuOpts(opts, wantMask ? t[3]! : bool));
    const r = await gradcheck(fn, xs);
    expect(r.ok, `${c.name}: worst ${JSON.stringify(r.worst)}`).toBe(true);
    xs.forEach((t) => t.dispose());
    bool?.dispose();
  };
  it('portable kernels: B=1 H=2 N=5 D=4, causal + bool mask', async () => {
    await check({ name: 'gc generic', B: 1, H: 2, Nq: 5, Nk: 5, D: 4, isCausal: true, maskKind: 'bool', maskShape: [1, 2, 5, 5], seedData: 3 }, false);
  });
  it('fast path: D=16 N=9, keyLengths, with q, k, v and a float mask', async () => {
    await check({ name: 'gc fast', B: 2, H: 1, Nq: 9, Nk: 7, D: 16, keyLengths: [7, 4], maskKind: 'float', maskShape: [9, 7] }, true);
  });
  it('dropout with a fixed seed (forward and backward see one keep-mask)', async () => {
    await check({ name: 'gc dropout', B: 1, H: 2, Nq: 5, Nk: 6, D: 16, dropoutP: 0.3, seed: 42 }, false);
  });
});

describe('scaledDotProductAttention: dropout', () => {
  it('keeps 1 - p of the weights, matches the reference hash exactly, is exact no-dropout at p = 0', async () => {
    // q = 0 gives uniform attention, and v = identity reads out P~ = keep / (Nk (1 - p)) itself
    const [B, H, Nq, Nk] = [2, 4, 512, 16];
    const p = 0.3;
    const q = dev.zeros([B, H, Nq, 16]);
    const eye = new Float32Array(B * H * Nk * 16);
    for (let r = 0; r < B * H * Nk; r++) eye[r * 16 + (r % Nk)] = 1;
    const v = dev.tensor(eye, [B, H, Nk, 16]);
    const out = await scaledDotProductAttention(q, v, v, { dropoutP: p, seed: 7 }).toArray();
    let kept = 0;
    const thr = dropoutThreshold(p);
    for (let bh = 0; bh < B * H; bh++) {
      for (let i = 0; i < Nq; i++) {
        for (let j = 0; j < Nk; j++) {
          const x = out[(bh * Nq + i) * 16 + j]! * Nk * (1 - p);
          const keep = attentionDropoutHash(7, bh, i, j) >= thr;
          expect(Math.abs(x - (keep ? 1 : 0)) < 1e-5, `keep-mask (${bh},${i},${j})`).toBe(true);
          kept += keep ? 1 : 0;
        }
      }
    }
    // binomial: n = 65536 draws, std = sqrt(p(1-p)/n) = 0.0018; 5 std
    const n = B * H * Nq * Nk;
    expect(Math.abs(kept / n - (1 - p))).toBeLessThan(5 * Math.sqrt(p * (1 - p) / n));
    // expectation: averaged over rows, the dropped-out weights are the undropped ones (1/Nk each)
    const colMean = new Float64Array(Nk);
    for (let r = 0; r < B * H * Nq; r++) for (let j = 0; j < Nk; j++) colMean[j]! += out[r * 16 + j]! / (B * H * Nq);
    const sd = Math.sqrt(p / (1 - p) / (B * H * Nq)) / Nk; // std of a column mean of keep/((1-p)Nk)
    for (let j = 0; j < Nk; j++) expect(Math.abs(colMean[j]! - 1 / Nk)).toBeLessThan(5 * sd);
    // another seed gives another mask; the same seed the same output; p = 0 is no dropout, exactly
    const again = await scaledDotProductAttention(q, v, v, { dropoutP: p, seed: 7 }).toArray();
    expect(Array.from(again)).toEqual(Array.from(out));
    const other = await scaledDotProductAttention(q, v, v, { dropoutP: p, seed: 8 }).toArray();
    expect(Array.from(other)).not.toEqual(Array.from(out));
    const rq = dev.randn([B, H, 8, 16], { seed: 1 });
    const a = await scaledDotProductAttention(rq, v, v, { dropoutP: 0, seed: 7 }).toArray();
    const b = await scaledDotProductAttention(rq, v, v).toArray();
    expect(Array.from(a)).toEqual(Array.from(b));
  });
});

describe('scaledDotProductAttention: memory', () => {
  it('forward + backward at N=2048 allocates no Nq x Nk buffer', async () => {
    const [B, H, N, D] = [1, 1, 2048, 16];
    const q = dev.randn([B, H, N, D], { requiresGrad: true });
    const k = dev.randn([B, H, N, D], { requiresGrad: true });
    const v = dev.randn([B, H, N, D], { requiresGrad: true });
    const g = dev.randn([B, H, N, D]);
    await dev.sync();
    const base = dev.memory().liveBytes;
    dev.resetPeak();
    const out = scaledDotProductAttention(q, k, v, { isCausal: true });
    out.backward(g);
    await q.grad!.toArray();
    const extra = dev.memory().peakBytes - base;
    // out, lse, (lse, delta) and the three grads: ~4.3 N·D floats; one score matrix is N² floats
    expect(extra).toBeLessThan(8 * N * D * 4);
    expect(extra).toBeLessThan((N * N * 4) / 16);
    for (const t of [q, k, v]) expect((await t.grad!.toArray()).every(Number.isFinite)).toBe(true);
  });
});

describe('scaledDotProductAttention: bad input', () => {
  const t = (shape: number[]) => dev.zeros(shape);
  const expectErr = (fn: () => unknown, ...parts: string[]) => {
    let err: unknown = null;
    try {
      noGrad(fn);
    } catch (e) {
      err = e;
    }
    expect(err, `expected a ShapeError mentioning ${parts.join(', ')}`).toBeInstanceOf(ShapeError);
    const msg = (err as Error).message;
    expect(msg).toContain(OP);
    for (const p of parts) expect(msg).toContain(p);
  };
  const q = () => t([2, 3, 5, 8]);
  const kv = () => t([2, 3, 7, 8]);
  it('rank != 4', () => expectErr(() => scaledDotProductAttention(t([3, 5, 8]), kv(), kv()), 'q', '[3, 5, 8]'));
  it('head dim mismatch', () => expectErr(() => scaledDotProductAttention(q(), t([2, 3, 7, 6]), kv()), 'head dim', '[2, 3, 7, 6]'));
  it('k/v length mismatch', () => expectErr(() => scaledDotProductAttention(q(), kv(), t([2, 3, 6, 8])), 'k', 'v', '[2, 3, 6, 8]'));
  it('batch/head mismatch', () => expectErr(() => scaledDotProductAttention(q(), t([2, 4, 7, 8]), t([2, 4, 7, 8])), 'batch/head', '[2, 4, 7, 8]'));
  it('non-broadcastable mask', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { mask: t([5, 6]) }), 'mask', '[5, 6]', '[2, 3, 5, 7]'));
  it('mask of the wrong dtype', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { mask: dev.tensor(Int32Array.from([1]), [1]) }), 'mask', 'int32'));
  it('keyLengths of the wrong length', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { keyLengths: Int32Array.from([1, 2, 3]) }), 'keyLengths', 'length'));
  it('keyLengths out of range', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { keyLengths: [3, 8] }), 'keyLengths[1] = 8', '[0, Nk = 7]'));
  it('keyLengths tensor of the wrong dtype', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { keyLengths: t([2]) }), 'keyLengths', 'int32'));
  it('dropoutP outside [0, 1)', () => {
    expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { dropoutP: 1 }), 'dropoutP', '[0, 1)');
    expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { dropoutP: -0.1 }), 'dropoutP');
  });
  it('non-finite scale', () => expectErr(() => scaledDotProductAttention(q(), kv(), kv(), { scale: NaN }), 'scale', 'NaN'));
  it('a disposed or non-float input', () => {
    const d = q();
    d.dispose();
    expectErr(() => scaledDotProductAttention(d, kv(), kv()), 'q', 'dispose');
    expectErr(() => scaledDotProductAttention(q(), dev.tensor(Int32Array.from(new Array(2 * 3 * 7 * 8).fill(0)), [2, 3, 7, 8]), kv()), 'k', 'float32');
  });
});
