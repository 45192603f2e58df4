// LSTM and Elman RNN: the recurrence as fused kernels (kernels/lstm.wgsl, its subgroup version
// kernels/lstm_sg.wgsl, kernels/rnn.wgsl).
//
// A layer over a sequence is: xg = x·W_ihᵀ for all T steps in one matmul (linear), then the
// recurrence, ONE dispatch per time step (h·W_hhᵀ + xg[t] + biases, gates, cell update). Backward
// is one dispatch per step too (dgates[t+1]·W_hh fused with the pointwise gate grads of step t),
// plus one dispatch for dh0; dW_hh = dgatesᵀ·h_prev is one matmul over all steps, db one sum, and
// dx, dW_ih flow through linear's own backward.
//
// Two outputs (every step's h and c) with one backward: the rule lives on `cs`; `hs` is recorded
// as a function of `cs` whose rule hands the part of dL/dc that flows through h = o·tanh(c) to cs
// and stashes dL/dh for the o-gate and the recurrence. Autodiff's topological order runs hs's rule
// first (hs depends on cs), so the cs rule sees both.
import lstmSrc from '../../kernels/lstm.wgsl';
import lstmSgSrc from '../../kernels/lstm_sg.wgsl';
import rnnSrc from '../../kernels/rnn.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { needsGrad, record } from '../autodiff.js';
import type { Tensor } from '../tensor.js';
import { checkSameDevice, checkTensor } from './elementwise.js';
import { linear, matmulEx } from './matmul.js';
import { sum } from './reduce.js';
import { reshape, slice, stack, stridedCopy, transpose } from './shape_ops.js';
import { type Arr, arr } from '../reference.js';

const KL = kernel('lstm.wgsl', lstmSrc);
const KS = kernel('lstm_sg.wgsl', lstmSgSrc);
const KR = kernel('rnn.wgsl', rnnSrc);
const WG = 64; // invocations along hidden units
const R = 4; // batch rows per invocation (const R in the WGSL)

const shp = (t: Tensor): string => fmtShape(t.shape);

/**
 * A disposer for forward intermediates: they are freed at once only when nothing is recorded for
 * autodiff (any recorded node may keep them as an input or saved tensor; tidy() frees them then).
 */
function dropper(...inputs: readonly (Tensor | null | undefined)[]): (t: Tensor) => void {
  const free = !needsGrad(...inputs);
  return (t) => {
    if (free) t.dispose();
  };
}

function stepGrid(B: number, H: number, rows = R): [number, number, number] {
  return [Math.ceil(H / WG), Math.ceil(B / rows), 1];
}

/** @internal test hook: 'off' forces the portable kernels (kernels/lstm.wgsl) */
export const lstmKernelConfig: { subgroups: 'auto' | 'off' } = { subgroups: 'auto' };

/**
 * The subgroup kernels (kernels/lstm_sg.wgsl) need the 'subgroups' feature with subgroups of at
 * least 8 lanes (their broadcasts read lanes 0..7) dividing the 64-wide workgroup, and vec4 rows.
 */
function useSubgroups(dev: Tensor['device'], H: number): boolean {
  if (lstmKernelConfig.subgroups === 'off' || !dev.features.has('subgroups') || H % 4 !== 0) return false;
  const { min, max } = dev.subgroupSizes;
  return min >= 8 && max <= WG && WG % max === 0;
}

/** W_hh [4H, H] regrouped as [H(k), H(j), 4 gates]: wp[k, j, g] = W_hh[g·H + j, k] (no autodiff) */
function regroupRaw(w: Tensor, H: number): Tensor {
  const out = w.device.empty([H, H, 4]);
  stridedCopy(w, out, [H, H, 4], [1, H, H * H], 0, [4 * H, 4, 1], 0);
  return out;
}

/**
 * [h0; h_0 .. h_{T-2}] as [T·B, H] (the h each step multiplied W_hh with), by two buffer copies
 * (no autodiff; cheaper than slice + concat kernels).
 */
function previousStates(h0: Tensor, hs: Tensor, T: number, B: number, H: number): Tensor {
  const dev = hs.device;
  const out = dev.empty([T * B, H]);
  const n = B * H;
  const put = (src: Tensor, count: number, at: number): void => {
    // a caller's buffer (fromGPUBuffer) may lack COPY_SRC: copy it with a kernel instead
    if (src.storage.owned) {
      dev.exec.record({ kind: 'copy', src: src.storage.buffer, srcOffset: 0, dst: out.storage.buffer, dstOffset: at * 4, size: count * 4 });
    } else stridedCopy(src, out, [count], [1], 0, [1], at);
  };
  put(h0, n, 0);
  if (T > 1) put(hs, (T - 1) * n, n);
  return out;
}

/** W [rows, cols] -> Wᵀ [cols, rows] as a plain copy (no autodiff). */
function transposeRaw(w: Tensor): Tensor {
  const [rows, cols] = w.shape as [number, number];
  const out = w.device.empty([cols, rows]);
  stridedCopy(w, out, [cols, rows], [1, cols], 0, [rows, 1], 0);
  return out;
}

function checkBias(b: Tensor | null | undefined, op: string, arg: string, G: number, H: number): void {
  if (b === null || b === undefined) return;
  checkTensor(b, op, arg);
  check(b.rank === 1 && b.shape[0] === G, op, `${arg} ${shp(b)} must be [${G === H ? '' : `${G / H}·`}hiddenSize] = [${G}] (hiddenSize ${H})`);
}

/**
 * b_ih and b_hh get the same gradient (Σ over steps and rows of dgates): one sum, handed out as two
 * tensor objects over one storage (autodiff disposes each grad object once it is accumulated).
 */
