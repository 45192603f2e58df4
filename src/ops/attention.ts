// Fused scaled-dot-product attention (kernels/attention.wgsl): one flash-style forward that never
// materialises the Nq x Nk score matrix and saves the row logsumexp, and a FlashAttention-2 backward
// (a query-major dQ pass and a key-major dK/dV pass that recompute the scores from q, k and lse).
//
//   out = dropout(softmax(scale * q k^T + mask)) v      q [B, H, Nq, D], k/v [B, H, Nk, D]
//
// Masks (all may be combined):
// - `isCausal`: key j is masked for query i when j > i, TOP-LEFT aligned like PyTorch's is_causal
//   (row i sees keys 0..i also when Nq != Nk; with Nq > Nk the rows i >= Nk see every key).
// - `keyLengths` (Int32Array / number[] of length B, or an int32 tensor [B]): key j is masked for
//   batch row b when j >= keyLengths[b]. Array values are checked to lie in [0, Nk]; tensor values
//   are clamped to [0, Nk] on the GPU (checking them would need a readback).
// - `mask`: bool (true = attend) or float32 additive, broadcastable to [B, H, Nq, Nk]; a -inf (any
//   non-finite) additive value masks the key. A float mask that requires grad gets its gradient
//   (dS, summed over its broadcast dims). Unlike PyTorch, `mask` may be combined with `isCausal`
//   (e.g. causal + ALiBi bias); both apply.
// A query row with no unmasked key gives a zero output and zero gradients (PyTorch gives NaN).
// `dropoutP` drops attention weights with a counter-based hash of (seed, b*H + h, i, j), so the
// backward pass regenerates the forward's keep-mask exactly; `seed` fixes it (default: a fresh seed
// per call). dropoutP = 0 is exactly no dropout.
//
// Kernels (see kernels/attention.wgsl): head dims that are multiples of 4 in [16, 128] run the
// subgroup kernels when the device has subgroups of at least 8 lanes (register tiles shared by
// shuffles; 32 query rows per 8-lane team); anything else (odd head dims, no subgroups) runs the
// portable kernels, correct for any D. Passes: forward; backward = prep (delta = rowsum(dO·O)),
// dQ (query-major), dK/dV (key-major). Device limits: 7 storage buffers per stage forward, 9 with
// backward (LimitError below that); workgroup memory for the accumulators only when it fits
// (maxComputeWorkgroupStorageSize), else they live in the output buffers.
import src from '../../kernels/attention.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, LimitError } from '../errors.js';
import { needsGrad, record } from '../autodiff.js';
import { Tensor } from '../tensor.js';
import type { Device } from '../gpu/device.js';
import type { BufferRange } from '../graph/executor.js';
import { broadcastStrides, checkFinite, checkSameDevice, checkTensor } from './elementwise.js';
import { sumTo } from './reduce.js';
import { isCpuAdapter } from './softmax.js';
import { type Arr, arr } from '../reference.js';

// The subgroup kernels need `enable subgroups`; the portable module is the part of the same file
// above the marker, without the directive (devices without subgroups compile only that).
const MARKER = '// ==== subgroup kernels';
const KSG = kernel('attention.wgsl', src);
const KPORT = kernel('attention.wgsl (portable)', src.replace(/^enable subgroups;\s*$/m, '').split(MARKER)[0]!);
const OP = 'scaledDotProductAttention';

export interface AttentionOptions {
  /** bool (true = attend) or float32 additive mask, broadcastable to [B, H, Nq, Nk] */
  mask?: Tensor | null;
  /** top-left aligned causal mask (key j masked for query i when j > i) */
  isCausal?: boolean;
  /** score scale; default 1 / sqrt(D) */
  scale?: number;
  /** key padding: key j masked for batch row b when j >= keyLengths[b] */
  keyLengths?: Int32Array | readonly number[] | Tensor | null;
  /** dropout probability on the attention weights, in [0, 1) */
  dropoutP?: number;
  /** dropout seed (u32); default: a fresh seed per call */
  seed?: number;
}

/**
 * Kernel choice (tests and benchmarks force each path; the defaults are what the op uses).
 * variant 'auto': the subgroup kernels when the head dim is a multiple of 4 in [16, 128] and the
 * device has subgroups of at least 8 lanes, else the portable any-head-dim kernels.
 * teams: 8-lane teams per workgroup of the subgroup kernels (each team owns 32 rows); 0 = auto.
 */
