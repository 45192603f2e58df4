// 2-D convolution on NCHW images: im2col (torch.nn.functional.unfold), its adjoint col2im (fold),
// and conv2d = matmul([weight | bias], im2col(x) with a row of ones): the GEMM is src/ops/matmul.ts
// (subgroup register tiling), and gradients compose from the matmul, concat and im2col rules.
// An implicit-GEMM conv kernel (im2col tiles gathered into workgroup memory, split-K weight grad)
// was measured slower on lavapipe for the CCT tokenizer (forward 55 vs 32 ms CPU, weight grad 175
// vs 40 ms CPU) and removed. The kernels here (kernels/conv.wgsl) are gathers: col2im sums, for
// each input pixel, the columns that read it, so backward is deterministic without atomics.
import src from '../../kernels/conv.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { needsGrad, record } from '../autodiff.js';
import type { Tensor } from '../tensor.js';
import { checkSameDevice, checkTensor } from './elementwise.js';
import { concat, reshape } from './shape_ops.js';
import { matmul } from './matmul.js';
import { type Arr, arr } from '../reference.js';

/** The conv family's kernels (shared by patchify.ts and pool.ts). */
export const CONV_KERNEL = kernel('conv.wgsl', src);

/** A size per spatial axis: one number for both, or [h, w]. */
export type Size2 = number | readonly [number, number];

export interface Im2colOptions {
  kernelSize: Size2;
  /** default 1 */
  stride?: Size2;
  /** zero padding on both sides, default 0 */
  padding?: Size2;
  /** default 1 */
  dilation?: Size2;
}

export interface Conv2dOptions {
  /** default 1 */
  stride?: Size2;
  /** zero padding on both sides, default 0 */
  padding?: Size2;
  /** default 1 */
  dilation?: Size2;
}

/** Resolved geometry of a sliding window over [B, C, H, W]. */
export interface Geometry {
  B: number;
  C: number;
  H: number;
  W: number;
  kh: number;
  kw: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  Ho: number;
  Wo: number;
}

/** Parses a Size2 argument into [h, w], checking integers >= min. */
export function pair(v: Size2 | undefined, def: number | undefined, op: string, arg: string, min: number): [number, number] {
  const val = v ?? def;
  const what = min > 0 ? 'positive integer' : 'non-negative integer';
  const show = Array.isArray(val) ? fmtShape(val as number[]) : String(val);
  check(val !== undefined, op, `${arg} is required (a ${what} or a pair [h, w] of them)`);
  const pr: [number, number] = typeof val === 'number' ? [val, val] : Array.isArray(val) && val.length === 2 ? [val[0], val[1]] : [NaN, NaN];
  check(pr.every((d) => typeof d === 'number' && Number.isInteger(d) && d >= min), op, `${arg} must be a ${what} or a pair [h, w] of them, got ${show}`);
  return pr;
}

export function checkImage(x: Tensor, op: string, arg = 'x'): void {
  checkTensor(x, op, arg);
  check(x.rank === 4, op, `${arg} must have rank 4 [B, C, H, W], got ${fmtShape(x.shape)}`);
}

/** Output size of a sliding window along one axis (PyTorch's formula, floor mode). */
export function outSize(n: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1;
}

/** Validates window options against an image shape and resolves the geometry (no GPU work). */
export function geometry(
  shape: readonly number[], op: string,
  o: { kernelSize: Size2 | undefined; stride?: Size2; padding?: Size2; dilation?: Size2 },
  defaults: { stride?: [number, number] } = {},
): Geometry {
  const [B, C, H, W] = shape as [number, number, number, number];
  const [kh, kw] = pair(o.kernelSize, undefined, op, 'kernelSize', 1);
  const [sh, sw] = o.stride === undefined && defaults.stride ? defaults.stride : pair(o.stride, 1, op, 'stride', 1);
  const [ph, pw] = pair(o.padding, 0, op, 'padding', 0);
  const [dh, dw] = pair(o.dilation, 1, op, 'dilation', 1);
  const ekh = dh * (kh - 1) + 1;
  const ekw = dw * (kw - 1) + 1;
  check(
    ekh <= H + 2 * ph && ekw <= W + 2 * pw, op,
    `kernelSize [${kh}, ${kw}] with dilation [${dh}, ${dw}] spans [${ekh}, ${ekw}] pixels, larger than the padded input ` +
      `[${H + 2 * ph}, ${W + 2 * pw}] (x ${fmtShape(shape)}, padding [${ph}, ${pw}])`,
  );
  return { B, C, H, W, kh, kw, sh, sw, ph, pw, dh, dw, Ho: outSize(H, kh, sh, ph, dh), Wo: outSize(W, kw, sw, pw, dw) };
}

