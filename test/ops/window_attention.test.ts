// ops.windowAttention (Swin W-MSA / SW-MSA, fused) against: its float64 reference (forward and
// backward, every case, both kernel paths: subgroup shuffles (auto; used when D % 4 == 0) and
// portable), the composite oracle from
// core ops (test/composites/window_composite.ts, forward and backward), timm's relative_position_index
// and img_mask, float64 central differences of the reference, and gradcheck on the GPU.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ops, ShapeError, type Device, type Tensor } from '../../src/index.js';
import {
  windowAttention, windowAttentionRef, windowAttentionRefBackward, relativePositionIndex, windowAttentionKernelConfig,
} from '../../src/ops/window_attention.js';
import { windowAttentionComposite, relativeBiasOneHot, swinAttentionMask } from '../composites/window_composite.js';
import { makeDevice, rng, randArr, toTensor, toArr, expectClose, checkOp, type Arr, type Tol } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

const U = 2 ** -24;
const maxAbs = (a: Arr): number => a.data.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

/**
 * Tolerance for an f32 result whose longest chain of rounded accumulation has K terms, on values of
 * magnitude `mag`: rounding of a K-term sum grows like sqrt(K)·2^-24 (×8 for the worst element of a
 * tensor), plus 32 ULP for WGSL's exp (3 ULP + 2|x| ULP, |x| ≲ 10 for unmasked logits; masked ones are
 * ~e^-100 and vanish) feeding every probability.
 */
function f32Tol(K: number, mag: number): Tol {
  return { atol: (8 * Math.sqrt(K) + 32) * U * Math.max(mag, 1e-30), rtol: (8 * Math.sqrt(K) + 32) * U };
}

interface Case {
  B: number; H: number; W: number; heads: number; D: number; M: number; shift: number;
  bias?: boolean; scale?: number;
}

function inputs(c: Case, seed: number): { q: Arr; k: Arr; v: Arr; t: Arr | null; g: Arr } {
  const rnd = rng(seed);
  const shape = [c.B, c.H, c.W, c.heads, c.D];
  return {
    q: randArr(shape, rnd), k: randArr(shape, rnd), v: randArr(shape, rnd),
    t: c.bias === false ? null : randArr([(2 * c.M - 1) ** 2, c.heads], rnd),
    g: randArr(shape, rnd),
  };
}

function caseName(c: Case): string {
  return `B${c.B} ${c.H}x${c.W} heads ${c.heads} D ${c.D} M ${c.M} shift ${c.shift}${c.bias === false ? ' no bias' : ''}${c.scale !== undefined ? ` scale ${c.scale}` : ''}`;
}

/** Runs windowAttention (or the composite) forward + backward on GPU tensors; returns out and grads. */
async function runGpu(c: Case, x: ReturnType<typeof inputs>, impl: 'fused' | 'composite'): Promise<{ out: Arr; grads: (Arr | null)[] }> {
  const q = toTensor(dev, x.q, true);
  const k = toTensor(dev, x.k, true);
  const v = toTensor(dev, x.v, true);
  const t = x.t ? toTensor(dev, x.t, true) : null;
  const opts = { windowSize: c.M, shift: c.shift, relativePositionBias: t, scale: c.scale };
  const out = impl === 'fused' ? windowAttention(q, k, v, opts) : windowAttentionComposite(ops, q, k, v, opts);
  const res = await toArr(out);
  const g = toTensor(dev, x.g);
  out.backward(g);
  const grads: (Arr | null)[] = [];
  for (const l of [q, k, v, t]) grads.push(l?.grad ? await toArr(l.grad) : null);
  for (const l of [q, k, v, t, g, out]) {
    l?.grad?.dispose();
    l?.dispose();
  }
  return { out: res, grads };
}

/** Longest accumulation chains (see f32Tol): a D-term dot feeding an N-term sum; the table also sums over images and windows. */
function chains(c: Case): { main: number; table: number } {
  const N = c.M * c.M;
  const nWin = Math.ceil(c.H / c.M) * Math.ceil(c.W / c.M);
  return { main: c.D + N, table: c.D + N + c.B * nWin * N };
}