export const attentionConfig: {
  variant: 'auto' | 'subgroup' | 'generic';
  teams: number;
  /** subgroup kernels: accumulate in workgroup memory ('auto': one team per workgroup and it fits) */
  sharedAcc: 'auto' | false;
} = { variant: 'auto', teams: 0, sharedAcc: 'auto' };

const GENERIC_WG = 64;
const GENERIC_DC = 8; // kernels/attention.wgsl DC
const TEAM_ROWS = 32;
const F_CAUSAL = 1;
const F_KEYLEN = 2;
const F_DROPOUT = 4;
const F_DMASK = 8;
const F_ACC_SHARED = 16;

let seedCounter = 0x2545f491;
function nextSeed(): number {
  seedCounter = (seedCounter + 0x6d2b79f5) >>> 0;
  return pcgHash(seedCounter);
}

/** keep iff hash >= threshold; shared by the kernels (uniform) and the reference. */
export function dropoutThreshold(p: number): number {
  return p > 0 ? Math.min(0xffffffff, Math.round(p * 4294967296)) : 0;
}

/** The PCG RXS-M-XS output permutation used as a 32-bit integer hash (same as the WGSL `pcg`). */
export function pcgHash(x: number): number {
  const s = (Math.imul(x >>> 0, 747796405) + 2891336453) >>> 0;
  const w = Math.imul(((s >>> ((s >>> 28) + 4)) ^ s) >>> 0, 277803737) >>> 0;
  return ((w >>> 22) ^ w) >>> 0;
}

/** The dropout hash of (seed, bh = b * H + h, i, j); the key is kept iff it is >= dropoutThreshold(p). */
export function attentionDropoutHash(seed: number, bh: number, i: number, j: number): number {
  const rh = pcgHash((i + pcgHash((bh + pcgHash(seed)) >>> 0)) >>> 0);
  return pcgHash((j + rh) >>> 0);
}

function subgroupsUsable(dev: Device): boolean {
  if (!dev.features.has('subgroups')) return false;
  return dev.subgroupSizes.min >= 8;
}

interface Plan {
  fast: boolean;
  /** F_ACC_SHARED for the query-major (fwd, dq) and key-major (dkdv) kernels */
  qFlags: number;
  kvFlags: number;
  /** rows per workgroup along grid x */
  rowsPerGroup: number;
  /** overrides of the query-major kernels (fwd, dq) and of the key-major one (dkdv) */
  overrides: Record<string, number>;
  kvOverrides: Record<string, number>;
  nchunk: number;
}

/** Which kernels run for head dim D on dev (exported for tests). */
export function attentionPlan(dev: Device, D: number): Plan {
  const usable = subgroupsUsable(dev) && D % 4 === 0;
  let fast = usable && D >= 16 && D <= 128;
  if (attentionConfig.variant === 'generic') fast = false;
  if (attentionConfig.variant === 'subgroup') {
    if (!usable) throw new LimitError(`${OP}: the subgroup kernels need D % 4 == 0 (got D = ${D}) and subgroups of at least 8 lanes (device features: ${[...dev.features].join(', ')})`);
    fast = true;
  }
  if (!fast) {
    const o = { WG: GENERIC_WG };
    return { fast, qFlags: 0, kvFlags: 0, rowsPerGroup: GENERIC_WG, nchunk: Math.ceil(D / GENERIC_DC), overrides: o, kvOverrides: o };
  }
  // One team per workgroup on CPU adapters (a workgroup is one 8-lane SIMD group there), with the
  // accumulator rows in workgroup memory (16 KiB for O or dQ, 32 KiB for dK + dV) when the device
  // allows; 4 teams (128 rows) elsewhere so a workgroup fills a 32-wide subgroup, accumulating in
  // the output buffers (shared accumulators for 4 teams would need 64-128 KiB).
  const teams = attentionConfig.teams || (isCpuAdapter(dev) ? 1 : 4);
  const wgMem = dev.limits.maxComputeWorkgroupStorageSize;
  const shared = (bytes: number) => attentionConfig.sharedAcc === 'auto' && teams === 1 && wgMem >= bytes;
  // ACC_LEN stays the same when the flag is off, so forcing sharedAcc off (tests) reuses pipelines
  const acc = (bytes: number): Record<string, number> => ({ WG: 8 * teams, ACC_LEN: teams === 1 && wgMem >= bytes ? bytes / 16 : 1 });
  return {
    fast, qFlags: shared(16384) ? F_ACC_SHARED : 0, kvFlags: shared(32768) ? F_ACC_SHARED : 0,
    rowsPerGroup: teams * TEAM_ROWS, nchunk: 1, overrides: acc(16384), kvOverrides: acc(32768),
  };
}

