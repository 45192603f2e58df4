// nn.TransformerEncoderLayer / nn.TransformerDecoderLayer against float64 references written from
// PyTorch's definitions (post-norm: x = norm(x + block(x)); pre-norm: x = x + block(norm(x))),
// gradcheck on tiny configs, dropout behaviour, a fixed-batch fit, and bad input.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { gradcheck, nn, ops, optim, ShapeError, type Device, type Tensor } from '../../src/index.js';
import { binaryRef, unaryRef } from '../../src/ops/elementwise.js';
import { layerNormRef } from '../../src/ops/layernorm.js';
import { linearRef } from '../../src/ops/matmul.js';
import { makeDevice, rng, randArr, toTensor, toArr, expectClose, type Arr, arr } from '../helpers.js';
import { mhaRef } from './refs.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

type Masked = (b: number, l: number, s: number) => boolean;
interface MhaP { W: Arr; bIn: Arr; Wo: Arr; bo: Arr }
interface LinP { w: Arr; b: Arr }

async function mhaP(m: nn.MultiheadAttention): Promise<MhaP> {
  return { W: await toArr(m.in_proj_weight), bIn: await toArr(m.in_proj_bias!), Wo: await toArr(m.out_proj.weight), bo: await toArr(m.out_proj.bias!) };
}
async function linP(m: nn.Linear | nn.LayerNorm): Promise<LinP> {
  return { w: await toArr(m.weight!), b: await toArr(m.bias!) };
}

/** Every parameter set to random values (norm weights around 1), so each one's use is checked. */
function randomize(m: nn.Module, seed: number): void {
  const r = rng(seed);
  for (const [name, p] of m.namedParameters()) {
    const a = randArr(p.shape, r, -0.5, 0.5);
    if (/norm\d\.weight$/.test(name)) for (let i = 0; i < a.data.length; i++) a.data[i] = 1 + a.data[i]!;
    p.copy_(toTensor(dev, a));
  }
}

const add = (a: Arr, b: Arr): Arr => binaryRef('add', a, b);
const ffRef = (x: Arr, l1: LinP, l2: LinP, act: 'relu' | 'gelu'): Arr => linearRef(unaryRef(act, linearRef(x, l1.w, l1.b)), l2.w, l2.b);

/** [L, B, E] <-> [B, L, E] */
function swap01(x: Arr): Arr {
  const [A, B, E] = x.shape as [number, number, number];
  const y = arr([B, A, E]);
  for (let a = 0; a < A; a++) for (let b = 0; b < B; b++) for (let e = 0; e < E; e++) y.data[(b * A + a) * E + e] = x.data[(a * B + b) * E + e]!;
  return y;
}

async function encoderRef(m: nn.TransformerEncoderLayer, x: Arr, H: number, masked: Masked): Promise<Arr> {
  const E = m.dModel;
  const sa = await mhaP(m.self_attn);
  const [l1, l2, n1, n2] = [await linP(m.linear1), await linP(m.linear2), await linP(m.norm1), await linP(m.norm2)];
  const attn = (y: Arr): Arr => mhaRef(y, y, y, sa.W, sa.bIn, sa.Wo, sa.bo, H, masked).out;
  const ln = (y: Arr, p: LinP): Arr => layerNormRef(y, E, p.w, p.b);
  if (m.normFirst) {
    const x1 = add(x, attn(ln(x, n1)));
    return add(x1, ffRef(ln(x1, n2), l1, l2, m.activation));
  }
  const x1 = ln(add(x, attn(x)), n1);
  return ln(add(x1, ffRef(x1, l1, l2, m.activation)), n2);
}

