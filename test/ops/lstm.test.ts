// LSTM / RNN fused recurrence ops vs float64 references.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, type Tensor, ShapeError, ops } from '../../src/index.js';
import {
  lstmRecurrence, rnnRecurrence, lstmCell, rnnCell, lstmRef, lstmRefBackward, rnnRef, rnnRefBackward,
  lstmCellRef, lstmCellRefBackward, rnnCellRef, rnnCellRefBackward, lstmKernelConfig, type CellWeights64,
} from '../../src/ops/lstm.js';
import { concatRef, sliceRef } from '../../src/ops/shape_ops.js';
import { type Arr, arr, checkOp, expectClose, makeDevice, randArr, rng, toArr, toTensor } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

/** identity [n, n]: lstmRef with W_ih = I takes xg itself as the input projection */
function eye(n: number): Arr {
  const a = arr([n, n]);
  for (let i = 0; i < n; i++) a.data[i * n + i] = 1;
  return a;
}

function maxAbs(a: Arr): number {
  let m = 0;
  for (const v of a.data) m = Math.max(m, Math.abs(v));
  return m;
}

/**
 * Tolerance for T chained steps of K-term f32 sums of values of size ~scale: rounding grows like
 * sqrt(K)·2^-24 per sum (CONTRIBUTING), adds up over the steps (with PyTorch-scale weights,
 * U(±1/√H), the recurrence neither damps nor amplifies much: |f| < 1, |tanh'| ≤ 1, ‖W_hh‖ ≈ 1),
 * and a factor 4 covers WGSL exp/div error (~3 ULP) in the gates.
 */
function chainTol(K: number, T: number, scale = 1): { atol: number; rtol: number } {
  return { atol: 4 * Math.sqrt(K) * 2 ** -24 * T * scale, rtol: 4 * Math.sqrt(K) * 2 ** -24 * T };
}

describe('lstmRecurrence (fused step, one dispatch per step)', () => {
  // Two kernel families: 'auto' takes kernels/lstm_sg.wgsl (subgroups) for sequences with H % 4 == 0
  // on lavapipe, 'off' forces the portable kernels/lstm.wgsl. Sizes: H = 68/70 span two 64-wide
  // workgroups; B = 6, 11, 3 are not multiples of the 4 (portable) or 8 (subgroup) rows per
  // invocation; H = 36 leaves a partial 32-wide chunk in the subgroup loop; B = 1 and H = 1 are
  // the degenerate cases; T = 1 is a single step (portable: W_hh read untransposed).
  const cases: [number, number, number][] = [[5, 6, 70], [5, 11, 68], [3, 9, 36], [4, 3, 8], [3, 1, 1], [1, 5, 9], [1, 5, 12]];
  for (const mode of ['auto', 'off'] as const) for (const [T, B, H] of cases) {
    if (mode === 'off' && H % 4 !== 0) continue; // already portable under 'auto'
    it(`T=${T} B=${B} H=${H} subgroups=${mode}: forward and backward vs float64`, async () => {
      lstmKernelConfig.subgroups = mode;
      const rnd = rng(T * 100 + B * 10 + H);
      const G = 4 * H;
      const k = 1 / Math.sqrt(H); // PyTorch's init scale
      const xg = randArr([T, B, G], rnd, -1.5, 1.5);
      const wHh = randArr([G, H], rnd, -k, k);
      const bIh = randArr([G], rnd, -k, k);
      const bHh = randArr([G], rnd, -k, k);
      const h0 = randArr([B, H], rnd);
      const c0 = randArr([B, H], rnd);
      const ts = [xg, wHh, bIh, bHh, h0, c0].map((a) => toTensor(dev, a, true));
      const [txg, twHh, tbIh, tbHh, th0, tc0] = ts as [Tensor, Tensor, Tensor, Tensor, Tensor, Tensor];
      const { hs, cs } = lstmRecurrence(txg, twHh, tbIh, tbHh, th0, tc0);
      const w: CellWeights64 = { wIh: eye(G), wHh, bIh, bHh };
      const ref = lstmRef(xg, [w], arr([1, B, H], h0.data), arr([1, B, H], c0.data));
      const refCs = arr([T, B, H]);
      {
        // every step's c: run the reference one step at a time
        let h = h0;
        let c = c0;
        for (let t = 0; t < T; t++) {
          const xt = arr([B, G], xg.data.subarray(t * B * G, (t + 1) * B * G));
          const [h1, c1] = lstmCellRef(xt, h, c, eye(G), wHh, bIh, bHh);
          refCs.data.set(c1.data, t * B * H);
          h = h1;
          c = c1;
        }
      }
      // each gate pre-activation is an (H + 3)-term sum of O(1) values, chained over T steps
      const fwdTol = chainTol(H + 3, T);
      expectClose(await toArr(hs), ref.output, fwdTol, 'hs');
      expectClose(await toArr(cs), refCs, fwdTol, 'cs');

      // L = Σ hs·Rh + Σ c_{T-1}·Rc
      const Rh = randArr([T, B, H], rnd);
      const Rc = randArr([B, H], rnd);
      const gcs = arr([T, B, H]);
      gcs.data.set(Rc.data, (T - 1) * B * H);
      const both = ops.concat([hs, ops.slice(cs, 0, T - 1, T)], 0);
      both.backward(toTensor(dev, concatRef([Rh, arr([1, B, H], Rc.data)], 0)));
      const g = lstmRefBackward(Rh, arr([1, B, H]), arr([1, B, H], Rc.data), xg, [w], arr([1, B, H], h0.data), arr([1, B, H], c0.data));
      // backward: dh_rec is a 4H-term sum per step and dW_hh, db sum T·B terms; sized by the
      // largest reference gradient
      const bwdTol = chainTol(Math.max(4 * H, T * B), T, Math.max(...[g.gx, g.gh0, g.gc0!, ...g.layers[0]!].map(maxAbs)));
      expectClose(await toArr(txg.grad!), g.gx, bwdTol, 'grad xg');
      expectClose(await toArr(th0.grad!), arr([B, H], g.gh0.data), bwdTol, 'grad h0');
      expectClose(await toArr(tc0.grad!), arr([B, H], g.gc0!.data), bwdTol, 'grad c0');
      expectClose(await toArr(tbIh.grad!), g.layers[0]![2]!, bwdTol, 'grad bIh');
      expectClose(await toArr(tbHh.grad!), g.layers[0]![3]!, bwdTol, 'grad bHh');
      expectClose(await toArr(twHh.grad!), g.layers[0]![1]!, bwdTol, 'grad wHh');
      ts.forEach((t) => { t.grad?.dispose(); t.dispose(); });
      lstmKernelConfig.subgroups = 'auto';
    });
  }
});

