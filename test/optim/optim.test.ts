import { describe, it, expect, beforeAll, afterAll, afterEach } from 'vitest';
import { type Device, Tensor, keep } from '../../src/index.js';
import { SGD, type SGDOptions } from '../../src/optim/sgd.js';
import { Adam, AdamW, type AdamOptions, setArenaCapacityForTesting } from '../../src/optim/adam.js';
import { clipGradNorm } from '../../src/optim/clip.js';
import { StepLR, WarmupCosineLR, LambdaLR } from '../../src/optim/schedule.js';
import { makeDevice, rng } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());
afterEach(() => setArenaCapacityForTesting(null));

const U = 2 ** -24;
// 6 parameters (two dispatches of 4 + 2), sizes off every workgroup multiple, one of size 1
const SHAPES = [[37], [1], [16, 17], [300], [3, 3, 3], [1000]];
const STEPS = 5;
/** at step 3 parameter 1 has no gradient: it is skipped and its own step count lags (as PyTorch) */
const SKIP = { step: 3, param: 1 };

function f32Vals(n: number, rnd: () => number, scale = 1): Float64Array {
  return Float64Array.from({ length: n }, () => Math.fround(scale * (rnd() * 2 - 1)));
}

const size = (s: number[]): number => s.reduce((a, b) => a * b, 1);

interface Problem {
  p0: Float64Array[];
  /** grads[step][param] (null: no gradient that step) */
  grads: (Float64Array | null)[][];
}

function problem(seed: number): Problem {
  const rnd = rng(seed);
  const p0 = SHAPES.map((s) => f32Vals(size(s), rnd));
  const grads = Array.from({ length: STEPS }, (_, k) =>
    SHAPES.map((s, i) => (k + 1 === SKIP.step && i === SKIP.param ? null : f32Vals(size(s), rnd))));
  return { p0, grads };
}

function makeParams(pr: Problem): Tensor[] {
  return pr.p0.map((v, i) => keep(dev.tensor(Float32Array.from(v), SHAPES[i]!, { requiresGrad: true })));
}

function setGrads(ps: Tensor[], gs: (Float64Array | null)[]): void {
  ps.forEach((p, i) => {
    p.grad?.dispose();
    const g = gs[i];
    p.grad = g ? keep(dev.tensor(Float32Array.from(g), p.shape)) : null;
  });
}

// ---- float64 references (PyTorch's update rules, written out) ------------------------------------

function sgdRef(pr: Problem, o: Required<SGDOptions>): { p: Float64Array[]; buf: Float64Array[] } {
  const p = pr.p0.map((v) => v.slice());
  const buf = pr.p0.map((v) => new Float64Array(v.length));
  const started = pr.p0.map(() => false);
  for (const gs of pr.grads) {
    gs.forEach((g0, i) => {
      if (!g0) return;
      const pi = p[i]!;
      const bi = buf[i]!;
      for (let j = 0; j < pi.length; j++) {
        let g = g0[j]! + o.weightDecay * pi[j]!;
        if (o.momentum !== 0) {
          bi[j] = started[i] ? o.momentum * bi[j]! + (1 - o.dampening) * g : g;
          g = o.nesterov ? g + o.momentum * bi[j]! : bi[j]!;
        }
        pi[j] = pi[j]! - o.lr * g;
      }
      started[i] = true;
    });
  }
  return { p, buf };
}

function adamRef(pr: Problem, o: Required<AdamOptions>, decoupled: boolean): { p: Float64Array[]; m: Float64Array[]; v: Float64Array[]; t: number[] } {
  const p = pr.p0.map((x) => x.slice());
  const m = pr.p0.map((x) => new Float64Array(x.length));
  const v = pr.p0.map((x) => new Float64Array(x.length));
  const t = pr.p0.map(() => 0);
  const [b1, b2] = o.betas;
  for (const gs of pr.grads) {
    gs.forEach((g0, i) => {
      if (!g0) return;
      const ti = ++t[i]!;
      const pi = p[i]!;
      for (let j = 0; j < pi.length; j++) {
        let g = g0[j]!;
        if (decoupled) pi[j] = pi[j]! * (1 - o.lr * o.weightDecay);
        else g += o.weightDecay * pi[j]!;
        m[i]![j] = b1 * m[i]![j]! + (1 - b1) * g;
        v[i]![j] = b2 * v[i]![j]! + (1 - b2) * g * g;
        const mhat = m[i]![j]! / (1 - b1 ** ti);
        const vhat = v[i]![j]! / (1 - b2 ** ti);
        pi[j] = pi[j]! - (o.lr * mhat) / (Math.sqrt(vhat) + o.eps);
      }
    });
  }
  return { p, m, v, t };
}

