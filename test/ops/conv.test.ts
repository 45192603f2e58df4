// patchify, im2col / col2im, conv2d and maxPool2d against float64 direct-loop references, over random
// configs (seeded): strides 1–2, paddings 0–2, dilations 1–2, odd image sizes, batch 1–3, channels 1–3.
//
// Tolerances (u = 2^-24, the f32 unit roundoff):
// - pure data movement (patchify, im2col, max-pool forward): the only error is rounding the float64
//   inputs to f32 once, |err| <= u·|ref|: { atol: 0, rtol: u }.
// - sums (col2im, conv2d, max-pool backward): a K-term sum of f32 products carries input rounding
//   (<= 3u per term) and accumulation error, which for random-signed terms stays below
//   2·sqrt(K)·u·Σ|terms| (the worst case (K-1)·u·Σ|terms| needs same-signed partial sums). Σ|terms| is
//   bounded per test by running the reference on |inputs| with |g| <= 1, so
//   atol = (2·sqrt(K) + 3)·u·max Σ|terms|, rtol 0.
// - gradcheck (f32 central differences, eps 1e-3) uses the defaults atol 1e-3, rtol 1e-2, on tiny
//   configs: every op here is (bi)linear in each input, so the differences are exact up to f32
//   rounding of L; max-pool inputs are spaced > 2·eps apart so no argmax flips inside a difference.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, ShapeError, noGrad, type Tensor } from '../../src/index.js';
import { im2col, col2im, conv2d, im2colRef, im2colRefBackward, col2imRef, conv2dRef, conv2dRefBackward, type Size2 } from '../../src/ops/conv.js';
import { patchify, patchifyRef, patchifyRefBackward } from '../../src/ops/patchify.js';
import { maxPool2d, maxPool2dRef, maxPool2dRefBackward, maxPool2dRefWithIndices, poolGeometry } from '../../src/ops/pool.js';
import { Conv2d, MaxPool2d } from '../../src/nn/conv.js';
import { relu } from '../../src/ops/elementwise.js';
import { mapArr } from '../../src/reference.js';
import { type Arr, arr, checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Tol } from '../helpers.js';

const U = 2 ** -24;
const COPY_TOL: Tol = { atol: 0, rtol: U };

/** Tolerance of K-term f32 sums whose Σ|terms| is at most S (see the header). */
function sumTol(K: number, S: number): Tol {
  return { atol: (2 * Math.sqrt(K) + 3) * U * S, rtol: 0 };
}

const absArr = (a: Arr): Arr => mapArr(a, Math.abs);
const ones = (shape: readonly number[]): Arr => mapArr(arr(shape), () => 1);
const maxOf = (...as: (Arr | null)[]): number => Math.max(...as.map((a) => (a ? Math.max(...a.data) : 0)));

/** Distinct values (a shuffled ramp with the given spacing, centred on 0): no ties anywhere. */
function distinctArr(shape: readonly number[], rnd: () => number, spacing: number): Arr {
  const a = arr(shape);
  const n = a.data.length;
  const v = Array.from({ length: n }, (_, i) => (i - (n - 1) / 2) * spacing);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  a.data.set(v);
  return a;
}

interface Win {
  kernelSize: [number, number];
  stride: [number, number];
  padding: [number, number];
  dilation: [number, number];
}

/** A random window config valid for an H×W image (kernel fits the padded input). */
function randWin(rnd: () => number, H: number, W: number, kmax = 3): Win {
  for (;;) {
    const w: Win = {
      kernelSize: [randInt(rnd, 1, kmax), randInt(rnd, 1, kmax)],
      stride: [randInt(rnd, 1, 2), randInt(rnd, 1, 2)],
      padding: [randInt(rnd, 0, 2), randInt(rnd, 0, 2)],
      dilation: [randInt(rnd, 1, 2), randInt(rnd, 1, 2)],
    };
    if (w.dilation[0] * (w.kernelSize[0] - 1) + 1 <= H + 2 * w.padding[0] && w.dilation[1] * (w.kernelSize[1] - 1) + 1 <= W + 2 * w.padding[1]) return w;
  }
}