describe('rnnRecurrence (fused step, one dispatch per step)', () => {
  const cases: [number, number, number, 'tanh' | 'relu'][] = [[5, 6, 70, 'tanh'], [4, 3, 5, 'relu'], [3, 1, 1, 'tanh'], [1, 5, 9, 'tanh']];
  for (const [T, B, H, nl] of cases) {
    it(`T=${T} B=${B} H=${H} ${nl}: forward and backward vs float64`, async () => {
      const rnd = rng(7 + T * 100 + B * 10 + H);
      const k = 1 / Math.sqrt(H);
      const xg = randArr([T, B, H], rnd, -1.5, 1.5);
      const wHh = randArr([H, H], rnd, -k, k);
      const bIh = randArr([H], rnd, -k, k);
      const bHh = randArr([H], rnd, -k, k);
      const h0 = randArr([B, H], rnd);
      const ts = [xg, wHh, bIh, bHh, h0].map((a) => toTensor(dev, a, true));
      const [txg, twHh, tbIh, tbHh, th0] = ts as [Tensor, Tensor, Tensor, Tensor, Tensor];
      const hs = rnnRecurrence(txg, twHh, tbIh, tbHh, th0, nl);
      const w: CellWeights64 = { wIh: eye(H), wHh, bIh, bHh };
      const ref = rnnRef(xg, [w], arr([1, B, H], h0.data), nl);
      const fwdTol = chainTol(H + 3, T);
      expectClose(await toArr(hs), ref.output, fwdTol, 'hs');
      const Rh = randArr([T, B, H], rnd);
      hs.backward(toTensor(dev, Rh));
      const g = rnnRefBackward(Rh, arr([1, B, H]), xg, [w], arr([1, B, H], h0.data), nl);
      const bwdTol = chainTol(Math.max(H, T * B), T, Math.max(...[g.gx, g.gh0, ...g.layers[0]!].map(maxAbs)));
      expectClose(await toArr(txg.grad!), g.gx, bwdTol, 'grad xg');
      expectClose(await toArr(th0.grad!), arr([B, H], g.gh0.data), bwdTol, 'grad h0');
      expectClose(await toArr(twHh.grad!), g.layers[0]![1]!, bwdTol, 'grad wHh');
      expectClose(await toArr(tbIh.grad!), g.layers[0]![2]!, bwdTol, 'grad bIh');
      expectClose(await toArr(tbHh.grad!), g.layers[0]![3]!, bwdTol, 'grad bHh');
      ts.forEach((t) => { t.grad?.dispose(); t.dispose(); });
    });
  }
});