function compare(what: string, c: Case, got: { out: Arr; grads: (Arr | null)[] }, ref: { out: Arr; grads: (Arr | null)[] }, factor = 1): void {
  const ch = chains(c);
  const scaleTol = (t: Tol): Tol => ({ atol: t.atol * factor, rtol: t.rtol * factor });
  expectClose(got.out, ref.out, scaleTol(f32Tol(ch.main, maxAbs(ref.out))), `${what} forward`);
  ['dq', 'dk', 'dv', 'dTable'].forEach((n, i) => {
    const r = ref.grads[i];
    if (!r) {
      expect(got.grads[i], `${what} ${n}`).toBeNull();
      return;
    }
    expect(got.grads[i], `${what} ${n}`).toBeTruthy();
    expectClose(got.grads[i]!, r, scaleTol(f32Tol(n === 'dTable' ? ch.table : ch.main, maxAbs(r))), `${what} ${n}`);
  });
}

function reference(c: Case, x: ReturnType<typeof inputs>): { out: Arr; grads: (Arr | null)[] } {
  const opts = { windowSize: c.M, shift: c.shift, relativePositionBias: x.t, scale: c.scale };
  return { out: windowAttentionRef(x.q, x.k, x.v, opts), grads: windowAttentionRefBackward(x.g, x.q, x.k, x.v, opts) };
}

async function withKernels<T>(mode: 'auto' | 'off', fn: () => Promise<T>): Promise<T> {
  const prev = windowAttentionKernelConfig.subgroups;
  windowAttentionKernelConfig.subgroups = mode;
  try {
    return await fn();
  } finally {
    windowAttentionKernelConfig.subgroups = prev;
  }
}

// Grids 7x7, 8x8, 14x14 (plus non-square ones) with M = 7 and 4 (and 1, 2, 9, full grid); shift 0 and
// floor(M/2); heads 1..8; D 16, 32, 64 and odd sizes (7, 5) that take the partial-chunk paths;
// grids that are not multiples of M are padded (7/M4, 8/M7, 14/M4, 9x12/M4, 9x10/M9).
const CASES: Case[] = [
  { B: 2, H: 7, W: 7, heads: 1, D: 16, M: 7, shift: 0 },
  { B: 1, H: 7, W: 7, heads: 2, D: 32, M: 7, shift: 3 },
  { B: 2, H: 8, W: 8, heads: 3, D: 32, M: 4, shift: 0 },
  { B: 1, H: 8, W: 8, heads: 4, D: 16, M: 4, shift: 2 },
  { B: 1, H: 8, W: 8, heads: 2, D: 16, M: 7, shift: 3 },
  { B: 2, H: 7, W: 7, heads: 3, D: 64, M: 4, shift: 2 },
  { B: 1, H: 14, W: 14, heads: 8, D: 16, M: 7, shift: 3 },
  { B: 1, H: 14, W: 14, heads: 4, D: 64, M: 7, shift: 0 },
  { B: 2, H: 14, W: 14, heads: 3, D: 32, M: 4, shift: 2 },
  { B: 1, H: 14, W: 14, heads: 5, D: 7, M: 7, shift: 3 },
  { B: 2, H: 9, W: 12, heads: 2, D: 5, M: 4, shift: 2, bias: false },
  { B: 1, H: 8, W: 8, heads: 6, D: 16, M: 4, shift: 1, scale: 0.3 },
  { B: 1, H: 3, W: 5, heads: 2, D: 4, M: 1, shift: 0 },
  { B: 1, H: 4, W: 4, heads: 1, D: 8, M: 4, shift: 2 },
  { B: 3, H: 6, W: 6, heads: 2, D: 24, M: 2, shift: 1 },
  // 81 tokens per window: more than one 64-lane block per window (query/key blocks of 48 rows)
  { B: 1, H: 9, W: 10, heads: 2, D: 8, M: 9, shift: 4 },
];

describe('windowAttention: relative position index and Swin mask', () => {
  it('relativePositionIndex matches timm', () => {
    // timm: WindowAttention(window_size=(2, 2)).relative_position_index
    expect(Array.from(relativePositionIndex(2))).toEqual([4, 3, 1, 0, 5, 4, 2, 1, 7, 6, 4, 3, 8, 7, 5, 4]);
    for (const M of [1, 4, 7]) {
      const idx = relativePositionIndex(M);
      const N = M * M;
      const T = (2 * M - 1) ** 2;
      const E = relativeBiasOneHot(M); // the composite's independent meshgrid construction
      for (let i = 0; i < N; i++) {
        expect(idx[i * N + i]).toBe((M - 1) * (2 * M - 1) + (M - 1));
        for (let j = 0; j < N; j++) expect(E[(i * N + j) * T + idx[i * N + j]!]).toBe(1);
      }
    }
  });

  it('swinAttentionMask follows timm img_mask regions', () => {
    // 8x8 grid, M = 4, shift 2: windows 0..3 row-major; window 0 is one region, window 1 has
    // two (columns split at 2), window 2 two (rows split), window 3 four.
    const m = swinAttentionMask(8, 8, 4, 2);
    const N = 16;
    const regionsSeen = (w: number): number => {
      // tokens equal to token 0's region: count of zero entries in row 0; number of distinct rows
      const rows = new Set<string>();
      for (let i = 0; i < N; i++) rows.add(Array.from(m.subarray((w * N + i) * N, (w * N + i + 1) * N)).join(','));
      return rows.size;
    };
    expect([0, 1, 2, 3].map(regionsSeen)).toEqual([1, 2, 2, 4]);
    expect(Array.from(swinAttentionMask(8, 8, 4, 0)).every((x) => x === 0)).toBe(true);
    for (const x of m) expect(x === 0 || x === -100).toBe(true);
  });
});