async function decoderRef(m: nn.TransformerDecoderLayer, x: Arr, mem: Arr, H: number, selfMasked: Masked, crossMasked: Masked): Promise<Arr> {
  const E = m.dModel;
  const sa = await mhaP(m.self_attn);
  const ca = await mhaP(m.multihead_attn);
  const [l1, l2] = [await linP(m.linear1), await linP(m.linear2)];
  const [n1, n2, n3] = [await linP(m.norm1), await linP(m.norm2), await linP(m.norm3)];
  const self = (y: Arr): Arr => mhaRef(y, y, y, sa.W, sa.bIn, sa.Wo, sa.bo, H, selfMasked).out;
  const cross = (y: Arr): Arr => mhaRef(y, mem, mem, ca.W, ca.bIn, ca.Wo, ca.bo, H, crossMasked).out;
  const ln = (y: Arr, p: LinP): Arr => layerNormRef(y, E, p.w, p.b);
  if (m.normFirst) {
    let y = add(x, self(ln(x, n1)));
    y = add(y, cross(ln(y, n2)));
    return add(y, ffRef(ln(y, n3), l1, l2, m.activation));
  }
  let y = ln(add(x, self(x)), n1);
  y = ln(add(y, cross(y)), n2);
  return ln(add(y, ffRef(y, l1, l2, m.activation)), n3);
}

// A layer chains ~6 f32 GEMMs (lengths E and dimFeedforward), attention and 2-3 layer norms, whose
// rstd amplifies absolute error by 1/std of the (O(1)) pre-norm activations: errors of a few 1e-6
// relative per stage, so 1e-4 relative / 5e-5 absolute has margin without hiding a wrong term (a
// dropped bias or a swapped norm moves outputs by O(0.1)).
const TOL = { atol: 5e-5, rtol: 1e-4 };

