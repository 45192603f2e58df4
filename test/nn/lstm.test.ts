// nn.LSTM / nn.RNN: PyTorch parameter names and init, the fused recurrence against a composite built
// from matmul/sigmoid/tanh ops (forward and backward through time), float64 references, gradcheck on
// tiny configs, truncated BPTT with detached state, and bad input.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, type Tensor, ShapeError, gradcheck, ops, tidy } from '../../src/index.js';
import { LSTM, RNN, type LSTMOptions } from '../../src/nn/lstm.js';
import { lstm, lstmKernelConfig, lstmRef, lstmRefBackward, rnn, rnnRef, rnnRefBackward, type CellWeights64, type RecurrentLayerWeights } from '../../src/ops/lstm.js';
import { lstmComposite, rnnComposite } from '../composites/lstm_composite.js';
import { type Arr, arr, expectClose, makeDevice, randArr, rng, toArr, toTensor } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

function maxAbs(a: Arr): number {
  let m = 0;
  for (const v of a.data) m = Math.max(m, Math.abs(v));
  return m;
}

/** see test/ops/lstm.test.ts: T chained steps of K-term f32 sums of size ~scale, ×4 for exp/div ULPs */
function chainTol(K: number, T: number, scale = 1): { atol: number; rtol: number } {
  return { atol: 4 * Math.sqrt(K) * 2 ** -24 * T * scale, rtol: 4 * Math.sqrt(K) * 2 ** -24 * T };
}

async function weights64(m: LSTM | RNN): Promise<CellWeights64[]> {
  const out: CellWeights64[] = [];
  for (let l = 0; l < m.numLayers; l++) {
    const w = m.layer(l);
    out.push({
      wIh: await toArr(w.wIh), wHh: await toArr(w.wHh),
      bIh: w.bIh ? await toArr(w.bIh) : null, bHh: w.bHh ? await toArr(w.bHh) : null,
    });
  }
  return out;
}

function layerList(m: LSTM | RNN): RecurrentLayerWeights[] {
  return Array.from({ length: m.numLayers }, (_, l) => m.layer(l));
}