function biasGrads(gb: Tensor | null, bIh: Tensor | null | undefined, bHh: Tensor | null | undefined): (Tensor | null)[] {
  const out: (Tensor | null)[] = [];
  const gIh = bIh?.requiresGrad ? gb : null;
  if (bIh) out.push(gIh);
  if (bHh) out.push(bHh.requiresGrad ? (gIh ? gb!.detach() : gb) : null);
  return out;
}

// ---- LSTM recurrence ----------------------------------------------------------------------------

export interface Recurrence {
  /** h of every step [T, B, H] */
  hs: Tensor;
  /** c of every step [T, B, H] */
  cs: Tensor;
}

/**
 * @internal The recurrence of one LSTM layer: xg = x·W_ihᵀ of every step [T, B, 4H] (no bias),
 * W_hh [4H, H], biases [4H] (optional), h0/c0 [B, H]. One dispatch per step.
 */
export function lstmRecurrence(
  xg: Tensor, wHh: Tensor, bIh: Tensor | null | undefined, bHh: Tensor | null | undefined,
  h0: Tensor, c0: Tensor, op = 'lstm',
): Recurrence {
  checkTensor(xg, op, 'xg');
  checkTensor(wHh, op, 'wHh');
  checkTensor(h0, op, 'h0');
  checkTensor(c0, op, 'c0');
  check(xg.rank === 3, op, `xg ${shp(xg)} must be 3-D [T, batch, 4·hiddenSize]`);
  check(wHh.rank === 2, op, `wHh ${shp(wHh)} must be 2-D [4·hiddenSize, hiddenSize]`);
  const [T, B, G] = xg.shape as [number, number, number];
  const H = wHh.shape[1]!;
  check(H > 0 && wHh.shape[0] === 4 * H, op, `wHh ${shp(wHh)}: dim 0 must be 4·hiddenSize = ${4 * H}`);
  check(G === 4 * H, op, `xg ${shp(xg)}: gate dim must be 4·hiddenSize = ${4 * H} (wHh ${shp(wHh)})`);
  check(T > 0 && B > 0, op, `xg ${shp(xg)} must have at least one step and one batch row`);
  check(h0.rank === 2 && h0.shape[0] === B && h0.shape[1] === H, op, `h0 ${shp(h0)} must be [batch, hiddenSize] = [${B}, ${H}]`);
  check(c0.rank === 2 && c0.shape[0] === B && c0.shape[1] === H, op, `c0 ${shp(c0)} must be [batch, hiddenSize] = [${B}, ${H}]`);
  checkBias(bIh, op, 'bIh', G, H);
  checkBias(bHh, op, 'bHh', G, H);
  checkSameDevice(op, { xg, wHh, bIh, bHh, h0, c0 });

  const dev = xg.device;
  const hs = dev.empty([T, B, H]);
  const cs = dev.empty([T, B, H]);
  const acts = dev.empty([T, B, G]);
  const hasBias = (bIh ? 1 : 0) | (bHh ? 2 : 0);
  // The subgroup kernels when the device allows (W_hh regrouped once per call: one copy, cheaper
  // than one step), else the portable ones with W_hhᵀ (coalesced across hidden units) for a
  // sequence, or W_hh as given for a single step (where a transpose would cost more than it saves).
  const sg = useSubgroups(dev, H);
  const transposed = T > 1 && !sg;
  const wt = sg ? regroupRaw(wHh, H) : transposed ? transposeRaw(wHh) : wHh;
  for (let t = 0; t < T; t++) {
    if (sg) {
      dev.dispatch(KS, 'lstm_step_fwd_sg', {
        bindings: { xg, wp: wt, bih: bIh ?? xg, bhh: bHh ?? xg, h0, c0, hs, cs, acts },
        uniforms: { t, B, H, has_bias: hasBias },
        overrides: { WG },
        workgroups: stepGrid(B, H, 8),
      });
    } else {
      dev.dispatch(KL, 'lstm_step_fwd', {
        bindings: { xg, wt, bih: bIh ?? xg, bhh: bHh ?? xg, h0, c0, hs, cs, acts },
        uniforms: { t, B, H, has_bias: hasBias },
        overrides: { WG, WT_TRANSPOSED: transposed ? 1 : 0 },
        workgroups: stepGrid(B, H),
      });
    }
  }
  const inputs = [xg, wHh, h0, c0, ...(bIh ? [bIh] : []), ...(bHh ? [bHh] : [])];
  if (!needsGrad(...inputs)) {
    if (wt !== wHh) wt.dispose();
    acts.dispose();
    return { hs, cs };
  }
  if (transposed) wt.dispose(); // the portable backward reads W_hh as given; the subgroup one keeps wp
  let stashGh: Tensor | null = null;
  record('lstm', cs, inputs, (gc) => {
    const gh = stashGh;
    stashGh = null;
    const dg = dev.empty([T, B, G]);
    const dgi = sg ? dev.empty([T, B, G]) : null;
    const carry = dev.empty([B, H]);
    const wantH0 = h0.requiresGrad;
    const dh0 = dev.empty(wantH0 ? [B, H] : [1]);
    const step = (t: number, dh0Only: number): void => {
      const uniforms = { t, B, H, T, has_gh: gh ? 1 : 0, dh0_only: dh0Only };
      if (dgi) {
        dev.dispatch(KS, 'lstm_step_bwd_sg', {
          bindings: { sacts: acts, scs: cs, sc0: c0, bwp: wt, gh: gh ?? gc, gc, dg, dgi, carry, dh0 },
          uniforms, overrides: { WG }, workgroups: stepGrid(B, Math.ceil(H / 2), 8),
        });
      } else {
        dev.dispatch(KL, 'lstm_step_bwd', {
          bindings: { sacts: acts, scs: cs, sc0: c0, whh: wHh, gh: gh ?? gc, gc, dg, carry, dh0 },
          uniforms, overrides: { WG }, workgroups: stepGrid(B, H),
        });
      }
    };
    for (let t = T - 1; t >= 0; t--) step(t, 0);
    if (wantH0) step(0, 1);
    dgi?.dispose();
    gh?.dispose();
    const dg2 = reshape(dg, [T * B, G]);
    let gW: Tensor | null = null;
    if (wHh.requiresGrad) {
      // dW_hh = Σ_t dgates_tᵀ·h_{t-1}: one matmul over all steps
      const hprev = previousStates(h0, hs, T, B, H);
      gW = matmulEx(dg2, hprev, { transA: true });
      hprev.dispose();
    }
    const gb = bIh?.requiresGrad || bHh?.requiresGrad ? sum(dg2, 0) : null;
    dg2.dispose();
    const gc0 = c0.requiresGrad ? carry : null;
    if (!gc0) carry.dispose();
    if (!wantH0) dh0.dispose();
    const gxg = xg.requiresGrad ? dg : null;
    if (!gxg) dg.dispose();
    const grads: (Tensor | null)[] = [gxg, gW, wantH0 ? dh0 : null, gc0];
    return grads.concat(biasGrads(gb, bIh, bHh));
  });
  record('lstm_h', hs, [cs], (gh) => {
    stashGh?.dispose();
    stashGh = gh.detach();
    const out = dev.empty([T, B, H]);
    dev.dispatch(KL, 'lstm_hpath_bwd', {
      bindings: { pacts: acts, pcs: cs, pgh: gh, pout: out },
      uniforms: { n: T * B * H, H },
      overrides: { WG: 256 },
      workgroups: dev.grid1d(T * B * H, 256),
    });
    return [out];
  });
  return { hs, cs };
}

