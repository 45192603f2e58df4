// layerNorm: both kernel layouts (invocation per row, scalar and vec4; workgroup per row) and the
// automatic choice, against the float64 reference: row lengths 1..3000, normalizedShape of 1 and 2
// dims, every weight/bias combination, chunked dweight/dbias reductions, +-1e4 offsets; gradcheck on
// the small cases; bad inputs.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ops, ShapeError, type Device, type Tensor } from '../../src/index.js';
import {
  layerNormImpl, layerNormPlan, layerNormRef, layerNormRefBackward, layerNormRefStats, paramsPlan, type LayerNormImplOptions,
} from '../../src/ops/layernorm.js';
import { checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Arr, type Tol } from '../helpers.js';
import { mapArr } from '../../src/reference.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

const U = 2 ** -24; // f32 unit roundoff
const f32 = (a: Arr): Arr => mapArr(a, Math.fround);
const maxAbs = (v: ArrayLike<number>): number => {
  let m = 0;
  for (let i = 0; i < v.length; i++) m = Math.max(m, Math.abs(v[i]!));
  return m;
};
const numel = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
/** unit in the last place of an f32 of magnitude v */
const ulp = (v: number): number => (v === 0 ? 0 : 2 ** (Math.floor(Math.log2(Math.abs(v))) - 23));

interface Tols {
  fwd: Tol;
  dx: Tol;
  dparam: Tol;
}

/**
 * Error bounds for one case, from its data (output grads g are uniform in [-1, 1)):
 * - mean = x0 + sum(x - x0) / C: the sum rounds at ~sqrt(C) ULP of sum|x - x0| <= C span, so the
 *   mean is off by ~sqrt(C) span ULP, plus rounding the mean itself to f32 (0.5 ULP of |mean|,
 *   which only matters with large offsets); times rstd in every normalised value.
 * - var = mean((x - mean)^2) rounds at ~sqrt(C) ULP; inverseSqrt adds 2 ULP: rstd is within
 *   (sqrt(C)/2 + 3) ULP, times |xhat| in y; w, b and the products add ~2 ULP of |y|.
 * - dx = rstd (dn - mean(dn) - xhat mean(dn xhat)) with |dn| <= |w|: the two means round at
 *   ~sqrt(C) ULP of |w| and |w| |xhat|; two subtractions at 1 ULP of |w| (2 + xhat^2); rstd's
 *   error (sqrt(C)/2 + 3 ULP) times |dx| <= rstd |w| (2 + xhat^2); xhat's error enters the last
 *   term and mean(dn xhat): |w| (1 + |xhat|) times it.
 * - dweight, dbias: sums over N rows of g xhat and g, ~ (2 sqrt(N) + 4) ULP of N (1 + |xhat|),
 *   plus xhat's own error in each of the N terms.
 */
function lnTols(x: Arr, ns: number[], w: Arr | null, eps: number): Tols {
  const C = numel(ns);
  const N = C ? x.data.length / C : 0;
  const { mean, rstd } = layerNormRefStats(x, ns, eps);
  let span = 0;
  let xh = 0;
  for (let r = 0; r < N; r++) {
    for (let j = 0; j < C; j++) {
      const v = x.data[r * C + j]!;
      span = Math.max(span, Math.abs(v - x.data[r * C]!));
      xh = Math.max(xh, Math.abs((v - mean[r]!) * rstd[r]!));
    }
  }
  const rs = maxAbs(rstd);
  const wm = w ? maxAbs(w.data) : 1;
  const sq = Math.sqrt(C);
  const meanRound = 0.5 * ulp(maxAbs(mean));
  const xhErr = (sq / 2 + 5) * xh * U + rs * (span * (sq + 1) * U + meanRound);
  return {
    fwd: { atol: wm * xhErr + 4 * (wm * xh + 1) * U, rtol: 0 },
    dx: { atol: rs * wm * ((sq * (1 + xh) + (sq / 2 + 5) * (2 + xh * xh)) * U + (1 + xh) * xhErr), rtol: 0 },
    dparam: { atol: N * ((1 + xh) * (2 * Math.sqrt(N) + 4) * U + xhErr), rtol: 0 },
  };
}