describe('nn.LSTM module', () => {
  it('has PyTorch parameter names, shapes, order and init U(±1/√hiddenSize)', async () => {
    const m = new LSTM(dev, { inputSize: 5, hiddenSize: 6, numLayers: 2, seed: 3 });
    expect(m.namedParameters().map(([n, t]) => [n, [...t.shape]])).toEqual([
      ['weight_ih_l0', [24, 5]], ['weight_hh_l0', [24, 6]], ['bias_ih_l0', [24]], ['bias_hh_l0', [24]],
      ['weight_ih_l1', [24, 6]], ['weight_hh_l1', [24, 6]], ['bias_ih_l1', [24]], ['bias_hh_l1', [24]],
    ]);
    const k = 1 / Math.sqrt(6);
    for (const [n, p] of m.namedParameters()) {
      const v = await p.toArray();
      expect(Math.max(...v.map(Math.abs)), n).toBeLessThanOrEqual(k);
      expect(Math.max(...v) - Math.min(...v), `${n} spread`).toBeGreaterThan(k); // not constant
    }
    const nb = new LSTM(dev, { inputSize: 2, hiddenSize: 3, bias: false });
    expect(nb.namedParameters().map(([n]) => n)).toEqual(['weight_ih_l0', 'weight_hh_l0']);
    const r = new RNN(dev, { inputSize: 2, hiddenSize: 3, numLayers: 2 });
    expect(r.namedParameters().map(([n, t]) => [n, [...t.shape]])).toEqual([
      ['weight_ih_l0', [3, 2]], ['weight_hh_l0', [3, 3]], ['bias_ih_l0', [3]], ['bias_hh_l0', [3]],
      ['weight_ih_l1', [3, 3]], ['weight_hh_l1', [3, 3]], ['bias_ih_l1', [3]], ['bias_hh_l1', [3]],
    ]);
    [m, nb, r].forEach((x) => x.dispose());
  });

  for (const mode of ['auto', 'off'] as const) {
    it(`3 layers × 20 steps vs the matmul/sigmoid/tanh composite, forward and backward (subgroups=${mode})`, async () => {
      lstmKernelConfig.subgroups = mode;
      const [T, B, I, H, L] = [20, 3, 5, 12, 3];
      const m = new LSTM(dev, { inputSize: I, hiddenSize: H, numLayers: L, seed: 11 });
      const rnd = rng(5);
      const x = randArr([T, B, I], rnd);
      const h0 = randArr([L, B, H], rnd);
      const c0 = randArr([L, B, H], rnd);
      const R1 = randArr([T, B, H], rnd);
      const R2 = randArr([L, B, H], rnd);
      const R3 = randArr([L, B, H], rnd);
      const run = (f: (x: Tensor, h0: Tensor, c0: Tensor) => [Tensor, [Tensor, Tensor]]) => {
        const ins = [x, h0, c0].map((a) => toTensor(dev, a, true)) as [Tensor, Tensor, Tensor];
        const [out, [hN, cN]] = f(...ins);
        const loss = ops.add(ops.add(ops.sum(ops.mul(out, toTensor(dev, R1))), ops.sum(ops.mul(hN, toTensor(dev, R2)))), ops.sum(ops.mul(cN, toTensor(dev, R3))));
        m.zeroGrad();
        loss.backward();
        return { out, hN, cN, ins };
      };
      const fused = run((a, b, c) => m.forward(a, [b, c]));
      const fusedG = await Promise.all([...fused.ins, ...m.parameters()].map((t) => toArr(t.grad!)));
      const comp = run((a, b, c) => lstmComposite(a, layerList(m), b, c));
      const compG = await Promise.all([...comp.ins, ...m.parameters()].map((t) => toArr(t.grad!)));

      // forward: both f32; per step (I or H) + H + 3 term sums; 3 layers deep, 20 steps
      const fwdTol = chainTol(2 * H + 3, T * L);
      expectClose(await toArr(fused.out), await toArr(comp.out), fwdTol, 'output vs composite');
      expectClose(await toArr(fused.hN), await toArr(comp.hN), fwdTol, 'h_n vs composite');
      expectClose(await toArr(fused.cN), await toArr(comp.cN), fwdTol, 'c_n vs composite');
      // and the float64 reference
      const w64 = await weights64(m);
      const ref = lstmRef(x, w64, h0, c0);
      expectClose(await toArr(fused.out), ref.output, fwdTol, 'output vs float64');
      expectClose(await toArr(fused.cN), ref.cN, fwdTol, 'c_n vs float64');
      // backward: dW sums T·B terms, dh_rec 4H terms, through T·L steps; sized by the largest grad
      const g64 = lstmRefBackward(R1, R2, R3, x, w64, h0, c0);
      const refG = [g64.gx, g64.gh0, g64.gc0!, ...g64.layers.flat()];
      const names = ['x', 'h0', 'c0', ...m.namedParameters().map(([n]) => n)];
      const bwdTol = chainTol(Math.max(4 * H, T * B), T * L, Math.max(...refG.map(maxAbs)));
      for (let i = 0; i < names.length; i++) {
        expectClose(fusedG[i]!, compG[i]!, bwdTol, `grad ${names[i]} vs composite`);
        expectClose(fusedG[i]!, refG[i]!, bwdTol, `grad ${names[i]} vs float64`);
      }
      m.dispose();
      lstmKernelConfig.subgroups = 'auto';
    });
  }

  it('batchFirst matches the [T, B, in] layout; h0/c0 default to zeros', async () => {
    const [T, B, I, H] = [4, 3, 2, 8];
    const a = new LSTM(dev, { inputSize: I, hiddenSize: H, numLayers: 2, seed: 1 });
    const b = new LSTM(dev, { inputSize: I, hiddenSize: H, numLayers: 2, batchFirst: true, seed: 2 });
    b.loadStateDict(a.stateDict());
    const x = randArr([T, B, I], rng(9));
    const xt = toTensor(dev, x);
    const [o1, [h1, c1]] = a.forward(xt);
    const [o2, [h2, c2]] = b.forward(ops.transpose(xt, 0, 1));
    expect(o2.shape).toEqual([B, T, H]);
    expect(h2.shape).toEqual([2, B, H]);
    // same kernels, same order of operations: identical up to the transpose
    expectClose(await toArr(ops.transpose(o2, 0, 1)), await toArr(o1), { atol: 0, rtol: 0 }, 'batchFirst output');
    expectClose(await toArr(h2), await toArr(h1), { atol: 0, rtol: 0 }, 'batchFirst h_n');
    expectClose(await toArr(c2), await toArr(c1), { atol: 0, rtol: 0 }, 'batchFirst c_n');
    const z = toTensor(dev, arr([2, B, H]));
    const [o3] = a.forward(xt, [z, z]);
    expectClose(await toArr(o3), await toArr(o1), { atol: 0, rtol: 0 }, 'explicit zero state');
    a.dispose();
    b.dispose();
  });

  it('truncated BPTT: a detached state carried between chunks stops gradients at the boundary', async () => {
    const [S, B, I, H] = [6, 2, 3, 8];
    const m = new LSTM(dev, { inputSize: I, hiddenSize: H, numLayers: 2, seed: 4 });
    const rnd = rng(17);
    const x1 = randArr([S, B, I], rnd);
    const x2 = randArr([S, B, I], rnd);
    const R1 = randArr([S, B, H], rnd);
    const R2 = randArr([S, B, H], rnd);
    const chunks = (f: (x: Tensor, s: [Tensor, Tensor] | null) => [Tensor, [Tensor, Tensor]], detach: boolean) => {
      const t1 = toTensor(dev, x1, true);
      const t2 = toTensor(dev, x2, true);
      const [o1, [h, c]] = f(t1, null);
      const [o2] = f(t2, detach ? [h.detach(), c.detach()] : [h, c]);
      return { t1, t2, o1, o2 };
    };
    const fusedF = (x: Tensor, s: [Tensor, Tensor] | null) => m.forward(x, s);
    const zeros = toTensor(dev, arr([2, B, H]));
    const compF = (x: Tensor, s: [Tensor, Tensor] | null) => lstmComposite(x, layerList(m), s?.[0] ?? zeros, s?.[1] ?? zeros);

    // the loss of chunk 2 alone: with a detached state, chunk 1's input gets no gradient
    const d = chunks(fusedF, true);
    m.zeroGrad();
    ops.sum(ops.mul(d.o2, toTensor(dev, R2))).backward();
    expect(d.t1.grad, 'detached: no gradient reaches chunk 1').toBeNull();
    expect(d.t2.grad).not.toBeNull();
    const nd = chunks(fusedF, false);
    ops.sum(ops.mul(nd.o2, toTensor(dev, R2))).backward();
    expect(maxAbs(await toArr(nd.t1.grad!)), 'not detached: chunk 1 gets a gradient').toBeGreaterThan(1e-4);

    // both chunks' losses, fused vs composite, with the detached carry
    const both = async (f: typeof fusedF) => {
      const r = chunks(f, true);
      m.zeroGrad();
      ops.add(ops.sum(ops.mul(r.o1, toTensor(dev, R1))), ops.sum(ops.mul(r.o2, toTensor(dev, R2)))).backward();
      return Promise.all([r.o2, r.t1.grad!, r.t2.grad!, ...m.parameters().map((p) => p.grad!)].map(toArr));
    };
    const gf = await both(fusedF);
    const gc = await both(compF);
    const tol = chainTol(Math.max(4 * H, S * B), 2 * S, Math.max(...gc.map(maxAbs)));
    gf.forEach((g, i) => expectClose(g, gc[i]!, tol, `truncated BPTT tensor ${i} vs composite`));
    m.dispose();
  });

  it('gradcheck on a tiny config (x, h0, c0 and every weight), both kernel families', async () => {
    for (const [mode, H] of [['auto', 4], ['off', 3]] as const) {
      lstmKernelConfig.subgroups = mode;
      const [T, B, I, L] = [3, 2, 2, 2];
      const rnd = rng(23 + H);
      const k = 1 / Math.sqrt(H);
      const shapes: number[][] = [[T, B, I], [L, B, H], [L, B, H]];
      for (let l = 0; l < L; l++) shapes.push([4 * H, l ? H : I], [4 * H, H], [4 * H], [4 * H]);
      const ins = shapes.map((s, i) => toTensor(dev, randArr(s, rnd, i < 3 ? -1 : -k, i < 3 ? 1 : k), true));
      const fn = (...t: Tensor[]): Tensor => {
        const layers = Array.from({ length: L }, (_, l) => ({ wIh: t[3 + 4 * l]!, wHh: t[4 + 4 * l]!, bIh: t[5 + 4 * l]!, bHh: t[6 + 4 * l]! }));
        const [out, [hN, cN]] = lstm(t[0]!, layers, t[1], t[2]);
        return ops.concat([ops.reshape(out, [-1]), ops.reshape(hN, [-1]), ops.reshape(cN, [-1])], 0);
      };
      // defaults eps 1e-3, atol 1e-3, rtol 1e-2: f32 central differences of O(1) outputs
      const r = await gradcheck(fn, ins);
      expect(r.ok, `gradcheck (subgroups=${mode}): worst ${JSON.stringify(r.worst)}`).toBe(true);
      ins.forEach((t) => t.dispose());
    }
    lstmKernelConfig.subgroups = 'auto';
  });

  it('rejects bad input naming nn.LSTM and the argument, before any GPU work', () => {
    const m = new LSTM(dev, { inputSize: 3, hiddenSize: 4, numLayers: 2 });
    const r = new RNN(dev, { inputSize: 3, hiddenSize: 4 });
    const z = (...s: number[]): Tensor => dev.zeros(s);
    const [x, xIn4, x2d, h254, h224, h124, h234, x522, h123] =
      [z(5, 2, 3), z(5, 2, 4), z(5, 3), z(2, 2, 5), z(2, 2, 4), z(1, 2, 4), z(2, 3, 4), z(5, 2, 2), z(1, 2, 3)];
    const bad = (f: () => unknown, ...words: string[]) => {
      const pending = dev.exec.pendingCount;
      let err: unknown = null;
      try { f(); } catch (e) { err = e; }
      expect(err, words.join(' ')).toBeInstanceOf(ShapeError);
      for (const w of words) expect((err as Error).message).toContain(w);
      expect(dev.exec.pendingCount, `${words.join(' ')}: GPU work recorded before the error`).toBe(pending);
    };
    bad(() => m.forward(xIn4), 'nn.LSTM', 'input size mismatch', 'weight_ih_l0', '[5, 2, 4]');
    bad(() => m.forward(x2d), 'nn.LSTM', 'input', '[5, 3]', '3-D');
    bad(() => m.forward(x, [h254, h224]), 'nn.LSTM', 'h0', '[2, 2, 5]');
    bad(() => m.forward(x, [h224, h124]), 'nn.LSTM', 'c0', '[1, 2, 4]');
    bad(() => m.forward(x, [h234, h234]), 'nn.LSTM', 'h0', '[2, 3, 4]', 'batch');
    bad(() => m.forward(x, [h224] as unknown as [Tensor, Tensor]), 'nn.LSTM', 'state');
    bad(() => new LSTM(dev, { inputSize: 3, hiddenSize: 0 }), 'nn.LSTM', 'hiddenSize');
    bad(() => new LSTM(dev, { inputSize: 3, hiddenSize: 2, numLayers: 1.5 }), 'nn.LSTM', 'numLayers');
    bad(() => new LSTM(dev, { inputSize: 3, hiddenSize: 2, bidirectional: true } as LSTMOptions), 'nn.LSTM', 'bidirectional');
    bad(() => r.forward(x522), 'nn.RNN', 'input size mismatch', 'weight_ih_l0');
    bad(() => r.forward(x, h123), 'nn.RNN', 'h0', '[1, 2, 3]');
    bad(() => new RNN(dev, { inputSize: 3, hiddenSize: 4, nonlinearity: 'sigmoid' as 'tanh' }), 'nn.RNN', 'nonlinearity');
    m.dispose();
    r.dispose();
  });
});