/** The kernels' uniform params for a geometry, with `inner` invocations along x per `outer` row. */
export function convUniforms(g: Geometry, inner: number, outer: number, ones = 0, extra = 0): Record<string, number | number[]> {
  return {
    inner, outer, c: g.C, ckk: g.C * g.kh * g.kw, l: g.Ho * g.Wo, ones, extra, in_hw: [g.H, g.W], out_hw: [g.Ho, g.Wo],
  };
}

/** The window geometry as the kernels' override constants (one pipeline per layer configuration). */
export function convOverrides(g: Geometry): Record<string, number> {
  return { KH: g.kh, KW: g.kw, SH: g.sh, SW: g.sw, PH: g.ph, PW: g.pw, DH: g.dh, DW: g.dw };
}

/** Workgroup size for `inner` invocations per row: the one of 64, 128, 256 wasting the fewest lanes. */
export function pickWG(inner: number): number {
  let best = 256;
  for (const wg of [128, 64]) if (Math.ceil(inner / wg) * wg < Math.ceil(inner / best) * best) best = wg;
  return best;
}

/** Dispatches one of the 2-D-grid conv kernels. */
export function convDispatch(
  t: Tensor, entry: string, bindings: Record<string, Tensor>, g: Geometry, inner: number, outer: number, ones = 0, extra = 0,
): void {
  const wg = pickWG(inner);
  t.device.dispatch(CONV_KERNEL, entry, {
    bindings,
    uniforms: convUniforms(g, inner, outer, ones, extra),
    overrides: { WG: wg, ...convOverrides(g) },
    workgroups: t.device.grid2d(inner, outer, wg, 'conv kernels'),
  });
}

/** [B, C·kh·kw + extra, L] columns; the appended rows are zeros, the first of them ones if `ones`. */
function im2colRaw(x: Tensor, g: Geometry, ones = 0, extra = 0): Tensor {
  const out = x.device.empty([g.B, g.C * g.kh * g.kw + extra, g.Ho * g.Wo]);
  convDispatch(x, 'im2col_fwd', { x, out }, g, g.Ho * g.Wo, g.B * g.C * g.kh, ones, extra);
  return out;
}

/** The adjoint of im2colRaw (appended rows receive no gradient). */
function col2imRaw(cols: Tensor, g: Geometry, extra = 0): Tensor {
  const gx = cols.device.empty([g.B, g.C, g.H, g.W]);
  convDispatch(cols, 'im2col_bwd', { gy: cols, gx }, g, g.H * g.W, g.B * g.C, 0, extra);
  return gx;
}

/**
 * Sliding-window patches of x [B, C, H, W] as columns [B, C·kh·kw, L] (L = Ho·Wo), like
 * torch.nn.functional.unfold: row (c·kh + i)·kw + j holds x[b, c, oh·sh - ph + i·dh, ow·sw - pw + j·dw]
 * (0 in the padding). Backward is col2im.
 */
export function im2col(x: Tensor, opts: Im2colOptions): Tensor {
  checkImage(x, 'im2col');
  const g = geometry(x.shape, 'im2col', opts ?? ({} as Im2colOptions));
  return im2colPadded(x, g, 0, 0);
}

/**
 * The adjoint of im2col (torch.nn.functional.fold): cols [B, C·kh·kw, L] → [B, C, H, W], summing
 * the values that overlap. outputSize is [H, W]. Backward is im2col.
 */
export function col2im(cols: Tensor, outputSize: Size2, opts: Im2colOptions): Tensor {
  checkTensor(cols, 'col2im', 'cols');
  check(cols.rank === 3, 'col2im', `cols must have rank 3 [B, C·kh·kw, L], got ${fmtShape(cols.shape)}`);
  const [H, W] = pair(outputSize, undefined, 'col2im', 'outputSize', 1);
  const [kh, kw] = pair(opts?.kernelSize, undefined, 'col2im', 'kernelSize', 1);
  const [B, rows, L] = cols.shape as [number, number, number];
  check(rows % (kh * kw) === 0, 'col2im', `cols ${fmtShape(cols.shape)}: dim 1 (${rows}) must be a multiple of kh·kw = ${kh * kw}`);
  const g = geometry([B, rows / (kh * kw), H, W], 'col2im', opts);
  check(
    L === g.Ho * g.Wo, 'col2im',
    `cols ${fmtShape(cols.shape)} has ${L} columns but outputSize [${H}, ${W}] with these options gives ${g.Ho}·${g.Wo} = ${g.Ho * g.Wo}`,
  );
  const out = col2imRaw(cols, g);
  return record('col2im', out, [cols], (gy) => [im2colRaw(gy, g)]);
}