const ODD = [1, 3, 5, 7, 9];
const fmt = (o: object): string => JSON.stringify(o);

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('patchify', () => {
  it('matches the reference over random shapes (forward and backward exact up to input rounding)', async () => {
    const rnd = rng(11);
    for (let t = 0; t < 8; t++) {
      const p = randInt(rnd, 1, 4);
      const shape = [randInt(rnd, 1, 3), randInt(rnd, 1, 3), p * randInt(rnd, 1, 3), p * randInt(rnd, 1, 4)];
      const x = randArr(shape, rnd);
      await checkOp({
        name: `patchify ${fmt(shape)} p=${p}`, dev, inputs: [x],
        gpu: (a) => patchify(a, p), ref: (a) => patchifyRef(a, p), refBackward: (g, a) => patchifyRefBackward(g, a, p),
        fwdTol: COPY_TOL, bwdTol: COPY_TOL, // a permutation both ways: only input rounding
        gradcheck: t < 2 ? {} : false, // gradcheck of a permutation on the two smallest-seeded cases; the rest are covered by the exact backward check
      });
    }
  });

  it('equals a stride-p im2col transposed (ViT patch embedding order)', async () => {
    const rnd = rng(12);
    const x = randArr([2, 3, 8, 12], rnd);
    const pa = patchifyRef(x, 4);
    const cols = im2colRef(x, { kernelSize: 4, stride: 4 });
    const [B, D, L] = cols.shape as [number, number, number];
    const t = arr([B, L, D]);
    for (let b = 0; b < B; b++) for (let d = 0; d < D; d++) for (let l = 0; l < L; l++) t.data[(b * L + l) * D + d] = cols.data[(b * D + d) * L + l]!;
    expectClose(pa, t, { atol: 0, rtol: 0 }, 'patchifyRef vs im2colRef');
    const gp = await toArr(patchify(toTensor(dev, x), 4));
    expectClose(gp, t, COPY_TOL, 'patchify vs im2colRef');
  });
});

describe('im2col / col2im', () => {
  it('im2col matches the reference over random configs', async () => {
    const rnd = rng(21);
    for (let t = 0; t < 14; t++) {
      const H = ODD[randInt(rnd, 1, 4)]!;
      const W = ODD[randInt(rnd, 1, 4)]!;
      const shape = [randInt(rnd, 1, 3), randInt(rnd, 1, 3), H, W];
      const win = randWin(rnd, H, W);
      const x = randArr(shape, rnd);
      const K = win.kernelSize[0] * win.kernelSize[1];
      const S = maxOf(im2colRefBackward(ones(im2colRef(x, win).shape), x, win)[0]);
      await checkOp({
        name: `im2col ${fmt(shape)} ${fmt(win)}`, dev, inputs: [x],
        gpu: (a) => im2col(a, win), ref: (a) => im2colRef(a, win), refBackward: (g, a) => im2colRefBackward(g, a, win),
        fwdTol: COPY_TOL, // a gather of input values and zeros
        bwdTol: sumTol(K, S), // col2im: each pixel sums at most kh·kw column entries
        gradcheck: false, // gradcheck runs on the tiny configs below (it costs two forwards per input element)
      });
    }
  });

  it('im2col gradcheck on tiny configs', async () => {
    const rnd = rng(22);
    for (const win of [
      { kernelSize: [3, 2], stride: [2, 1], padding: [1, 2], dilation: [1, 2] },
      { kernelSize: [2, 3], stride: [1, 2], padding: [2, 0], dilation: [2, 1] },
    ] as Win[]) {
      const x = randArr([1, 2, 5, 3], rnd);
      const S = maxOf(im2colRefBackward(ones(im2colRef(x, win).shape), x, win)[0]);
      await checkOp({
        name: `im2col tiny ${fmt(win)}`, dev, inputs: [x],
        gpu: (a) => im2col(a, win), ref: (a) => im2colRef(a, win), refBackward: (g, a) => im2colRefBackward(g, a, win),
        fwdTol: COPY_TOL, bwdTol: sumTol(6, S), gradcheck: {},
      });
    }
  });

  it('col2im (fold) matches the float64 scatter-add and its backward is im2col', async () => {
    const rnd = rng(23);
    for (let t = 0; t < 6; t++) {
      const H = ODD[randInt(rnd, 1, 4)]!;
      const W = ODD[randInt(rnd, 1, 4)]!;
      const B = randInt(rnd, 1, 2);
      const C = randInt(rnd, 1, 3);
      const win = randWin(rnd, H, W);
      const colShape = im2colRef(arr([B, C, H, W]), win).shape;
      const cols = randArr(colShape, rnd);
      const K = win.kernelSize[0] * win.kernelSize[1];
      const S = maxOf(col2imRef(ones(colShape), [B, C, H, W], win));
      await checkOp({
        name: `col2im ${fmt([B, C, H, W])} ${fmt(win)}`, dev, inputs: [cols],
        gpu: (a) => col2im(a, [H, W], win), ref: (a) => col2imRef(a, [B, C, H, W], win),
        refBackward: (g) => [im2colRef(g, win)],
        fwdTol: sumTol(K, S), // each pixel sums at most kh·kw entries
        bwdTol: COPY_TOL, // im2col: a gather
        gradcheck: t === 0 ? {} : false, // the first (B, C, H, W <= 9) case only: gradcheck costs two forwards per element
      });
    }
  });

  it('col2im is the adjoint of im2col: <im2col(x), c> = <x, col2im(c)>', async () => {
    const rnd = rng(24);
    const win: Win = { kernelSize: [3, 3], stride: [2, 1], padding: [1, 2], dilation: [2, 1] };
    const x = randArr([2, 3, 9, 7], rnd);
    const cx = await toArr(im2col(toTensor(dev, x), win));
    const c = randArr(cx.shape, rnd);
    const xc = await toArr(col2im(toTensor(dev, c), [9, 7], win));
    let lhs = 0;
    let rhs = 0;
    let mag = 0;
    for (let i = 0; i < c.data.length; i++) {
      lhs += cx.data[i]! * c.data[i]!;
      mag += Math.abs(cx.data[i]! * c.data[i]!);
    }
    for (let i = 0; i < x.data.length; i++) rhs += x.data[i]! * xc.data[i]!;
    // both sides see f32-rounded inputs and col2im's f32 sums of <= 9 terms: (2·3 + 3)·u relative to Σ|terms|
    expect(Math.abs(lhs - rhs)).toBeLessThanOrEqual(9 * U * mag + 2 * U * mag);
  });
});

