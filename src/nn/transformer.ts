// nn.TransformerEncoderLayer and nn.TransformerDecoderLayer with PyTorch semantics and parameter
// names (self_attn.*, multihead_attn.*, linear1, linear2, norm1..norm3): post-norm by default,
// pre-norm with normFirst; ReLU or GELU feed-forward; dropout after attention, inside the
// feed-forward and after it while training. Attention runs on the fused kernel (nn.MultiheadAttention).
// nn.TransformerEncoder / nn.TransformerDecoder stack numLayers of them (names layers.<i>.*, norm.*).
import { check, fmtShape } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { add, gelu, relu } from '../ops/elementwise.js';
import { Tensor } from '../tensor.js';
import { Dropout } from './dropout.js';
import { LayerNorm } from './layernorm.js';
import { Linear } from './linear.js';
import { Module } from './module.js';
import { MultiheadAttention } from './attention.js';

export interface TransformerLayerOptions {
  dModel: number;
  nhead: number;
  /** hidden width of the feed-forward block (default 2048, as PyTorch) */
  dimFeedforward?: number;
  /** dropout probability (default 0.1, as PyTorch) */
  dropout?: number;
  /** feed-forward activation (default 'relu') */
  activation?: 'relu' | 'gelu';
  layerNormEps?: number;
  /** inputs as [B, L, E] instead of PyTorch's default [L, B, E] */
  batchFirst?: boolean;
  /** pre-norm (LayerNorm before each block) instead of post-norm (default false) */
  normFirst?: boolean;
  /** biases in the linear layers and layer norms (default true) */
  bias?: boolean;
  /** base seed for the initial weights and dropout masks (default: drawn) */
  seed?: number;
}

export interface TransformerEncoderLayerForwardOptions {
  /** [L, L] or [B·nhead, L, L]; bool (true = not allowed) or float additive, as PyTorch */
  srcMask?: Tensor | null;
  /** [B, L]; bool (true = padding) or float additive */
  srcKeyPaddingMask?: Tensor | null;
  /** causal self-attention (used when srcMask is not given) */
  isCausal?: boolean;
}

export interface TransformerDecoderLayerForwardOptions {
  /** self-attention mask [T, T] or [B·nhead, T, T] */
  tgtMask?: Tensor | null;
  /** cross-attention mask [T, S] or [B·nhead, T, S] */
  memoryMask?: Tensor | null;
  tgtKeyPaddingMask?: Tensor | null;
  memoryKeyPaddingMask?: Tensor | null;
  /** causal self-attention (the masked decoder; used when tgtMask is not given) */
  tgtIsCausal?: boolean;
  /** causal cross-attention (rare; used when memoryMask is not given) */
  memoryIsCausal?: boolean;
}

/** Shared validation and the pieces both layers have: the feed-forward block and its norms. */
function resolve(op: string, o: TransformerLayerOptions): Required<Omit<TransformerLayerOptions, 'seed'>> & { seed: number | undefined } {
  check(o !== null && typeof o === 'object', op, 'options { dModel, nhead, ... } are required');
  const r = {
    dModel: o.dModel,
    nhead: o.nhead,
    dimFeedforward: o.dimFeedforward ?? 2048,
    dropout: o.dropout ?? 0.1,
    activation: o.activation ?? 'relu',
    layerNormEps: o.layerNormEps ?? 1e-5,
    batchFirst: !!o.batchFirst,
    normFirst: !!o.normFirst,
    bias: o.bias ?? true,
    seed: o.seed,
  };
  check(Number.isInteger(r.dModel) && r.dModel > 0, op, `dModel must be a positive integer, got ${r.dModel}`);
  check(Number.isInteger(r.nhead) && r.nhead > 0 && r.dModel % r.nhead === 0, op, `nhead (${r.nhead}) must divide dModel (${r.dModel})`);
  check(Number.isInteger(r.dimFeedforward) && r.dimFeedforward > 0, op, `dimFeedforward must be a positive integer, got ${r.dimFeedforward}`);
  check(typeof r.dropout === 'number' && r.dropout >= 0 && r.dropout < 1, op, `dropout must be in [0, 1), got ${r.dropout}`);
  check(r.activation === 'relu' || r.activation === 'gelu', op, `activation must be 'relu' or 'gelu', got ${String(r.activation)}`);
  check(Number.isFinite(r.layerNormEps) && r.layerNormEps > 0, op, `layerNormEps must be a positive number, got ${r.layerNormEps}`);
  return r;
}

/** seed + k, or undefined (drawn) when no base seed was given. */
const sub = (seed: number | undefined, k: number): number | undefined => (seed === undefined ? undefined : seed + k);