interface ConvArgs {
  g: Geometry;
  O: number;
}

/** Validates conv2d's arguments (no GPU work) and resolves the geometry. */
function checkConv(op: string, x: Tensor, weight: Tensor, bias: Tensor | null | undefined, opts: Conv2dOptions): ConvArgs {
  checkImage(x, op);
  checkTensor(weight, op, 'weight');
  check(weight.rank === 4, op, `weight must have rank 4 [outChannels, inChannels, kh, kw], got ${fmtShape(weight.shape)}`);
  const [O, Cw, kh, kw] = weight.shape as [number, number, number, number];
  check(
    Cw === x.shape[1], op,
    `weight ${fmtShape(weight.shape)} expects ${Cw} input channels but x ${fmtShape(x.shape)} has ${x.shape[1]}`,
  );
  if (bias) {
    checkTensor(bias, op, 'bias');
    check(bias.rank === 1 && bias.shape[0] === O, op, `bias must have shape [${O}] (weight ${fmtShape(weight.shape)}), got ${fmtShape(bias.shape)}`);
  }
  checkSameDevice(op, { x, weight, bias });
  const o = opts ?? {};
  const g = geometry(x.shape, op, { kernelSize: [kh, kw], stride: o.stride, padding: o.padding, dilation: o.dilation });
  return { g, O };
}

/** im2col with `extra` rows appended to each image (ones first if `ones`, then zeros); backward skips them. */
function im2colPadded(x: Tensor, g: Geometry, ones: number, extra: number): Tensor {
  const out = im2colRaw(x, g, ones, extra);
  return record('im2col', out, [x], (gy) => [col2imRaw(gy, g, extra)]);
}

/**
 * 2-D convolution (cross-correlation, as PyTorch): x [B, C, H, W], weight [O, C, kh, kw],
 * bias [O] → [B, O, Ho, Wo], computed as [weight | bias | 0] [O, K] · im2col(x) with a row of ones
 * (and zero rows up to K, a multiple of 4) appended, so the bias rides in the GEMM (no broadcast add). Gradients compose
 * from the matmul, concat and im2col rules: weight/bias grad = Σ_b g_b · cols_bᵀ, input grad =
 * col2im(Wᵀ · g) (a gather: deterministic, no atomics).
 */
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, opts: Conv2dOptions = {}): Tensor {
  const { g, O } = checkConv('conv2d', x, weight, bias, opts);
  const R = g.C * g.kh * g.kw;
  const grad = needsGrad(x, weight, bias);
  const temps: Tensor[] = [];
  const t = <T extends Tensor>(v: T): T => (temps.push(v), v);
  // The GEMM's K is padded to a multiple of 4 so the matmul takes its vector-load path (SimpleCNN's
  // 32->64 conv forward went from 105 to 48 ms on lavapipe): the bias rides as a row of ones, then
  // zero rows; weight gets matching bias and zero columns.
  const biasRows = bias ? 1 : 0;
  const extra = Math.ceil((R + biasRows) / 4) * 4 - R;
  const cols = t(im2colPadded(x, g, biasRows, extra));
  const parts = [t(reshape(weight, [O, R]))];
  if (bias) parts.push(t(reshape(bias, [O, 1])));
  if (extra > biasRows) parts.push(t(x.device.zeros([O, extra - biasRows])));
  const wA = parts.length === 1 ? parts[0]! : t(concat(parts, 1));
  const y = t(matmul(wA, cols)); // [B, O, L]
  const out = reshape(y, [g.B, O, g.Ho, g.Wo]);
  // without autodiff nothing is saved for backward: free the temporaries now (views share storage)
  if (!grad) temps.forEach((v) => v.dispose());
  return out;
}

// ---- float64 references -------------------------------------------------------------------------

interface RefOpts {
  kernelSize: Size2;
  stride?: Size2;
  padding?: Size2;
  dilation?: Size2;
}

function refGeom(shape: readonly number[], o: RefOpts): Geometry {
  return geometry(shape, 'ref', o);
}