describe('windowAttention vs float64 reference', () => {
  for (const c of CASES) {
    it(caseName(c), async () => {
      const x = inputs(c, 7 + c.H * 31 + c.D);
      const ref = reference(c, x);
      const sg = await withKernels('auto', () => runGpu(c, x, 'fused'));
      compare(`${caseName(c)} (auto kernels)`, c, sg, ref);
      const portable = await withKernels('off', () => runGpu(c, x, 'fused'));
      compare(`${caseName(c)} (portable kernels)`, c, portable, ref);
    });
  }

  it('gradients only for the inputs that require them', async () => {
    const c: Case = { B: 1, H: 8, W: 8, heads: 2, D: 8, M: 4, shift: 2 };
    const x = inputs(c, 5);
    const ref = reference(c, x);
    const q = toTensor(dev, x.q);
    const k = toTensor(dev, x.k);
    const v = toTensor(dev, x.v, true);
    const t = toTensor(dev, x.t!, true);
    const out = windowAttention(q, k, v, { windowSize: 4, shift: 2, relativePositionBias: t });
    out.backward(toTensor(dev, x.g));
    expect(q.grad).toBeNull();
    expect(k.grad).toBeNull();
    const ch = chains(c);
    expectClose(await toArr(v.grad!), ref.grads[2]!, f32Tol(ch.main, maxAbs(ref.grads[2]!)), 'dv');
    expectClose(await toArr(t.grad!), ref.grads[3]!, f32Tol(ch.table, maxAbs(ref.grads[3]!)), 'dTable');
    // only q: bwd_kv and the dLogit buffer are skipped
    const q2 = toTensor(dev, x.q, true);
    const t2 = toTensor(dev, x.t!);
    const out2 = windowAttention(q2, k, v, { windowSize: 4, shift: 2, relativePositionBias: t2 });
    out2.backward(toTensor(dev, x.g));
    expectClose(await toArr(q2.grad!), ref.grads[0]!, f32Tol(ch.main, maxAbs(ref.grads[0]!)), 'dq');
    expect(t2.grad).toBeNull();
  });

  it('bias-table gradient is deterministic (bitwise equal across runs)', async () => {
    const c: Case = { B: 4, H: 14, W: 14, heads: 3, D: 16, M: 7, shift: 3 };
    const x = inputs(c, 11);
    const a = await runGpu(c, x, 'fused');
    const b = await runGpu(c, x, 'fused');
    expect(Array.from(b.grads[3]!.data)).toEqual(Array.from(a.grads[3]!.data));
  });

  it('padded keys get no weight: a window of real tokens is plain softmax attention', async () => {
    // 5x5 grid, M = 4: padded to 8x8. Window 0 (shift 0) holds tokens (0..3, 0..3), all real: its
    // outputs must equal plain softmax attention over those 16 tokens (no bias, no mask), computed here
    // by hand; the other windows mix real and padded tokens and are checked against the reference.
    const c: Case = { B: 1, H: 5, W: 5, heads: 1, D: 4, M: 4, shift: 0, bias: false };
    const x = inputs(c, 3);
    const got = await runGpu(c, x, 'fused');
    const ref = reference(c, x);
    compare('padded 5x5 M4', c, got, ref);
    // token (0, 0): window 0 holds rows/cols 0..3, all real
    const D = 4;
    const s: number[] = [];
    for (let y = 0; y < 4; y++) {
      for (let xx = 0; xx < 4; xx++) {
        let d = 0;
        for (let e = 0; e < D; e++) d += x.q.data[e]! * x.k.data[(y * 5 + xx) * D + e]!;
        s.push(d / 2);
      }
    }
    const mx = Math.max(...s);
    const p = s.map((z) => Math.exp(z - mx));
    const l = p.reduce((a, b) => a + b, 0);
    for (let e = 0; e < D; e++) {
      let o = 0;
      p.forEach((pi, j) => { o += (pi / l) * x.v.data[(Math.floor(j / 4) * 5 + (j % 4)) * D + e]!; });
      expect(Math.abs(got.out.data[e]! - o)).toBeLessThan(f32Tol(D + 16, 1).atol);
    }
  });

  it('shift direction and region mask follow timm (4x4 grid, M = 2, shift 1)', async () => {
    // torch.roll(x, (-1, -1)): rolled (R, C) holds token ((R + 1) % 4, (C + 1) % 4). Token (1, 1) sits
    // at rolled (0, 0): window 0 with tokens (1,1) (1,2) (2,1) (2,2), all in region 0, so it is plain
    // softmax attention over those 4. Token (0, 0) sits at rolled (3, 3): its window also holds rolled
    // (2,2) (2,3) (3,2), each in another img_mask region, so they get -100 and it attends to itself.
    // (A roll the other way puts (1, 1) with three tokens of other regions.)
    const c: Case = { B: 1, H: 4, W: 4, heads: 1, D: 3, M: 2, shift: 1, bias: false };
    const x = inputs(c, 9);
    const got = (await runGpu(c, x, 'fused')).out;
    const D = 3;
    const row = (a: Arr, y: number, xx: number): number[] => Array.from(a.data.subarray((y * 4 + xx) * D, (y * 4 + xx + 1) * D));
    const tol = f32Tol(D + 4, 1).atol;
    const win = [[1, 1], [1, 2], [2, 1], [2, 2]] as const;
    const qi = row(x.q, 1, 1);
    const s = win.map(([y, xx]) => row(x.k, y, xx).reduce((acc, kv, e) => acc + kv * qi[e]!, 0) / Math.sqrt(D));
    const mx = Math.max(...s);
    const e = s.map((z) => Math.exp(z - mx));
    const l = e.reduce((a, b) => a + b, 0);
    for (let d = 0; d < D; d++) {
      const o = win.reduce((acc, [y, xx], j) => acc + (e[j]! / l) * row(x.v, y, xx)[d]!, 0);
      expect(Math.abs(row(got, 1, 1)[d]! - o)).toBeLessThan(tol);
      // the others' weights are ~e^-100 relative: token (0, 0)'s output is its own v
      expect(Math.abs(row(got, 0, 0)[d]! - row(x.v, 0, 0)[d]!)).toBeLessThan(tol);
    }
  });

  it('empty batch gives an empty output', () => {
    const q = dev.zeros([0, 4, 4, 2, 8]);
    const out = windowAttention(q, q, q, { windowSize: 2, shift: 1 });
    expect(out.shape).toEqual([0, 4, 4, 2, 8]);
    out.dispose();
    q.dispose();
  });
});