describe('lstmCell', () => {
  const split = (g: Arr, H: number): [Arr, Arr] => [sliceRef(g, 1, 0, H), sliceRef(g, 1, H, 2 * H)];
  // B = 3 is not a multiple of the 4 rows per invocation, H = 5 not a multiple of 4 (portable
  // kernels); H = 4 takes the subgroup kernels on devices that have them; bias optional
  for (const [B, I, H, bias] of [[3, 4, 5, true], [2, 3, 2, false], [1, 1, 1, true], [3, 2, 4, true]] as [number, number, number, boolean][]) {
    it(`B=${B} in=${I} H=${H} bias=${bias}: [h1, c1] vs float64, backward, gradcheck`, async () => {
      const rnd = rng(B * 100 + I * 10 + H);
      const k = 1 / Math.sqrt(H);
      const inputs = [randArr([B, I], rnd), randArr([B, H], rnd), randArr([B, H], rnd), randArr([4 * H, I], rnd, -k, k), randArr([4 * H, H], rnd, -k, k)];
      if (bias) inputs.push(randArr([4 * H], rnd, -k, k), randArr([4 * H], rnd, -k, k));
      await checkOp({
        name: 'lstmCell', dev, inputs,
        gpu: (x, h, c, wIh, wHh, bIh, bHh) => ops.concat(lstmCell(x!, h!, c!, wIh!, wHh!, bIh, bHh), 1),
        ref: (x, h, c, wIh, wHh, bIh, bHh) => concatRef(lstmCellRef(x!, h!, c!, wIh!, wHh!, bIh, bHh), 1),
        refBackward: (g, x, h, c, wIh, wHh, bIh, bHh) => {
          const [gh, gc] = split(g, H);
          return lstmCellRefBackward(gh, gc, x!, h!, c!, wIh!, wHh!, bIh, bHh).slice(0, inputs.length);
        },
        // one step: (in + H + 3)-term sums of O(1) values, then exp/div (~3 ULP) in the gates
        fwdTol: chainTol(I + H + 3, 1),
        bwdTol: chainTol(Math.max(4 * H, B), 1, 2),
        // f32 central differences with eps 1e-3 of O(1) outputs: defaults atol 1e-3, rtol 1e-2
        gradcheck: {},
      });
    });
  }

  it('gradients when only h1 or only c1 is used (the two outputs share one backward)', async () => {
    const [B, I, H] = [3, 2, 4];
    const rnd = rng(77);
    const xs = [randArr([B, I], rnd), randArr([B, H], rnd), randArr([B, H], rnd), randArr([4 * H, I], rnd, -0.5, 0.5), randArr([4 * H, H], rnd, -0.5, 0.5)];
    const R = randArr([B, H], rnd);
    for (const which of [0, 1]) {
      const ts = xs.map((a) => toTensor(dev, a, true));
      const out = lstmCell(ts[0]!, ts[1]!, ts[2]!, ts[3]!, ts[4]!);
      out[which]!.backward(toTensor(dev, R));
      const zero = arr([B, H]);
      const ref = lstmCellRefBackward(which === 0 ? R : zero, which === 1 ? R : zero, xs[0]!, xs[1]!, xs[2]!, xs[3]!, xs[4]!);
      for (let i = 0; i < 5; i++) {
        expectClose(await toArr(ts[i]!.grad!), ref[i]!, chainTol(4 * H, 1, 2), `only ${which ? 'c1' : 'h1'} used: grad of input ${i}`);
      }
      ts.forEach((t) => { t.grad?.dispose(); t.dispose(); });
    }
  });

  it('chained steps with a loss on every h and c (backprop through the cell state)', async () => {
    const [T, B, I, H] = [4, 2, 3, 4];
    const rnd = rng(78);
    const k = 1 / Math.sqrt(H);
    const x = randArr([T, B, I], rnd);
    const w = { wIh: randArr([4 * H, I], rnd, -k, k), wHh: randArr([4 * H, H], rnd, -k, k), bIh: randArr([4 * H], rnd, -k, k), bHh: randArr([4 * H], rnd, -k, k) };
    const Rs = Array.from({ length: 2 * T }, () => randArr([B, H], rnd));
    const tw = [w.wIh, w.wHh, w.bIh, w.bHh].map((a) => toTensor(dev, a, true));
    let h = toTensor(dev, arr([B, H]));
    let c = toTensor(dev, arr([B, H]));
    let loss: Tensor | null = null;
    for (let t = 0; t < T; t++) {
      const xt = toTensor(dev, arr([B, I], x.data.subarray(t * B * I, (t + 1) * B * I)));
      [h, c] = lstmCell(xt, h, c, tw[0]!, tw[1]!, tw[2], tw[3]);
      const lt = ops.add(ops.sum(ops.mul(h, toTensor(dev, Rs[2 * t]!))), ops.sum(ops.mul(c, toTensor(dev, Rs[2 * t + 1]!))));
      loss = loss ? ops.add(loss, lt) : lt;
    }
    loss!.backward();
    // float64: the same loop with lstmCellRef / lstmCellRefBackward
    const hs: Arr[] = [arr([B, H])];
    const cs: Arr[] = [arr([B, H])];
    const xt = (t: number) => arr([B, I], x.data.subarray(t * B * I, (t + 1) * B * I));
    for (let t = 0; t < T; t++) {
      const [h1, c1] = lstmCellRef(xt(t), hs[t]!, cs[t]!, w.wIh, w.wHh, w.bIh, w.bHh);
      hs.push(h1);
      cs.push(c1);
    }
    const acc = [arr(w.wIh.shape), arr(w.wHh.shape), arr([4 * H]), arr([4 * H])];
    let gh = arr([B, H]);
    let gc = arr([B, H]);
    for (let t = T - 1; t >= 0; t--) {
      const ght = arr([B, H], gh.data.map((v, i) => v + Rs[2 * t]!.data[i]!));
      const gct = arr([B, H], gc.data.map((v, i) => v + Rs[2 * t + 1]!.data[i]!));
      const g = lstmCellRefBackward(ght, gct, xt(t), hs[t]!, cs[t]!, w.wIh, w.wHh, w.bIh, w.bHh);
      gh = g[1]!;
      gc = g[2]!;
      [3, 4, 5, 6].forEach((gi, a) => g[gi]!.data.forEach((v, i) => (acc[a]!.data[i]! += v)));
    }
    const tol = chainTol(Math.max(4 * H, B), T, Math.max(...acc.map(maxAbs)));
    for (let a = 0; a < 4; a++) expectClose(await toArr(tw[a]!.grad!), acc[a]!, tol, `chained lstmCell: weight grad ${a}`);
    tw.forEach((t) => { t.grad?.dispose(); t.dispose(); });
  });

  it('records one fused dispatch per step forward (after the x·W_ihᵀ matmul) and per step backward', async () => {
    const [T, B, H] = [6, 4, 8];
    const xg = dev.randn([T, B, 4 * H], { requiresGrad: true });
    const w = dev.randn([4 * H, H]);
    const z = dev.zeros([B, H]);
    await dev.sync();
    for (const mode of ['auto', 'off'] as const) {
      lstmKernelConfig.subgroups = mode;
      const n0 = dev.exec.pendingCount;
      const { hs } = lstmRecurrence(xg, w, null, null, z, z);
      // T step dispatches + 1 copy regrouping/transposing W_hh for the whole sequence
      expect(dev.exec.pendingCount - n0, `forward dispatches (subgroups=${mode})`).toBe(T + 1);
      const g = dev.ones(hs.shape);
      const n1 = dev.exec.pendingCount;
      hs.backward(g);
      // hpath (1) + T backward steps (no dh0 pass: h0 does not require grad) + leaf accumulation (0: first grad)
      expect(dev.exec.pendingCount - n1, `backward commands (subgroups=${mode})`).toBe(1 + T);
      xg.grad?.dispose();
      xg.grad = null;
      await dev.sync();
    }
    lstmKernelConfig.subgroups = 'auto';
  });

  it('rejects bad input naming lstmCell and the argument, before any GPU work', () => {
    const [B, I, H] = [2, 3, 4];
    const z = (...s: number[]): Tensor => dev.zeros(s);
    const x = z(B, I); const h = z(B, H); const c = z(B, H); const wIh = z(4 * H, I); const wHh = z(4 * H, H); const b = z(4 * H);
    const x3 = z(1, B, I); const h1 = z(H); const wIh1 = z(4 * H * I); const wHh3 = z(3 * H, H); const wIh5 = z(5 * H, I);
    const hB = z(B + 1, H); const cB = z(B + 1, H); const wIhR = z(H, I); const wHhR = z(H, H); const wIhI = z(4 * H, I + 1); const bBad = z(4 * H + 1); const bH = z(H);
    const bad = (f: () => unknown, ...words: string[]) => {
      const pending = dev.exec.pendingCount;
      let err: unknown = null;
      try { f(); } catch (e) { err = e; }
      expect(err, words.join(' ')).toBeInstanceOf(ShapeError);
      for (const wd of words) expect((err as Error).message).toContain(wd);
      expect(dev.exec.pendingCount, `${words.join(' ')}: GPU work recorded before the error`).toBe(pending);
    };
    bad(() => lstmCell(x3, h, c, wIh, wHh), 'lstmCell', 'x', '[1, 2, 3]', '2-D');
    bad(() => lstmCell(x, h1, c, wIh, wHh), 'lstmCell', 'h', '[4]', '2-D');
    bad(() => lstmCell(x, h, c, wIh1, wHh), 'lstmCell', 'wIh', '2-D');
    bad(() => lstmCell(x, h, c, wIh, wHh3), 'lstmCell', 'wHh', '[12, 4]', '4·hiddenSize');
    bad(() => lstmCell(x, h, c, wIh5, wHh), 'lstmCell', 'wIh', '[20, 3]', '4·hiddenSize');
    bad(() => lstmCell(x, hB, c, wIh, wHh), 'lstmCell', 'h', '[3, 4]', 'batch');
    bad(() => lstmCell(x, h, cB, wIh, wHh), 'lstmCell', 'c', '[3, 4]');
    bad(() => lstmCell(x, h, c, wIhI, wHh), 'lstmCell', 'wIh', 'inputSize', '[16, 4]');
    bad(() => lstmCell(x, h, c, wIh, wHh, bBad, b), 'lstmCell', 'bIh', '[17]');
    bad(() => lstmCell(x, h, c, wIh, wHh, b, bH), 'lstmCell', 'bHh', '[4]');
    bad(() => lstmCell(x, h, 3 as unknown as Tensor, wIh, wHh), 'lstmCell', 'c', 'Tensor');
    bad(() => rnnCell(x, h, wIh, wHh), 'rnnCell', 'wHh', '[16, 4]');
    bad(() => rnnCell(x, hB, wIhR, wHhR), 'rnnCell', 'h', 'batch');
    const xg = z(2, B, 4 * H); const cH = z(B, H + 1); const xgR = z(2, B, H);
    bad(() => lstmRecurrence(xg, wHh, null, null, h, cH), 'lstm', 'c0');
    bad(() => rnnRecurrence(xgR, wHhR, null, null, h, 'sigmoid' as 'tanh'), 'rnn', 'nonlinearity');
  });
});