function checkCellArgs(
  op: string, x: Tensor, h: Tensor, wIh: Tensor, wHh: Tensor, gates: number,
  bIh: Tensor | null | undefined, bHh: Tensor | null | undefined,
): { B: number; H: number; G: number } {
  checkTensor(x, op, 'x');
  checkTensor(h, op, 'h');
  checkTensor(wIh, op, 'wIh');
  checkTensor(wHh, op, 'wHh');
  check(x.rank === 2, op, `x ${shp(x)} must be 2-D [batch, inputSize]`);
  check(h.rank === 2, op, `h ${shp(h)} must be 2-D [batch, hiddenSize]`);
  check(wIh.rank === 2, op, `wIh ${shp(wIh)} must be 2-D [${gates > 1 ? `${gates}·` : ''}hiddenSize, inputSize]`);
  check(wHh.rank === 2, op, `wHh ${shp(wHh)} must be 2-D [${gates > 1 ? `${gates}·` : ''}hiddenSize, hiddenSize]`);
  const [B, I] = x.shape as [number, number];
  const H = h.shape[1]!;
  const G = gates * H;
  check(h.shape[0] === B, op, `h ${shp(h)} has batch ${h.shape[0]}, x ${shp(x)} has batch ${B}`);
  check(H > 0 && B > 0, op, `x ${shp(x)} and h ${shp(h)} need at least one batch row and one hidden unit`);
  const gname = gates > 1 ? `${gates}·hiddenSize` : 'hiddenSize';
  check(wHh.shape[0] === G && wHh.shape[1] === H, op, `wHh ${shp(wHh)} must be [${gname}, hiddenSize] = [${G}, ${H}] (hiddenSize from h ${shp(h)})`);
  check(wIh.shape[0] === G, op, `wIh ${shp(wIh)}: dim 0 must be ${gname} = ${G} (hiddenSize from h ${shp(h)})`);
  check(wIh.shape[1] === I, op, `wIh ${shp(wIh)} has inputSize ${wIh.shape[1]}, x ${shp(x)} has inputSize ${I}`);
  checkBias(bIh, op, 'bIh', G, H);
  checkBias(bHh, op, 'bHh', G, H);
  return { B, H, G };
}

/**
 * One LSTM step (PyTorch LSTMCell, gate order i, f, g, o): x [B, in], h/c [B, H], wIh [4H, in],
 * wHh [4H, H], bIh/bHh [4H] optional. Returns [h1, c1]. x·W_ihᵀ is a matmul; h·W_hhᵀ, the biases,
 * the gates and the cell update are one fused dispatch (and one fused backward step).
 */
export function lstmCell(
  x: Tensor, h: Tensor, c: Tensor, wIh: Tensor, wHh: Tensor, bIh?: Tensor | null, bHh?: Tensor | null,
): [Tensor, Tensor] {
  const op = 'lstmCell';
  const { B, H, G } = checkCellArgs(op, x, h, wIh, wHh, 4, bIh, bHh);
  checkTensor(c, op, 'c');
  check(c.rank === 2 && c.shape[0] === B && c.shape[1] === H, op, `c ${shp(c)} must be [batch, hiddenSize] = [${B}, ${H}] like h ${shp(h)}`);
  checkSameDevice(op, { x, h, c, wIh, wHh, bIh, bHh });
  const drop = dropper(x, h, c, wIh, wHh, bIh, bHh);
  const xw = linear(x, wIh);
  const xg = reshape(xw, [1, B, G]);
  drop(xw);
  const { hs, cs } = lstmRecurrence(xg, wHh, bIh, bHh, h, c, op);
  drop(xg);
  const h1 = reshape(hs, [B, H]);
  const c1 = reshape(cs, [B, H]);
  drop(hs);
  drop(cs);
  return [h1, c1];
}

// ---- Elman RNN recurrence -----------------------------------------------------------------------

export type Nonlinearity = 'tanh' | 'relu';

