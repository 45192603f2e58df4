// nn.MultiheadAttention against a float64 reference written from PyTorch's definition
// (in-projection, per-head softmax(q·kᵀ/√D + mask)·v, out-projection), plus gradcheck.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { gradcheck, nn, ShapeError, type Device, type Tensor } from '../../src/index.js';
import { makeDevice, rng, randArr, toTensor, toArr, expectClose, type Arr, arr } from '../helpers.js';
import { mhaRef } from './refs.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

async function paramsOf(m: nn.MultiheadAttention): Promise<[Arr, Arr, Arr, Arr]> {
  return [await toArr(m.in_proj_weight), await toArr(m.in_proj_bias!), await toArr(m.out_proj.weight), await toArr(m.out_proj.bias!)];
}

describe('nn.MultiheadAttention', () => {
  it('has PyTorch parameter names', () => {
    const m = new nn.MultiheadAttention(dev, { embedDim: 8, numHeads: 2 });
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([
      ['in_proj_weight', [24, 8]], ['in_proj_bias', [24]], ['out_proj.weight', [8, 8]], ['out_proj.bias', [8]],
    ]);
  });

  it('cross-attention with key padding and attnMask matches the reference (batchFirst), with weights', async () => {
    const r = rng(5);
    const B = 2, L = 5, S = 7, E = 16, H = 4;
    const m = new nn.MultiheadAttention(dev, { embedDim: E, numHeads: H, batchFirst: true, seed: 3 });
    // non-zero biases so their use is checked
    m.in_proj_bias!.copy_(toTensor(dev, randArr([3 * E], r)));
    m.out_proj.bias!.copy_(toTensor(dev, randArr([E], r)));
    const q = randArr([B, L, E], r), k = randArr([B, S, E], r), v = randArr([B, S, E], r);
    const pad = [[0, 0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0, 0]]; // batch 0: last two keys are padding
    const am = Array.from({ length: L }, (_, l) => Array.from({ length: S }, (_, s) => (s === l + 1 ? 1 : 0))); // one banned key per query
    const [out, w] = m.forward(toTensor(dev, q), toTensor(dev, k), toTensor(dev, v), {
      keyPaddingMask: dev.tensor(pad.map((row) => row.map(Boolean))),
      attnMask: dev.tensor(am.map((row) => row.map(Boolean))),
      needWeights: true,
    });
    const [W, bIn, Wo, bo] = await paramsOf(m);
    const ref = mhaRef(q, k, v, W, bIn, Wo, bo, H, (b, l, s) => pad[b]![s] === 1 || am[l]![s] === 1);
    // two chained f32 GEMMs of length E plus attention over S: a few 1e-6 relative
    expectClose(await toArr(out), ref.out, { atol: 2e-5, rtol: 1e-4 }, 'mha out');
    expectClose(await toArr(w!), ref.weights, { atol: 1e-5, rtol: 1e-4 }, 'mha weights');
  });

  it('self-attention, sequence-first, causal, matches the reference', async () => {
    const r = rng(9);
    const B = 3, L = 6, E = 8, H = 2;
    const m = new nn.MultiheadAttention(dev, { embedDim: E, numHeads: H, seed: 4 });
    const xb = randArr([B, L, E], r);
    const xs = arr([L, B, E]); // [L, B, E] layout
    for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) xs.data[(l * B + b) * E + e] = xb.data[(b * L + l) * E + e]!;
    const x = toTensor(dev, xs);
    const [out] = m.forward(x, x, x, { isCausal: true });
    expect(out.shape).toEqual([L, B, E]);
    const [W, bIn, Wo, bo] = await paramsOf(m);
    const ref = mhaRef(xb, xb, xb, W, bIn, Wo, bo, H, (_b, l, s) => s > l);
    const got = await toArr(out);
    const gotB = arr([B, L, E]);
    for (let b = 0; b < B; b++) for (let l = 0; l < L; l++) for (let e = 0; e < E; e++) gotB.data[(b * L + l) * E + e] = got.data[(l * B + b) * E + e]!;
    expectClose(gotB, ref.out, { atol: 2e-5, rtol: 1e-4 }, 'mha self causal');
  });

  it('passes gradcheck for the input and every parameter', async () => {
    const m = new nn.MultiheadAttention(dev, { embedDim: 4, numHeads: 2, batchFirst: true, seed: 7 });
    const x = dev.randn([1, 3, 4], { seed: 2, requiresGrad: true });
    const r1 = await gradcheck((t: Tensor) => m.forward(t, t, t)[0], [x]);
    expect(r1.ok, JSON.stringify(r1.worst)).toBe(true);
    const w0 = m.in_proj_weight;
    const r2 = await gradcheck((w: Tensor) => {
      m.in_proj_weight = w;
      return m.forward(x, x, x)[0];
    }, [w0]);
    m.in_proj_weight = w0;
    expect(r2.ok, JSON.stringify(r2.worst)).toBe(true);
  });

  it('rejects bad shapes with clear errors', () => {
    expect(() => new nn.MultiheadAttention(dev, { embedDim: 10, numHeads: 3 })).toThrow(/numHeads \(3\) must divide embedDim \(10\)/);
    const m = new nn.MultiheadAttention(dev, { embedDim: 8, numHeads: 2, batchFirst: true });
    const x = dev.zeros([2, 3, 8]);
    expect(() => m.forward(dev.zeros([2, 3, 7]), x, x)).toThrow(ShapeError);
    expect(() => m.forward(x, x, x, { keyPaddingMask: dev.tensor([[true, false]]) })).toThrow(/keyPaddingMask \[1, 2\] must be \[B, S\] = \[2, 3\]/);
    expect(() => m.forward(x, x, x, { attnMask: dev.zeros([2, 2]) })).toThrow(/attnMask \[2, 2\] must be \[L, S\]/);
  });
});