/** A tensor bound as array<vec4<f32>>: at least one vec4 (an empty k/v still binds 16 bytes). */
function v4(t: Tensor): BufferRange {
  const buffer = t.gpuBuffer;
  return { buffer, offset: 0, size: Math.min(buffer.size, Math.max(16, t.size * 4)) };
}

function checkAttentionTensor(t: unknown, arg: string): asserts t is Tensor {
  checkTensor(t, OP, arg);
  check(t.rank === 4, OP, `${arg} must have rank 4 [B, H, N, D], got ${fmtShape(t.shape)}`);
}

/**
 * Fused scaled-dot-product attention: softmax(scale * q k^T + mask) v with optional causal,
 * key-padding and dropout; q [B, H, Nq, D], k and v [B, H, Nk, D] → [B, H, Nq, D].
 * Gradients flow to q, k, v and to a float32 mask that requires grad.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions = {}): Tensor {
  // ---- validation (before any GPU work) ----
  checkAttentionTensor(q, 'q');
  checkAttentionTensor(k, 'k');
  checkAttentionTensor(v, 'v');
  const dev = q.device;
  checkSameDevice(OP, { q, k, v });
  const [B, H, Nq, D] = q.shape as [number, number, number, number];
  const Nk = k.shape[2]!;
  check(
    k.shape[3] === D && v.shape[3] === D, OP,
    `head dim mismatch: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} must share the last dim D`,
  );
  check(v.shape[2] === Nk, OP, `k ${fmtShape(k.shape)} and v ${fmtShape(v.shape)} must have the same length Nk (dim 2)`);
  check(
    k.shape[0] === B && v.shape[0] === B && k.shape[1] === H && v.shape[1] === H, OP,
    `batch/head mismatch: q ${fmtShape(q.shape)}, k ${fmtShape(k.shape)}, v ${fmtShape(v.shape)} must share [B, H]`,
  );
  check(D >= 1, OP, `head dim must be >= 1, got q ${fmtShape(q.shape)}`);
  const isCausal = opts.isCausal ?? false;
  check(typeof isCausal === 'boolean', OP, `isCausal must be a boolean, got ${String(isCausal)}`);
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  checkFinite(scale, OP, 'scale');
  const dropoutP = opts.dropoutP ?? 0;
  check(
    typeof dropoutP === 'number' && Number.isFinite(dropoutP) && dropoutP >= 0 && dropoutP < 1, OP,
    `dropoutP must be a number in [0, 1), got ${dropoutP}`,
  );
  let seed = 0;
  if (dropoutP > 0) {
    seed = opts.seed ?? nextSeed();
    check(Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff, OP, `seed must be an integer in [0, 2^32), got ${seed}`);
  }
  const full = [B, H, Nq, Nk];
  const mask = opts.mask ?? null;
  let maskKind = 0;
  let mstride = [0, 0, 0, 0];
  if (mask !== null) {
    check(mask instanceof Tensor, OP, `mask must be a Tensor, got ${typeof mask}`);
    check(!mask.disposed, OP, `mask (tensor #${mask.id}) was used after dispose()`);
    check(mask.dtype === 'bool' || mask.dtype === 'float32', OP, `mask must be bool or float32, got ${mask.dtype}`);
    checkSameDevice(OP, { q, mask });
    const off = 4 - mask.rank;
    check(
      off >= 0 && mask.shape.every((d, i) => d === 1 || d === full[i + off]), OP,
      `mask ${fmtShape(mask.shape)} is not broadcastable to [B, H, Nq, Nk] = ${fmtShape(full)}`,
    );
    maskKind = mask.dtype === 'bool' ? 1 : 2;
    mstride = broadcastStrides(mask.shape, full);
  }
  const kl = opts.keyLengths ?? null;
  let klTensor: Tensor | null = null;
  let klOwned = false;
  if (kl !== null) {
    if (kl instanceof Tensor) {
      check(!kl.disposed, OP, `keyLengths (tensor #${kl.id}) was used after dispose()`);
      check(kl.dtype === 'int32', OP, `keyLengths tensor must be int32, got ${kl.dtype}`);
      check(kl.rank === 1 && kl.shape[0] === B, OP, `keyLengths must have shape [B] = [${B}], got ${fmtShape(kl.shape)}`);
      checkSameDevice(OP, { q, keyLengths: kl });
      klTensor = kl;
    } else {
      check(kl instanceof Int32Array || Array.isArray(kl), OP, 'keyLengths must be an Int32Array, a number[] or an int32 tensor');
      check(kl.length === B, OP, `keyLengths must have length B = ${B}, got ${kl.length}`);
      for (let b = 0; b < B; b++) {
        const x = kl[b]!;
        check(Number.isInteger(x) && x >= 0 && x <= Nk, OP, `keyLengths[${b}] = ${x} is out of range [0, Nk = ${Nk}]`);
      }
    }
  }
  const wantGrad = needsGrad(q, k, v, mask);
  const maxSb = dev.limits.maxStorageBuffersPerShaderStage;
  const needSb = wantGrad ? 9 : 7;
  if (maxSb < needSb) {
    throw new LimitError(`${OP}: needs ${needSb} storage buffers per shader stage, over the device limit maxStorageBuffersPerShaderStage = ${maxSb}`);
  }

  // ---- forward ----
  const out = dev.empty(q.shape);
  if (out.size === 0) {
    return record(OP, out, mask ? [q, k, v, mask] : [q, k, v], () => [dev.zeros(q.shape), dev.zeros(k.shape), dev.zeros(v.shape), mask ? dev.zeros(mask.shape) : null]);
  }
  if (kl !== null && !(kl instanceof Tensor)) {
    klTensor = dev.tensor(Int32Array.from(kl), [B]);
    klOwned = true;
  }
  const lse = dev.empty([B, H, Nq]);
  const pl = attentionPlan(dev, D);
  const K = pl.fast ? KSG : KPORT;
  // without a mask or key lengths their bindings get q (read-only there; the kernels read them
  // only behind mask_kind / F_KEYLEN)
  const maskBuf = mask ?? q;
  const klBuf = klTensor ?? q;
  const flags = (isCausal ? F_CAUSAL : 0) | (klTensor ? F_KEYLEN : 0) | (dropoutP > 0 ? F_DROPOUT : 0);
  const uniforms = (extra: number) => ({
    bh: B * H, heads: H, nq: Nq, nk: Nk, scale, seed,
    drop_thresh: dropoutThreshold(dropoutP), keep_scale: dropoutP > 0 ? 1 / (1 - dropoutP) : 1,
    mstride, flags: flags | extra, mask_kind: maskKind, hd: D, nchunk: pl.nchunk,
  });
  const maxWg = dev.limits.maxComputeWorkgroupsPerDimension;
  const gy = Math.min(B * H, maxWg);
  const grid = (rows: number): [number, number, number] => {
    const x = Math.ceil(rows / pl.rowsPerGroup) * pl.nchunk;
    if (x > maxWg) throw new LimitError(`${OP}: ${x} workgroups along x is over maxComputeWorkgroupsPerDimension = ${maxWg}`);
    return [x, gy, Math.ceil((B * H) / gy)];
  };
  dev.dispatch(K, pl.fast ? 'attention_fwd_sg' : 'attention_fwd_generic', {
    bindings: pl.fast
      ? { q4: v4(q), k4: v4(k), v4: v4(v), mask: maskBuf, klen: klBuf, out4: v4(out), lse_out: lse }
      : { q, k, v, mask: maskBuf, klen: klBuf, out, lse_out: lse },
    uniforms: uniforms(pl.qFlags),
    overrides: pl.overrides,
    workgroups: grid(Nq),
  });
  if (!wantGrad) {
    lse.dispose();
    if (klOwned) klTensor!.dispose();
    return out;
  }

  // ---- backward ----
  return record(OP, out, mask ? [q, k, v, mask] : [q, k, v], (g) => {
    const needQ = q.requiresGrad;
    const needMask = !!mask && mask.dtype === 'float32' && mask.requiresGrad;
    const needKV = k.requiresGrad || v.requiresGrad;
    const ld = dev.empty([B * H * Nq, 2]);
    dev.dispatch(K, pl.fast ? 'attention_bwd_prep_sg' : 'attention_bwd_prep', {
      bindings: pl.fast ? { o4: v4(out), dout4: v4(g), lse, ld_out: ld } : { o: out, dout: g, lse, ld_out: ld },
      uniforms: uniforms(0),
      overrides: { WG: 64 },
      workgroups: dev.grid1d(B * H * Nq, 64),
    });
    let dq: Tensor | null = null;
    let dmask: Tensor | null = null;
    if (needQ || needMask) {
      dq = dev.empty(q.shape);
      const dsFull = needMask ? dev.zeros(full) : dev.empty([1]); // (a dummy must not alias a read binding)
      dev.dispatch(K, pl.fast ? 'attention_bwd_dq_sg' : 'attention_bwd_dq_generic', {
        bindings: pl.fast
          ? { q4: v4(q), k4: v4(k), v4: v4(v), dout4: v4(g), ld, mask: maskBuf, klen: klBuf, dq4: v4(dq), dmask: dsFull }
          : { q, k, v, dout: g, ld, mask: maskBuf, klen: klBuf, dq, dmask: dsFull },
        uniforms: uniforms((needMask ? F_DMASK : 0) | pl.qFlags),
        overrides: pl.overrides,
        workgroups: grid(Nq),
      });
      if (needMask) {
        dmask = sumTo(dsFull, mask!.shape);
        if (dmask !== dsFull) dsFull.dispose();
      } else dsFull.dispose();
      if (!needQ) {
        dq.dispose();
        dq = null;
      }
    }
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (needKV) {
      dk = dev.empty(k.shape);
      dv = dev.empty(v.shape);
      dev.dispatch(K, pl.fast ? 'attention_bwd_dkdv_sg' : 'attention_bwd_dkdv_generic', {
        bindings: pl.fast
          ? { q4: v4(q), k4: v4(k), v4: v4(v), dout4: v4(g), ld, mask: maskBuf, klen: klBuf, dk4: v4(dk), dv4: v4(dv) }
          : { q, k, v, dout: g, ld, mask: maskBuf, klen: klBuf, dk, dv },
        uniforms: uniforms(pl.kvFlags),
        overrides: pl.kvOverrides,
        workgroups: grid(Nk),
      });
    }
    ld.dispose();
    if (dk && !k.requiresGrad) {
      dk.dispose();
      dk = null;
    }
    if (dv && !v.requiresGrad) {
      dv.dispose();
      dv = null;
    }
    return [dq, dk, dv, dmask];
  });
}

// ---- float64 references -------------------------------------------------------------------------

export interface AttentionRefOptions {
  /** bool (0/1 values, maskKind 'bool') or additive float mask, broadcastable to [B, H, Nq, Nk] */
  mask?: Arr | null;
  maskKind?: 'bool' | 'float';
  isCausal?: boolean;
  scale?: number;
  keyLengths?: ArrayLike<number> | null;
  dropoutP?: number;
  seed?: number;
}