describe('nn.TransformerEncoderLayer', () => {
  it('has PyTorch parameter names and shapes', () => {
    const m = new nn.TransformerEncoderLayer(dev, { dModel: 8, nhead: 2, dimFeedforward: 16 });
    expect(m.namedParameters().map(([n, t]) => [n, t.shape])).toEqual([
      ['self_attn.in_proj_weight', [24, 8]], ['self_attn.in_proj_bias', [24]],
      ['self_attn.out_proj.weight', [8, 8]], ['self_attn.out_proj.bias', [8]],
      ['linear1.weight', [16, 8]], ['linear1.bias', [16]], ['linear2.weight', [8, 16]], ['linear2.bias', [8]],
      ['norm1.weight', [8]], ['norm1.bias', [8]], ['norm2.weight', [8]], ['norm2.bias', [8]],
    ]);
  });

  it('post-norm, ReLU, sequence-first, key padding: matches the reference', async () => {
    const B = 2, L = 5, E = 12, H = 3;
    const m = new nn.TransformerEncoderLayer(dev, { dModel: E, nhead: H, dimFeedforward: 20, seed: 1 }).eval();
    randomize(m, 11);
    const xb = randArr([B, L, E], rng(2));
    const pad = [[0, 0, 0, 1, 1], [0, 0, 0, 0, 0]];
    const out = m.forward(toTensor(dev, swap01(xb)), { srcKeyPaddingMask: dev.tensor(pad.map((r) => r.map(Boolean))) });
    expect(out.shape).toEqual([L, B, E]);
    const ref = await encoderRef(m, xb, H, (b, _l, s) => pad[b]![s] === 1);
    expectClose(swap01(await toArr(out)), ref, TOL, 'encoder post-norm');
  });

  it('pre-norm, GELU, batchFirst, causal and an additive srcMask: match the reference', async () => {
    const B = 3, L = 7, E = 8, H = 2;
    const m = new nn.TransformerEncoderLayer(dev, { dModel: E, nhead: H, dimFeedforward: 13, activation: 'gelu', normFirst: true, batchFirst: true, seed: 2 }).eval();
    randomize(m, 12);
    const xb = randArr([B, L, E], rng(3));
    const causalOut = m.forward(toTensor(dev, xb), { isCausal: true });
    expectClose(await toArr(causalOut), await encoderRef(m, xb, H, (_b, l, s) => s > l), TOL, 'encoder pre-norm causal');
    // a float mask banning key l+1 for query l (-inf) through srcMask
    const am = arr([L, L]);
    for (let l = 0; l < L; l++) if (l + 1 < L) am.data[l * L + l + 1] = -Infinity;
    const maskOut = m.forward(toTensor(dev, xb), { srcMask: toTensor(dev, am) });
    expectClose(await toArr(maskOut), await encoderRef(m, xb, H, (_b, l, s) => s === l + 1), TOL, 'encoder pre-norm srcMask');
  });

  it('passes gradcheck for the input and a feed-forward weight (eval mode)', async () => {
    const m = new nn.TransformerEncoderLayer(dev, { dModel: 4, nhead: 2, dimFeedforward: 6, batchFirst: true, seed: 3 }).eval();
    randomize(m, 13);
    const x = dev.randn([2, 3, 4], { seed: 4, requiresGrad: true });
    const r1 = await gradcheck((t: Tensor) => m.forward(t, { isCausal: true }), [x]);
    expect(r1.ok, JSON.stringify(r1.worst)).toBe(true);
    const w0 = m.linear1.weight;
    const r2 = await gradcheck((w: Tensor) => {
      m.linear1.weight = w;
      return m.forward(x);
    }, [w0]);
    m.linear1.weight = w0;
    expect(r2.ok, JSON.stringify(r2.worst)).toBe(true);
  });

  it('dropout: active in train mode (reproducible by seed), off in eval mode', async () => {
    const cfg = { dModel: 8, nhead: 2, dimFeedforward: 16, dropout: 0.3, batchFirst: true, seed: 5 };
    const a = new nn.TransformerEncoderLayer(dev, cfg);
    const b = new nn.TransformerEncoderLayer(dev, cfg);
    const x = dev.randn([2, 4, 8], { seed: 6 });
    const ya = await a.forward(x).toArray();
    const yb = await b.forward(x).toArray();
    expect(Array.from(ya)).toEqual(Array.from(yb)); // same seed, same masks
    const ye = await a.eval().forward(x).toArray();
    expect(Array.from(ye).some((v, i) => Math.abs(v - ya[i]!) > 1e-3)).toBe(true);
    const ye2 = await a.forward(x).toArray();
    expect(Array.from(ye2)).toEqual(Array.from(ye)); // eval is deterministic
  });

  it('fits a fixed batch: the loss falls under AdamW', async () => {
    const m = new nn.TransformerEncoderLayer(dev, { dModel: 16, nhead: 4, dimFeedforward: 32, dropout: 0, batchFirst: true, seed: 7 });
    const x = dev.randn([4, 6, 16], { seed: 8 });
    const target = dev.randn([4, 6, 16], { seed: 9 });
    const opt = new optim.AdamW(m.parameters(), { lr: 3e-3, weightDecay: 0 });
    const losses: number[] = [];
    for (let i = 0; i < 30; i++) {
      opt.zeroGrad();
      const loss = ops.mean(ops.square(ops.sub(m.forward(x), target)));
      loss.backward();
      opt.step();
      losses.push(await loss.item());
    }
    expect(losses[29]!).toBeLessThan(0.7 * losses[0]!);
  });

  it('rejects bad options and inputs with errors naming the layer and the shapes', () => {
    expect(() => new nn.TransformerEncoderLayer(dev, { dModel: 10, nhead: 3 })).toThrow(/nn.TransformerEncoderLayer: nhead \(3\) must divide dModel \(10\)/);
    expect(() => new nn.TransformerEncoderLayer(dev, { dModel: 8, nhead: 2, activation: 'tanh' as 'relu' })).toThrow(/activation must be 'relu' or 'gelu'/);
    expect(() => new nn.TransformerEncoderLayer(dev, { dModel: 8, nhead: 2, dropout: 1 })).toThrow(/dropout must be in \[0, 1\)/);
    const m = new nn.TransformerEncoderLayer(dev, { dModel: 8, nhead: 2, dimFeedforward: 8 });
    expect(() => m.forward(dev.zeros([3, 2, 7]))).toThrow(ShapeError);
    expect(() => m.forward(dev.zeros([3, 2, 7]))).toThrow(/src \[3, 2, 7\] must have dModel = 8/);
    expect(() => m.forward(dev.zeros([6, 8]))).toThrow(/src must be a rank-3 tensor \(\[L, B, E\]\), got \[6, 8\]/);
  });
});