/**
 * @internal The recurrence of one Elman RNN layer: xg = x·W_ihᵀ of every step [T, B, H] (no bias),
 * W_hh [H, H], biases [H] optional, h0 [B, H]. Returns h of every step [T, B, H].
 */
export function rnnRecurrence(
  xg: Tensor, wHh: Tensor, bIh: Tensor | null | undefined, bHh: Tensor | null | undefined,
  h0: Tensor, nonlinearity: Nonlinearity = 'tanh', op = 'rnn',
): Tensor {
  checkTensor(xg, op, 'xg');
  checkTensor(wHh, op, 'wHh');
  checkTensor(h0, op, 'h0');
  check(nonlinearity === 'tanh' || nonlinearity === 'relu', op, `nonlinearity must be 'tanh' or 'relu', got '${String(nonlinearity)}'`);
  check(xg.rank === 3, op, `xg ${shp(xg)} must be 3-D [T, batch, hiddenSize]`);
  check(wHh.rank === 2 && wHh.shape[0] === wHh.shape[1], op, `wHh ${shp(wHh)} must be [hiddenSize, hiddenSize]`);
  const [T, B, H] = xg.shape as [number, number, number];
  check(wHh.shape[0] === H, op, `wHh ${shp(wHh)} must be [${H}, ${H}] (hiddenSize from xg ${shp(xg)})`);
  check(T > 0 && B > 0 && H > 0, op, `xg ${shp(xg)} must have at least one step, batch row and hidden unit`);
  check(h0.rank === 2 && h0.shape[0] === B && h0.shape[1] === H, op, `h0 ${shp(h0)} must be [batch, hiddenSize] = [${B}, ${H}]`);
  checkBias(bIh, op, 'bIh', H, H);
  checkBias(bHh, op, 'bHh', H, H);
  checkSameDevice(op, { xg, wHh, bIh, bHh, h0 });
  const dev = xg.device;
  const hs = dev.empty([T, B, H]);
  const transposed = T > 1;
  const wt = transposed ? transposeRaw(wHh) : wHh;
  const relu = nonlinearity === 'relu' ? 1 : 0;
  const hasBias = (bIh ? 1 : 0) | (bHh ? 2 : 0);
  for (let t = 0; t < T; t++) {
    dev.dispatch(KR, 'rnn_step_fwd', {
      bindings: { xg, wt, bih: bIh ?? xg, bhh: bHh ?? xg, h0, hs },
      uniforms: { t, B, H, has_bias: hasBias },
      overrides: { WG, WT_TRANSPOSED: transposed ? 1 : 0, RELU: relu },
      workgroups: stepGrid(B, H),
    });
  }
  if (wt !== wHh) wt.dispose();
  const inputs = [xg, wHh, h0, ...(bIh ? [bIh] : []), ...(bHh ? [bHh] : [])];
  return record('rnn', hs, inputs, (gh) => {
    const dp = dev.empty([T, B, H]);
    const wantH0 = h0.requiresGrad;
    const dh0 = dev.empty(wantH0 ? [B, H] : [1]);
    const step = (t: number, dh0Only: number): void =>
      dev.dispatch(KR, 'rnn_step_bwd', {
        bindings: { shs: hs, whh: wHh, gh, dp, dh0 },
        uniforms: { t, B, H, T, dh0_only: dh0Only },
        overrides: { WG, RELU: relu },
        workgroups: stepGrid(B, H),
      });
    for (let t = T - 1; t >= 0; t--) step(t, 0);
    if (wantH0) step(0, 1);
    const dp2 = reshape(dp, [T * B, H]);
    let gW: Tensor | null = null;
    if (wHh.requiresGrad) {
      const hprev = previousStates(h0, hs, T, B, H);
      gW = matmulEx(dp2, hprev, { transA: true });
      hprev.dispose();
    }
    const gb = bIh?.requiresGrad || bHh?.requiresGrad ? sum(dp2, 0) : null;
    dp2.dispose();
    if (!wantH0) dh0.dispose();
    const gxg = xg.requiresGrad ? dp : null;
    if (!gxg) dp.dispose();
    const grads: (Tensor | null)[] = [gxg, gW, wantH0 ? dh0 : null];
    return grads.concat(biasGrads(gb, bIh, bHh));
  });
}

/**
 * One Elman RNN step (PyTorch RNNCell): h1 = act(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh), x [B, in],
 * h [B, H], wIh [H, in], wHh [H, H], biases [H] optional; act 'tanh' (default) or 'relu'.
 */
export function rnnCell(
  x: Tensor, h: Tensor, wIh: Tensor, wHh: Tensor, bIh?: Tensor | null, bHh?: Tensor | null,
  nonlinearity: Nonlinearity = 'tanh',
): Tensor {
  const op = 'rnnCell';
  const { B, H } = checkCellArgs(op, x, h, wIh, wHh, 1, bIh, bHh);
  checkSameDevice(op, { x, h, wIh, wHh, bIh, bHh });
  const drop = dropper(x, h, wIh, wHh, bIh, bHh);
  const xw = linear(x, wIh);
  const xg = reshape(xw, [1, B, H]);
  drop(xw);
  const hs = rnnRecurrence(xg, wHh, bIh, bHh, h, nonlinearity, op);
  drop(xg);
  const h1 = reshape(hs, [B, H]);
  drop(hs);
  return h1;
}

// ---- multi-layer sequences (what nn.LSTM and nn.RNN run) ------------------------------------------

export interface RecurrentLayerWeights {
  wIh: Tensor;
  wHh: Tensor;
  bIh?: Tensor | null;
  bHh?: Tensor | null;
}

export interface SequenceOptions {
  /** x is [B, T, in] and the output [B, T, H] (default false: [T, B, in]) */
  batchFirst?: boolean;
}