describe('nn.RNN', () => {
  for (const nl of ['tanh', 'relu'] as const) {
    it(`2 layers × 10 steps (${nl}) vs the composite and float64, forward and backward`, async () => {
      const [T, B, I, H, L] = [10, 3, 4, 6, 2];
      const m = new RNN(dev, { inputSize: I, hiddenSize: H, numLayers: L, nonlinearity: nl, seed: 8 });
      const rnd = rng(31);
      const x = randArr([T, B, I], rnd);
      const h0 = randArr([L, B, H], rnd);
      const R1 = randArr([T, B, H], rnd);
      const R2 = randArr([L, B, H], rnd);
      const run = (f: (x: Tensor, h0: Tensor) => [Tensor, Tensor]) => {
        const ins = [x, h0].map((a) => toTensor(dev, a, true)) as [Tensor, Tensor];
        const [out, hN] = f(...ins);
        m.zeroGrad();
        ops.add(ops.sum(ops.mul(out, toTensor(dev, R1))), ops.sum(ops.mul(hN, toTensor(dev, R2)))).backward();
        return { out, hN, ins };
      };
      const fused = run((a, b) => m.forward(a, b));
      const fusedG = await Promise.all([...fused.ins, ...m.parameters()].map((t) => toArr(t.grad!)));
      const comp = run((a, b) => rnnComposite(a, layerList(m), b, nl));
      const compG = await Promise.all([...comp.ins, ...m.parameters()].map((t) => toArr(t.grad!)));
      const fwdTol = chainTol(2 * H + 3, T * L);
      expectClose(await toArr(fused.out), await toArr(comp.out), fwdTol, 'output vs composite');
      expectClose(await toArr(fused.hN), await toArr(comp.hN), fwdTol, 'h_n vs composite');
      const w64 = await weights64(m);
      const ref = rnnRef(x, w64, h0, nl);
      expectClose(await toArr(fused.out), ref.output, fwdTol, 'output vs float64');
      const g64 = rnnRefBackward(R1, R2, x, w64, h0, nl);
      const refG = [g64.gx, g64.gh0, ...g64.layers.flat()];
      const bwdTol = chainTol(Math.max(H, T * B), T * L, Math.max(...refG.map(maxAbs)));
      const names = ['x', 'h0', ...m.namedParameters().map(([n]) => n)];
      for (let i = 0; i < names.length; i++) {
        expectClose(fusedG[i]!, compG[i]!, bwdTol, `grad ${names[i]} vs composite`);
        expectClose(fusedG[i]!, refG[i]!, bwdTol, `grad ${names[i]} vs float64`);
      }
      m.dispose();
    });
  }

  it('gradcheck on a tiny config', async () => {
    const [T, B, I, H, L] = [3, 2, 2, 3, 2];
    const rnd = rng(41);
    const k = 1 / Math.sqrt(H);
    const shapes: number[][] = [[T, B, I], [L, B, H]];
    for (let l = 0; l < L; l++) shapes.push([H, l ? H : I], [H, H], [H], [H]);
    const ins = shapes.map((s, i) => toTensor(dev, randArr(s, rnd, i < 2 ? -1 : -k, i < 2 ? 1 : k), true));
    const fn = (...t: Tensor[]): Tensor => {
      const layers = Array.from({ length: L }, (_, l) => ({ wIh: t[2 + 4 * l]!, wHh: t[3 + 4 * l]!, bIh: t[4 + 4 * l]!, bHh: t[5 + 4 * l]! }));
      const [out, hN] = rnn(t[0]!, layers, t[1]);
      return ops.concat([ops.reshape(out, [-1]), ops.reshape(hN, [-1])], 0);
    };
    const r = await gradcheck(fn, ins);
    expect(r.ok, `gradcheck: worst ${JSON.stringify(r.worst)}`).toBe(true);
    ins.forEach((t) => t.dispose());
  });
});

describe('memory', () => {
  it('a training step inside tidy() leaves only parameters and their grads', async () => {
    const m = new LSTM(dev, { inputSize: 4, hiddenSize: 8, numLayers: 2 });
    const x = dev.randn([5, 3, 4]);
    const live0 = dev.memory().liveTensors;
    for (let i = 0; i < 2; i++) {
      tidy(() => {
        m.zeroGrad();
        const [out, [hN, cN]] = m.forward(x);
        ops.add(ops.add(ops.sum(out), ops.sum(hN)), ops.sum(cN)).backward();
      });
    }
    await dev.sync();
    expect(dev.memory().liveTensors - live0).toBe(m.parameters().length); // the .grad tensors
    m.zeroGrad();
    m.dispose();
    x.dispose();
  });
});
