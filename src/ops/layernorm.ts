// layerNorm with PyTorch semantics: normalise over the trailing dims `normalizedShape`, then an
// optional elementwise weight and bias shaped like normalizedShape. The forward saves mean and rstd
// per row (llm.c layernorm_forward); the backward is one fused dx kernel per row plus one fused
// deterministic column reduction for dweight and dbias (chunked partial sums, no atomics).
import src from '../../kernels/layernorm.wgsl';
import { kernel } from '../gpu/kernel.js';
import type { Device } from '../gpu/device.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { numel, sameShape } from '../shape.js';
import { Tensor } from '../tensor.js';
import { isCpuAdapter } from './softmax.js';
import { checkSameDevice, checkTensor } from './elementwise.js';
import { type Arr, arr } from '../reference.js';

const K = kernel('layernorm.wgsl', src);
const OP = 'layerNorm';

/** Kernel layouts (kernels/layernorm.wgsl): one invocation per row, or one workgroup per row. */
export type LayerNormPath = 'row' | 'wg';

interface Plan {
  path: LayerNormPath;
  wg: number;
}

/**
 * Layout for N rows of C. As for softmax (see softmaxPlan), lavapipe runs one invocation per row
 * fastest unless the rows are fewer than its SIMD width; a GPU wants a workgroup per row unless
 * rows are many and short (not measured here).
 */
export function layerNormPlan(dev: Device, rows: number, c: number): Plan {
  const cpu = isCpuAdapter(dev);
  const wide = cpu ? rows < 4 && c >= 512 : c >= 64 || rows < 4096;
  if (wide) return { path: 'wg', wg: c >= 4096 && !cpu ? 256 : 64 };
  return { path: 'row', wg: Math.min(64, Math.max(8, 2 ** Math.floor(Math.log2(Math.max(1, rows / 8))))) };
}

/**
 * Chunking of the dw/db column reduction: enough (column, chunk) invocations to fill the device,
 * at least 32 rows per chunk so the second pass (adding chunks) stays small.
 */
export function paramsPlan(dev: Device, rows: number, cols: number): { chunks: number; rowsPerChunk: number } {
  const target = isCpuAdapter(dev) ? 2048 : 16384;
  const want = Math.max(1, Math.floor(target / Math.max(1, cols)));
  const rowsPerChunk = Math.max(32, Math.ceil(rows / want));
  return { chunks: Math.max(1, Math.ceil(rows / rowsPerChunk)), rowsPerChunk };
}

export interface LayerNormImplOptions {
  /** @internal force a kernel layout (tests run every layout on the same inputs) */
  path?: LayerNormPath;
  /** @internal with `path`: its workgroup size (default 64) */
  wg?: number;
  /** @internal force the number of rows per chunk of the dw/db reduction */
  rowsPerChunk?: number;
}

function normalizeShapeArg(normalizedShape: unknown, x: Tensor): number[] {
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  check(Array.isArray(ns) && ns.length > 0, OP, `normalizedShape must be a number or a non-empty list of numbers, got ${String(normalizedShape)}`);
  for (const d of ns) check(Number.isInteger(d) && d >= 0, OP, `normalizedShape ${fmtShape(ns)} must hold non-negative integers`);
  const trailing = x.shape.slice(x.rank - ns.length);
  check(
    ns.length <= x.rank && sameShape(trailing, ns),
    OP, `normalizedShape ${fmtShape(ns)} must equal the trailing dims of x ${fmtShape(x.shape)}`,
  );
  return [...(ns as number[])];
}

function checkAffine(t: Tensor | null | undefined, arg: 'weight' | 'bias', x: Tensor, ns: number[]): Tensor | null {
  if (t === null || t === undefined) return null;
  checkTensor(t, OP, arg);
  checkSameDevice(OP, { x, [arg]: t });
  check(sameShape(t.shape, ns), OP, `${arg} has shape ${fmtShape(t.shape)}, expected normalizedShape ${fmtShape(ns)}`);
  return t;
}

/** LayerNorm over the trailing dims normalizedShape (PyTorch semantics; biased variance). */
export function layerNorm(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight?: Tensor | null,
  bias?: Tensor | null,
  eps = 1e-5,
): Tensor {
  return layerNormImpl(x, normalizedShape, weight, bias, eps, {});
}