interface Prepared {
  T: number;
  B: number;
  H: number;
  L: number;
  /** x as [T, B, in] */
  xt: Tensor;
}

function prepareSequence(
  op: string, x: Tensor, layers: readonly RecurrentLayerWeights[], gates: number, batchFirst: boolean,
  states: Record<string, Tensor | null | undefined>,
): Prepared {
  checkTensor(x, op, 'x');
  check(layers.length > 0, op, 'needs at least one layer');
  check(x.rank === 3, op, `input ${shp(x)} must be 3-D ${batchFirst ? '[batch, T, inputSize] (batchFirst)' : '[T, batch, inputSize]'}`);
  const T = batchFirst ? x.shape[1]! : x.shape[0]!;
  const B = batchFirst ? x.shape[0]! : x.shape[1]!;
  check(T > 0 && B > 0, op, `input ${shp(x)} must have at least one step and one batch row`);
  const L = layers.length;
  layers.forEach((w, l) => {
    checkTensor(w.wIh, op, `weight_ih_l${l}`);
    checkTensor(w.wHh, op, `weight_hh_l${l}`);
  });
  const H = layers[0]!.wHh.shape[1] ?? 0;
  check(H > 0, op, `weight_hh_l0 ${shp(layers[0]!.wHh)} must be [${gates > 1 ? `${gates}·` : ''}hiddenSize, hiddenSize]`);
  let inSize = x.shape[2]!;
  layers.forEach((w, l) => {
    check(w.wHh.rank === 2 && w.wHh.shape[0] === gates * H && w.wHh.shape[1] === H, op, `weight_hh_l${l} ${shp(w.wHh)} must be [${gates * H}, ${H}]`);
    check(w.wIh.rank === 2 && w.wIh.shape[0] === gates * H, op, `weight_ih_l${l} ${shp(w.wIh)}: dim 0 must be ${gates * H}`);
    check(w.wIh.shape[1] === inSize, op, `input size mismatch: weight_ih_l${l} ${shp(w.wIh)} expects inputSize ${w.wIh.shape[1]}, ${l === 0 ? `input ${shp(x)}` : `layer ${l - 1}'s output`} has ${inSize}`);
    checkBias(w.bIh, op, `bias_ih_l${l}`, gates * H, H);
    checkBias(w.bHh, op, `bias_hh_l${l}`, gates * H, H);
    inSize = H;
  });
  for (const [name, s] of Object.entries(states)) {
    if (s === null || s === undefined) continue;
    checkTensor(s, op, name);
    check(s.rank === 3 && s.shape[0] === L && s.shape[1] === B && s.shape[2] === H, op, `${name} ${shp(s)} must be [numLayers, batch, hiddenSize] = [${L}, ${B}, ${H}]`);
  }
  const xt = batchFirst ? transpose(x, 0, 1) : x;
  return { T, B, H, L, xt };
}

/** layer l of a [L, B, H] state as [B, H] (a copy when L > 1) */
function layerState(s: Tensor, l: number, L: number, B: number, H: number, drop: (t: Tensor) => void): Tensor {
  if (L === 1) return reshape(s, [B, H]);
  const sl = slice(s, 0, l, l + 1);
  const r = reshape(sl, [B, H]);
  drop(sl);
  return r;
}

/** the last step of [T, B, H] as [B, H] */
function lastStep(s: Tensor, T: number, B: number, H: number, drop: (t: Tensor) => void): Tensor {
  if (T === 1) return reshape(s, [B, H]);
  const sl = slice(s, 0, T - 1, T);
  const r = reshape(sl, [B, H]);
  drop(sl);
  return r;
}

/** x [T·B, in] · W_ihᵀ as [T, B, G] */
function inputProjection(inp: Tensor, wIh: Tensor, T: number, B: number, drop: (t: Tensor) => void): Tensor {
  const flat = reshape(inp, [T * B, inp.shape[2]!]);
  const xw = linear(flat, wIh);
  drop(flat);
  const xg = reshape(xw, [T, B, wIh.shape[0]!]);
  drop(xw);
  return xg;
}

function stackStates(ss: Tensor[], drop: (t: Tensor) => void): Tensor {
  const out = stack(ss, 0);
  ss.forEach(drop);
  return out;
}

/**
 * Multi-layer LSTM over a sequence (what nn.LSTM runs): x [T, B, in] ([B, T, in] with batchFirst),
 * h0/c0 [L, B, H] (zeros when omitted). Returns [output [T, B, H], [hN, cN] each [L, B, H]].
 * Per layer: one matmul for x·W_ihᵀ of all steps, then one fused dispatch per step.
 */
export function lstm(
  x: Tensor, layers: readonly RecurrentLayerWeights[], h0?: Tensor | null, c0?: Tensor | null,
  opts: SequenceOptions = {}, op = 'lstm',
): [Tensor, [Tensor, Tensor]] {
  const batchFirst = opts.batchFirst ?? false;
  const { T, B, H, L, xt } = prepareSequence(op, x, layers, 4, batchFirst, { h0, c0 });
  const dev = x.device;
  const drop = dropper(x, h0, c0, ...layers.flatMap((w) => [w.wIh, w.wHh, w.bIh, w.bHh]));
  const zeros = !h0 || !c0 ? dev.zeros([B, H]) : null;
  let inp = xt;
  const hN: Tensor[] = [];
  const cN: Tensor[] = [];
  layers.forEach((w, l) => {
    const xg = inputProjection(inp, w.wIh, T, B, drop);
    const hl = h0 ? layerState(h0, l, L, B, H, drop) : zeros!;
    const cl = c0 ? layerState(c0, l, L, B, H, drop) : zeros!;
    const { hs, cs } = lstmRecurrence(xg, w.wHh, w.bIh, w.bHh, hl, cl, op);
    drop(xg);
    if (hl !== zeros) drop(hl);
    if (cl !== zeros) drop(cl);
    hN.push(lastStep(hs, T, B, H, drop));
    cN.push(lastStep(cs, T, B, H, drop));
    drop(cs);
    if (inp !== x) drop(inp);
    inp = hs;
  });
  if (zeros) drop(zeros);
  let out = inp;
  if (batchFirst) {
    out = transpose(inp, 0, 1);
    drop(inp);
  }
  return [out, [stackStates(hN, drop), stackStates(cN, drop)]];
}

/**
 * Multi-layer Elman RNN over a sequence (what nn.RNN runs): x [T, B, in] ([B, T, in] with
 * batchFirst), h0 [L, B, H] (zeros when omitted). Returns [output, hN [L, B, H]].
 */
export function rnn(
  x: Tensor, layers: readonly RecurrentLayerWeights[], h0?: Tensor | null,
  opts: SequenceOptions & { nonlinearity?: Nonlinearity } = {}, op = 'rnn',
): [Tensor, Tensor] {
  const batchFirst = opts.batchFirst ?? false;
  const { T, B, H, L, xt } = prepareSequence(op, x, layers, 1, batchFirst, { h0 });
  const dev = x.device;
  const drop = dropper(x, h0, ...layers.flatMap((w) => [w.wIh, w.wHh, w.bIh, w.bHh]));
  const zeros = h0 ? null : dev.zeros([B, H]);
  let inp = xt;
  const hN: Tensor[] = [];
  layers.forEach((w, l) => {
    const xg = inputProjection(inp, w.wIh, T, B, drop);
    const hl = h0 ? layerState(h0, l, L, B, H, drop) : zeros!;
    const hs = rnnRecurrence(xg, w.wHh, w.bIh, w.bHh, hl, opts.nonlinearity ?? 'tanh', op);
    drop(xg);
    if (hl !== zeros) drop(hl);
    hN.push(lastStep(hs, T, B, H, drop));
    if (inp !== x) drop(inp);
    inp = hs;
  });
  if (zeros) drop(zeros);
  let out = inp;
  if (batchFirst) {
    out = transpose(inp, 0, 1);
    drop(inp);
  }
  return [out, stackStates(hN, drop)];
}

// ---- float64 references -------------------------------------------------------------------------

const sig = (v: number): number => 1 / (1 + Math.exp(-v));

export interface CellWeights64 {
  wIh: Arr;
  wHh: Arr;
  bIh?: Arr | null;
  bHh?: Arr | null;
}

interface LstmCache {
  x: Arr;
  h: Arr;
  c: Arr;
  /** activations i, f, g, o as [B, 4H] */
  a: Float64Array;
  h1: Arr;
  c1: Arr;
}

/** gate pre-activations x·W_ihᵀ + h·W_hhᵀ + b_ih + b_hh as [B, G] */
function preacts(x: Arr, h: Arr, w: CellWeights64): Float64Array {
  const [B, I] = x.shape as [number, number];
  const H = h.shape[1]!;
  const G = w.wHh.shape[0]!;
  const pre = new Float64Array(B * G);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < G; n++) {
      let s = (w.bIh?.data[n] ?? 0) + (w.bHh?.data[n] ?? 0);
      for (let k = 0; k < I; k++) s += x.data[b * I + k]! * w.wIh.data[n * I + k]!;
      for (let k = 0; k < H; k++) s += h.data[b * H + k]! * w.wHh.data[n * H + k]!;
      pre[b * G + n] = s;
    }
  }
  return pre;
}

