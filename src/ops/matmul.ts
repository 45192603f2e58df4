// matmul (torch.matmul semantics: batch broadcasting, 1-D operands), linear (x·Wᵀ + b, PyTorch
// layout) and the lower-level matmulEx(a, b, { transA, transB, bias }) they are built on.
//
// One kernel family (kernels/matmul.wgsl) computes C[z] = op(A[z])·op(B[z]) (+ bias per column):
// transposed operands are other strides in the kernel's indexing, never copies; broadcast batch dims
// have stride 0; batch dims that B does not have are folded into M (one big GEMM). Backward is the
// same kernel with other flags: for C = op(A)·op(B),
//   dA = g·op(B)ᵀ  (or, for transA, op(B)·gᵀ),   dB = op(A)ᵀ·g  (or, for transB, gᵀ·op(A)),
// reduced over broadcast batch dims with sumTo; the bias gradient is a deterministic column sum.
//
// Kernel choice (matmulKernelConfig): devices with subgroups of >= 8 lanes use the subgroup-
// broadcast register-tiled kernels (4-5x faster on lavapipe, see the .wgsl header), others the
// portable workgroup-memory tiled kernel. Every size, stride and flag is a uniform, so there is one
// pipeline per entry point (4 in all). Long contractions with few output tiles (weight gradients of
// small layers) are split over K into batches of one dispatch and summed (split-K, deterministic).
import src from '../../kernels/matmul.wgsl';
import { kernel } from '../gpu/kernel.js';
import type { Device } from '../gpu/device.js';
import { check, fmtShape, LimitError } from '../errors.js';
import { record } from '../autodiff.js';
import { numel, sameShape, stridesOf, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { checkSameDevice, checkTensor } from './elementwise.js';
import { sum, sumTo } from './reduce.js';
import { reshape } from './shape_ops.js';
import { type Arr, arr } from '../reference.js';

// The subgroup kernels need `enable subgroups`; devices without the feature get the portable part
// of the same file (everything above the marker, without the directive).
const MARKER = '// ==== subgroup kernels';
const KSG = kernel('matmul.wgsl', src);
const KPORT = kernel('matmul.wgsl (portable)', src.replace(/^enable subgroups;\s*$/m, '').split(MARKER)[0]!);

/** Tile shape of the portable kernel: TX × TY invocations, 4×4 outputs each, BK-deep k steps. */
const TILED = { TX: 16, TY: 16, BK: 16 };
/** Output rows and columns per invocation of the subgroup kernels (fixed by the kernel). */
const SG_ROWS = 16;
const SG_COLS = 2;

/**
 * Which kernels matmul uses: 'auto' picks the subgroup kernels when the device has subgroups of at
 * least 8 lanes, else the portable tiled kernel. Tests and benchmarks force each path.
 */
export const matmulKernelConfig: {
  variant: 'auto' | 'subgroup' | 'tiled';
  /** preferred most invocations per row group of the subgroup kernels (tuning; 64 = a whole workgroup) */
  maxQW: number;
  /** test hook: pretend grid dimensions hold at most this many workgroups (0 = the device limit) */
  maxGridDim: number;
} = { variant: 'auto', maxQW: 16, maxGridDim: 0 };

/** The subgroup kernels broadcast from lanes 0..7: they need subgroups of at least 8 lanes. */
function subgroupsUsable(dev: Device): boolean {
  return dev.features.has('subgroups') && dev.subgroupSizes.min >= 8;
}

export interface MatmulExOptions {
  /** a holds op(A)ᵀ: a is [..., K, M] */
  transA?: boolean;
  /** b holds op(B)ᵀ: b is [..., N, K] (e.g. a linear weight [out, in]) */
  transB?: boolean;
  /** [N], added to every row of the output inside the kernel */
  bias?: Tensor | null;
}

// ---- validation -------------------------------------------------------------------------------

/** Shapes of a matmulEx: batch shape (broadcast), M, N, K. Throws ShapeError naming op and shapes. */
function planShapes(aShape: Shape, bShape: Shape, transA: boolean, transB: boolean, op: string,
                    names: [string, string] = ['a', 'b']): { batch: number[]; M: number; N: number; K: number } {
  const [na, nb] = names;
  check(aShape.length >= 2, op, `${na} must have at least 2 dims, got ${fmtShape(aShape)}`);
  check(bShape.length >= 2, op, `${nb} must have at least 2 dims, got ${fmtShape(bShape)}`);
  const ra = aShape.length;
  const rb = bShape.length;
  const M = transA ? aShape[ra - 1]! : aShape[ra - 2]!;
  const Ka = transA ? aShape[ra - 2]! : aShape[ra - 1]!;
  const Kb = transB ? bShape[rb - 1]! : bShape[rb - 2]!;
  const N = transB ? bShape[rb - 2]! : bShape[rb - 1]!;
  check(Ka === Kb, op,
    `inner dimensions differ: ${na} ${fmtShape(aShape)}${transA ? ' (transposed)' : ''} has K = ${Ka}, ${nb} ${fmtShape(bShape)}${transB ? ' (transposed)' : ''} has K = ${Kb}`);
  const ba = aShape.slice(0, -2);
  const bb = bShape.slice(0, -2);
  const n = Math.max(ba.length, bb.length);
  const batch: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = ba[ba.length - n + i] ?? 1;
    const db = bb[bb.length - n + i] ?? 1;
    check(da === db || da === 1 || db === 1, op,
      `batch dims of ${na} ${fmtShape(aShape)} and ${nb} ${fmtShape(bShape)} are not broadcastable (${fmtShape(ba)} vs ${fmtShape(bb)})`);
    batch.push(da === 1 ? db : da);
  }
  return { batch, M, N, K: Ka };
}