describe('windowAttention vs the composite oracle (core ops)', () => {
  const COMPOSITE_CASES: Case[] = [
    { B: 2, H: 8, W: 8, heads: 3, D: 16, M: 4, shift: 2 },
    { B: 1, H: 14, W: 14, heads: 3, D: 32, M: 7, shift: 3 },
    { B: 1, H: 7, W: 7, heads: 2, D: 16, M: 4, shift: 2 },
    { B: 1, H: 8, W: 8, heads: 2, D: 32, M: 7, shift: 0 },
    { B: 2, H: 9, W: 12, heads: 2, D: 5, M: 4, shift: 2, bias: false },
  ];
  for (const c of COMPOSITE_CASES) {
    it(caseName(c), async () => {
      const x = inputs(c, 100 + c.H + c.D);
      const ref = reference(c, x);
      const comp = await runGpu(c, x, 'composite');
      // the composite must itself be right (it is the oracle), then fused and composite agree within
      // the sum of their errors against float64
      compare(`${caseName(c)} composite vs float64`, c, comp, ref);
      const fused = await runGpu(c, x, 'fused');
      compare(`${caseName(c)} fused vs composite`, c, fused, comp, 2);
    });
  }
});

describe('windowAttention gradcheck (tiny configs)', () => {
  // gradcheck: f32 central differences with eps = 1e-3 have rounding error ~2^-24·|L|/eps ≈ 1e-4 for
  // |L| ~ 1..10, truncation ~eps^2: the defaults atol 1e-3, rtol 1e-2 bound both.
  const tiny: Case[] = [
    // D = 4: the subgroup kernels (auto) need D % 4 == 0
    { B: 1, H: 4, W: 4, heads: 2, D: 4, M: 2, shift: 1 },
    { B: 1, H: 5, W: 3, heads: 1, D: 4, M: 2, shift: 1 }, // padded to 6x4
  ];
  for (const c of tiny) {
    for (const mode of ['auto', 'off'] as const) {
      it(`${caseName(c)} (${mode} kernels)`, async () => {
        const x = inputs(c, 42);
        // float64 reference tolerances: same f32 error model as above, on the largest reference gradient
        const ch = chains(c);
        const r = reference(c, x);
        const gmag = Math.max(...r.grads.map((a) => (a ? maxAbs(a) : 0)));
        await withKernels(mode, () => checkOp({
          name: `windowAttention ${caseName(c)}`,
          dev,
          inputs: [x.q, x.k, x.v, x.t!],
          gpu: (q, k, v, t) => windowAttention(q!, k!, v!, { windowSize: c.M, shift: c.shift, relativePositionBias: t }),
          ref: (q, k, v, t) => windowAttentionRef(q!, k!, v!, { windowSize: c.M, shift: c.shift, relativePositionBias: t }),
          refBackward: (g, q, k, v, t) => windowAttentionRefBackward(g, q!, k!, v!, { windowSize: c.M, shift: c.shift, relativePositionBias: t }),
          fwdTol: f32Tol(ch.main, 1),
          bwdTol: f32Tol(ch.table, gmag),
        }));
      });
    }
  }
});