/** GPU dispatches recorded by fn (flushed before and after; copies and clears do not count). */
async function dispatchesOf(fn: () => void): Promise<number> {
  await dev.flush();
  const before = dev.exec.stats.dispatches;
  fn();
  await dev.flush();
  return dev.exec.stats.dispatches - before;
}

async function expectNear(t: Tensor, ref: Float64Array, atol: number, what: string): Promise<void> {
  const got = await t.toArray();
  let worst = 0;
  let at = -1;
  for (let j = 0; j < ref.length; j++) {
    const e = Math.abs(got[j]! - ref[j]!);
    if (!(e <= worst)) {
      worst = e;
      at = j;
    }
  }
  if (!(worst <= atol)) expect.fail(`${what}: element ${at} is ${got[at]} but the float64 reference is ${ref[at]} (|err| ${worst} > atol ${atol})`);
}

/**
 * Tolerance of 5 f32 steps. Every quantity an update touches is bounded by M (|p| <= 1 + 5·lr·|u|,
 * momentum buffers <= 1/(1 - momentum), Adam's m/sqrt(v) <= 1/sqrt(1-β2)·..., all <= ~4 here).
 * One step rounds p, the state and the update at most ~6 times, each within 2^-24·M, and errors of
 * earlier steps carry over (multiplied by at most 1 + lr + momentum). Over 5 steps that is
 * <= 5·2·6·2^-24·M ≈ 60·2^-24·M; we use atol = 64·2^-24·M with M = 4: 1.5e-5 absolute.
 * (A single wrong term — a missing bias correction, dampening, the first-step rule — moves p by
 * >= lr·1e-2 ≈ 1e-3, far outside.)
 */
const ATOL = 64 * U * 4;

describe('SGD vs float64 reference over 5 steps', () => {
  const cases: SGDOptions[] = [
    { lr: 0.1 },
    { lr: 0.1, weightDecay: 0.05 },
    { lr: 0.1, momentum: 0.9 },
    { lr: 0.05, momentum: 0.9, dampening: 0.3, weightDecay: 0.01 },
    { lr: 0.05, momentum: 0.8, nesterov: true },
    { lr: 0.05, momentum: 0.5, nesterov: true, weightDecay: 0.1 },
  ];
  for (const c of cases) {
    it(JSON.stringify(c), async () => {
      const o = { lr: 1e-3, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, ...c };
      const pr = problem(11);
      const ps = makeParams(pr);
      const opt = new SGD(ps, c);
      for (const gs of pr.grads) {
        setGrads(ps, gs);
        // multi-tensor: one dispatch per 4 parameters with a gradient, not one per tensor
        const withGrad = gs.filter((g) => g).length;
        expect(await dispatchesOf(() => opt.step())).toBe(Math.ceil(withGrad / 4));
      }
      const ref = sgdRef(pr, o);
      for (let i = 0; i < ps.length; i++) await expectNear(ps[i]!, ref.p[i]!, ATOL, `param ${i}`);
      const sd = opt.stateDict();
      expect(sd.step).toBe(STEPS);
      expect(sd.paramSteps).toEqual(SHAPES.map((_, i) => (i === SKIP.param ? STEPS - 1 : STEPS)));
      if (o.momentum) {
        expect(Object.keys(sd.tensors).sort()).toEqual(SHAPES.map((_, i) => `${i}.momentum_buffer`).sort());
        for (let i = 0; i < ps.length; i++) await expectNear(sd.tensors[`${i}.momentum_buffer`]!, ref.buf[i]!, ATOL, `momentum_buffer ${i}`);
      } else expect(sd.tensors).toEqual({});
    });
  }
});