function checkBias(bias: Tensor | null | undefined, N: number, op: string, what: string): void {
  if (bias === null || bias === undefined) return;
  checkTensor(bias, op, 'bias');
  check(bias.rank === 1 && bias.shape[0] === N, op, `bias ${fmtShape(bias.shape)} must be [${N}] (${what})`);
}

// ---- dispatch ---------------------------------------------------------------------------------

/** Per-dim batch strides of an operand over the broadcast batch shape (0 where broadcast). */
function batchStrides(shape: Shape, batch: readonly number[]): number[] {
  const st = stridesOf(shape);
  const r = shape.length - 2;
  const off = batch.length - r;
  return batch.map((_, i) => (i < off || shape[i - off] === 1 ? 0 : st[i - off]!));
}

/** Merges adjacent batch dims that are one linear index for both operands. */
function mergeBatch(dims: number[], sa: number[], sb: number[]): { dims: number[]; sa: number[]; sb: number[] } {
  const d: number[] = [];
  const a: number[] = [];
  const b: number[] = [];
  dims.forEach((n, i) => {
    if (n === 1) return; // size-1 dims carry nothing
    const k = d.length - 1;
    if (k >= 0 && a[k] === sa[i]! * n && b[k] === sb[i]! * n) {
      d[k]! *= n;
      a[k] = sa[i]!;
      b[k] = sb[i]!;
    } else {
      d.push(n);
      a.push(sa[i]!);
      b.push(sb[i]!);
    }
  });
  return { dims: d, sa: a, sb: b };
}

interface Launch {
  M: number; N: number; K: number;
  sam: number; sak: number; sbk: number; sbn: number;
  a_off: number; b_off: number; c_off: number;
  z0: number; zdiv: number; a_z1: number; a_z2: number; b_z1: number; b_z2: number;
  batches: number;
}

/**
 * Records the dispatches for out = op(A)·op(B) (+ bias), where A and B are the data of tensors a and
 * b read with the logical shapes aS and bS (views of the same contiguous memory); out must hold
 * [...batch, M, N] contiguous values.
 */