describe('conv2d', () => {
  /** Tolerances for a conv2d case from the reference on absolute values (see the header). */
  function convTols(x: Arr, w: Arr, b: Arr | null, o: object, outShape: readonly number[]): { fwd: Tol; bwd: Tol } {
    const [O, C, kh, kw] = w.shape as [number, number, number, number];
    const [B, , Ho, Wo] = outShape as [number, number, number, number];
    const Sf = maxOf(conv2dRef(absArr(x), absArr(w), b ? absArr(b) : null, o));
    const [gx, gw, gb] = conv2dRefBackward(ones(outShape), absArr(x), absArr(w), b ? absArr(b) : null, o);
    return {
      fwd: sumTol(C * kh * kw + 1, Sf), // C·kh·kw products plus the bias
      bwd: sumTol(Math.max(O * kh * kw, B * Ho * Wo), maxOf(gx, gw, gb)), // gx: <= O·kh·kw terms; gw, gb: B·Ho·Wo
    };
  }

  /** checkOp of one conv implementation over random configs. */
  async function randomConvs(name: string, conv: typeof conv2d, seed: number, count: number): Promise<void> {
    const rnd = rng(seed);
    for (let t = 0; t < count; t++) {
      const H = ODD[randInt(rnd, 1, 4)]!;
      const W = ODD[randInt(rnd, 1, 4)]!;
      const B = randInt(rnd, 1, 3);
      const C = randInt(rnd, 1, 3);
      const O = randInt(rnd, 1, 4);
      const win = randWin(rnd, H, W);
      const o = { stride: win.stride, padding: win.padding, dilation: win.dilation };
      const x = randArr([B, C, H, W], rnd);
      const w = randArr([O, C, ...win.kernelSize], rnd);
      const withBias = t % 3 !== 2;
      const b = withBias ? randArr([O], rnd) : null;
      const outShape = conv2dRef(x, w, b, o).shape;
      const tol = convTols(x, w, b, o, outShape);
      await checkOp({
        name: `${name} x ${fmt(x.shape)} w ${fmt(w.shape)} ${fmt(o)} bias=${withBias}`, dev,
        inputs: b ? [x, w, b] : [x, w],
        gpu: (xt, wt, bt) => conv(xt!, wt!, bt, o),
        ref: (xa, wa, ba) => conv2dRef(xa!, wa!, ba ?? null, o),
        refBackward: (g, xa, wa, ba) => {
          const [gx, gw, gb] = conv2dRefBackward(g, xa!, wa!, ba ?? null, o);
          return ba ? [gx, gw, gb] : [gx, gw];
        },
        fwdTol: tol.fwd, bwdTol: tol.bwd,
        gradcheck: false, // on the tiny configs below
      });
    }
  }

  it('matches the direct 7-loop reference over random configs (with and without bias)', async () => {
    await randomConvs('conv2d', conv2d, 31, 18);
  });

  it('GEMM K padding: C·kh·kw (+ bias row) of every residue mod 4, with and without bias', async () => {
    // conv2d pads K = C·kh·kw + bias to a multiple of 4 with a ones row and zero rows (see conv.ts)
    const rnd = rng(33);
    const kernels: [number, number, number][] = [[1, 2, 2], [5, 1, 1], [3, 1, 2], [7, 1, 1], [1, 3, 3]]; // C, kh, kw: 4, 5, 6, 7, 9
    for (const [C, kh, kw] of kernels) {
      for (const withBias of [true, false]) {
        const o = { padding: [1, 0] as Size2 };
        const x = randArr([2, C, 5, 6], rnd);
        const w = randArr([3, C, kh, kw], rnd);
        const b = withBias ? randArr([3], rnd) : null;
        const outShape = conv2dRef(x, w, b, o).shape;
        const tol = convTols(x, w, b, o, outShape);
        await checkOp({
          name: `conv2d K=${C * kh * kw}${withBias ? '+1' : ''}`, dev, inputs: b ? [x, w, b] : [x, w],
          gpu: (xt, wt, bt) => conv2d(xt!, wt!, bt, o),
          ref: (xa, wa, ba) => conv2dRef(xa!, wa!, ba ?? null, o),
          refBackward: (g, xa, wa, ba) => {
            const [gx, gw, gb] = conv2dRefBackward(g, xa!, wa!, ba ?? null, o);
            return ba ? [gx, gw, gb] : [gx, gw];
          },
          fwdTol: tol.fwd, bwdTol: tol.bwd, gradcheck: false,
        });
      }
    }
  });

  it('large channel counts (O, C > 64, C·kh·kw = 402 + bias row) and B·L > 64', async () => {
    // too big for checkOp's float64 central differences: forward and one backward vs the reference
    const rnd = rng(35);
    const o = { stride: [1, 2] as Size2, padding: [2, 1] as Size2, dilation: [2, 1] as Size2 };
    const x = randArr([2, 67, 9, 11], rnd);
    const w = randArr([70, 67, 3, 2], rnd);
    const b = randArr([70], rnd);
    const outShape = conv2dRef(x, w, b, o).shape;
    const R = randArr(outShape, rnd);
    const tol = convTols(x, w, b, o, outShape);
    const [xt, wt, bt] = [toTensor(dev, x, true), toTensor(dev, w, true), toTensor(dev, b, true)];
    const y = conv2d(xt, wt, bt, o);
    expectClose(await toArr(y), conv2dRef(x, w, b, o), tol.fwd, 'conv2d large forward');
    y.backward(toTensor(dev, R));
    const [gx, gw, gb] = conv2dRefBackward(R, x, w, b, o);
    expectClose(await toArr(xt.grad!), gx, tol.bwd, 'conv2d large grad x');
    expectClose(await toArr(wt.grad!), gw, tol.bwd, 'conv2d large grad weight');
    expectClose(await toArr(bt.grad!), gb!, tol.bwd, 'conv2d large grad bias');
    [xt, wt, bt, y].forEach((t) => {
      t.grad?.dispose();
      t.dispose();
    });
  });

  it('gradcheck on tiny configs', async () => {
    const rnd = rng(32);
    const cases: [number[], number[], object][] = [
      [[1, 2, 5, 4], [2, 2, 3, 2], { stride: [2, 1], padding: [1, 2], dilation: [1, 2] }],
      [[2, 1, 3, 5], [3, 1, 2, 2], { stride: 1, padding: 0, dilation: 2 }],
    ];
    for (const [xs, ws, o] of cases) {
      const x = randArr(xs, rnd);
      const w = randArr(ws, rnd);
      const b = randArr([ws[0]!], rnd);
      const outShape = conv2dRef(x, w, b, o).shape;
      const tol = convTols(x, w, b, o, outShape);
      await checkOp({
        name: `conv2d tiny x ${fmt(xs)} w ${fmt(ws)} ${fmt(o)}`, dev, inputs: [x, w, b],
        gpu: (xt, wt, bt) => conv2d(xt!, wt!, bt, o),
        ref: (xa, wa, ba) => conv2dRef(xa!, wa!, ba!, o),
        refBackward: (g, xa, wa, ba) => conv2dRefBackward(g, xa!, wa!, ba!, o),
        fwdTol: tol.fwd, bwdTol: tol.bwd, gradcheck: {},
      });
    }
  });

  it('only the weight requires grad (a network input image): weight and bias grads still match', async () => {
    const rnd = rng(33);
    const o = { padding: 1 };
    const x = randArr([2, 1, 7, 9], rnd);
    const w = randArr([4, 1, 3, 3], rnd);
    const b = randArr([4], rnd);
    const outShape = conv2dRef(x, w, b, o).shape;
    const tol = convTols(x, w, b, o, outShape);
    await checkOp({
      name: 'conv2d wrt weight and bias', dev, inputs: [x, w, b], wrt: [1, 2],
      gpu: (xt, wt, bt) => conv2d(xt!, wt!, bt, o),
      ref: (xa, wa, ba) => conv2dRef(xa!, wa!, ba!, o),
      refBackward: (g, xa, wa, ba) => conv2dRefBackward(g, xa!, wa!, ba!, o),
      fwdTol: tol.fwd, bwdTol: tol.bwd, gradcheck: false, // the rule is covered by the gradchecks above
    });
  });

  it('gradients for x alone and for the bias alone', async () => {
    const rnd = rng(36);
    const o = { stride: 2, padding: [0, 1] as Size2, dilation: [2, 1] as Size2 };
    const x = randArr([3, 2, 9, 7], rnd);
    const w = randArr([3, 2, 2, 3], rnd);
    const b = randArr([3], rnd);
    const outShape = conv2dRef(x, w, b, o).shape;
    const tol = convTols(x, w, b, o, outShape);
    for (const wrt of [[0], [2]]) {
      await checkOp({
        name: `conv2d wrt ${fmt(wrt)}`, dev, inputs: [x, w, b], wrt,
        gpu: (xt, wt, bt) => conv2d(xt!, wt!, bt, o),
        ref: (xa, wa, ba) => conv2dRef(xa!, wa!, ba!, o),
        refBackward: (g, xa, wa, ba) => conv2dRefBackward(g, xa!, wa!, ba!, o),
        fwdTol: tol.fwd, bwdTol: tol.bwd, gradcheck: false, // the rule is covered by the gradchecks above
      });
    }
  });

  it('an empty batch gives an empty output and zero weight and bias grads', async () => {
    const x = dev.zeros([0, 2, 5, 5]);
    const w = dev.ones([3, 2, 3, 3], { requiresGrad: true });
    const b = dev.ones([3], { requiresGrad: true });
    const y = conv2d(x, w, b, { padding: 1 });
    expect(y.shape).toEqual([0, 3, 5, 5]);
    y.backward(dev.zeros(y.shape));
    expect(Array.from(await w.grad!.toArray())).toEqual(new Array(54).fill(0));
    expect(Array.from(await b.grad!.toArray())).toEqual([0, 0, 0]);
    [x, w, b, y, w.grad!, b.grad!].forEach((t) => t.dispose());
  });

  it('with kernelSize = stride = p equals the ViT patch embedding patchify(x, p) · Wᵀ + b', async () => {
    const rnd = rng(37);
    const x = randArr([2, 3, 8, 12], rnd);
    const w = randArr([5, 3, 4, 4], rnd);
    const b = randArr([5], rnd);
    const y = await toArr(conv2d(toTensor(dev, x), toTensor(dev, w), toTensor(dev, b), { stride: 4 }));
    const pa = patchifyRef(x, 4); // [2, 6, 48]
    const e = arr([2, 5, 2, 3]); // [B, D, H/p, W/p] from the patch rows
    for (let bi = 0; bi < 2; bi++)
      for (let l = 0; l < 6; l++)
        for (let d = 0; d < 5; d++) {
          let acc = b.data[d]!;
          for (let k = 0; k < 48; k++) acc += pa.data[(bi * 6 + l) * 48 + k]! * w.data[d * 48 + k]!;
          e.data[(bi * 5 + d) * 6 + l] = acc;
        }
    expectClose(y, e, sumTol(49, maxOf(conv2dRef(absArr(x), absArr(w), absArr(b), { stride: 4 }))), 'conv2d stride p vs patchify·Wᵀ');
  });

  it('under noGrad leaves no temporaries behind', async () => {
    const x = dev.randn([2, 3, 7, 5], { seed: 1 });
    const w = dev.randn([4, 3, 3, 3], { seed: 2 });
    const b = dev.randn([4], { seed: 3 });
    const before = dev.memory().liveTensors;
    const y = noGrad(() => conv2d(x, w, b, { padding: 1, stride: 2 }));
    expect(y.shape).toEqual([2, 4, 4, 3]);
    expect(dev.memory().liveTensors).toBe(before + 1);
    const ref = conv2dRef(await toArr(x), await toArr(w), await toArr(b), { padding: 1, stride: 2 });
    const tol = sumTol(3 * 9 + 1, maxOf(conv2dRef(absArr(await toArr(x)), absArr(await toArr(w)), absArr(await toArr(b)), { padding: 1, stride: 2 })));
    expectClose(await toArr(y), ref, tol, 'conv2d under noGrad');
    [x, w, b, y].forEach((t) => t.dispose());
  });
});