/** layerNorm with internal options. @internal */
export function layerNormImpl(
  x: Tensor,
  normalizedShape: number | readonly number[],
  weight: Tensor | null | undefined,
  bias: Tensor | null | undefined,
  eps: number,
  opts: LayerNormImplOptions,
): Tensor {
  checkTensor(x, OP, 'x');
  const ns = normalizeShapeArg(normalizedShape, x);
  const w = checkAffine(weight, 'weight', x, ns);
  const b = checkAffine(bias, 'bias', x, ns);
  check(typeof eps === 'number' && Number.isFinite(eps) && eps > 0, OP, `eps must be a finite number > 0, got ${String(eps)}`);
  if (opts.rowsPerChunk !== undefined) check(Number.isInteger(opts.rowsPerChunk) && opts.rowsPerChunk >= 1, OP, `rowsPerChunk must be a positive integer`);

  const dev = x.device;
  const c = numel(ns);
  const rows = c === 0 ? 0 : x.size / c;
  const plan: Plan = opts.path ? { path: opts.path, wg: opts.wg ?? 64 } : layerNormPlan(dev, rows, c);
  const vec4 = plan.path === 'row' && c % 4 === 0;
  const y = dev.empty(x.shape);
  const mean = dev.empty([rows]);
  const rstd = dev.empty([rows]);
  const uniforms = { rows, c: vec4 ? c / 4 : c, eps, has_w: w ? 1 : 0, has_b: b ? 1 : 0, inv_c: c ? 1 / c : 0 };
  if (x.size > 0) {
    if (plan.path === 'row') {
      dev.dispatch(K, vec4 ? 'ln_fwd_row4' : 'ln_fwd_row', {
        bindings: vec4 ? { x4: x, w4: w ?? x, b4: b ?? x, y4: y, mean, rstd } : { x, w: w ?? x, b: b ?? x, y, mean, rstd },
        uniforms,
        overrides: { WG: plan.wg },
        workgroups: dev.grid1d(rows, plan.wg),
      });
    } else {
      dev.dispatch(K, 'ln_fwd_wg', {
        bindings: { x, w: w ?? x, b: b ?? x, y, mean, rstd },
        uniforms,
        overrides: { WG: plan.wg },
        workgroups: dev.grid1d(rows, 1),
      });
    }
  }
  const inputs = [x, w, b].filter((t): t is Tensor => t !== null);
  const out = record(OP, y, inputs, (g) => {
    const gx = x.requiresGrad ? dxRaw(x, w, mean, rstd, g, rows, c, plan, uniforms) : null;
    const needW = !!w?.requiresGrad;
    const needB = !!b?.requiresGrad;
    const [gw, gb] = needW || needB ? paramGradsRaw(x, mean, rstd, g, rows, c, ns, needW, needB, opts.rowsPerChunk) : [null, null];
    const grads: (Tensor | null)[] = [gx];
    if (w) grads.push(gw);
    if (b) grads.push(gb);
    return grads;
  });
  if (!out.requiresGrad) {
    mean.dispose();
    rstd.dispose();
  }
  return out;
}

function dxRaw(
  x: Tensor, w: Tensor | null, mean: Tensor, rstd: Tensor, g: Tensor, rows: number, c: number, plan: Plan,
  uniforms: Record<string, number>,
): Tensor {
  const dev = x.device;
  const gx = dev.empty(x.shape);
  if (x.size === 0) return gx;
  const vec4 = plan.path === 'row' && c % 4 === 0;
  if (plan.path === 'row') {
    dev.dispatch(K, vec4 ? 'ln_bwd_row4' : 'ln_bwd_row', {
      bindings: vec4 ? { x4: x, w4: w ?? x, g4: g, gx4: gx, smean: mean, srstd: rstd } : { x, w: w ?? x, g, gx, smean: mean, srstd: rstd },
      uniforms,
      overrides: { WG: plan.wg },
      workgroups: dev.grid1d(rows, plan.wg),
    });
  } else {
    dev.dispatch(K, 'ln_bwd_wg', {
      bindings: { x, w: w ?? x, g, gx, smean: mean, srstd: rstd },
      uniforms,
      overrides: { WG: plan.wg },
      workgroups: dev.grid1d(rows, 1),
    });
  }
  return gx;
}

