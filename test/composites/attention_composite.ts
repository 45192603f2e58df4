// The composite oracle of ops.scaledDotProductAttention, built from core ops only:
//   S = matmul(q, kᵀ) · scale (+ float mask) (+ constant additive mask), P = softmax(S),
//   P~ = P ∘ keep / (1 - p), out = matmul(P~, v) ∘ rowValid
// It materialises every [B, H, Nq, Nk] intermediate (that is the point of the fused op).
// The constant parts (causal, keyLengths, a bool mask, the dropout keep-mask from the same counter
// hash as the kernels) are built on the CPU once by prepareAttentionComposite:
// - masked keys get -1e30 added: exp(-1e30 - rowmax) is exactly 0 in f32 unless the whole row is
//   masked; a fully masked row then softmaxes to a uniform row, and rowValid (0 for such rows, 1
//   elsewhere) zeroes its output and, through the product, every gradient that flows from it.
// - a float mask is added as a tensor (add's backward sums its gradient over broadcast dims); it
//   must be finite here (-inf entries would need a readback to build rowValid).
import type { Device, Tensor } from '../../src/index.js';
import { add, affine, mul } from '../../src/ops/elementwise.js';
import { matmul, matmulEx } from '../../src/ops/matmul.js';
import { softmax } from '../../src/ops/softmax.js';
import { broadcastShapes, stridesOf } from '../../src/shape.js';
import { broadcastStrides } from '../../src/ops/elementwise.js';
import { attentionDropoutHash, dropoutThreshold } from '../../src/ops/attention.js';

export interface CompositeSpec {
  B: number;
  H: number;
  Nq: number;
  Nk: number;
  isCausal?: boolean;
  keyLengths?: ArrayLike<number> | null;
  /** bool mask (1 = attend) with its shape, broadcastable to [B, H, Nq, Nk] */
  boolMask?: { data: ArrayLike<number>; shape: number[] } | null;
  dropoutP?: number;
  seed?: number;
}

export interface CompositeConstants {
  /** additive 0 / -1e30 mask (null when nothing is masked by causal/keyLengths/bool) */
  addMask: Tensor | null;
  /** [B, H, Nq, 1]: 0 for rows with no unmasked key (null when there are none) */
  rowValid: Tensor | null;
  /** [B, H, Nq, Nk] dropout multipliers keep / (1 - p) (null without dropout) */
  keep: Tensor | null;
  dispose(): void;
}

const MASKED = -1e30;

/** Builds the constant tensors of the composite on the CPU (once per shape/mask set). */
export function prepareAttentionComposite(dev: Device, s: CompositeSpec): CompositeConstants {
  const { B, H, Nq, Nk } = s;
  const full = [B, H, Nq, Nk];
  let shape: number[] | null = null;
  const join = (sh: number[]): void => {
    shape = shape ? broadcastShapes(shape, sh, 'composite') : sh;
  };
  if (s.isCausal) join([Nq, Nk]);
  if (s.keyLengths) join([B, 1, 1, Nk]);
  if (s.boolMask) join(s.boolMask.shape);
  let addMask: Tensor | null = null;
  let rowValid: Tensor | null = null;
  if (shape) {
    const ms: number[] = shape;
    const m4 = [...new Array<number>(4 - ms.length).fill(1), ...ms];
    const st = stridesOf(m4);
    const bs = s.boolMask ? broadcastStrides(s.boolMask.shape, m4) : null;
    const data = new Float32Array(m4.reduce((a, b) => a * b, 1));
    const valid = new Float32Array(B * H * Nq);
    for (let b = 0; b < B; b++) {
      for (let h = 0; h < H; h++) {
        for (let i = 0; i < Nq; i++) {
          let any = false;
          for (let j = 0; j < Nk; j++) {
            let ok = true;
            if (s.isCausal && j > i) ok = false;
            if (s.keyLengths && j >= s.keyLengths[b]!) ok = false;
            if (bs && !s.boolMask!.data[b * bs[0]! + h * bs[1]! + i * bs[2]! + j * bs[3]!]) ok = false;
            any ||= ok;
            const at = (m4[0] === 1 ? 0 : b) * st[0]! + (m4[1] === 1 ? 0 : h) * st[1]! + (m4[2] === 1 ? 0 : i) * st[2]! + j * st[3]!;
            if (!ok) data[at] = MASKED;
          }
          valid[(b * H + h) * Nq + i] = any ? 1 : 0;
        }
      }
    }
    addMask = dev.tensor(data, ms);
    if (valid.some((x) => x === 0)) rowValid = dev.tensor(valid, [B, H, Nq, 1]);
  }
  let keep: Tensor | null = null;
  const p = s.dropoutP ?? 0;
  if (p > 0) {
    const thr = dropoutThreshold(p);
    const kd = new Float32Array(B * H * Nq * Nk);
    for (let bh = 0; bh < B * H; bh++) {
      for (let i = 0; i < Nq; i++) {
        for (let j = 0; j < Nk; j++) {
          kd[(bh * Nq + i) * Nk + j] = attentionDropoutHash(s.seed ?? 0, bh, i, j) >= thr ? 1 / (1 - p) : 0;
        }
      }
    }
    keep = dev.tensor(kd, full);
  }
  return {
    addMask, rowValid, keep,
    dispose() {
      addMask?.dispose();
      rowValid?.dispose();
      keep?.dispose();
    },
  };
}

/** Attention from core ops (autodiff through every op); `mask` is an optional finite float mask. */
export function attentionComposite(
  q: Tensor, k: Tensor, v: Tensor, c: CompositeConstants,
  opts: { mask?: Tensor | null; scale?: number } = {},
): Tensor {
  const scale = opts.scale ?? 1 / Math.sqrt(q.shape[3]!);
  // intermediates are not disposed here: the autodiff graph holds them for backward (use tidy)
  let s = affine(matmulEx(q, k, { transB: true }), scale);
  if (opts.mask) s = add(s, opts.mask);
  if (c.addMask) s = add(s, c.addMask);
  let p = softmax(s, -1);
  if (c.keep) p = mul(p, c.keep);
  let o = matmul(p, v);
  if (c.rowValid) o = mul(o, c.rowValid);
  return o;
}