describe('maxPool2d', () => {
  /** A random valid pooling config (padding <= half the effective kernel, no all-padding window). */
  function randPool(rnd: () => number, shape: number[]): Win & { strideDefault: boolean } {
    for (;;) {
      const w = { ...randWin(rnd, shape[2]!, shape[3]!), strideDefault: rnd() < 0.25 };
      const opts = w.strideDefault ? { kernelSize: w.kernelSize, padding: w.padding, dilation: w.dilation } : w;
      try {
        poolGeometry(shape, opts);
        if (w.strideDefault) w.stride = w.kernelSize;
        return w;
      } catch (e) {
        if (!(e instanceof ShapeError)) throw e;
      }
    }
  }

  it('matches the reference over random configs (forward exact, gradient to the first maximum)', async () => {
    const rnd = rng(41);
    for (let t = 0; t < 14; t++) {
      const shape = [randInt(rnd, 1, 3), randInt(rnd, 1, 3), ODD[randInt(rnd, 1, 4)]!, ODD[randInt(rnd, 1, 4)]!];
      const win = randPool(rnd, shape);
      const opts = win.strideDefault ? { kernelSize: win.kernelSize, padding: win.padding, dilation: win.dilation } : win;
      const x = distinctArr(shape, rnd, 1 / 64); // no ties, so the argmax is unambiguous
      const S = maxOf(maxPool2dRefBackward(ones(maxPool2dRef(x, opts).shape), x, opts)[0]);
      await checkOp({
        name: `maxPool2d ${fmt(shape)} ${fmt(opts)}`, dev, inputs: [x],
        gpu: (a) => maxPool2d(a, opts), ref: (a) => maxPool2dRef(a, opts), refBackward: (g, a) => maxPool2dRefBackward(g, a, opts),
        fwdTol: COPY_TOL, // a selection of input values
        bwdTol: sumTol(win.kernelSize[0] * win.kernelSize[1], S), // each pixel sums <= kh·kw window gradients
        gradcheck: false, // on the tiny configs below (two forwards per input element)
      });
    }
  });

  it('disjoint windows (the scatter backward): 2×2 s2 over odd sizes, padded, dilated, gaps between windows', async () => {
    const rnd = rng(44);
    // stride >= dilated extent: pixels in no window (last row/column, gaps) must get zero gradient
    for (const opts of [
      { kernelSize: 2, stride: 2 },
      { kernelSize: [3, 2], stride: [3, 3], padding: [1, 0] },
      { kernelSize: 2, stride: 3, padding: 1, dilation: 2 },
    ] as const) {
      const shape = [2, 3, 7, 9];
      const x = distinctArr(shape, rnd, 1 / 64);
      const S = maxOf(maxPool2dRefBackward(ones(maxPool2dRef(x, opts).shape), x, opts)[0]);
      await checkOp({
        name: `maxPool2d disjoint ${fmt(opts)}`, dev, inputs: [x],
        gpu: (a) => maxPool2d(a, opts), ref: (a) => maxPool2dRef(a, opts), refBackward: (g, a) => maxPool2dRefBackward(g, a, opts),
        fwdTol: COPY_TOL, bwdTol: sumTol(1, S), gradcheck: false,
      });
    }
  });

  it('gradcheck on tiny configs (overlapping and dilated windows)', async () => {
    const rnd = rng(43);
    for (const opts of [
      { kernelSize: [3, 2], stride: [1, 2], padding: [1, 1], dilation: [1, 1] },
      { kernelSize: 2, stride: 1, padding: [1, 0], dilation: 2 },
      { kernelSize: 2, stride: 2, padding: [1, 0], dilation: 1 }, // disjoint: the scatter backward
    ] as const) {
      const x = distinctArr([1, 2, 5, 4], rnd, 0.05); // spacing 0.05 > 2·eps: no argmax flips in a difference
      const S = maxOf(maxPool2dRefBackward(ones(maxPool2dRef(x, opts).shape), x, opts)[0]);
      await checkOp({
        name: `maxPool2d tiny ${fmt(opts)}`, dev, inputs: [x],
        gpu: (a) => maxPool2d(a, opts), ref: (a) => maxPool2dRef(a, opts), refBackward: (g, a) => maxPool2dRefBackward(g, a, opts),
        fwdTol: COPY_TOL, bwdTol: sumTol(6, S), gradcheck: {},
      });
    }
  });

  it('pads with -inf (all-negative windows at the border stay negative) and breaks ties by the first maximum', async () => {
    // x = -1 - (distinct small offsets): a zero padding would win every border window
    const rnd = rng(42);
    const x = mapArr(distinctArr([1, 2, 5, 7], rnd, 0.01), (v) => v - 2);
    const opts = { kernelSize: 3, stride: 2, padding: 1 };
    const y = await toArr(maxPool2d(toTensor(dev, x), opts));
    expect(Math.max(...y.data)).toBeLessThan(0);
    expectClose(y, maxPool2dRef(x, opts), COPY_TOL, 'maxPool2d negative');
    // ties: a constant image sends each window's gradient to its first (top-left) valid pixel
    const c = dev.full([1, 1, 4, 4], 0.5, { requiresGrad: true });
    const out = maxPool2d(c, { kernelSize: 2, stride: 1 });
    out.backward(dev.ones(out.shape));
    const expected = maxPool2dRefBackward(ones([1, 1, 3, 3]), mapArr(arr([1, 1, 4, 4]), () => 0.5), { kernelSize: 2, stride: 1 })[0];
    // window (i, j) picks pixel (i, j): pixels in the top-left 3×3 get 1, the rest 0
    expect(Array.from(expected.data)).toEqual([1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 0, 0, 0, 0]);
    expectClose(await toArr(c.grad!), expected, { atol: 0, rtol: 0 }, 'maxPool2d ties'); // sums of ones: exact
    const { idx } = maxPool2dRefWithIndices(mapArr(arr([1, 1, 4, 4]), () => 0.5), { kernelSize: 2, stride: 1 });
    expect(Array.from(idx)).toEqual([0, 1, 2, 4, 5, 6, 8, 9, 10]);
    [c, out].forEach((t) => t.dispose());
  });
});