function matmulRaw(a: Tensor, aS: Shape, b: Tensor, bS: Shape, bias: Tensor | null, transA: boolean, transB: boolean,
                   out: Tensor, batch: readonly number[], M: number, N: number, K: number): void {
  const dev = a.device;
  if (M === 0 || N === 0 || numel(batch) === 0) return;
  let merged = mergeBatch([...batch], batchStrides(aS, batch), batchStrides(bS, batch));
  let Mk = M;
  // B shared by every batch and A's batches contiguous rows: one GEMM over batch·M rows
  if (!transA && merged.dims.length === 1 && merged.sb[0] === 0 && merged.sa[0] === M * K) {
    Mk = M * merged.dims[0]!;
    merged = { dims: [], sa: [], sb: [] };
  }
  const base = {
    M: Mk, N, K,
    sam: transA ? 1 : K, sak: transA ? M : 1,
    sbk: transB ? 1 : N, sbn: transB ? K : 1,
  };
  // two batch levels go to the kernel (grid z); outer ones become separate dispatches
  const inner = merged.dims.slice(-2);
  const innerSa = merged.sa.slice(-2);
  const innerSb = merged.sb.slice(-2);
  while (inner.length < 2) {
    inner.unshift(1);
    innerSa.unshift(0);
    innerSb.unshift(0);
  }
  const outer = merged.dims.slice(0, -2);
  const outerSa = merged.sa.slice(0, -2);
  const outerSb = merged.sb.slice(0, -2);
  const batches = inner[0]! * inner[1]!;
  for (let o = 0; o < numel(outer); o++) {
    let rem = o;
    let aOff = 0;
    let bOff = 0;
    for (let d = outer.length - 1; d >= 0; d--) {
      const idx = rem % outer[d]!;
      rem = Math.floor(rem / outer[d]!);
      aOff += idx * outerSa[d]!;
      bOff += idx * outerSb[d]!;
    }
    launch(dev, a, b, bias, out, {
      ...base, a_off: aOff, b_off: bOff, c_off: o * batches * Mk * N,
      z0: 0, zdiv: inner[1]!, a_z1: innerSa[0]!, a_z2: innerSa[1]!, b_z1: innerSb[0]!, b_z2: innerSb[1]!, batches,
    });
  }
}

function chooseVariant(dev: Device): 'subgroup' | 'tiled' {
  const v = matmulKernelConfig.variant;
  if (v === 'subgroup' && !subgroupsUsable(dev)) {
    throw new LimitError('matmul: the subgroup kernels need the device feature "subgroups" with subgroupMinSize >= 8');
  }
  return v === 'auto' ? (subgroupsUsable(dev) ? 'subgroup' : 'tiled') : v;
}

const pow2 = (x: number): number => 2 ** Math.ceil(Math.log2(Math.max(x, 1)));

interface Tiling {
  rows: number; // output rows per workgroup
  cols: number; // output columns per workgroup
  overrides: Record<string, number>;
  qw: number; // subgroup kernels: invocations per row group
}

/**
 * Workgroup tile for an M×N output. Tiled: fixed (4·TY) × (4·TX). Subgroup: WG invocations as
 * WG/qw row groups of qw, i.e. (16·WG/qw) × (2·qw); qw shrinks for narrow outputs (so lanes are not
 * idle) but stays a multiple of the subgroup size. Shapes only change uniforms, not pipelines.
 */