function checkInput(op: string, name: string, t: Tensor, E: number, batchFirst: boolean): void {
  check(t instanceof Tensor && t.rank === 3, op, `${name} must be a rank-3 tensor (${batchFirst ? '[B, L, E]' : '[L, B, E]'}), got ${t instanceof Tensor ? fmtShape(t.shape) : typeof t}`);
  check(t.shape[2] === E, op, `${name} ${fmtShape(t.shape)} must have dModel = ${E} as its last dim`);
}

/** A self-attention block followed by a feed-forward block, each with a residual and a LayerNorm. */
export class TransformerEncoderLayer extends Module {
  self_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  readonly dModel: number;
  readonly normFirst: boolean;
  readonly batchFirst: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(dev: Device, opts: TransformerLayerOptions) {
    super(dev);
    const o = resolve('nn.TransformerEncoderLayer', opts);
    this.dModel = o.dModel;
    this.normFirst = o.normFirst;
    this.batchFirst = o.batchFirst;
    this.activation = o.activation;
    const E = o.dModel;
    this.self_attn = new MultiheadAttention(dev, { embedDim: E, numHeads: o.nhead, dropout: o.dropout, bias: o.bias, batchFirst: o.batchFirst, seed: sub(o.seed, 0) });
    this.linear1 = new Linear(dev, { inFeatures: E, outFeatures: o.dimFeedforward, bias: o.bias, seed: sub(o.seed, 10) });
    this.dropout = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 20) });
    this.linear2 = new Linear(dev, { inFeatures: o.dimFeedforward, outFeatures: E, bias: o.bias, seed: sub(o.seed, 30) });
    this.norm1 = new LayerNorm(dev, { normalizedShape: E, eps: o.layerNormEps, bias: o.bias });
    this.norm2 = new LayerNorm(dev, { normalizedShape: E, eps: o.layerNormEps, bias: o.bias });
    this.dropout1 = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 40) });
    this.dropout2 = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 50) });
  }

  /** src [L, B, E] ([B, L, E] with batchFirst) → the same shape. */
  forward(src: Tensor, opts: TransformerEncoderLayerForwardOptions = {}): Tensor {
    checkInput('nn.TransformerEncoderLayer', 'src', src, this.dModel, this.batchFirst);
    const sa = (x: Tensor): Tensor =>
      this.dropout1.forward(this.self_attn.forward(x, x, x, { attnMask: opts.srcMask, keyPaddingMask: opts.srcKeyPaddingMask, isCausal: opts.isCausal })[0]);
    const ff = (x: Tensor): Tensor => this.dropout2.forward(feedForward(this, x));
    if (this.normFirst) {
      const x = add(src, sa(this.norm1.forward(src)));
      return add(x, ff(this.norm2.forward(x)));
    }
    const x = this.norm1.forward(add(src, sa(src)));
    return this.norm2.forward(add(x, ff(x)));
  }
}

/** linear2(dropout(activation(linear1(x)))) */
function feedForward(m: { linear1: Linear; linear2: Linear; dropout: Dropout; activation: 'relu' | 'gelu' }, x: Tensor): Tensor {
  const h = m.linear1.forward(x);
  return m.linear2.forward(m.dropout.forward(m.activation === 'gelu' ? gelu(h) : relu(h)));
}

/** Masked self-attention, cross-attention over the encoder's memory, feed-forward; each with a residual and a LayerNorm. */
export class TransformerDecoderLayer extends Module {
  self_attn: MultiheadAttention;
  multihead_attn: MultiheadAttention;
  linear1: Linear;
  dropout: Dropout;
  linear2: Linear;
  norm1: LayerNorm;
  norm2: LayerNorm;
  norm3: LayerNorm;
  dropout1: Dropout;
  dropout2: Dropout;
  dropout3: Dropout;
  readonly dModel: number;
  readonly normFirst: boolean;
  readonly batchFirst: boolean;
  readonly activation: 'relu' | 'gelu';