export function im2colRef(x: Arr, o: Im2colOptions): Arr {
  const g = refGeom(x.shape, o);
  const L = g.Ho * g.Wo;
  const out = arr([g.B, g.C * g.kh * g.kw, L]);
  for (let b = 0; b < g.B; b++)
    for (let c = 0; c < g.C; c++)
      for (let i = 0; i < g.kh; i++)
        for (let j = 0; j < g.kw; j++)
          for (let oh = 0; oh < g.Ho; oh++)
            for (let ow = 0; ow < g.Wo; ow++) {
              const y = oh * g.sh - g.ph + i * g.dh;
              const xx = ow * g.sw - g.pw + j * g.dw;
              if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) continue;
              out.data[(((b * g.C + c) * g.kh + i) * g.kw + j) * L + oh * g.Wo + ow] = x.data[((b * g.C + c) * g.H + y) * g.W + xx]!;
            }
  return out;
}

/** col2im as a float64 scatter-add (the adjoint of im2colRef). */
export function col2imRef(cols: Arr, shape: readonly number[], o: Im2colOptions): Arr {
  const g = refGeom(shape, o);
  const L = g.Ho * g.Wo;
  const gx = arr(shape);
  for (let b = 0; b < g.B; b++)
    for (let c = 0; c < g.C; c++)
      for (let i = 0; i < g.kh; i++)
        for (let j = 0; j < g.kw; j++)
          for (let oh = 0; oh < g.Ho; oh++)
            for (let ow = 0; ow < g.Wo; ow++) {
              const y = oh * g.sh - g.ph + i * g.dh;
              const xx = ow * g.sw - g.pw + j * g.dw;
              if (y < 0 || y >= g.H || xx < 0 || xx >= g.W) continue;
              gx.data[((b * g.C + c) * g.H + y) * g.W + xx]! += cols.data[(((b * g.C + c) * g.kh + i) * g.kw + j) * L + oh * g.Wo + ow]!;
            }
  return gx;
}

export function im2colRefBackward(gy: Arr, x: Arr, o: Im2colOptions): [Arr] {
  return [col2imRef(gy, x.shape, o)];
}

/** The textbook direct convolution: a 7-deep loop, float64, no im2col. */
export function conv2dRef(x: Arr, w: Arr, bias: Arr | null, o: Conv2dOptions = {}): Arr {
  const [O, C, kh, kw] = w.shape as [number, number, number, number];
  const g = refGeom(x.shape, { kernelSize: [kh, kw], ...o });
  const { B, H, W, Ho, Wo } = g;
  const out = arr([B, O, Ho, Wo]);
  for (let b = 0; b < B; b++)
    for (let oc = 0; oc < O; oc++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++) {
          let acc = bias ? bias.data[oc]! : 0;
          for (let c = 0; c < C; c++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const y = oh * g.sh - g.ph + i * g.dh;
                const xx = ow * g.sw - g.pw + j * g.dw;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                acc += w.data[((oc * C + c) * kh + i) * kw + j]! * x.data[((b * C + c) * H + y) * W + xx]!;
              }
          out.data[((b * O + oc) * Ho + oh) * Wo + ow] = acc;
        }
  return out;
}

/** Gradients of conv2dRef for output gradient gy: [gx, gw, gbias (null without bias)]. */
export function conv2dRefBackward(gy: Arr, x: Arr, w: Arr, bias: Arr | null, o: Conv2dOptions = {}): [Arr, Arr, Arr | null] {
  const [O, C, kh, kw] = w.shape as [number, number, number, number];
  const g = refGeom(x.shape, { kernelSize: [kh, kw], ...o });
  const { B, H, W, Ho, Wo } = g;
  const gx = arr(x.shape);
  const gw = arr(w.shape);
  const gb = bias ? arr(bias.shape) : null;
  for (let b = 0; b < B; b++)
    for (let oc = 0; oc < O; oc++)
      for (let oh = 0; oh < Ho; oh++)
        for (let ow = 0; ow < Wo; ow++) {
          const gv = gy.data[((b * O + oc) * Ho + oh) * Wo + ow]!;
          if (gb) gb.data[oc]! += gv;
          for (let c = 0; c < C; c++)
            for (let i = 0; i < kh; i++)
              for (let j = 0; j < kw; j++) {
                const y = oh * g.sh - g.ph + i * g.dh;
                const xx = ow * g.sw - g.pw + j * g.dw;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                const xi = ((b * C + c) * H + y) * W + xx;
                const wi = ((oc * C + c) * kh + i) * kw + j;
                gx.data[xi]! += gv * w.data[wi]!;
                gw.data[wi]! += gv * x.data[xi]!;
              }
        }
  return [gx, gw, gb];
}