function tiling(dev: Device, variant: 'subgroup' | 'tiled', M: number, N: number): Tiling {
  if (variant === 'tiled') return { rows: 4 * TILED.TY, cols: 4 * TILED.TX, overrides: { ...TILED }, qw: 0 };
  const sgMax = dev.subgroupSizes.max;
  const WG = Math.min(Math.max(64, pow2(sgMax)), dev.limits.maxComputeInvocationsPerWorkgroup);
  const minQW = Math.min(WG, pow2(Math.max(8, sgMax)));
  // narrow B strips (qw = 16: 64 columns) measured ~5-10% faster on lavapipe (cache reuse across the
  // row groups of a workgroup); short outputs widen them instead so no row group is idle
  const rowGroups = Math.ceil(M / SG_ROWS);
  const cap = Math.max(matmulKernelConfig.maxQW, WG / pow2(rowGroups));
  const qw = Math.max(minQW, Math.min(WG, cap, pow2(Math.ceil(N / SG_COLS))));
  return { rows: (SG_ROWS * WG) / qw, cols: SG_COLS * qw, overrides: { WG }, qw };
}

function gridLimit(dev: Device): number {
  return matmulKernelConfig.maxGridDim || dev.limits.maxComputeWorkgroupsPerDimension;
}

/** Records one problem; splits it into several dispatches where a grid dimension would overflow. */
function launch(dev: Device, a: Tensor, b: Tensor, bias: Tensor | null, out: Tensor, L: Launch): void {
  const variant = chooseVariant(dev);
  const T = tiling(dev, variant, L.M, L.N);
  const lim = gridLimit(dev);
  const colGroups = Math.ceil(L.N / T.cols);
  if (colGroups > lim) throw new LimitError(`matmul: N = ${L.N} columns need ${colGroups} workgroups in one dimension (maxComputeWorkgroupsPerDimension = ${lim})`);
  const rowChunk = lim * T.rows;
  if (L.M > rowChunk) {
    // rows past one grid dimension (only with a single batch: such rows are folded batches)
    if (L.batches !== 1) throw new LimitError(`matmul: ${L.M} rows per batch need more than ${lim} workgroups (maxComputeWorkgroupsPerDimension)`);
    for (let r0 = 0; r0 < L.M; r0 += rowChunk) {
      launch(dev, a, b, bias, out, { ...L, M: Math.min(rowChunk, L.M - r0), a_off: L.a_off + r0 * L.sam, c_off: L.c_off + r0 * L.N });
    }
    return;
  }
  for (let z0 = 0; z0 < L.batches; z0 += lim) {
    launchOne(dev, a, b, bias, out, { ...L, z0: L.z0 + z0, batches: Math.min(lim, L.batches - z0) }, variant, T);
  }
}

function launchOne(dev: Device, a: Tensor, b: Tensor, bias: Tensor | null, out: Tensor, L: Launch,
                   variant: 'subgroup' | 'tiled', T: Tiling): void {
  const { batches, ...rest } = L;
  const uniforms = { ...rest, has_bias: bias ? 1 : 0, qw: T.qw };
  if (variant === 'tiled') {
    dev.dispatch(KPORT, 'matmul_tiled', {
      bindings: { a, b, bias: bias ?? a, c: out },
      uniforms,
      overrides: T.overrides,
      workgroups: [Math.ceil(L.N / T.cols), Math.ceil(L.M / T.rows), batches],
    });
    return;
  }
  // Fetch shapes (see the .wgsl header): A as vec4s along k or along m, B as vec2s along n or vec4s
  // along k, else scalars. Vector paths need their element offsets to stay multiples of the width:
  // every batch/row offset is a multiple of the contiguous extent, so checking strides, sizes and
  // offsets suffices.
  const al = (w: number, ...xs: number[]): boolean => xs.every((x) => x % w === 0);
  const aK = L.sak === 1 && al(4, L.K, L.sam, L.a_off, L.a_z1, L.a_z2);
  const aM = L.sam === 1 && L.sak !== 1 && al(4, L.M, L.sak, L.a_off, L.a_z1, L.a_z2);
  const bN = L.sbn === 1 && al(2, L.N, L.sbk, L.b_off, L.b_z1, L.b_z2);
  const bK = L.sbk === 1 && L.sbn !== 1 && al(4, L.K, L.sbn, L.b_off, L.b_z1, L.b_z2);
  const vec = L.K === 0 ? null : aK && bN ? 'ak_bn' : aK && bK ? 'ak_bk' : aM && bN ? 'am_bn' : null;
  const [entry, aName, bName] = vec ? [`matmul_sg_${vec}`, 'a4', vec === 'ak_bk' ? 'b4' : 'b2'] : ['matmul_sg_s', 'a', 'b'];
  dev.dispatch(KSG, entry, {
    bindings: { [aName]: a, [bName]: b, bias: bias ?? a, c: out },
    uniforms,
    overrides: T.overrides,
    // grid x walks row groups: consecutive workgroups share one B strip (cache reuse)
    workgroups: [Math.ceil(L.M / T.rows), Math.ceil(L.N / T.cols), batches],
  });
}