function lstmCellFwd64(x: Arr, h: Arr, c: Arr, w: CellWeights64): LstmCache {
  const [B, H] = h.shape as [number, number];
  const G = 4 * H;
  const a = preacts(x, h, w);
  const h1 = arr([B, H]);
  const c1 = arr([B, H]);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < H; j++) {
      const o = b * G + j;
      const i = sig(a[o]!);
      const f = sig(a[o + H]!);
      const g = Math.tanh(a[o + 2 * H]!);
      const og = sig(a[o + 3 * H]!);
      a[o] = i;
      a[o + H] = f;
      a[o + 2 * H] = g;
      a[o + 3 * H] = og;
      const cv = f * c.data[b * H + j]! + i * g;
      c1.data[b * H + j] = cv;
      h1.data[b * H + j] = og * Math.tanh(cv);
    }
  }
  return { x, h, c, a, h1, c1 };
}

interface CellGrads64 {
  gx: Arr;
  gh: Arr;
  gc: Arr;
  gwIh: Arr;
  gwHh: Arr;
  gb: Arr;
}

/** backward of one step given the pre-activation grads dpre [B, G] of the gates */
function gatesBackward64(dpre: Float64Array, x: Arr, h: Arr, w: CellWeights64): Omit<CellGrads64, 'gc'> {
  const [B, I] = x.shape as [number, number];
  const H = h.shape[1]!;
  const G = w.wHh.shape[0]!;
  const gx = arr([B, I]);
  const gh = arr([B, H]);
  const gwIh = arr([G, I]);
  const gwHh = arr([G, H]);
  const gb = arr([G]);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < G; n++) {
      const d = dpre[b * G + n]!;
      gb.data[n]! += d;
      for (let k = 0; k < I; k++) {
        gx.data[b * I + k]! += d * w.wIh.data[n * I + k]!;
        gwIh.data[n * I + k]! += d * x.data[b * I + k]!;
      }
      for (let k = 0; k < H; k++) {
        gh.data[b * H + k]! += d * w.wHh.data[n * H + k]!;
        gwHh.data[n * H + k]! += d * h.data[b * H + k]!;
      }
    }
  }
  return { gx, gh, gwIh, gwHh, gb };
}