describe('nn.TransformerDecoderLayer', () => {
  it('has PyTorch parameter names', () => {
    const m = new nn.TransformerDecoderLayer(dev, { dModel: 8, nhead: 2, dimFeedforward: 16 });
    expect(m.namedParameters().map(([n]) => n)).toEqual([
      'self_attn.in_proj_weight', 'self_attn.in_proj_bias', 'self_attn.out_proj.weight', 'self_attn.out_proj.bias',
      'multihead_attn.in_proj_weight', 'multihead_attn.in_proj_bias', 'multihead_attn.out_proj.weight', 'multihead_attn.out_proj.bias',
      'linear1.weight', 'linear1.bias', 'linear2.weight', 'linear2.bias',
      'norm1.weight', 'norm1.bias', 'norm2.weight', 'norm2.bias', 'norm3.weight', 'norm3.bias',
    ]);
  });

  it('post-norm masked decoder with memory key padding (teacher forcing shape): matches the reference', async () => {
    const B = 2, T = 5, S = 6, E = 12, H = 3;
    const m = new nn.TransformerDecoderLayer(dev, { dModel: E, nhead: H, dimFeedforward: 20, seed: 3 }).eval();
    randomize(m, 21);
    const r = rng(4);
    const tb = randArr([B, T, E], r);
    const mb = randArr([B, S, E], r);
    const pad = [[0, 0, 0, 0, 1, 1], [0, 0, 0, 0, 0, 0]];
    const out = m.forward(toTensor(dev, swap01(tb)), toTensor(dev, swap01(mb)), {
      tgtIsCausal: true,
      memoryKeyPaddingMask: dev.tensor(pad.map((row) => row.map(Boolean))),
    });
    expect(out.shape).toEqual([T, B, E]);
    const ref = await decoderRef(m, tb, mb, H, (_b, l, s) => s > l, (b, _l, s) => pad[b]![s] === 1);
    expectClose(swap01(await toArr(out)), ref, TOL, 'decoder post-norm');
  });

  it('pre-norm, GELU, batchFirst, bool tgtMask and memoryMask: match the reference', async () => {
    const B = 2, T = 4, S = 5, E = 8, H = 2;
    const m = new nn.TransformerDecoderLayer(dev, { dModel: E, nhead: H, dimFeedforward: 10, activation: 'gelu', normFirst: true, batchFirst: true, seed: 4 }).eval();
    randomize(m, 22);
    const r = rng(5);
    const tb = randArr([B, T, E], r);
    const mb = randArr([B, S, E], r);
    const tgtBan = (l: number, s: number): boolean => s > l; // true = not allowed, as PyTorch
    const memBan = (l: number, s: number): boolean => s === (l + 2) % S;
    const boolMask = (rows: number, cols: number, f: (l: number, s: number) => boolean): Tensor =>
      dev.tensor(Array.from({ length: rows }, (_, l) => Array.from({ length: cols }, (_, s) => f(l, s))));
    const out = m.forward(toTensor(dev, tb), toTensor(dev, mb), { tgtMask: boolMask(T, T, tgtBan), memoryMask: boolMask(T, S, memBan) });
    const ref = await decoderRef(m, tb, mb, H, (_b, l, s) => tgtBan(l, s), (_b, l, s) => memBan(l, s));
    expectClose(await toArr(out), ref, TOL, 'decoder pre-norm');
  });

  it('passes gradcheck for tgt and memory (cross-attention gradients reach the encoder side)', async () => {
    const m = new nn.TransformerDecoderLayer(dev, { dModel: 4, nhead: 2, dimFeedforward: 6, batchFirst: true, seed: 5 }).eval();
    randomize(m, 23);
    const tgt = dev.randn([2, 3, 4], { seed: 6, requiresGrad: true });
    const mem = dev.randn([2, 4, 4], { seed: 7, requiresGrad: true });
    const r = await gradcheck((t: Tensor, s: Tensor) => m.forward(t, s, { tgtIsCausal: true }), [tgt, mem]);
    expect(r.ok, JSON.stringify(r.worst)).toBe(true);
  });

  it('rejects mismatched tgt and memory', () => {
    const m = new nn.TransformerDecoderLayer(dev, { dModel: 8, nhead: 2, dimFeedforward: 8, batchFirst: true });
    expect(() => m.forward(dev.zeros([2, 3, 8]), dev.zeros([3, 4, 8]))).toThrow(/tgt \[2, 3, 8\] and memory \[3, 4, 8\] have different batch sizes/);
    expect(() => m.forward(dev.zeros([2, 3, 8]), dev.zeros([2, 4, 6]))).toThrow(/memory \[2, 4, 6\] must have dModel = 8/);
  });
});