/**
 * Split-K for long contractions with few output tiles (weight gradients of small layers over many
 * rows): how many K chunks to compute as separate batches before summing them. 1 = no split.
 */
function splitCount(dev: Device, M: number, N: number, K: number): number {
  if (K < 1024) return 1;
  const T = tiling(dev, chooseVariant(dev), M, N);
  const tiles = Math.ceil(M / T.rows) * Math.ceil(N / T.cols);
  const target = 64;
  if (tiles >= target) return 1;
  return Math.max(1, Math.min(Math.ceil(target / tiles), Math.floor(K / 256)));
}

// ---- ops --------------------------------------------------------------------------------------

/** A new tensor (shape outShape, default [...batch, M, N]) = op(A)·op(B) (+ bias); no autodiff. */
function mm(a: Tensor, aS: Shape, b: Tensor, bS: Shape, transA: boolean, transB: boolean, bias: Tensor | null,
            outShape?: Shape): Tensor {
  const dev = a.device;
  const { batch, M, N, K } = planShapes(aS, bS, transA, transB, 'matmul');
  const shape = outShape ?? [...batch, M, N];
  const S = bias || numel(batch) !== 1 || M * N === 0 ? 1 : splitCount(dev, M, N, K);
  if (S <= 1) {
    const out = dev.empty(shape);
    matmulRaw(a, aS, b, bS, bias, transA, transB, out, batch, M, N, K);
    return out;
  }
  // split-K: chunks of Kc (a multiple of 8) are the batches of one dispatch (the shorter last
  // chunk is its own), partial products go to [S, M, N], then one deterministic sum over chunks
  const Kc = Math.ceil(K / S / 8) * 8;
  const chunks = Math.ceil(K / Kc);
  const part = dev.empty([chunks, M, N]);
  const st = { sam: transA ? 1 : K, sak: transA ? M : 1, sbk: transB ? 1 : N, sbn: transB ? K : 1 };
  const base = { M, N, ...st, z0: 0, zdiv: 1, a_z2: 0, b_z2: 0 };
  if (chunks > 1) {
    launch(dev, a, b, null, part, {
      ...base, K: Kc, a_off: 0, b_off: 0, c_off: 0, a_z1: Kc * st.sak, b_z1: Kc * st.sbk, batches: chunks - 1,
    });
  }
  const k0 = (chunks - 1) * Kc;
  launch(dev, a, b, null, part, {
    ...base, K: K - k0, a_off: k0 * st.sak, b_off: k0 * st.sbk, c_off: (chunks - 1) * M * N, a_z1: 0, b_z1: 0, batches: 1,
  });
  const red = sum(part, 0);
  part.dispose();
  if (sameShape(red.shape, shape)) return red;
  const out = reshape(red, shape);
  red.dispose();
  return out;
}

/** sumTo(t, logical) (the adjoint of batch broadcasting), then viewed as `shape`; t is consumed. */
function fit(t: Tensor, logical: Shape, shape: Shape): Tensor {
  let r = sumTo(t, logical);
  if (r !== t) t.dispose();
  if (!sameShape(r.shape, shape)) {
    const v = reshape(r, shape);
    r.dispose();
    r = v;
  }
  return r;
}