describe('CCT tokenizer: conv → ReLU → maxPool', () => {
  it('forward and backward match the composed references', async () => {
    const rnd = rng(51);
    const x = randArr([2, 1, 9, 7], rnd);
    const w = randArr([5, 1, 3, 3], rnd);
    const b = randArr([5], rnd);
    const co = { padding: 1 };
    const po = { kernelSize: 3, stride: 2, padding: 1 };
    const refFwd = (xa: Arr, wa: Arr, ba: Arr): Arr => maxPool2dRef(mapArr(conv2dRef(xa, wa, ba, co), (v) => Math.max(v, 0)), po);
    const refBwd = (g: Arr, xa: Arr, wa: Arr, ba: Arr): Arr[] => {
      const h = conv2dRef(xa, wa, ba, co);
      const r = mapArr(h, (v) => Math.max(v, 0));
      const gr = maxPool2dRefBackward(g, r, po)[0];
      const gh = arr(h.shape);
      for (let i = 0; i < gh.data.length; i++) gh.data[i] = h.data[i]! > 0 ? gr.data[i]! : 0;
      const [gx, gw, gb] = conv2dRefBackward(gh, xa, wa, ba, co);
      return [gx, gw, gb!];
    };
    const Sf = maxOf(conv2dRef(absArr(x), absArr(w), absArr(b), co));
    const [gx, gw, gb] = conv2dRefBackward(ones([2, 5, 9, 7]), absArr(x), absArr(w), absArr(b), co);
    await checkOp({
      name: 'conv → relu → maxPool', dev, inputs: [x, w, b],
      gpu: (xt, wt, bt) => maxPool2d(relu(conv2d(xt!, wt!, bt, co)), po),
      ref: refFwd, refBackward: refBwd,
      fwdTol: sumTol(10, Sf), // conv sums of 9 products + bias; ReLU and max only select
      // maxPool's gradient sums <= 4 windows (≤ the ones bound) before the conv backward (≤ 5·9 or 2·63 terms)
      bwdTol: sumTol(2 * 63, 4 * maxOf(gx, gw, gb)),
      gradcheck: false, // ReLU kinks make f32 differences unreliable; each op is gradchecked alone above
    });
  });
});