describe('Adam / AdamW vs float64 reference over 5 steps', () => {
  const cases: { kind: 'Adam' | 'AdamW'; o: AdamOptions }[] = [
    { kind: 'Adam', o: { lr: 0.01 } },
    { kind: 'Adam', o: { lr: 0.01, weightDecay: 0.1 } },
    { kind: 'AdamW', o: { lr: 0.01 } },
    { kind: 'AdamW', o: { lr: 0.02, weightDecay: 0.1, betas: [0.8, 0.95], eps: 1e-6 } },
    { kind: 'AdamW', o: { lr: 0.01, weightDecay: 0, betas: [0, 0.5] } },
  ];
  for (const c of cases) {
    it(`${c.kind} ${JSON.stringify(c.o)}`, async () => {
      const defaults = { lr: 1e-3, betas: [0.9, 0.999] as [number, number], eps: 1e-8, weightDecay: c.kind === 'AdamW' ? 0.01 : 0 };
      const o = { ...defaults, ...c.o } as Required<AdamOptions>;
      const pr = problem(23);
      const ps = makeParams(pr);
      const opt = c.kind === 'Adam' ? new Adam(ps, c.o) : new AdamW(ps, c.o);
      expect(opt.options).toEqual(o);
      for (const gs of pr.grads) {
        setGrads(ps, gs);
        expect(await dispatchesOf(() => opt.step())).toBe(Math.ceil(gs.filter((g) => g).length / 4));
      }
      const ref = adamRef(pr, o, c.kind === 'AdamW');
      for (let i = 0; i < ps.length; i++) await expectNear(ps[i]!, ref.p[i]!, ATOL, `param ${i}`);
      const sd = opt.stateDict();
      expect(sd.paramSteps).toEqual(ref.t);
      for (let i = 0; i < ps.length; i++) {
        await expectNear(sd.tensors[`${i}.exp_avg`]!, ref.m[i]!, ATOL, `exp_avg ${i}`);
        await expectNear(sd.tensors[`${i}.exp_avg_sq`]!, ref.v[i]!, ATOL, `exp_avg_sq ${i}`);
      }
    });
  }

  it('AdamW decay is decoupled: zero gradients still shrink p by (1 - lr·wd) per step, Adam does not move', async () => {
    const a = keep(dev.tensor([1, -2, 4], undefined, { requiresGrad: true }));
    const b = keep(dev.tensor([1, -2, 4], undefined, { requiresGrad: true }));
    const aw = new AdamW([a], { lr: 0.1, weightDecay: 0.5 });
    const ad = new Adam([b], { lr: 0.1, weightDecay: 0 });
    for (let k = 0; k < 3; k++) {
      setGrads([a], [new Float64Array(3)]);
      setGrads([b], [new Float64Array(3)]);
      aw.step();
      ad.step();
    }
    const f = 0.95 ** 3;
    await expectNear(a, Float64Array.from([f, -2 * f, 4 * f]), 4 * 3 * U * 4, 'AdamW decay');
    expect(Array.from(await b.toArray())).toEqual([1, -2, 4]);
  });

  it('parameters spread over several arenas batch per arena (arena capped at 1100 floats)', async () => {
    setArenaCapacityForTesting(1100);
    const pr = problem(31);
    const ps = makeParams(pr);
    const opt = new AdamW(ps, { lr: 0.01, weightDecay: 0.05 });
    for (const gs of pr.grads) {
      setGrads(ps, gs);
      opt.step();
    }
    // sizes 37, 1, 272, 300, 27, 1000 padded to 64-float multiples: [64+64+320+320+64 = 832] [1024]
    expect(opt.arenaCount).toBe(2);
    const ref = adamRef(pr, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.05 }, true);
    for (let i = 0; i < ps.length; i++) await expectNear(ps[i]!, ref.p[i]!, ATOL, `param ${i}`);
  });
});