/**
 * Gradients of out = op(A)·op(B) + bias (A, B: tensors a, b with logical shapes aS, bS) for the
 * output gradient g: the same kernel with other transpose flags, then reduced over broadcast batch
 * dims. Runs under noGrad (backward rules do).
 */
function mmBackward(g: Tensor, a: Tensor, aS: Shape, b: Tensor, bS: Shape, bias: Tensor | null,
                    transA: boolean, transB: boolean): (Tensor | null)[] {
  const { batch, M, N } = planShapes(aS, bS, transA, transB, 'matmul');
  const gS = [...batch, M, N];
  let ga: Tensor | null = null;
  let gb: Tensor | null = null;
  if (a.requiresGrad) {
    // d op(A) = g·op(B)ᵀ; for transA, dA = (g·op(B)ᵀ)ᵀ = op(B)·gᵀ
    const full = transA ? mm(b, bS, g, gS, transB, true, null) : mm(g, gS, b, bS, false, !transB, null);
    ga = fit(full, aS, a.shape);
  }
  if (b.requiresGrad) {
    // d op(B) = op(A)ᵀ·g; for transB, dB = gᵀ·op(A)
    const full = transB ? mm(g, gS, a, aS, true, transA, null) : mm(a, aS, g, gS, !transA, false, null);
    gb = fit(full, bS, b.shape);
  }
  // bias: column sums of g over every row (one deterministic reduction pass)
  const gbias = bias?.requiresGrad ? sumTo(g, bias.shape) : null;
  return bias ? [ga, gb, gbias] : [ga, gb];
}

/**
 * op(a)·op(b) (+ bias) for a [..., M, K] (transA: [..., K, M]) and b [..., K, N] (transB: [..., N, K]),
 * batch dims broadcast; returns [...batch, M, N]. Transposes and bias are handled inside the kernel
 * (no copies); gradients flow to a, b and bias.
 */
export function matmulEx(a: Tensor, b: Tensor, opts: MatmulExOptions = {}): Tensor {
  const op = 'matmulEx';
  const transA = !!opts.transA;
  const transB = !!opts.transB;
  const bias = opts.bias ?? null;
  checkTensor(a, op, 'a');
  checkTensor(b, op, 'b');
  const { N } = planShapes(a.shape, b.shape, transA, transB, op);
  checkBias(bias, N, op, `N = ${N} output columns`);
  checkSameDevice(op, { a, b, bias });
  const out = mm(a, a.shape, b, b.shape, transA, transB, bias);
  return record(op, out, bias ? [a, b, bias] : [a, b], (g) => mmBackward(g, a, a.shape, b, b.shape, bias, transA, transB));
}