describe('nn.Conv2d and nn.MaxPool2d', () => {
  it('has PyTorch parameter names, shapes and U(±1/sqrt(fan_in)) init, and forward = conv2d', async () => {
    const m = new Conv2d(dev, { inChannels: 3, outChannels: 8, kernelSize: [3, 2], stride: 2, padding: 1, dilation: [1, 2], seed: 7 });
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([['weight', [8, 3, 3, 2]], ['bias', [8]]]);
    const bound = 1 / Math.sqrt(3 * 3 * 2);
    const w = await toArr(m.weight);
    const b = await toArr(m.bias!);
    for (const v of [...w.data, ...b.data]) expect(Math.abs(v)).toBeLessThanOrEqual(bound);
    // spread over the interval, not a constant: the extremes of 144 uniform draws reach past ±bound/2
    expect(Math.max(...w.data)).toBeGreaterThan(bound / 2);
    expect(Math.min(...w.data)).toBeLessThan(-bound / 2);
    const xa = randArr([2, 3, 7, 9], rng(61));
    const y = m.forward(toTensor(dev, xa));
    const o = { stride: 2, padding: 1, dilation: [1, 2] as Size2 };
    const ref = conv2dRef(xa, w, b, o);
    expectClose(await toArr(y), ref, sumTol(19, maxOf(conv2dRef(absArr(xa), absArr(w), absArr(b), o))), 'nn.Conv2d forward');
    const nb = new Conv2d(dev, { inChannels: 1, outChannels: 2, kernelSize: 3, bias: false });
    expect(nb.namedParameters().map(([n]) => n)).toEqual(['weight']);
    expect(nb.bias).toBeNull();
    m.dispose();
    nb.dispose();
  });

  it('nn.MaxPool2d forwards to maxPool2d (stride defaults to kernelSize)', async () => {
    const p = new MaxPool2d(dev, { kernelSize: 2 });
    expect(p.parameters()).toEqual([]);
    const xa = randArr([1, 2, 7, 5], rng(62));
    expectClose(await toArr(p.forward(toTensor(dev, xa))), maxPool2dRef(xa, { kernelSize: 2, stride: 2 }), COPY_TOL, 'nn.MaxPool2d');
    expect(() => new MaxPool2d(dev, { kernelSize: 0 })).toThrow(/nn\.MaxPool2d: kernelSize/);
    expect(() => new MaxPool2d(dev, { kernelSize: 2, stride: -1 })).toThrow(/nn\.MaxPool2d: stride/);
    expect(() => new Conv2d(dev, { inChannels: 0, outChannels: 2, kernelSize: 3 })).toThrow(/nn\.Conv2d: inChannels/);
    expect(() => new Conv2d(dev, { inChannels: 1, outChannels: 2, kernelSize: 3, padding: -1 })).toThrow(/nn\.Conv2d: padding/);
  });
});