interface Case {
  shape: number[];
  ns: number | number[];
  weight: boolean;
  bias: boolean;
  eps?: number;
  opts?: LayerNormImplOptions;
  offset?: number;
  gradcheck?: boolean;
}

/** checkOp re-derives the float64 reference backward by central differences (O(n^2)): up to this size. */
const REF_GRADCHECK_MAX = 2000;

async function runCase(c: Case, seed: number): Promise<void> {
  const rnd = rng(seed);
  const nsArr = typeof c.ns === 'number' ? [c.ns] : c.ns;
  const eps = c.eps ?? 1e-5;
  const x = randArr(c.shape, rnd, -1, 1);
  if (c.offset) for (let i = 0; i < x.data.length; i++) x.data[i]! += c.offset;
  const xs = f32(x);
  const w = c.weight ? f32(randArr(nsArr, rnd, -1.5, 1.5)) : null;
  const b = c.bias ? f32(randArr(nsArr, rnd, -1, 1)) : null;
  const t = lnTols(xs, nsArr, w, eps);
  const inputs = [xs, ...(w ? [w] : []), ...(b ? [b] : [])];
  const split = <T>(vs: T[]): [T, T | null, T | null] => [vs[0]!, w ? vs[1]! : null, b ? vs[w ? 2 : 1]! : null];
  const gpu = (...ts: Tensor[]): Tensor => {
    const [xt, wt, bt] = split(ts);
    return layerNormImpl(xt, c.ns, wt, bt, eps, c.opts ?? {});
  };
  const ref = (...as: Arr[]): Arr => {
    const [xa, wa, ba] = split(as);
    return layerNormRef(xa, c.ns, wa, ba, eps);
  };
  const refBackward = (g: Arr, ...as: Arr[]): (Arr | null)[] => {
    const [xa, wa, ba] = split(as);
    const [gx, gw, gb] = layerNormRefBackward(g, xa, c.ns, wa, ba, eps);
    return [gx, ...(wa ? [gw] : []), ...(ba ? [gb] : [])];
  };
  const name = `layerNorm ${JSON.stringify(c.shape)} ns ${JSON.stringify(c.ns)} w ${c.weight} b ${c.bias} ${JSON.stringify(c.opts ?? {})}${c.offset ? ` offset ${c.offset}` : ''}`;
  const params = inputs.map((_, i) => i).slice(1);
  // the output grads of checkOp come from their own seed, not x's (equal streams would make R = x)
  const gseed = seed + 7919;
  if (xs.data.length > REF_GRADCHECK_MAX || c.offset) {
    // forward, and GPU backward against the reference backward (checked by central differences
    // on every smaller offset-free case), all inputs at once. With offsets the float64 central
    // differences themselves are off: x - mean at |x| ~ 1e4 rounds at ~1e-12, / step 1e-6.
    // (The formulas are offset-invariant, so the reference backward needs no separate check.)
    const ts = inputs.map((a) => toTensor(dev, a, true));
    const y = gpu(...ts);
    expectClose(await toArr(y), ref(...inputs), t.fwd, `${name} forward`);
    const g = f32(randArr(c.shape, rng(gseed)));
    y.backward(toTensor(dev, g));
    const rg = refBackward(g, ...inputs);
    for (let i = 0; i < ts.length; i++) {
      expectClose(await toArr(ts[i]!.grad!), rg[i]!, i === 0 ? t.dx : t.dparam, `${name} backward (input ${i})`);
    }
    ts.forEach((q) => { q.grad?.dispose(); q.dispose(); });
    y.dispose();
    return;
  }
  // dx alone, then the parameters alone (each its own bound; this also runs the dweight-only /
  // dbias-only reductions), then everything with gradcheck on small cases. gradcheck defaults
  // (eps 1e-3, atol 1e-3, rtol 1e-2) cover f32 central differences of an O(1) output.
  await checkOp({ name: `${name} dx`, dev, inputs, gpu, ref, refBackward, wrt: [0], fwdTol: t.fwd, bwdTol: t.dx, gradcheck: false, seed: gseed });
  for (const i of params) {
    await checkOp({ name: `${name} dparam ${i}`, dev, inputs, gpu, ref, refBackward, wrt: [i], fwdTol: t.fwd, bwdTol: t.dparam, gradcheck: false, seed: gseed + i });
  }
  if (c.gradcheck) {
    const bwdTol = { atol: Math.max(t.dx.atol, t.dparam.atol), rtol: 0 };
    await checkOp({ name: `${name} all`, dev, inputs, gpu, ref, refBackward, fwdTol: t.fwd, bwdTol, gradcheck: {}, seed: gseed });
  }
}