/**
 * torch.matmul: 1-D·1-D is a dot product ([]), a 1-D first operand is a row vector and a 1-D second
 * operand a column vector (the added dim is removed from the result), higher ranks are batches of
 * matrices with broadcast batch dims.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  const op = 'matmul';
  checkTensor(a, op, 'a');
  checkTensor(b, op, 'b');
  check(a.rank >= 1, op, `a must have at least 1 dim, got a scalar ${fmtShape(a.shape)} (use mul for scalars)`);
  check(b.rank >= 1, op, `b must have at least 1 dim, got a scalar ${fmtShape(b.shape)} (use mul for scalars)`);
  const Ka = a.shape[a.rank - 1]!;
  const Kb = b.rank === 1 ? b.shape[0]! : b.shape[b.rank - 2]!;
  check(Ka === Kb, op, `inner dimensions differ: a ${fmtShape(a.shape)} has K = ${Ka}, b ${fmtShape(b.shape)} has K = ${Kb}`);
  // 1-D operands are read as [1, K] and [K, 1] views of the same memory
  const aS = a.rank === 1 ? [1, a.shape[0]!] : a.shape;
  const bS = b.rank === 1 ? [b.shape[0]!, 1] : b.shape;
  const { batch, M, N } = planShapes(aS, bS, false, false, op);
  checkSameDevice(op, { a, b });
  const outShape = [...batch, ...(a.rank === 1 ? [] : [M]), ...(b.rank === 1 ? [] : [N])];
  const out = mm(a, aS, b, bS, false, false, null, outShape);
  return record(op, out, [a, b], (g) => mmBackward(g, a, aS, b, bS, null, false, false));
}

/** x [..., in] · weight [out, in]ᵀ + bias [out] → [..., out] (PyTorch layout; transB + bias epilogue). */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  const op = 'linear';
  checkTensor(x, op, 'x');
  checkTensor(weight, op, 'weight');
  check(x.rank >= 1, op, `x must have at least 1 dim, got a scalar ${fmtShape(x.shape)}`);
  const inF = x.shape[x.rank - 1]!;
  check(weight.rank === 2, op, `weight ${fmtShape(weight.shape)} must be [out, in] (2 dims) with in = ${inF} (the last dim of x ${fmtShape(x.shape)})`);
  check(weight.shape[1] === inF, op, `weight ${fmtShape(weight.shape)} must be [out, in] with in = ${inF} (the last dim of x ${fmtShape(x.shape)})`);
  const outF = weight.shape[0]!;
  checkBias(bias, outF, op, `out = ${outF}, the first dim of weight ${fmtShape(weight.shape)}`);
  checkSameDevice(op, { x, weight, bias });
  // every leading dim of x folds into the rows of one GEMM
  const xS = [numel(x.shape.slice(0, -1)), inF];
  const b = bias ?? null;
  const out = mm(x, xS, weight, weight.shape, false, true, b, [...x.shape.slice(0, -1), outF]);
  return record(op, out, b ? [x, weight, b] : [x, weight], (g) => mmBackward(g, x, xS, weight, weight.shape, b, false, true));
}

// ---- float64 references -------------------------------------------------------------------------

function transpose2(x: Arr): Arr {
  // swaps the last two dims
  const r = x.shape.length;
  const R = x.shape[r - 2]!;
  const C = x.shape[r - 1]!;
  const out = arr([...x.shape.slice(0, -2), C, R]);
  const B = x.data.length / Math.max(R * C, 1);
  for (let z = 0; z < B; z++) {
    for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) out.data[z * R * C + j * R + i] = x.data[z * R * C + i * C + j]!;
  }
  return out;
}

/** Float64 op(a)·op(b) (+ bias) with broadcast batch dims (both operands at least 2-D). */
export function matmulExRef(a: Arr, b: Arr, opts: { transA?: boolean; transB?: boolean; bias?: Arr | null } = {}): Arr {
  const A = opts.transA ? transpose2(a) : a;
  const B = opts.transB ? transpose2(b) : b;
  const { batch, M, N, K } = planShapes(A.shape, B.shape, false, false, 'matmulExRef');
  const out = arr([...batch, M, N]);
  const sa = batchStrides(A.shape, batch);
  const sb = batchStrides(B.shape, batch);
  const bst = stridesOf(batch);
  const nb = numel(batch);
  for (let z = 0; z < nb; z++) {
    let oa = 0;
    let ob = 0;
    for (let d = 0; d < batch.length; d++) {
      const k = Math.floor(z / bst[d]!) % batch[d]!;
      oa += k * sa[d]!;
      ob += k * sb[d]!;
    }
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = opts.bias ? opts.bias.data[j]! : 0;
        for (let k = 0; k < K; k++) s += A.data[oa + i * K + k]! * B.data[ob + k * N + j]!;
        out.data[(z * M + i) * N + j] = s;
      }
    }
  }
  return out;
}