describe('bad input: ShapeError naming the op, the argument and the shapes, before any GPU work', () => {
  let x: Tensor;
  let w: Tensor;
  beforeAll(() => {
    x = dev.zeros([2, 3, 7, 9]);
    w = dev.zeros([4, 3, 3, 3]);
  });

  function rejects(fn: () => unknown, pattern: RegExp): void {
    const pending = dev.exec.pendingCount;
    const live = dev.memory().liveTensors;
    let err: unknown = null;
    try {
      fn();
    } catch (e) {
      err = e;
    }
    expect(err, `expected a ShapeError matching ${pattern}`).toBeInstanceOf(ShapeError);
    expect((err as Error).message).toMatch(pattern);
    expect(dev.exec.pendingCount, 'no GPU work recorded').toBe(pending);
    expect(dev.memory().liveTensors, 'no tensor allocated').toBe(live);
  }

  it('x not rank 4', () => {
    const x3 = dev.zeros([3, 7, 9]);
    rejects(() => patchify(x3, 1), /patchify: x must have rank 4 .*\[3, 7, 9\]/);
    rejects(() => im2col(x3, { kernelSize: 3 }), /im2col: x must have rank 4 .*\[3, 7, 9\]/);
    rejects(() => conv2d(x3, w), /conv2d: x must have rank 4 .*\[3, 7, 9\]/);
    rejects(() => maxPool2d(x3, { kernelSize: 2 }), /maxPool2d: x must have rank 4 .*\[3, 7, 9\]/);
    const w3 = dev.zeros([4, 3, 3]);
    rejects(() => conv2d(x, w3), /conv2d: weight must have rank 4 .*\[4, 3, 3\]/);
    x3.dispose();
    w3.dispose();
  });

  it('patchify: H or W not divisible by p, bad patch size', () => {
    rejects(() => patchify(x, 3), /patchify: x \[2, 3, 7, 9\]: H = 7 and W = 9 must be divisible by patchSize 3/);
    rejects(() => patchify(x, 0), /patchify: patchSize must be a positive integer, got 0/);
  });

  it('conv2d: channel mismatch with weight', () => {
    const w2 = dev.zeros([4, 2, 3, 3]);
    rejects(() => conv2d(x, w2), /conv2d: weight \[4, 2, 3, 3\] expects 2 input channels but x \[2, 3, 7, 9\] has 3/);
    w2.dispose();
  });

  it('conv2d: bias shape mismatch', () => {
    const b3 = dev.zeros([3]);
    const b41 = dev.zeros([4, 1]);
    rejects(() => conv2d(x, w, b3), /conv2d: bias must have shape \[4\] \(weight \[4, 3, 3, 3\]\), got \[3\]/);
    rejects(() => conv2d(x, w, b41), /conv2d: bias must have shape \[4\].*got \[4, 1\]/);
    b3.dispose();
    b41.dispose();
  });

  it('kernel larger than the padded input', () => {
    const w8 = dev.zeros([4, 3, 8, 3]);
    rejects(() => conv2d(x, w8), /conv2d: kernelSize \[8, 3\] .* larger than the padded input \[7, 9\] \(x \[2, 3, 7, 9\]/);
    rejects(() => im2col(x, { kernelSize: 3, dilation: 5 }), /im2col: kernelSize \[3, 3\] with dilation \[5, 5\] spans \[11, 11\] pixels, larger than the padded input \[7, 9\]/);
    rejects(() => maxPool2d(x, { kernelSize: [2, 10] }), /maxPool2d: kernelSize \[2, 10\] .* larger than the padded input/);
    w8.dispose();
  });

  it('non-positive stride or dilation, negative or fractional padding', () => {
    rejects(() => conv2d(x, w, null, { stride: 0 }), /conv2d: stride must be a positive integer .*got 0/);
    rejects(() => conv2d(x, w, null, { stride: [1, -2] }), /conv2d: stride must be a positive integer .*got \[1, -2\]/);
    rejects(() => conv2d(x, w, null, { dilation: 0 }), /conv2d: dilation must be a positive integer .*got 0/);
    rejects(() => conv2d(x, w, null, { padding: -1 }), /conv2d: padding must be a non-negative integer .*got -1/);
    rejects(() => im2col(x, { kernelSize: 2, padding: 0.5 }), /im2col: padding must be a non-negative integer .*got 0.5/);
    rejects(() => im2col(x, { kernelSize: 0 }), /im2col: kernelSize must be a positive integer .*got 0/);
    rejects(() => maxPool2d(x, { kernelSize: 2, stride: 0 }), /maxPool2d: stride must be a positive integer .*got 0/);
    rejects(() => maxPool2d(x, { kernelSize: 3, dilation: [1, 0] }), /maxPool2d: dilation must be a positive integer .*got \[1, 0\]/);
  });

  it('maxPool2d: padding over half the kernel, windows entirely in the padding', () => {
    rejects(() => maxPool2d(x, { kernelSize: 3, padding: 2 }), /maxPool2d: padding \[2, 2\] must be at most half the effective kernel size \[3, 3\]/);
    const small = dev.zeros([1, 1, 3, 3]);
    rejects(
      () => maxPool2d(small, { kernelSize: 2, padding: 1, dilation: 4 }),
      /maxPool2d: x \[1, 1, 3, 3\]: a pooling window lies entirely in the padding/,
    );
    small.dispose();
  });

  it('col2im: cols shape inconsistent with outputSize and kernel', () => {
    const c60 = dev.zeros([2, 27, 60]);
    const c26 = dev.zeros([2, 26, 35]);
    rejects(() => col2im(c60, [7, 9], { kernelSize: 3 }), /col2im: cols \[2, 27, 60\] has 60 columns but outputSize \[7, 9\] .* gives 5·7 = 35/);
    rejects(() => col2im(c26, [7, 9], { kernelSize: 3 }), /col2im: cols \[2, 26, 35\]: dim 1 \(26\) must be a multiple of kh·kw = 9/);
    c60.dispose();
    c26.dispose();
  });

  it('non-tensors and disposed tensors', () => {
    rejects(() => conv2d(x, null as unknown as Tensor), /conv2d: weight must be a Tensor/);
    const d = dev.zeros([4]);
    d.dispose();
    expect(() => conv2d(x, w, d)).toThrow(/disposed|after dispose/);
  });
});