const COMBOS: [boolean, boolean][] = [[true, true], [true, false], [false, true], [false, false]];

describe('layerNorm: row lengths 1..3000, both layouts, every weight/bias combination', () => {
  const lengths = [1, 3, 7, 64, 100, 257, 1000, 3000];
  for (const C of lengths) {
    it(`C=${C}`, async () => {
      const rnd = rng(2000 + C);
      const rows = C >= 1000 ? randInt(rnd, 1, 3) : randInt(rnd, 1, 6);
      const shape = C <= 7 ? [randInt(rnd, 1, 3), rows, C] : [rows, C];
      let k = 0;
      for (const path of [undefined, 'row', 'wg'] as const) {
        // all four weight/bias combinations on every layout for short rows; one per layout (rotating) for long
        const combos = C <= 100 ? COMBOS : [COMBOS[(k++ + C) % 4]!];
        for (const [weight, bias] of combos) {
          const small = numel(shape) <= 24;
          await runCase({ shape, ns: C, weight, bias, opts: path ? { path } : {}, gradcheck: small && weight && bias }, C * 13 + k++);
        }
      }
    });
  }
});

describe('layerNorm: normalizedShape of 2 dims, size-1 dims, eps', () => {
  const cases: Case[] = [
    { shape: [3, 4, 5], ns: [4, 5], weight: true, bias: true, gradcheck: true },   // C = 20: vec4 rows
    { shape: [2, 3, 7], ns: [3, 7], weight: true, bias: false, gradcheck: true },  // C = 21: scalar rows
    { shape: [2, 3, 7], ns: [3, 7], weight: false, bias: true, opts: { path: 'wg' } },
    { shape: [5, 16, 32], ns: [16, 32], weight: true, bias: true },
    { shape: [5, 16, 32], ns: [16, 32], weight: true, bias: true, opts: { path: 'wg' } },
    { shape: [4, 9], ns: [4, 9], weight: true, bias: true },                      // one row
    { shape: [6, 1], ns: 1, weight: true, bias: true, gradcheck: true },           // C = 1: y = bias, dx = 0
    { shape: [1, 1, 8], ns: [8], weight: true, bias: true },
    { shape: [3, 1, 5], ns: [1, 5], weight: true, bias: false },
    { shape: [10], ns: [10], weight: false, bias: false, gradcheck: true },
    { shape: [4, 6], ns: 6, weight: true, bias: true, eps: 0.5, gradcheck: true },
    { shape: [4, 6], ns: 6, weight: true, bias: true, eps: 1e-12 },
  ];
  it('cases', async () => {
    let seed = 300;
    for (const c of cases) await runCase(c, seed++);
  });
});