/** Float64 gradients of matmulExRef: [ga, gb, gbias]. */
export function matmulExRefBackward(g: Arr, a: Arr, b: Arr, opts: { transA?: boolean; transB?: boolean; bias?: Arr | null } = {}): [Arr, Arr, Arr | null] {
  const tA = !!opts.transA;
  const tB = !!opts.transB;
  const ga = tA ? matmulExRef(b, g, { transA: tB, transB: true }) : matmulExRef(g, b, { transB: !tB });
  const gb = tB ? matmulExRef(g, a, { transA: true, transB: tA }) : matmulExRef(a, g, { transA: !tA });
  let gbias: Arr | null = null;
  if (opts.bias) {
    gbias = arr(opts.bias.shape);
    const N = opts.bias.shape[0]!;
    for (let i = 0; i < g.data.length; i++) gbias.data[i % N]! += g.data[i]!;
  }
  return [sumToArr(ga, a.shape), sumToArr(gb, b.shape), gbias];
}

function sumToArr(x: Arr, shape: Shape): Arr {
  if (sameShape(x.shape, shape)) return x;
  const out = arr(shape);
  const off = x.shape.length - shape.length;
  const xs = stridesOf(x.shape);
  const os = stridesOf(shape);
  for (let i = 0; i < x.data.length; i++) {
    let o = 0;
    for (let d = off; d < x.shape.length; d++) {
      const k = Math.floor(i / xs[d]!) % x.shape[d]!;
      if (shape[d - off] !== 1) o += k * os[d - off]!;
    }
    out.data[o]! += x.data[i]!;
  }
  return out;
}

/** Float64 torch.matmul (1-D operands included). */
export function matmulRef(a: Arr, b: Arr): Arr {
  const a2 = a.shape.length === 1 ? { shape: [1, a.shape[0]!], data: a.data } : a;
  const b2 = b.shape.length === 1 ? { shape: [b.shape[0]!, 1], data: b.data } : b;
  const y = matmulExRef(a2, b2);
  const batch = y.shape.slice(0, -2);
  const shape = [...batch, ...(a.shape.length === 1 ? [] : [y.shape[y.shape.length - 2]!]), ...(b.shape.length === 1 ? [] : [y.shape[y.shape.length - 1]!])];
  return { shape, data: y.data };
}

/** Float64 gradients of matmulRef for output gradient g: [ga, gb]. */
export function matmulRefBackward(g: Arr, a: Arr, b: Arr): [Arr, Arr] {
  const a2 = a.shape.length === 1 ? { shape: [1, a.shape[0]!], data: a.data } : a;
  const b2 = b.shape.length === 1 ? { shape: [b.shape[0]!, 1], data: b.data } : b;
  const y = matmulExRef(a2, b2);
  const [ga, gb] = matmulExRefBackward({ shape: y.shape, data: g.data }, a2, b2);
  return [{ shape: [...a.shape], data: ga.data }, { shape: [...b.shape], data: gb.data }];
}

/** Float64 linear: x [..., in] · weight [out, in]ᵀ + bias [out]. */
export function linearRef(x: Arr, weight: Arr, bias?: Arr | null): Arr {
  const inF = x.shape[x.shape.length - 1]!;
  const rows = x.data.length / Math.max(inF, 1);
  const y = matmulExRef({ shape: [rows, inF], data: x.data }, weight, { transB: true, bias: bias ?? null });
  return { shape: [...x.shape.slice(0, -1), weight.shape[0]!], data: y.data };
}

/** Float64 gradients of linearRef: [gx, gweight, gbias]. */
export function linearRefBackward(g: Arr, x: Arr, weight: Arr, bias?: Arr | null): [Arr, Arr, Arr | null] {
  const inF = x.shape[x.shape.length - 1]!;
  const rows = x.data.length / Math.max(inF, 1);
  const outF = weight.shape[0]!;
  const [gx, gw, gb] = matmulExRefBackward({ shape: [rows, outF], data: g.data }, { shape: [rows, inF], data: x.data }, weight,
    { transB: true, bias: bias ?? null });
  return [{ shape: [...x.shape], data: gx.data }, gw, gb];
}