/** dweight = sum_rows g * xhat, dbias = sum_rows g: one column pass (+ one pass over chunks). */
function paramGradsRaw(
  x: Tensor, mean: Tensor, rstd: Tensor, g: Tensor, rows: number, c: number, ns: number[],
  needW: boolean, needB: boolean, forceRowsPerChunk?: number,
): [Tensor | null, Tensor | null] {
  const dev = x.device;
  if (rows === 0 || c === 0) return [needW ? dev.zeros(ns) : null, needB ? dev.zeros(ns) : null];
  const vec4 = c % 4 === 0;
  const cols = vec4 ? c / 4 : c;
  let { chunks, rowsPerChunk } = paramsPlan(dev, rows, cols);
  if (forceRowsPerChunk) {
    rowsPerChunk = forceRowsPerChunk;
    chunks = Math.ceil(rows / rowsPerChunk);
  }
  const WG = 64;
  const dw = needW ? dev.empty(ns) : null;
  const db = needB ? dev.empty(ns) : null;
  const temps: Tensor[] = [];
  // an output that is not wanted is written nowhere (has_w / has_b = 0); bind a scratch in its place
  const scratch = (): Tensor => {
    const t = dev.empty([4]);
    temps.push(t);
    return t;
  };
  const part = (want: boolean): Tensor => {
    const t = want ? dev.empty([chunks * c]) : dev.empty([4]);
    temps.push(t);
    return t;
  };
  const pw = chunks > 1 ? part(needW) : (dw ?? scratch());
  const pb = chunks > 1 ? part(needB) : (db ?? scratch());
  const uniforms = { rows, c: cols, chunks, rows_per_chunk: rowsPerChunk, has_w: needW ? 1 : 0, has_b: needB ? 1 : 0 };
  dev.dispatch(K, vec4 ? 'ln_params4' : 'ln_params', {
    bindings: vec4 ? { x4: x, g4: g, smean: mean, srstd: rstd, dw4: pw, db4: pb } : { x, g, smean: mean, srstd: rstd, dw: pw, db: pb },
    uniforms,
    overrides: { WG },
    workgroups: dev.grid1d(cols * chunks, WG),
  });
  if (chunks > 1) {
    dev.dispatch(K, 'ln_params_sum', {
      bindings: { pw, pb, dw: dw ?? scratch(), db: db ?? scratch() },
      uniforms: { ...uniforms, c },
      overrides: { WG },
      workgroups: dev.grid1d(c, WG),
    });
  }
  for (const t of temps) t.dispose();
  return [dw, db];
}

// ---- float64 references -------------------------------------------------------------------------

function refDims(x: Arr, normalizedShape: number | readonly number[]): { rows: number; c: number } {
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : normalizedShape;
  const c = numel(ns);
  return { rows: c === 0 ? 0 : x.data.length / c, c };
}

/** Per-row mean and rstd = 1 / sqrt(var + eps) (biased variance), as the forward saves them. */
export function layerNormRefStats(x: Arr, normalizedShape: number | readonly number[], eps = 1e-5): { mean: Float64Array; rstd: Float64Array } {
  const { rows, c } = refDims(x, normalizedShape);
  const mean = new Float64Array(rows);
  const rstd = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = 0;
    for (let j = 0; j < c; j++) s += x.data[r * c + j]!;
    const mu = s / c;
    let v = 0;
    for (let j = 0; j < c; j++) v += (x.data[r * c + j]! - mu) ** 2;
    mean[r] = mu;
    rstd[r] = 1 / Math.sqrt(v / c + eps);
  }
  return { mean, rstd };
}

export function layerNormRef(
  x: Arr, normalizedShape: number | readonly number[], weight?: Arr | null, bias?: Arr | null, eps = 1e-5,
): Arr {
  const { rows, c } = refDims(x, normalizedShape);
  const { mean, rstd } = layerNormRefStats(x, normalizedShape, eps);
  const y = arr(x.shape);
  for (let r = 0; r < rows; r++) {
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      y.data[i] = (x.data[i]! - mean[r]!) * rstd[r]! * (weight ? weight.data[j]! : 1) + (bias ? bias.data[j]! : 0);
    }
  }
  return y;
}

/** Gradients [dx, dweight (null without weight), dbias (null without bias)] for output grad g. */
export function layerNormRefBackward(
  g: Arr, x: Arr, normalizedShape: number | readonly number[], weight?: Arr | null, bias?: Arr | null, eps = 1e-5,
): [Arr, Arr | null, Arr | null] {
  const { rows, c } = refDims(x, normalizedShape);
  const { mean, rstd } = layerNormRefStats(x, normalizedShape, eps);
  const ns = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  const gx = arr(x.shape);
  const gw = weight ? arr(ns) : null;
  const gb = bias ? arr(ns) : null;
  for (let r = 0; r < rows; r++) {
    let sa = 0;
    let sb = 0;
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      const xh = (x.data[i]! - mean[r]!) * rstd[r]!;
      const dn = g.data[i]! * (weight ? weight.data[j]! : 1);
      sa += dn;
      sb += dn * xh;
      if (gw) gw.data[j]! += g.data[i]! * xh;
      if (gb) gb.data[j]! += g.data[i]!;
    }
    for (let j = 0; j < c; j++) {
      const i = r * c + j;
      const xh = (x.data[i]! - mean[r]!) * rstd[r]!;
      const dn = g.data[i]! * (weight ? weight.data[j]! : 1);
      gx.data[i] = (dn - sa / c - xh * (sb / c)) * rstd[r]!;
    }
  }
  return [gx, gw, gb];
}