function lstmCellBwd64(gh1: Arr, gc1: Arr, k: LstmCache, w: CellWeights64): CellGrads64 {
  const [B, H] = k.h.shape as [number, number];
  const G = 4 * H;
  const dpre = new Float64Array(B * G);
  const gc = arr([B, H]);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < H; j++) {
      const o = b * G + j;
      const [i, f, g, og] = [k.a[o]!, k.a[o + H]!, k.a[o + 2 * H]!, k.a[o + 3 * H]!];
      const s = b * H + j;
      const tc = Math.tanh(k.c1.data[s]!);
      const dh = gh1.data[s]!;
      const dc = gc1.data[s]! + dh * og * (1 - tc * tc);
      dpre[o] = dc * g * i * (1 - i);
      dpre[o + H] = dc * k.c.data[s]! * f * (1 - f);
      dpre[o + 2 * H] = dc * i * (1 - g * g);
      dpre[o + 3 * H] = dh * tc * og * (1 - og);
      gc.data[s] = dc * f;
    }
  }
  return { ...gatesBackward64(dpre, k.x, k.h, w), gc };
}

/** float64 LSTMCell: [h1, c1] */
export function lstmCellRef(x: Arr, h: Arr, c: Arr, wIh: Arr, wHh: Arr, bIh?: Arr | null, bHh?: Arr | null): [Arr, Arr] {
  const k = lstmCellFwd64(x, h, c, { wIh, wHh, bIh, bHh });
  return [k.h1, k.c1];
}

/** float64 backward of lstmCellRef: grads of [x, h, c, wIh, wHh, bIh, bHh] given dL/dh1, dL/dc1 */
export function lstmCellRefBackward(
  gh1: Arr, gc1: Arr, x: Arr, h: Arr, c: Arr, wIh: Arr, wHh: Arr, bIh?: Arr | null, bHh?: Arr | null,
): Arr[] {
  const w = { wIh, wHh, bIh, bHh };
  const g = lstmCellBwd64(gh1, gc1, lstmCellFwd64(x, h, c, w), w);
  return [g.gx, g.gh, g.gc, g.gwIh, g.gwHh, g.gb, { shape: [...g.gb.shape], data: g.gb.data.slice() }];
}

function rnnCellFwd64(x: Arr, h: Arr, w: CellWeights64, nl: Nonlinearity): Arr {
  const [B, H] = h.shape as [number, number];
  const pre = preacts(x, h, w);
  return arr([B, H], pre.map((v) => (nl === 'relu' ? Math.max(v, 0) : Math.tanh(v))));
}

/** float64 RNNCell */
export function rnnCellRef(x: Arr, h: Arr, wIh: Arr, wHh: Arr, bIh?: Arr | null, bHh?: Arr | null, nonlinearity: Nonlinearity = 'tanh'): Arr {
  return rnnCellFwd64(x, h, { wIh, wHh, bIh, bHh }, nonlinearity);
}

function rnnCellBwd64(g: Arr, h1: Arr, x: Arr, h: Arr, w: CellWeights64, nl: Nonlinearity): Omit<CellGrads64, 'gc'> {
  const dpre = Float64Array.from(h1.data, (y, i) => g.data[i]! * (nl === 'relu' ? (y > 0 ? 1 : 0) : 1 - y * y));
  return gatesBackward64(dpre, x, h, w);
}

/** float64 backward of rnnCellRef: grads of [x, h, wIh, wHh, bIh, bHh] */
export function rnnCellRefBackward(
  g: Arr, x: Arr, h: Arr, wIh: Arr, wHh: Arr, bIh?: Arr | null, bHh?: Arr | null, nonlinearity: Nonlinearity = 'tanh',
): Arr[] {
  const w = { wIh, wHh, bIh, bHh };
  const r = rnnCellBwd64(g, rnnCellFwd64(x, h, w, nonlinearity), x, h, w, nonlinearity);
  return [r.gx, r.gh, r.gwIh, r.gwHh, r.gb, { shape: [...r.gb.shape], data: r.gb.data.slice() }];
}

function stepOf(x: Arr, t: number): Arr {
  const [, B, I] = x.shape as [number, number, number];
  return arr([B, I], x.data.subarray(t * B * I, (t + 1) * B * I));
}

function layerOf(s: Arr, l: number): Arr {
  return stepOf(s, l);
}

function stackArr(xs: Arr[]): Arr {
  const out = arr([xs.length, ...xs[0]!.shape]);
  const n = xs[0]!.data.length;
  xs.forEach((a, i) => out.data.set(a.data, i * n));
  return out;
}

export interface LstmRefResult {
  output: Arr;
  hN: Arr;
  cN: Arr;
}

/** float64 multi-layer LSTM, x [T, B, in], h0/c0 [L, B, H] */
export function lstmRef(x: Arr, layers: readonly CellWeights64[], h0: Arr, c0: Arr): LstmRefResult {
  const T = x.shape[0]!;
  let inp = x;
  const hN: Arr[] = [];
  const cN: Arr[] = [];
  layers.forEach((w, l) => {
    let h = layerOf(h0, l);
    let c = layerOf(c0, l);
    const outs: Arr[] = [];
    for (let t = 0; t < T; t++) {
      const k = lstmCellFwd64(stepOf(inp, t), h, c, w);
      h = k.h1;
      c = k.c1;
      outs.push(h);
    }
    hN.push(h);
    cN.push(c);
    inp = stackArr(outs);
  });
  return { output: inp, hN: stackArr(hN), cN: stackArr(cN) };
}

export interface RecurrentRefGrads {
  gx: Arr;
  gh0: Arr;
  gc0?: Arr;
  /** per layer: [gwIh, gwHh, gbIh, gbHh] */
  layers: Arr[][];
}