describe('windowAttention bad input', () => {
  const mk = (shape: number[]): Tensor => dev.zeros(shape);
  const expectShapeError = (fn: () => unknown, ...parts: string[]): void => {
    const before = dev.memory().liveTensors;
    let err: unknown = null;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ShapeError);
    const msg = (err as Error).message;
    expect(msg).toContain('windowAttention');
    for (const p of parts) expect(msg).toContain(p);
    expect(dev.memory().liveTensors, 'no tensor was allocated before the error').toBe(before);
  };
  let q: Tensor;
  beforeAll(() => { q = mk([1, 8, 8, 2, 4]); });
  afterAll(() => q.dispose());

  it('rank != 5', () => {
    const q4 = mk([8, 8, 2, 4]);
    expectShapeError(() => windowAttention(q4, q4, q4, { windowSize: 4 }), 'q', 'rank 5', '[8, 8, 2, 4]');
    q4.dispose();
  });
  it('k shape differs from q', () => {
    const k = mk([1, 8, 8, 2, 5]);
    expectShapeError(() => windowAttention(q, k, q, { windowSize: 4 }), 'k [1, 8, 8, 2, 5]', 'q [1, 8, 8, 2, 4]');
    k.dispose();
  });
  it('v shape differs from q', () => {
    const v = mk([1, 8, 7, 2, 4]);
    expectShapeError(() => windowAttention(q, q, v, { windowSize: 4 }), 'v [1, 8, 7, 2, 4]', 'q [1, 8, 8, 2, 4]');
    v.dispose();
  });
  it('windowSize < 1', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 0 }), 'windowSize', 'got 0');
  });
  it('windowSize > grid', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 9 }), 'windowSize', '[1, 8]', 'got 9');
  });
  it('windowSize not an integer', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 2.5 }), 'windowSize', 'got 2.5');
  });
  it('shift < 0', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, shift: -1 }), 'shift', '[0, 4)', 'got -1');
  });
  it('shift >= windowSize', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, shift: 4 }), 'shift', '[0, 4)', 'got 4');
  });
  it('bias table of the wrong shape', () => {
    const t = mk([48, 2]);
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, relativePositionBias: t }), 'relativePositionBias', '[(2M-1)^2, heads] = [49, 2]', 'got [48, 2]');
    t.dispose();
    const t2 = mk([49, 3]);
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, relativePositionBias: t2 }), 'relativePositionBias', '= [49, 2]', 'got [49, 3]');
    t2.dispose();
    const t3 = mk([98]);
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, relativePositionBias: t3 }), 'relativePositionBias', 'got [98]');
    t3.dispose();
  });
  it('non-finite scale', () => {
    expectShapeError(() => windowAttention(q, q, q, { windowSize: 4, scale: Number.NaN }), 'scale');
  });
  it('not a tensor', () => {
    expectShapeError(() => windowAttention(q, null as unknown as Tensor, q, { windowSize: 4 }), 'k must be a Tensor');
  });
});