describe('caller-owned buffers (fromGPUBuffer): nothing past the tensor is written', () => {
  const SENT = [7.5, -3.25, 1e30];
  /** a parameter of n elements in a buffer of `bytes`, the rest filled with sentinels */
  function owned(n: number, bytes: number, vals: Float64Array, requiresGrad: boolean): { t: Tensor; buf: GPUBuffer } {
    const buf = dev.gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    const init = new Float32Array(bytes / 4);
    init.set(Float32Array.from(vals));
    for (let k = n; k < init.length; k++) init[k] = SENT[(k - n) % SENT.length]!;
    dev.gpu.queue.writeBuffer(buf, 0, init);
    return { t: dev.fromGPUBuffer(buf, [n], { requiresGrad }), buf };
  }
  async function tail(buf: GPUBuffer, n: number): Promise<number[]> {
    const all = dev.fromGPUBuffer(buf, [buf.size / 4]);
    const v = Array.from(await all.toArray()).slice(n);
    all.dispose();
    return v;
  }

  // 5 floats in 64 bytes: bound as 2 vec4s, the 3 floats after the tensor must survive the masked
  // last vec4; 5 floats in 28 bytes: no room for a vec4 view, so a padded copy is updated instead
  for (const bytes of [64, 28]) {
    it(`AdamW and clipGradNorm on a 5-element parameter/gradient in a ${bytes}-byte buffer`, async () => {
      const rnd = rng(bytes);
      const n = 5;
      const p0 = f32Vals(n, rnd);
      const gv = f32Vals(n, rnd, 10);
      const p = owned(n, bytes, p0, true);
      const g = owned(n, bytes, gv, false);
      p.t.grad = g.t;
      const norm = clipGradNorm([p.t], 1);
      const ref = Math.sqrt(gv.reduce((a, v) => a + v * v, 0));
      expect(Math.abs((await norm.item()) - ref)).toBeLessThanOrEqual(8 * U * ref);
      const gc = gv.map((v) => v * (1 / (ref + 1e-6)));
      await expectNear(g.t, gc, 16 * U * 10, 'clipped grad');
      const opt = new AdamW([p.t], { lr: 0.01, weightDecay: 0.1 });
      opt.step();
      const want = adamRef({ p0: [p0], grads: [[Float64Array.from(await g.t.toArray())]] }, { lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0.1 }, true);
      await expectNear(p.t, want.p[0]!, ATOL, 'param');
      const sentinels = Array.from({ length: bytes / 4 - n }, (_, k) => Math.fround(SENT[k % SENT.length]!));
      expect(await tail(p.buf, n)).toEqual(sentinels);
      expect(await tail(g.buf, n)).toEqual(sentinels);
      opt.dispose();
    });
  }
});

describe('optimizer checkpoints', () => {
  for (const kind of ['AdamW', 'SGD'] as const) {
    it(`${kind}: stateDict → loadStateDict round trip; the next steps are bit-identical`, async () => {
      const make = (ps: Tensor[]) => (kind === 'AdamW' ? new AdamW(ps, { lr: 0.01 }) : new SGD(ps, { lr: 0.05, momentum: 0.9 }));
      const pr = problem(41);
      const a = makeParams(pr);
      const optA = make(a);
      for (const gs of pr.grads.slice(0, 3)) {
        setGrads(a, gs);
        optA.step();
      }
      const sd = optA.stateDict();
      // a fresh model with A's current weights and a fresh optimizer loaded from the checkpoint
      const b = await Promise.all(a.map(async (p) => keep(dev.tensor(await p.toArray(), p.shape, { requiresGrad: true }))));
      const optB = make(b);
      optB.loadStateDict(sd);
      expect(optB.stepCount).toBe(3);
      expect(optB.paramSteps).toEqual(optA.paramSteps);
      Object.values(sd.tensors).forEach((t) => t.dispose()); // the load copied them
      for (const gs of pr.grads.slice(3)) {
        setGrads(a, gs);
        setGrads(b, gs);
        optA.step();
        optB.step();
      }
      for (let i = 0; i < a.length; i++) expect(Array.from(await b[i]!.toArray())).toEqual(Array.from(await a[i]!.toArray()));
      // a fresh optimizer without the checkpoint diverges (so the state really was restored)
      const c = await Promise.all(pr.p0.map(async (v, i) => keep(dev.tensor(Float32Array.from(v), SHAPES[i]!, { requiresGrad: true }))));
      const optC = make(c);
      setGrads(c, pr.grads[3]!);
      optC.step();
      const cb = await c[0]!.toArray();
      expect(Array.from(cb)).not.toEqual(Array.from(await b[0]!.toArray()));
    });
  }

  it('loadStateDict rejects mismatched checkpoints, naming the key', () => {
    const p = keep(dev.tensor([1, 2, 3], undefined, { requiresGrad: true }));
    const opt = new AdamW([p]);
    expect(() => opt.loadStateDict({ step: 1, tensors: { '0.exp_avg': dev.zeros([2]), '0.exp_avg_sq': dev.zeros([3]) } })).toThrow(/AdamW.loadStateDict: '0.exp_avg' has shape \[2\], parameter 0 has \[3\]/);
    expect(() => opt.loadStateDict({ step: 1, tensors: { '1.exp_avg': dev.zeros([3]) } })).toThrow(/AdamW.loadStateDict: '1.exp_avg' does not name one of the 1 parameters/);
    expect(() => opt.loadStateDict({ step: 1, tensors: { '0.momentum_buffer': dev.zeros([3]) } })).toThrow(/AdamW.loadStateDict: '0.momentum_buffer': unknown state 'momentum_buffer'/);
    expect(() => opt.loadStateDict({ step: 2, tensors: { '0.exp_avg': dev.zeros([3]) } })).toThrow(/AdamW.loadStateDict: parameter 0 has taken 2 steps but its state \[exp_avg_sq\] is missing/);
    expect(() => opt.loadStateDict({ step: -1, tensors: {} })).toThrow(/AdamW.loadStateDict: step must be a non-negative integer/);
  });
});