/** float64 backpropagation through time of lstmRef, given dL/d(output, hN, cN) */
export function lstmRefBackward(
  gOut: Arr, gHN: Arr, gCN: Arr, x: Arr, layers: readonly CellWeights64[], h0: Arr, c0: Arr,
): RecurrentRefGrads {
  const T = x.shape[0]!;
  const L = layers.length;
  // forward again, keeping every step's cache
  const caches: LstmCache[][] = [];
  let inp = x;
  layers.forEach((w, l) => {
    let h = layerOf(h0, l);
    let c = layerOf(c0, l);
    const ks: LstmCache[] = [];
    for (let t = 0; t < T; t++) {
      const k = lstmCellFwd64(stepOf(inp, t), h, c, w);
      ks.push(k);
      h = k.h1;
      c = k.c1;
    }
    caches.push(ks);
    inp = stackArr(ks.map((k) => k.h1));
  });
  let gAbove = gOut; // dL/d(output of layer l) [T, B, H]
  const gl: Arr[][] = new Array<Arr[]>(L);
  const gh0s: Arr[] = new Array<Arr>(L);
  const gc0s: Arr[] = new Array<Arr>(L);
  for (let l = L - 1; l >= 0; l--) {
    const w = layers[l]!;
    let gh = layerOf(gHN, l);
    let gc = layerOf(gCN, l);
    const gIn: Arr[] = new Array<Arr>(T);
    const acc = { gwIh: arr(w.wIh.shape), gwHh: arr(w.wHh.shape), gb: arr([w.wHh.shape[0]!]) };
    for (let t = T - 1; t >= 0; t--) {
      const ghT = stepOf(gAbove, t);
      const ght = arr(gh.shape, gh.data.map((v, i) => v + ghT.data[i]!));
      const r = lstmCellBwd64(ght, gc, caches[l]![t]!, w);
      gIn[t] = r.gx;
      gh = r.gh;
      gc = r.gc;
      r.gwIh.data.forEach((v, i) => (acc.gwIh.data[i]! += v));
      r.gwHh.data.forEach((v, i) => (acc.gwHh.data[i]! += v));
      r.gb.data.forEach((v, i) => (acc.gb.data[i]! += v));
    }
    gh0s[l] = gh;
    gc0s[l] = gc;
    gl[l] = [acc.gwIh, acc.gwHh, acc.gb, { shape: [...acc.gb.shape], data: acc.gb.data.slice() }];
    gAbove = stackArr(gIn);
  }
  return { gx: gAbove, gh0: stackArr(gh0s), gc0: stackArr(gc0s), layers: gl };
}

/** float64 multi-layer Elman RNN, x [T, B, in], h0 [L, B, H] */
export function rnnRef(x: Arr, layers: readonly CellWeights64[], h0: Arr, nonlinearity: Nonlinearity = 'tanh'): { output: Arr; hN: Arr } {
  const T = x.shape[0]!;
  let inp = x;
  const hN: Arr[] = [];
  layers.forEach((w, l) => {
    let h = layerOf(h0, l);
    const outs: Arr[] = [];
    for (let t = 0; t < T; t++) {
      h = rnnCellFwd64(stepOf(inp, t), h, w, nonlinearity);
      outs.push(h);
    }
    hN.push(h);
    inp = stackArr(outs);
  });
  return { output: inp, hN: stackArr(hN) };
}

/** float64 backpropagation through time of rnnRef, given dL/d(output, hN) */
export function rnnRefBackward(
  gOut: Arr, gHN: Arr, x: Arr, layers: readonly CellWeights64[], h0: Arr, nonlinearity: Nonlinearity = 'tanh',
): RecurrentRefGrads {
  const T = x.shape[0]!;
  const L = layers.length;
  const ins: Arr[][] = [];
  const outs: Arr[][] = [];
  let inp = x;
  layers.forEach((w, l) => {
    let h = layerOf(h0, l);
    const i: Arr[] = [];
    const o: Arr[] = [h];
    for (let t = 0; t < T; t++) {
      i.push(stepOf(inp, t));
      h = rnnCellFwd64(stepOf(inp, t), h, w, nonlinearity);
      o.push(h);
    }
    ins.push(i);
    outs.push(o); // o[t] = h_{t-1}, o[t+1] = h_t
    inp = stackArr(o.slice(1));
  });
  let gAbove = gOut;
  const gl: Arr[][] = new Array<Arr[]>(L);
  const gh0s: Arr[] = new Array<Arr>(L);
  for (let l = L - 1; l >= 0; l--) {
    const w = layers[l]!;
    let gh = layerOf(gHN, l);
    const gIn: Arr[] = new Array<Arr>(T);
    const acc = { gwIh: arr(w.wIh.shape), gwHh: arr(w.wHh.shape), gb: arr([w.wHh.shape[0]!]) };
    for (let t = T - 1; t >= 0; t--) {
      const ghT = stepOf(gAbove, t);
      const ght = arr(gh.shape, gh.data.map((v, i) => v + ghT.data[i]!));
      const r = rnnCellBwd64(ght, outs[l]![t + 1]!, ins[l]![t]!, outs[l]![t]!, w, nonlinearity);
      gIn[t] = r.gx;
      gh = r.gh;
      r.gwIh.data.forEach((v, i) => (acc.gwIh.data[i]! += v));
      r.gwHh.data.forEach((v, i) => (acc.gwHh.data[i]! += v));
      r.gb.data.forEach((v, i) => (acc.gb.data[i]! += v));
    }
    gh0s[l] = gh;
    gl[l] = [acc.gwIh, acc.gwHh, acc.gb, { shape: [...acc.gb.shape], data: acc.gb.data.slice() }];
    gAbove = stackArr(gIn);
  }
  return { gx: gAbove, gh0: stackArr(gh0s), layers: gl };
}
