// nn.MultiheadAttention with PyTorch semantics and parameter names (in_proj_weight, in_proj_bias,
// out_proj.weight, out_proj.bias), built on the fused ops.scaledDotProductAttention. Attention
// weights are computed only when asked (needWeights), by the slow composite path.
import { check, fmtShape } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { add, mul } from '../ops/elementwise.js';
import { linear, matmul } from '../ops/matmul.js';
import { mean } from '../ops/reduce.js';
import { permute, reshape, slice, transpose } from '../ops/shape_ops.js';
import { softmax } from '../ops/softmax.js';
import { scaledDotProductAttention } from '../ops/attention.js';
import { maskToAdditive } from '../ops/mask.js';
import { nextDropoutSeed } from '../ops/dropout.js';
import { sameShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { Linear } from './linear.js';
import { Module, param } from './module.js';

export interface MultiheadAttentionOptions {
  embedDim: number;
  numHeads: number;
  /** dropout on the attention weights while training (default 0) */
  dropout?: number;
  /** in_proj_bias and out_proj.bias (default true) */
  bias?: boolean;
  /** inputs as [B, L, E] instead of PyTorch's default [L, B, E] */
  batchFirst?: boolean;
  seed?: number;
}

export interface MultiheadAttentionForwardOptions {
  /** [B, S] bool, true = this key is padding (ignored), as PyTorch; or float additive [B, S] */
  keyPaddingMask?: Tensor | null;
  /** [L, S] or [B·numHeads, L, S]: bool (true = not allowed, as PyTorch) or float additive */
  attnMask?: Tensor | null;
  /** return the attention weights too (slow path: materialises [B, H, L, S]) */
  needWeights?: boolean;
  /** average the returned weights over heads (default true) */
  averageAttnWeights?: boolean;
  /** causal mask (top-left aligned); ignored when attnMask is given, as PyTorch */
  isCausal?: boolean;
}

export class MultiheadAttention extends Module {
  in_proj_weight: Tensor;
  in_proj_bias: Tensor | null;
  out_proj: Linear;
  readonly embedDim: number;
  readonly numHeads: number;
  readonly headDim: number;
  readonly dropout: number;
  readonly batchFirst: boolean;
  // attention-dropout seeds: call k uses base + k, so a seeded module trains reproducibly
  private readonly dropoutSeed: number;
  private dropoutCalls = 0;

  constructor(dev: Device, opts: MultiheadAttentionOptions) {
    super(dev);
    const E = opts.embedDim;
    const H = opts.numHeads;
    check(Number.isInteger(E) && E > 0, 'nn.MultiheadAttention', `embedDim must be a positive integer, got ${E}`);
    check(Number.isInteger(H) && H > 0 && E % H === 0, 'nn.MultiheadAttention', `numHeads (${H}) must divide embedDim (${E})`);
    const p = opts.dropout ?? 0;
    check(p >= 0 && p < 1, 'nn.MultiheadAttention', `dropout must be in [0, 1), got ${p}`);
    this.embedDim = E;
    this.numHeads = H;
    this.headDim = E / H;
    this.dropout = p;
    this.batchFirst = !!opts.batchFirst;
    const seed = opts.seed;
    this.dropoutSeed = seed === undefined ? nextDropoutSeed() : seed + 0x5bd1e995;
    // PyTorch: xavier_uniform_ on the stacked [3E, E] projection, zero biases
    const bound = Math.sqrt(6 / (E + 3 * E));
    this.in_proj_weight = param(dev.rand([3 * E, E], { low: -bound, high: bound, seed }));
    this.in_proj_bias = opts.bias ?? true ? param(dev.zeros([3 * E])) : null;
    // Linear's own bias would be random: build it without one and give it PyTorch's zero bias
    this.out_proj = new Linear(dev, { inFeatures: E, outFeatures: E, bias: false, seed: seed === undefined ? undefined : seed + 1 });
    if (opts.bias ?? true) this.out_proj.bias = param(dev.zeros([E]));
  }

  /** Returns [output, attention weights or null]; shapes follow batchFirst. */
  forward(query: Tensor, key: Tensor, value: Tensor, opts: MultiheadAttentionForwardOptions = {}): [Tensor, Tensor | null] {
    const op = 'nn.MultiheadAttention';
    const E = this.embedDim;
    const H = this.numHeads;
    const D = this.headDim;
    for (const [n, t] of [['query', query], ['key', key], ['value', value]] as const) {
      check(t instanceof Tensor && t.rank === 3, op, `${n} must be a rank-3 tensor (${this.batchFirst ? '[B, L, E]' : '[L, B, E]'}), got ${t instanceof Tensor ? fmtShape(t.shape) : typeof t}`);
      check(t.shape[2] === E, op, `${n} ${fmtShape(t.shape)} must have embedDim ${E} as its last dim`);
    }
    check(sameShape(key.shape, value.shape), op, `key ${fmtShape(key.shape)} and value ${fmtShape(value.shape)} must have the same shape`);
    const bdim = this.batchFirst ? 0 : 1;
    check(query.shape[bdim] === key.shape[bdim], op, `query ${fmtShape(query.shape)} and key ${fmtShape(key.shape)} have different batch sizes`);
    const B = query.shape[bdim]!;
    const L = query.shape[1 - bdim]!;
    const S = key.shape[1 - bdim]!;

    // additive float mask broadcastable to [B, H, L, S], from PyTorch-style masks
    let mask: Tensor | null = null;
    const additive = (m: Tensor): Tensor => {
      if (m.dtype === 'float32') return m;
      check(m.dtype === 'bool', op, `masks must be bool or float32, got ${m.dtype}`);
      return maskToAdditive(m, { invert: true });
    };
    if (opts.keyPaddingMask) {
      const m = opts.keyPaddingMask;
      check(sameShape(m.shape, [B, S]), op, `keyPaddingMask ${fmtShape(m.shape)} must be [B, S] = [${B}, ${S}]`);
      mask = reshape(additive(m), [B, 1, 1, S]);
    }
    if (opts.attnMask) {
      const m = opts.attnMask;
      const ok = sameShape(m.shape, [L, S]) || sameShape(m.shape, [B * H, L, S]);
      check(ok, op, `attnMask ${fmtShape(m.shape)} must be [L, S] = [${L}, ${S}] or [B·numHeads, L, S] = [${B * H}, ${L}, ${S}]`);
      const a = additive(m);
      const a4 = m.rank === 3 ? reshape(a, [B, H, L, S]) : a;
      mask = mask ? add(mask, a4) : a4;
    }
    const isCausal = !opts.attnMask && !!opts.isCausal;

    const toBF = (t: Tensor): Tensor => (this.batchFirst ? t : transpose(t, 0, 1));
    const heads = (t: Tensor, len: number): Tensor => permute(reshape(t, [B, len, H, D]), [0, 2, 1, 3]);
    const W = this.in_proj_weight;
    const bW = this.in_proj_bias;
    let q: Tensor;
    let k: Tensor;
    let v: Tensor;
    if (query === key && key === value) {
      // self-attention: one [3E, E] projection, split into heads
      const qkv = permute(reshape(linear(toBF(query), W, bW), [B, L, 3, H, D]), [2, 0, 3, 1, 4]);
      q = reshape(slice(qkv, 0, 0, 1), [B, H, L, D]);
      k = reshape(slice(qkv, 0, 1, 2), [B, H, L, D]);
      v = reshape(slice(qkv, 0, 2, 3), [B, H, L, D]);
    } else {
      const part = (i: number): [Tensor, Tensor | null] => [slice(W, 0, i * E, (i + 1) * E), bW ? slice(bW, 0, i * E, (i + 1) * E) : null];
      const [wq, bq] = part(0);
      const [wk, bk] = part(1);
      const [wv, bv] = part(2);
      q = heads(linear(toBF(query), wq, bq), L);
      k = heads(linear(toBF(key), wk, bk), S);
      v = heads(linear(toBF(value), wv, bv), S);
    }
    const dropoutP = this.training ? this.dropout : 0;
    const dropSeed = dropoutP > 0 ? (this.dropoutSeed + this.dropoutCalls++) >>> 0 : undefined;
    const o = scaledDotProductAttention(q, k, v, { mask, isCausal, dropoutP, seed: dropSeed });
    const merged = reshape(permute(o, [0, 2, 1, 3]), [B, L, E]);
    const out = this.out_proj.forward(merged);
    let weights: Tensor | null = null;
    if (opts.needWeights) {
      let s = mul(matmul(q, transpose(k, -2, -1)), 1 / Math.sqrt(D));
      if (mask) s = add(s, mask);
      if (isCausal) {
        const causal = this.device.tensor(Float32Array.from({ length: L * S }, (_, i) => (i % S > Math.floor(i / S) ? -Infinity : 0)), [L, S]);
        s = add(s, causal);
      }
      const w = softmax(s, -1); // [B, H, L, S]; rows with every key masked are NaN, as PyTorch
      weights = opts.averageAttnWeights ?? true ? mean(w, 1) : w;
    }
    return [this.batchFirst ? out : transpose(out, 0, 1), weights];
  }
}