const NEG_BIG_F32 = -3.4028234663852886e38;

interface RowState {
  /** softmax weights over all Nk keys (0 where masked), undropped */
  p: Float64Array;
  /** dropout multipliers (0 or 1/(1-p); 1 without dropout) */
  keep: Float64Array;
}

/** Softmax rows of the reference, with the kernels' masking rules. */
function refRows(q: Arr, k: Arr, opts: AttentionRefOptions, visit: (b: number, h: number, i: number, st: RowState) => void): void {
  const [B, H, Nq, D] = q.shape as [number, number, number, number];
  const Nk = k.shape[2]!;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const full = [B, H, Nq, Nk];
  const mask = opts.mask ?? null;
  const ms = mask ? broadcastStrides(mask.shape, full) : [0, 0, 0, 0];
  const dp = opts.dropoutP ?? 0;
  const thresh = dropoutThreshold(dp);
  const s = new Float64Array(Nk);
  const ok = new Uint8Array(Nk);
  for (let b = 0; b < B; b++) {
    const klim = opts.keyLengths ? Math.min(Math.max(opts.keyLengths[b]!, 0), Nk) : Nk;
    for (let h = 0; h < H; h++) {
      const bh = b * H + h;
      for (let i = 0; i < Nq; i++) {
        const lim = opts.isCausal ? Math.min(klim, i + 1) : klim;
        let m = -Infinity;
        for (let j = 0; j < Nk; j++) {
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q.data[((bh * Nq + i) * D) + d]! * k.data[((bh * Nk + j) * D) + d]!;
          let sj = scale * dot;
          let good = j < lim;
          if (good && mask) {
            const mv = mask.data[b * ms[0]! + h * ms[1]! + i * ms[2]! + j * ms[3]!]!;
            if (opts.maskKind === 'bool') good = mv !== 0;
            else if (!Number.isFinite(mv)) good = false;
            else sj += mv;
          }
          if (good && sj <= NEG_BIG_F32) good = false;
          s[j] = sj;
          ok[j] = good ? 1 : 0;
          if (good) m = Math.max(m, sj);
        }
        const p = new Float64Array(Nk);
        let l = 0;
        for (let j = 0; j < Nk; j++) if (ok[j]) l += (p[j] = Math.exp(s[j]! - m));
        if (l > 0) for (let j = 0; j < Nk; j++) p[j]! /= l;
        const keep = new Float64Array(Nk).fill(1);
        if (dp > 0) {
          for (let j = 0; j < Nk; j++) keep[j] = attentionDropoutHash(opts.seed ?? 0, bh, i, j) >= thresh ? 1 / (1 - dp) : 0;
        }
        visit(b, h, i, { p, keep });
      }
    }
  }
}