describe('clipGradNorm', () => {
  // 10 gradients (two partial-norm dispatches of 8), sizes around the 16384-element tile and not
  // multiples of 4 (masked last vec4)
  const GSHAPES = [[33000], [1], [16384], [16385], [7, 9], [302], [3], [64, 33], [100], [13]];

  function setup(seed: number, scale: number): { ps: Tensor[]; g: Float64Array[] } {
    const rnd = rng(seed);
    const ps = GSHAPES.map((s) => keep(dev.zeros(s, { requiresGrad: true })));
    const g = GSHAPES.map((s) => f32Vals(size(s), rnd, scale));
    setGrads(ps, g);
    return { ps, g };
  }

  function refNorm(g: Float64Array[], p: number): number {
    if (p === Infinity) return Math.max(...g.map((x) => Math.max(...Array.from(x, Math.abs))));
    let s = 0;
    for (const x of g) for (const v of x) s += Math.abs(v) ** p;
    return s ** (1 / p);
  }

  for (const [normType, maxNorm, scale] of [[2, 1, 1], [2, 1e6, 1], [Infinity, 0.5, 1], [1, 10, 0.01], [3, 2, 1]] as const) {
    it(`normType ${normType}, maxNorm ${maxNorm}: GPU norm and in-place scaling vs float64, no readback`, async () => {
      const { ps, g } = setup(normType === Infinity ? 99 : normType * 7, scale);
      const flushes = dev.exec.stats.flushes;
      const norm = clipGradNorm(ps, maxNorm, { normType });
      expect(dev.exec.stats.flushes).toBe(flushes); // recorded, not submitted, nothing read back
      expect(norm.shape).toEqual([]);
      const ref = refNorm(g, normType);
      const got = await norm.item();
      // f32 accumulation: per lane <= 16 vec4s (each pairwise-summed, 2 roundings) added serially,
      // a 256-lane tree (8), a tree over <= 9 partials (4): relative error <= (16 + 2 + 8 + 4)·2^-24
      // of the sum; pow/sqrt add a few ULP.
      expect(Math.abs(got - ref)).toBeLessThanOrEqual(34 * U * ref);
      const coef = Math.min(1, maxNorm / (ref + 1e-6));
      for (let i = 0; i < ps.length; i++) {
        // one multiply by coef, whose own relative error is that of the norm plus a division
        await expectNear(ps[i]!.grad!, g[i]!.map((v) => v * coef), 40 * U * Math.max(...Array.from(g[i]!, Math.abs)) + 0, `grad ${i}`);
      }
      if (coef === 1) {
        // unclipped gradients are multiplied by exactly 1
        for (let i = 0; i < ps.length; i++) expect(Array.from(await ps[i]!.grad!.toArray())).toEqual(Array.from(g[i]!));
      }
    });
  }

  it('gradients sharing storage are counted per parameter but scaled once; params without grad skipped', async () => {
    const a = keep(dev.zeros([3], { requiresGrad: true }));
    const b = keep(dev.zeros([3], { requiresGrad: true }));
    const c = keep(dev.zeros([2], { requiresGrad: true }));
    a.grad = keep(dev.tensor([3, 0, 4]));
    b.grad = keep(a.grad.detach()); // same buffer
    const norm = clipGradNorm([a, b, c], 1);
    const n = Math.sqrt(50);
    expect(Math.abs((await norm.item()) - n)).toBeLessThanOrEqual(4 * U * n);
    const s = 1 / (n + 1e-6);
    const ga = await a.grad.toArray();
    expect(Math.abs(ga[0]! - 3 * s)).toBeLessThanOrEqual(8 * U);
    expect(Math.abs(ga[2]! - 4 * s)).toBeLessThanOrEqual(8 * U);
    expect(c.grad).toBeNull();
    // no gradients at all: the norm is 0
    expect(await clipGradNorm([c], 1).item()).toBe(0);
  });

  it('bad inputs name clipGradNorm and the argument', () => {
    const p = keep(dev.zeros([2], { requiresGrad: true }));
    expect(() => clipGradNorm([], 1)).toThrow(/clipGradNorm: params is empty/);
    expect(() => clipGradNorm([p], -1)).toThrow(/clipGradNorm: maxNorm must be a finite number >= 0, got -1/);
    expect(() => clipGradNorm([p], Number.NaN)).toThrow(/clipGradNorm: maxNorm must be a finite number >= 0, got NaN/);
    expect(() => clipGradNorm([p], 1, { normType: 0 })).toThrow(/clipGradNorm: normType must be a finite number > 0 or Infinity, got 0/);
    expect(() => clipGradNorm([p, 3 as unknown as Tensor], 1)).toThrow(/clipGradNorm: params\[1\] is not a Tensor/);
  });
});