describe('layerNorm: dweight/dbias column reduction in chunks', () => {
  it('auto chunking on many rows, forced partial chunks, scalar and vec4 columns', async () => {
    // the automatic plan really chunks this shape: the chunk pass (ln_params_sum) runs
    expect(paramsPlan(dev, 700, 8 / 4).chunks).toBeGreaterThan(1);
    const cases: Case[] = [
      { shape: [700, 8], ns: 8, weight: true, bias: true },
      { shape: [700, 7], ns: 7, weight: true, bias: true },
      { shape: [50, 8], ns: 8, weight: true, bias: true, opts: { rowsPerChunk: 7 } },
      { shape: [50, 7], ns: 7, weight: true, bias: true, opts: { rowsPerChunk: 7 } },
      { shape: [50, 7], ns: 7, weight: true, bias: true, opts: { rowsPerChunk: 7, path: 'wg' } },
      { shape: [3, 4, 12], ns: [4, 12], weight: true, bias: false, opts: { rowsPerChunk: 1 } },
    ];
    let seed = 700;
    for (const c of cases) await runCase(c, seed++);
  });
});

describe('layerNorm: workgroup sizes and the per-adapter plans', () => {
  it('both layouts at workgroup sizes 8 and 256 (one and three tree levels at FAN 8)', async () => {
    let seed = 1100;
    for (const [shape, ns] of [[[3, 1000], 1000], [[20, 257], 257], [[9, 64], 64]] as [number[], number][]) {
      for (const path of ['row', 'wg'] as const) {
        for (const wg of [8, 256]) await runCase({ shape, ns, weight: true, bias: true, opts: { path, wg } }, seed++);
      }
    }
  });

  it('plans for a barrier-bound and a cooperative profile are valid and run', async () => {
    const gpuLike = { profile: { barrierBound: !dev.profile.barrierBound, treeMs: 0, loopMs: 0 }, limits: dev.limits } as unknown as Device;
    let seed = 1150;
    for (const d of [dev, gpuLike]) {
      for (const [rows, c] of [[4096, 256], [1, 100000], [2, 3000], [64, 7], [20000, 32]] as [number, number][]) {
        const p = layerNormPlan(d, rows, c);
        expect([8, 16, 32, 64, 128, 256]).toContain(p.wg);
        const pp = paramsPlan(d, rows, c);
        expect(pp.chunks * pp.rowsPerChunk).toBeGreaterThanOrEqual(rows);
        expect((pp.chunks - 1) * pp.rowsPerChunk).toBeLessThan(rows);
      }
      for (const [shape, ns] of [[[2, 3000], 3000], [[64, 7], 7], [[40, 256], 256]] as [number[], number][]) {
        const p = layerNormPlan(d, shape[0]!, ns);
        await runCase({ shape, ns, weight: true, bias: true, opts: { path: p.path, wg: p.wg } }, seed++);
      }
    }
  });
});

describe('layerNorm: large offsets', () => {
  it('rows at +-1e4 stay finite and match the reference', async () => {
    // the tolerance includes rounding the mean (~1e4) to f32: 0.5 ULP(1e4) ~ 5e-4, times rstd
    let seed = 800;
    for (const offset of [1e4, -1e4]) {
      for (const path of [undefined, 'row', 'wg'] as const) {
        for (const [shape, ns] of [[[5, 257], 257], [[3, 64], 64], [[2, 3000], 3000]] as [number[], number][]) {
          await runCase({ shape, ns, weight: true, bias: true, offset, opts: path ? { path } : {} }, seed++);
        }
      }
    }
  });
});

describe('layerNorm: shapes', () => {
  it('empty tensors; saved statistics only when grad is needed', async () => {
    const x = dev.zeros([0, 4], { requiresGrad: true });
    const w = dev.ones([4], { requiresGrad: true });
    const b = dev.zeros([4], { requiresGrad: true });
    const y = ops.layerNorm(x, 4, w, b);
    expect(y.shape).toEqual([0, 4]);
    y.backward(dev.zeros([0, 4]));
    expect(x.grad!.shape).toEqual([0, 4]);
    // no rows: dweight and dbias are sums over nothing
    expect(Array.from(await w.grad!.toArray())).toEqual([0, 0, 0, 0]);
    expect(Array.from(await b.grad!.toArray())).toEqual([0, 0, 0, 0]);
    const live = dev.memory().liveTensors;
    const z = ops.layerNorm(dev.ones([3, 4]), [4]);
    // the input and the output; mean and rstd were not kept (nothing requires grad)
    expect(dev.memory().liveTensors).toBe(live + 2);
    expect(Array.from(await z.toArray())).toEqual(new Array(12).fill(0));
  });
});