describe('nn.TransformerEncoder / nn.TransformerDecoder', () => {
  const cfg = { numLayers: 2, dModel: 8, nhead: 2, dimFeedforward: 12, batchFirst: true, normFirst: true, finalNorm: true, seed: 9 };

  it('name layers as PyTorch (layers.<i>.*, norm.*) with distinct initial weights per layer', async () => {
    const enc = new nn.TransformerEncoder(dev, cfg);
    const names = enc.namedParameters().map(([n]) => n);
    expect(names.length).toBe(2 * 12 + 2);
    expect(names.slice(0, 2)).toEqual(['layers.0.self_attn.in_proj_weight', 'layers.0.self_attn.in_proj_bias']);
    expect(names).toContain('layers.1.norm2.bias');
    expect(names.slice(-2)).toEqual(['norm.weight', 'norm.bias']);
    const w0 = await enc.layers[0]!.linear1.weight.toArray();
    const w1 = await enc.layers[1]!.linear1.weight.toArray();
    expect(Array.from(w0)).not.toEqual(Array.from(w1));
    const dec = new nn.TransformerDecoder(dev, { ...cfg, finalNorm: false });
    expect(dec.namedParameters().map(([n]) => n)).toContain('layers.1.multihead_attn.out_proj.weight');
    expect(dec.norm).toBeNull();
    expect(() => new nn.TransformerEncoder(dev, { ...cfg, numLayers: 0 })).toThrow(/nn.TransformerEncoder: numLayers must be a positive integer, got 0/);
  });

  it('apply the layers in order with the masks, then the final norm (encoder-decoder, teacher forcing)', async () => {
    const enc = new nn.TransformerEncoder(dev, cfg).eval();
    const dec = new nn.TransformerDecoder(dev, { ...cfg, seed: 19 }).eval();
    randomize(enc, 31);
    randomize(dec, 32);
    const src = dev.randn([2, 5, 8], { seed: 1 });
    const tgt = dev.randn([2, 4, 8], { seed: 2 });
    const pad = dev.tensor([[false, false, false, true, true], [false, false, false, false, false]]);
    const mem = enc.forward(src, { srcKeyPaddingMask: pad });
    const out = dec.forward(tgt, mem, { tgtIsCausal: true, memoryKeyPaddingMask: pad });
    let m = src;
    for (const l of enc.layers) m = l.forward(m, { srcKeyPaddingMask: pad });
    m = enc.norm!.forward(m);
    let y = tgt;
    for (const l of dec.layers) y = l.forward(y, m, { tgtIsCausal: true, memoryKeyPaddingMask: pad });
    y = dec.norm!.forward(y);
    expect(Array.from(await mem.toArray())).toEqual(Array.from(await m.toArray()));
    expect(Array.from(await out.toArray())).toEqual(Array.from(await y.toArray()));
  });

  it('pass gradcheck end to end (source tokens through the encoder, decoder and cross-attention)', async () => {
    const small = { numLayers: 2, dModel: 4, nhead: 2, dimFeedforward: 6, batchFirst: true, finalNorm: true, seed: 3 };
    const enc = new nn.TransformerEncoder(dev, small).eval();
    const dec = new nn.TransformerDecoder(dev, { ...small, seed: 13 }).eval();
    randomize(enc, 33);
    randomize(dec, 34);
    const src = dev.randn([1, 3, 4], { seed: 5, requiresGrad: true });
    const tgt = dev.randn([1, 2, 4], { seed: 6, requiresGrad: true });
    const r = await gradcheck((s: Tensor, t: Tensor) => dec.forward(t, enc.forward(s), { tgtIsCausal: true }), [src, tgt]);
    expect(r.ok, JSON.stringify(r.worst)).toBe(true);
  });
});