describe('learning-rate schedules', () => {
  const opt = (): SGD => new SGD([keep(dev.zeros([1], { requiresGrad: true }))], { lr: 1 });

  it('WarmupCosineLR: linear warmup from 0, cosine to minLr, flat afterwards', () => {
    const o = opt();
    const s = new WarmupCosineLR(o, { warmupSteps: 4, totalSteps: 12, minLr: 0.1 });
    expect(o.lr).toBe(0); // applied at construction: the first optimizer step uses lrAt(0)
    const seen = [o.lr];
    for (let k = 1; k <= 14; k++) seen.push(s.step());
    // hand-computed: s/4 for s < 4; 0.1 + 0.9·(1 + cos(π(s-4)/8))/2 for 4 <= s <= 12; then 0.1
    const expected = [0, 0.25, 0.5, 0.75, 1];
    for (let k = 5; k <= 12; k++) expected.push(0.1 + 0.45 * (1 + Math.cos((Math.PI * (k - 4)) / 8)));
    expected.push(0.1, 0.1);
    seen.forEach((v, k) => expect(v, `step ${k}`).toBeCloseTo(expected[k]!, 12));
    expect(seen[8]).toBeCloseTo(0.55, 12); // halfway through the decay
    expect(o.lr).toBe(s.lr);
  });

  it('WarmupCosineLR without warmup starts at baseLr', () => {
    const o = opt();
    o.lr = 0.3;
    const s = new WarmupCosineLR(o, { totalSteps: 10 });
    expect(o.lr).toBeCloseTo(0.3, 15);
    for (let k = 0; k < 5; k++) s.step();
    expect(o.lr).toBeCloseTo(0.15, 12);
  });

  it('StepLR: baseLr · gamma^floor(s / stepSize)', () => {
    const o = opt();
    o.lr = 0.5;
    const s = new StepLR(o, { stepSize: 3, gamma: 0.1 });
    const got = [o.lr];
    for (let k = 0; k < 7; k++) got.push(s.step());
    [0.5, 0.5, 0.5, 0.05, 0.05, 0.05, 0.005, 0.005].forEach((e, k) => expect(got[k], `step ${k}`).toBeCloseTo(e, 14));
  });

  it('LambdaLR and scheduler state round trip', () => {
    const o = opt();
    const s = new LambdaLR(o, (k) => 1 / (k + 1));
    s.step();
    s.step();
    expect(o.lr).toBeCloseTo(1 / 3, 15);
    const o2 = opt();
    const s2 = new WarmupCosineLR(o2, { warmupSteps: 2, totalSteps: 6 });
    const s3 = new WarmupCosineLR(opt(), { warmupSteps: 2, totalSteps: 6 });
    for (let k = 0; k < 3; k++) s2.step();
    s3.loadStateDict(s2.stateDict());
    expect(s3.lr).toBe(s2.lr);
    expect(s3.step()).toBe(s2.step());
  });

  it('bad schedule options name the schedule and the option', () => {
    expect(() => new WarmupCosineLR(opt(), { warmupSteps: 5, totalSteps: 3 })).toThrow(/WarmupCosineLR: totalSteps \(3\) must be >= warmupSteps \(5\)/);
    expect(() => new WarmupCosineLR(opt(), { totalSteps: 0 })).toThrow(/WarmupCosineLR: totalSteps must be an integer >= 1, got 0/);
    expect(() => new WarmupCosineLR(opt(), { totalSteps: 5, minLr: -1 })).toThrow(/WarmupCosineLR: minLr must be a finite number >= 0/);
    expect(() => new StepLR(opt(), { stepSize: 0 })).toThrow(/StepLR: stepSize must be an integer >= 1, got 0/);
    expect(() => new StepLR(opt(), { stepSize: 2, gamma: Number.NaN })).toThrow(/StepLR: gamma must be a finite number >= 0/);
    expect(() => new LambdaLR(opt(), () => Number.NaN)).toThrow(/LambdaLR: factor\(0\) must be a finite number >= 0, got NaN/);
  });
});