describe('layerNorm: bad inputs throw ShapeError before any GPU work', () => {
  function expectBad(fn: () => unknown, arg: RegExp): void {
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
    expect(msg.startsWith('layerNorm:'), msg).toBe(true);
    expect(msg).toMatch(arg);
    expect(dev.exec.pendingCount, 'no GPU work recorded').toBe(pending);
    expect(dev.memory().liveTensors, 'no tensor allocated').toBe(live);
  }

  it('normalizedShape not matching the trailing dims', () => {
    const x = dev.zeros([2, 3, 4]);
    expectBad(() => ops.layerNorm(x, 3), /normalizedShape \[3\] .*\[2, 3, 4\]/);
    expectBad(() => ops.layerNorm(x, [4, 3]), /normalizedShape \[4, 3\]/);
    expectBad(() => ops.layerNorm(x, [1, 2, 3, 4]), /normalizedShape \[1, 2, 3, 4\]/);
    expectBad(() => ops.layerNorm(x, []), /normalizedShape/);
    expectBad(() => ops.layerNorm(x, [2.5]), /normalizedShape/);
    expectBad(() => ops.layerNorm(x, 'x' as unknown as number), /normalizedShape/);
  });

  it('weight / bias of the wrong shape, not tensors, disposed', () => {
    const x = dev.zeros([2, 3, 4]);
    const w3 = dev.ones([3]);
    const w34 = dev.ones([3, 4]);
    const ok = dev.ones([4]);
    expectBad(() => ops.layerNorm(x, 4, w3), /weight has shape \[3\], expected normalizedShape \[4\]/);
    expectBad(() => ops.layerNorm(x, 4, ok, w3), /bias has shape \[3\], expected normalizedShape \[4\]/);
    expectBad(() => ops.layerNorm(x, [3, 4], ok), /weight has shape \[4\], expected normalizedShape \[3, 4\]/);
    expectBad(() => ops.layerNorm(x, 4, w34), /weight has shape \[3, 4\]/);
    expectBad(() => ops.layerNorm(x, 4, [1, 1, 1, 1] as unknown as Tensor), /weight must be a Tensor/);
    expectBad(() => ops.layerNorm(x, 4, ok, 5 as unknown as Tensor), /bias must be a Tensor/);
    const d = dev.ones([4]);
    d.dispose();
    expectBad(() => ops.layerNorm(x, 4, d), /weight .*dispose/);
    expectBad(() => ops.layerNorm(x, 4, ok, d), /bias .*dispose/);
  });

  it('eps non-finite or <= 0', () => {
    const x = dev.zeros([2, 4]);
    for (const eps of [0, -1e-5, NaN, Infinity, -Infinity, '1e-5' as unknown as number]) {
      expectBad(() => ops.layerNorm(x, 4, null, null, eps), /eps/);
    }
  });

  it('non-tensor, disposed or int32 x', () => {
    const bad: unknown[] = [null, undefined, 3, [1, 2], { shape: [2] }];
    for (const b of bad) {
      expectBad(() => ops.layerNorm(b as Tensor, 2), /x must be a Tensor/);
    }
    const d = dev.zeros([2, 4]);
    d.dispose();
    expectBad(() => ops.layerNorm(d, 4), /x .*dispose/);
    const i = dev.tensor([1, 2], [2], { dtype: 'int32' });
    expectBad(() => ops.layerNorm(i, 2), /x .*must be float32/);
  });
});