/** float64 reference forward of scaledDotProductAttention (same masking and dropout hash). */
export function attentionRef(q: Arr, k: Arr, v: Arr, opts: AttentionRefOptions = {}): Arr {
  const [, H, Nq, D] = q.shape as [number, number, number, number];
  const Nk = k.shape[2]!;
  const out = arr(q.shape);
  refRows(q, k, opts, (b, h, i, { p, keep }) => {
    const bh = b * H + h;
    const ob = (bh * Nq + i) * D;
    for (let j = 0; j < Nk; j++) {
      const w = p[j]! * keep[j]!;
      if (w === 0) continue;
      for (let d = 0; d < D; d++) out.data[ob + d]! += w * v.data[(bh * Nk + j) * D + d]!;
    }
  });
  return out;
}

/**
 * float64 reference backward: output grad g → [dq, dk, dv, dmask] (dmask, shaped like the mask, only
 * for a float mask; null otherwise).
 */
export function attentionRefBackward(g: Arr, q: Arr, k: Arr, v: Arr, opts: AttentionRefOptions = {}): [Arr, Arr, Arr, Arr | null] {
  const [B, H, Nq, D] = q.shape as [number, number, number, number];
  const Nk = k.shape[2]!;
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const dq = arr(q.shape);
  const dk = arr(k.shape);
  const dv = arr(v.shape);
  const mask = opts.mask ?? null;
  const floatMask = mask && opts.maskKind !== 'bool';
  const dmask = floatMask ? arr(mask.shape) : null;
  const ms = mask ? broadcastStrides(mask.shape, [B, H, Nq, Nk]) : [0, 0, 0, 0];
  const dP = new Float64Array(Nk);
  refRows(q, k, opts, (b, h, i, { p, keep }) => {
    const bh = b * H + h;
    const gb = (bh * Nq + i) * D;
    let delta = 0;
    for (let j = 0; j < Nk; j++) {
      const vb = (bh * Nk + j) * D;
      let dpt = 0;
      for (let d = 0; d < D; d++) {
        dpt += g.data[gb + d]! * v.data[vb + d]!;
        dv.data[vb + d]! += p[j]! * keep[j]! * g.data[gb + d]!;
      }
      dP[j] = dpt * keep[j]!;
      delta += p[j]! * dP[j]!;
    }
    for (let j = 0; j < Nk; j++) {
      const ds = p[j]! * (dP[j]! - delta);
      if (ds === 0) continue;
      const kb = (bh * Nk + j) * D;
      for (let d = 0; d < D; d++) {
        dq.data[gb + d]! += scale * ds * k.data[kb + d]!;
        dk.data[kb + d]! += scale * ds * q.data[gb + d]!;
      }
      if (dmask) dmask.data[b * ms[0]! + h * ms[1]! + i * ms[2]! + j * ms[3]!]! += ds;
    }
  });
  return [dq, dk, dv, dmask];
}