describe('optimizer argument checks (before any GPU work)', () => {
  const p = (): Tensor => keep(dev.zeros([2], { requiresGrad: true }));

  it('hyper-parameters', () => {
    expect(() => new AdamW([p()], { lr: Number.NaN })).toThrow(/AdamW: lr must be a finite number in \[0, Infinity\), got NaN/);
    expect(() => new AdamW([p()], { lr: -1 })).toThrow(/AdamW: lr must be a finite number/);
    expect(() => new Adam([p()], { betas: [1, 0.999] })).toThrow(/Adam: betas\[0\] must be a finite number in \[0, 1\), got 1/);
    expect(() => new Adam([p()], { betas: [0.9, Number.POSITIVE_INFINITY] })).toThrow(/Adam: betas\[1\] must be a finite number in \[0, 1\), got Infinity/);
    expect(() => new Adam([p()], { betas: [0.9] as unknown as [number, number] })).toThrow(/Adam: betas must be \[beta1, beta2\]/);
    expect(() => new AdamW([p()], { eps: -1e-8 })).toThrow(/AdamW: eps must be a finite number in \[0, Infinity\), got -1e-8/);
    expect(() => new AdamW([p()], { eps: Number.POSITIVE_INFINITY })).toThrow(/AdamW: eps must be a finite number/);
    expect(() => new AdamW([p()], { weightDecay: -0.1 })).toThrow(/AdamW: weightDecay must be a finite number in \[0, Infinity\), got -0.1/);
    expect(() => new SGD([p()], { momentum: -0.5 })).toThrow(/SGD: momentum must be a finite number in \[0, Infinity\), got -0.5/);
    expect(() => new SGD([p()], { dampening: 2 })).toThrow(/SGD: dampening must be a finite number in \[0, 1\], got 2/);
    expect(() => new SGD([p()], { momentum: 0.9, dampening: 0.1, nesterov: true })).toThrow(/SGD: nesterov momentum needs momentum > 0 and dampening 0/);
    expect(() => new SGD([p()], { nesterov: true })).toThrow(/SGD: nesterov momentum needs momentum > 0/);
    expect(() => new SGD([p()], { weightDecay: Number.NaN })).toThrow(/SGD: weightDecay must be a finite number/);
    const o = new AdamW([p()]);
    expect(() => { o.lr = Number.POSITIVE_INFINITY; }).toThrow(/lr must be a finite number >= 0, got Infinity/);
  });

  it('parameters and gradients', () => {
    const a = p();
    expect(() => new AdamW([])).toThrow(/AdamW: got an empty parameter list/);
    expect(() => new AdamW([dev.zeros([2])])).toThrow(/AdamW: params\[0\] does not require grad/);
    expect(() => new SGD([a, a])).toThrow(/SGD: params\[1\] \[2\] shares storage with params\[0\]/);
    const opt = new AdamW([a]);
    a.grad = keep(dev.zeros([3]));
    const before = dev.exec.pendingCount;
    expect(() => opt.step()).toThrow(/AdamW: params\[0\].grad \[3\] float32 must be float32 with the parameter's shape \[2\]/);
    expect(dev.exec.pendingCount).toBe(before);
    expect(opt.stepCount).toBe(0);
  });
});