  constructor(dev: Device, opts: TransformerLayerOptions) {
    super(dev);
    const o = resolve('nn.TransformerDecoderLayer', opts);
    this.dModel = o.dModel;
    this.normFirst = o.normFirst;
    this.batchFirst = o.batchFirst;
    this.activation = o.activation;
    const E = o.dModel;
    const mha = (k: number): MultiheadAttention =>
      new MultiheadAttention(dev, { embedDim: E, numHeads: o.nhead, dropout: o.dropout, bias: o.bias, batchFirst: o.batchFirst, seed: sub(o.seed, k) });
    this.self_attn = mha(0);
    this.multihead_attn = mha(5);
    this.linear1 = new Linear(dev, { inFeatures: E, outFeatures: o.dimFeedforward, bias: o.bias, seed: sub(o.seed, 10) });
    this.dropout = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 20) });
    this.linear2 = new Linear(dev, { inFeatures: o.dimFeedforward, outFeatures: E, bias: o.bias, seed: sub(o.seed, 30) });
    this.norm1 = new LayerNorm(dev, { normalizedShape: E, eps: o.layerNormEps, bias: o.bias });
    this.norm2 = new LayerNorm(dev, { normalizedShape: E, eps: o.layerNormEps, bias: o.bias });
    this.norm3 = new LayerNorm(dev, { normalizedShape: E, eps: o.layerNormEps, bias: o.bias });
    this.dropout1 = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 40) });
    this.dropout2 = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 50) });
    this.dropout3 = new Dropout(dev, { p: o.dropout, seed: sub(o.seed, 60) });
  }

  /** tgt [T, B, E], memory [S, B, E] (batchFirst: [B, T, E], [B, S, E]) → [T, B, E]. */
  forward(tgt: Tensor, memory: Tensor, opts: TransformerDecoderLayerForwardOptions = {}): Tensor {
    const op = 'nn.TransformerDecoderLayer';
    checkInput(op, 'tgt', tgt, this.dModel, this.batchFirst);
    checkInput(op, 'memory', memory, this.dModel, this.batchFirst);
    const bd = this.batchFirst ? 0 : 1;
    check(tgt.shape[bd] === memory.shape[bd], op, `tgt ${fmtShape(tgt.shape)} and memory ${fmtShape(memory.shape)} have different batch sizes`);
    const sa = (x: Tensor): Tensor =>
      this.dropout1.forward(this.self_attn.forward(x, x, x, { attnMask: opts.tgtMask, keyPaddingMask: opts.tgtKeyPaddingMask, isCausal: opts.tgtIsCausal })[0]);
    const ca = (x: Tensor): Tensor =>
      this.dropout2.forward(
        this.multihead_attn.forward(x, memory, memory, { attnMask: opts.memoryMask, keyPaddingMask: opts.memoryKeyPaddingMask, isCausal: opts.memoryIsCausal })[0],
      );
    const ff = (x: Tensor): Tensor => this.dropout3.forward(feedForward(this, x));
    if (this.normFirst) {
      let x = add(tgt, sa(this.norm1.forward(tgt)));
      x = add(x, ca(this.norm2.forward(x)));
      return add(x, ff(this.norm3.forward(x)));
    }
    let x = this.norm1.forward(add(tgt, sa(tgt)));
    x = this.norm2.forward(add(x, ca(x)));
    return this.norm3.forward(add(x, ff(x)));
  }
}

export interface TransformerStackOptions extends TransformerLayerOptions {
  numLayers: number;
  /** a LayerNorm after the last layer (PyTorch's `norm` argument; pre-norm stacks want it) */
  finalNorm?: boolean;
}

function stackOptions(op: string, o: TransformerStackOptions): { layer: (i: number) => TransformerLayerOptions; n: number } {
  check(o !== null && typeof o === 'object', op, 'options { numLayers, dModel, nhead, ... } are required');
  check(Number.isInteger(o.numLayers) && o.numLayers > 0, op, `numLayers must be a positive integer, got ${o.numLayers}`);
  // layer i: its own initial weights and dropout masks
  return { layer: (i) => ({ ...o, seed: sub(o.seed, 100 * i) }), n: o.numLayers };
}

/** numLayers encoder layers (PyTorch's nn.TransformerEncoder: names layers.<i>.*, norm.*). */
export class TransformerEncoder extends Module {
  layers: TransformerEncoderLayer[];
  norm: LayerNorm | null;

  constructor(dev: Device, opts: TransformerStackOptions) {
    super(dev);
    const { layer, n } = stackOptions('nn.TransformerEncoder', opts);
    this.layers = Array.from({ length: n }, (_, i) => new TransformerEncoderLayer(dev, layer(i)));
    this.norm = opts.finalNorm ? new LayerNorm(dev, { normalizedShape: opts.dModel, eps: opts.layerNormEps, bias: opts.bias }) : null;
  }

  forward(src: Tensor, opts: TransformerEncoderLayerForwardOptions = {}): Tensor {
    let x = src;
    for (const l of this.layers) x = l.forward(x, opts);
    return this.norm ? this.norm.forward(x) : x;
  }
}

/** numLayers decoder layers over one encoder memory (PyTorch's nn.TransformerDecoder). */
export class TransformerDecoder extends Module {
  layers: TransformerDecoderLayer[];
  norm: LayerNorm | null;

  constructor(dev: Device, opts: TransformerStackOptions) {
    super(dev);
    const { layer, n } = stackOptions('nn.TransformerDecoder', opts);
    this.layers = Array.from({ length: n }, (_, i) => new TransformerDecoderLayer(dev, layer(i)));
    this.norm = opts.finalNorm ? new LayerNorm(dev, { normalizedShape: opts.dModel, eps: opts.layerNormEps, bias: opts.bias }) : null;
  }

  forward(tgt: Tensor, memory: Tensor, opts: TransformerDecoderLayerForwardOptions = {}): Tensor {
    let x = tgt;
    for (const l of this.layers) x = l.forward(x, memory, opts);
    return this.norm ? this.norm.forward(x) : x;
  }
}