describe('rnnCell', () => {
  for (const nl of ['tanh', 'relu'] as const) {
    it(`B=3 in=4 H=5 ${nl}: vs float64, backward, gradcheck`, async () => {
      const [B, I, H] = [3, 4, 5];
      const rnd = rng(nl === 'tanh' ? 5 : 6);
      const k = 1 / Math.sqrt(H);
      const inputs = [randArr([B, I], rnd), randArr([B, H], rnd), randArr([H, I], rnd, -k, k), randArr([H, H], rnd, -k, k), randArr([H], rnd, -k, k), randArr([H], rnd, -k, k)];
      await checkOp({
        name: `rnnCell ${nl}`, dev, inputs,
        gpu: (x, h, wIh, wHh, bIh, bHh) => rnnCell(x!, h!, wIh!, wHh!, bIh, bHh, nl),
        ref: (x, h, wIh, wHh, bIh, bHh) => rnnCellRef(x!, h!, wIh!, wHh!, bIh, bHh, nl),
        refBackward: (g, x, h, wIh, wHh, bIh, bHh) => rnnCellRefBackward(g, x!, h!, wIh!, wHh!, bIh, bHh, nl),
        fwdTol: chainTol(I + H + 3, 1),
        bwdTol: chainTol(Math.max(H, B), 1, 2),
        gradcheck: {},
      });
    });
  }
});
