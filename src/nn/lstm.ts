// nn.LSTM and nn.RNN: PyTorch's multi-layer recurrent modules (parameter names weight_ih_l{k},
// weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k}; init U(±1/√hiddenSize)). Per layer, forward runs one
// matmul for x·W_ihᵀ of every time step and then the fused recurrence, one dispatch per step
// (src/ops/lstm.ts). Truncated BPTT: pass the detached final state of one chunk as the initial
// state of the next, e.g. `state = [hN.detach(), cN.detach()]`.
import { check } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { lstm, rnn, type Nonlinearity, type RecurrentLayerWeights } from '../ops/lstm.js';
import type { Tensor } from '../tensor.js';
import { Module, param } from './module.js';

export interface LSTMOptions {
  inputSize: number;
  hiddenSize: number;
  /** stacked layers (default 1) */
  numLayers?: number;
  /** b_ih and b_hh (default true) */
  bias?: boolean;
  /** input and output are [batch, T, features] (default false: [T, batch, features]) */
  batchFirst?: boolean;
  seed?: number;
}

export interface RNNOptions extends LSTMOptions {
  /** 'tanh' (default) or 'relu' */
  nonlinearity?: Nonlinearity;
}

function checkOptions(op: string, o: LSTMOptions): { numLayers: number } {
  check(o && typeof o === 'object', op, 'options object required');
  check(Number.isInteger(o.inputSize) && o.inputSize > 0, op, `inputSize must be a positive integer, got ${o.inputSize}`);
  check(Number.isInteger(o.hiddenSize) && o.hiddenSize > 0, op, `hiddenSize must be a positive integer, got ${o.hiddenSize}`);
  const numLayers = o.numLayers ?? 1;
  check(Number.isInteger(numLayers) && numLayers > 0, op, `numLayers must be a positive integer, got ${o.numLayers}`);
  // PyTorch options this module does not implement: refuse rather than silently ignore them
  const extra = o as { bidirectional?: unknown; dropout?: unknown; projSize?: unknown };
  check(!extra.bidirectional, op, 'bidirectional is not supported');
  check(!extra.dropout, op, `dropout between layers is not supported (got ${String(extra.dropout)})`);
  check(!extra.projSize, op, `projSize is not supported (got ${String(extra.projSize)})`);
  return { numLayers };
}

/** Shared construction: creates the PyTorch-named parameters as fields of m, layer by layer. */
function makeParams(m: Module, dev: Device, o: LSTMOptions, gates: number, numLayers: number): void {
  const H = o.hiddenSize;
  const k = 1 / Math.sqrt(H);
  let seed = o.seed;
  const u = (shape: number[]): Tensor => {
    const t = param(dev.rand(shape, { low: -k, high: k, seed }));
    if (seed !== undefined) seed++;
    return t;
  };
  const fields = m as unknown as Record<string, Tensor>;
  for (let l = 0; l < numLayers; l++) {
    fields[`weight_ih_l${l}`] = u([gates * H, l === 0 ? o.inputSize : H]);
    fields[`weight_hh_l${l}`] = u([gates * H, H]);
    if (o.bias ?? true) {
      fields[`bias_ih_l${l}`] = u([gates * H]);
      fields[`bias_hh_l${l}`] = u([gates * H]);
    }
  }
}

/** The layer weights read from the fields at call time (so loadStateDict and reassignment apply). */
function layerWeights(m: Module, numLayers: number, bias: boolean): RecurrentLayerWeights[] {
  const f = m as unknown as Record<string, Tensor>;
  return Array.from({ length: numLayers }, (_, l) => ({
    wIh: f[`weight_ih_l${l}`]!,
    wHh: f[`weight_hh_l${l}`]!,
    bIh: bias ? f[`bias_ih_l${l}`]! : null,
    bHh: bias ? f[`bias_hh_l${l}`]! : null,
  }));
}

/**
 * Multi-layer LSTM (PyTorch nn.LSTM, gate order i, f, g, o). forward(x, [h0, c0]?) with x
 * [T, B, inputSize] ([B, T, inputSize] with batchFirst) and h0/c0 [numLayers, B, hiddenSize]
 * (zeros when omitted) returns [output [T, B, hiddenSize], [hN, cN]].
 */
export class LSTM extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;

  constructor(dev: Device, opts: LSTMOptions) {
    super(dev);
    const { numLayers } = checkOptions('nn.LSTM', opts);
    this.inputSize = opts.inputSize;
    this.hiddenSize = opts.hiddenSize;
    this.numLayers = numLayers;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    makeParams(this, dev, opts, 4, numLayers);
  }

  /** weights of layer l */
  layer(l: number): RecurrentLayerWeights {
    return layerWeights(this, this.numLayers, this.bias)[l]!;
  }

  forward(x: Tensor, state?: readonly [Tensor, Tensor] | null): [Tensor, [Tensor, Tensor]] {
    check(state === undefined || state === null || (Array.isArray(state) && state.length === 2), 'nn.LSTM', 'state must be [h0, c0]');
    return lstm(x, layerWeights(this, this.numLayers, this.bias), state?.[0], state?.[1], { batchFirst: this.batchFirst }, 'nn.LSTM');
  }
}

/**
 * Multi-layer Elman RNN (PyTorch nn.RNN): h_t = act(x_t·W_ihᵀ + b_ih + h_{t-1}·W_hhᵀ + b_hh), act
 * tanh (default) or relu. forward(x, h0?) returns [output [T, B, hiddenSize], hN [numLayers, B, hiddenSize]].
 */
export class RNN extends Module {
  readonly inputSize: number;
  readonly hiddenSize: number;
  readonly numLayers: number;
  readonly bias: boolean;
  readonly batchFirst: boolean;
  readonly nonlinearity: Nonlinearity;

  constructor(dev: Device, opts: RNNOptions) {
    super(dev);
    const { numLayers } = checkOptions('nn.RNN', opts);
    const nl = opts.nonlinearity ?? 'tanh';
    check(nl === 'tanh' || nl === 'relu', 'nn.RNN', `nonlinearity must be 'tanh' or 'relu', got '${String(nl)}'`);
    this.inputSize = opts.inputSize;
    this.hiddenSize = opts.hiddenSize;
    this.numLayers = numLayers;
    this.bias = opts.bias ?? true;
    this.batchFirst = opts.batchFirst ?? false;
    this.nonlinearity = nl;
    makeParams(this, dev, opts, 1, numLayers);
  }

  layer(l: number): RecurrentLayerWeights {
    return layerWeights(this, this.numLayers, this.bias)[l]!;
  }

  forward(x: Tensor, h0?: Tensor | null): [Tensor, Tensor] {
    return rnn(x, layerWeights(this, this.numLayers, this.bias), h0, { batchFirst: this.batchFirst, nonlinearity: this.nonlinearity }, 'nn.RNN');
  }
}
