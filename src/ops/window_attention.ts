// Swin (shifted) window attention, fused: the cyclic shift, window partition, relative position
// bias, shifted-window region mask and the reverse shift all happen inside the kernels, on tokens laid
// out spatially, q/k/v/out [B, Hg, Wg, heads, D]; nothing rolled, padded or partitioned is ever
// materialised. kernels/window_attention.wgsl is the portable version (and documents the work
// layout); kernels/window_attention_sg.wgsl computes the same with subgroup shuffles (one load serves
// the 8 lanes of a cluster), used when the device has 'subgroups' with subgroup sizes that are
// multiples of 8.
//
// Semantics (timm's SwinTransformerBlock / WindowAttention, per head):
//   x' = torch.roll(x, (-shift, -shift), dims=(1, 2)); partition x' into M x M windows;
//   logits = scale * q k^T + table[relative_position_index] + mask; softmax; @ v; merge; roll back.
//   - scale defaults to D^-0.5 (Swin's qk_scale = head_dim ** -0.5);
//   - mask: Swin's img_mask regions (slices (0,-M), (-M,-s), (-s,None) on both axes of the rolled map);
//     a query and a key from different regions get -100 added (timm's value, not -inf). shift = 0: none.
//   - relative_position_index = (dh + M - 1) * (2M - 1) + (dw + M - 1), dh = hi - hj, dw = wi - wj
//     (see relativePositionIndex); the table is [(2M-1)^2, heads] as timm's relative_position_bias_table.
// Grids that are not multiples of M are padded at the bottom/right to Hp x Wp and the padded map is
// rolled (the order of the original Swin detection/segmentation code, which keeps the region mask
// aligned with the rolled map; timm >= 0.9 rolls first and pads after, and does not mask padding).
// Padded tokens are never materialised: as keys they are excluded (attention weight exactly 0, so
// real tokens' outputs do not depend on the padding), as queries they produce nothing. Every real
// query attends at least to itself, so no row is fully masked. (Swin models themselves use M = grid
// and shift 0 when the grid is not larger than the window; that choice belongs to the model.)
//
// Backward: dq and dLogit (stored once: the size of one attention matrix) with one lane per query,
// dv and dk with one lane per key (recomputing the probabilities from the saved log-sum-exp); the
// bias-table gradient sums dLogit over images and windows per (head, i, j), then per table entry over
// the (i, j) pairs of its offset, both in a fixed order (no float atomics: deterministic).
import src from '../../kernels/window_attention.wgsl';
import sgSrc from '../../kernels/window_attention_sg.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, LimitError } from '../errors.js';
import { record, needsGrad } from '../autodiff.js';
import { sameShape } from '../shape.js';
import type { Tensor } from '../tensor.js';
import type { Device } from '../gpu/device.js';
import { checkFinite, checkSameDevice, checkTensor } from './elementwise.js';
import { type Arr, arr } from '../reference.js';

const K = kernel('window_attention.wgsl', src);
const KS = kernel('window_attention_sg.wgsl', sgSrc);
const OP = 'windowAttention';
const WG_TABLE = 64;
/** Workgroup memory we allow ourselves (the WebGPU default limit), in bytes. */
const SMEM_BYTES = 16384;

export interface WindowAttentionOptions {
  /** window size M (square windows, as Swin) */
  windowSize: number;
  /** cyclic shift s in [0, M): 0 for W-MSA, M/2 (floored) for SW-MSA */
  shift?: number;
  /** timm's relative_position_bias_table [(2M-1)^2, heads]; omitted: no bias */
  relativePositionBias?: Tensor | null;
  /** logit scale (default D^-0.5, Swin's qk_scale) */
  scale?: number;
}

/** timm's relative_position_index for an M x M window: Int32Array of N*N (N = M*M), row-major [i, j]. */
export function relativePositionIndex(M: number): Int32Array {
  check(Number.isInteger(M) && M >= 1, 'relativePositionIndex', `window size M must be a positive integer, got ${M}`);
  const N = M * M;
  const out = new Int32Array(N * N);
  for (let i = 0; i < N; i++) {
    const hi = Math.floor(i / M);
    const wi = i % M;
    for (let j = 0; j < N; j++) {
      const dh = hi - Math.floor(j / M);
      const dw = wi - (j % M);
      out[i * N + j] = (dh + M - 1) * (2 * M - 1) + (dw + M - 1);
    }
  }
  return out;
}

/** Window geometry shared by the op and its reference. */
export interface WindowGeometry {
  B: number; hg: number; wg: number; heads: number; dim: number;
  m: number; shift: number; hp: number; wp: number; nwh: number; nww: number; nwin: number; n: number;
}

function geometry(shape: readonly number[], m: number, shift: number): WindowGeometry {
  const [B, hg, wg, heads, dim] = shape as [number, number, number, number, number];
  const hp = Math.ceil(hg / m) * m;
  const wp = Math.ceil(wg / m) * m;
  return { B, hg, wg, heads, dim, m, shift, hp, wp, nwh: hp / m, nww: wp / m, nwin: (hp / m) * (wp / m), n: m * m };
}

/** Validates the arguments (before any GPU work) and returns the geometry. */
function validate(
  q: unknown, k: unknown, v: unknown, opts: WindowAttentionOptions | undefined,
): { g: WindowGeometry; table: Tensor | null; scale: number } {
  checkTensor(q, OP, 'q');
  checkTensor(k, OP, 'k');
  checkTensor(v, OP, 'v');
  check(q.rank === 5, OP, `q must have rank 5 [B, Hgrid, Wgrid, heads, D], got ${fmtShape(q.shape)}`);
  check(sameShape(k.shape, q.shape), OP, `k ${fmtShape(k.shape)} must have the shape of q ${fmtShape(q.shape)}`);
  check(sameShape(v.shape, q.shape), OP, `v ${fmtShape(v.shape)} must have the shape of q ${fmtShape(q.shape)}`);
  checkSameDevice(OP, { q, k, v });
  check(opts !== null && typeof opts === 'object', OP, 'options { windowSize, shift?, relativePositionBias?, scale? } are required');
  const [, hg, wg, heads, dim] = q.shape as [number, number, number, number, number];
  check(heads >= 1 && dim >= 1, OP, `q ${fmtShape(q.shape)} must have at least one head and a head dim >= 1`);
  const m = opts.windowSize;
  check(
    typeof m === 'number' && Number.isInteger(m) && m >= 1 && m <= Math.min(hg, wg), OP,
    `windowSize must be an integer in [1, min(Hgrid, Wgrid)] = [1, ${Math.min(hg, wg)}] for q ${fmtShape(q.shape)}, got ${String(m)}`,
  );
  const shift = opts.shift ?? 0;
  check(
    typeof shift === 'number' && Number.isInteger(shift) && shift >= 0 && shift < m, OP,
    `shift must be an integer in [0, windowSize) = [0, ${m}), got ${String(shift)}`,
  );
  const table = opts.relativePositionBias ?? null;
  if (table !== null) {
    checkTensor(table, OP, 'relativePositionBias');
    const t = (2 * m - 1) ** 2;
    check(
      table.rank === 2 && table.shape[0] === t && table.shape[1] === heads, OP,
      `relativePositionBias must have shape [(2M-1)^2, heads] = [${t}, ${heads}] for windowSize ${m} and q ${fmtShape(q.shape)}, got ${fmtShape(table.shape)}`,
    );
    checkSameDevice(OP, { q, relativePositionBias: table });
  }
  const scale = opts.scale ?? dim ** -0.5;
  checkFinite(scale, OP, 'scale');
  return { g: geometry(q.shape, m, shift), table, scale };
}

const WG = 64;

interface Blocks {
  /** lanes (rows of the attention matrix) per block */
  blk: number;
  /** blocks per workgroup of WG lanes */
  nblk: number;
  /** blocks per window */
  nqb: number;
  /** words of workgroup memory (rowbuf[token][lane] needs n * blk * nblk) */
  smem: number;
}

/**
 * Work blocks: a block is up to 64 rows (a multiple of 8) of one window's attention matrix, small
 * windows pack several blocks into one 64-lane workgroup, large ones are cut into several blocks so
 * that each lane's row of n logits fits in workgroup memory. WG and SMEM do not depend on the window
 * size, so every configuration shares one pipeline per entry point.
 */
function blocks(dev: Device, n: number): Blocks {
  const words = Math.floor(Math.min(dev.limits.maxComputeWorkgroupStorageSize, SMEM_BYTES) / 4);
  let blk = Math.min(Math.ceil(n / 8) * 8, WG, Math.floor(words / n));
  if (blk >= 8) blk = Math.floor(blk / 8) * 8;
  if (blk < 1) {
    throw new LimitError(`${OP}: a window of ${n} tokens needs ${n * 4} bytes of workgroup memory per row, over maxComputeWorkgroupStorageSize = ${words * 4}`);
  }
  const nblk = Math.max(1, Math.min(Math.floor(WG / blk), Math.floor(words / (n * blk))));
  return { blk, nblk, nqb: Math.ceil(n / blk), smem: words };
}

/** 'off' forces the portable kernels (tests run both paths). */
export const windowAttentionKernelConfig: { subgroups: 'auto' | 'off' } = { subgroups: 'auto' };

/**
 * The subgroup kernels (kernels/window_attention_sg.wgsl) exchange values inside clusters of 8 lanes
 * and read rows as vec4: they need the 'subgroups' feature with subgroup sizes that are multiples of 8,
 * blocks of a multiple of 8 rows (every cluster complete) and D % 4 == 0.
 */
function useSubgroups(dev: Device, blk: number, dim: number): boolean {
  if (windowAttentionKernelConfig.subgroups === 'off' || !dev.features.has('subgroups') || blk % 8 !== 0 || dim % 4 !== 0) return false;
  const { min, max } = dev.subgroupSizes;
  return min >= 8 && min % 8 === 0 && max % 8 === 0;
}

/**
 * Swin (shifted) window attention on spatially laid out tokens q/k/v [B, Hgrid, Wgrid, heads, D];
 * returns [B, Hgrid, Wgrid, heads, D]. See the file header for the exact semantics (timm's), the
 * padding of grids that are not multiples of windowSize, and the -100 region mask.
 */
export function windowAttention(q: Tensor, k: Tensor, v: Tensor, opts: WindowAttentionOptions): Tensor {
  const { g, table, scale } = validate(q, k, v, opts);
  const dev = q.device;
  const bl = blocks(dev, g.n);
  const fwdItems = bl.nqb * g.nwin * g.B * g.heads;
  const inputs = table ? [q, k, v, table] : [q, k, v];
  const grad = needsGrad(...inputs);
  const KF = useSubgroups(dev, bl.blk, g.dim) ? KS : K;
  const base = {
    batch: g.B, hg: g.hg, wg: g.wg, heads: g.heads, dim: g.dim, m: g.m, shift: g.shift, hp: g.hp, wp: g.wp,
    nww: g.nww, nwin: g.nwin, n: g.n, blk: bl.blk, nblk: bl.nblk, lanes: bl.blk * bl.nblk, nqb: bl.nqb,
    has_bias: table ? 1 : 0, tsize: (2 * g.m - 1) ** 2, scale, inv_m: 1 / g.m,
  };
  const overrides = { WG, SMEM: bl.smem };
  const out = dev.empty(q.shape);
  // log-sum-exp of every query row (saved for backward)
  const lse = dev.empty([g.B, g.hg, g.wg, g.heads]);
  dev.dispatch(KF, 'window_attention_fwd', {
    bindings: { q, k, v, table: table ?? q, lse_out: lse, out }, // q: read only, never as a table (has_bias 0)
    uniforms: { ...base, items: fwdItems, want_ds: 0 },
    overrides,
    workgroups: dev.grid1d(fwdItems, bl.nblk),
  });
  if (!grad) {
    lse.dispose();
    return out;
  }
  return record(OP, out, inputs, (go) => {
    const wantTable = !!table?.requiresGrad;
    const wantKV = k.requiresGrad || v.requiresGrad;
    const wantDs = wantTable || wantKV;
    const uniforms = { ...base, items: fwdItems, want_ds: wantDs ? 1 : 0 };
    const dq = dev.empty(q.shape);
    // dLogit of every (image, head, window): read by bwd_kv (dk) and bwd_table
    const ds = dev.empty([wantDs ? g.B * g.heads * g.nwin * g.n * g.n : 1]);
    dev.dispatch(KF, 'window_attention_bwd_q', {
      bindings: { q, k, v, table: table ?? q, lse, o: out, go, dq, ds },
      uniforms,
      overrides,
      workgroups: dev.grid1d(fwdItems, bl.nblk),
    });
    let dk: Tensor | null = null;
    let dv: Tensor | null = null;
    if (wantKV) {
      dk = dev.empty(k.shape);
      dv = dev.empty(v.shape);
      dev.dispatch(KF, 'window_attention_bwd_kv', {
        bindings: { q, k, table: table ?? q, lse, go, ds_in: ds, dk, dv },
        uniforms,
        overrides,
        workgroups: dev.grid1d(fwdItems, bl.nblk),
      });
    }
    let dtable: Tensor | null = null;
    if (wantTable) {
      const gsums = dev.empty([g.heads, g.n, g.n]);
      dev.dispatch(K, 'window_attention_bwd_sum', {
        bindings: { gs: ds, gsums },
        uniforms,
        overrides: { WG: WG_TABLE },
        workgroups: dev.grid1d(gsums.size, WG_TABLE),
      });
      dtable = dev.empty(table!.shape);
      dev.dispatch(K, 'window_attention_bwd_table', {
        bindings: { gs: gsums, dtable },
        uniforms,
        overrides: { WG: WG_TABLE },
        workgroups: dev.grid1d(table!.size, WG_TABLE),
      });
      gsums.dispose();
    }
    ds.dispose();
    // grads nobody asked for go back to the pool now
    const keepIf = (t: Tensor | null, want: boolean): Tensor | null => {
      if (t && !want) t.dispose();
      return want ? t : null;
    };
    const res = [keepIf(dq, q.requiresGrad), keepIf(dk, k.requiresGrad), keepIf(dv, v.requiresGrad)];
    if (table) res.push(dtable);
    return res;
  });
}

// ---- float64 references -------------------------------------------------------------------------
// Written from the definition, the way timm computes it: an explicit rolled index map, the img_mask
// built with Python-style slices, window partition, attention per window, then the outputs are written
// back through the same index map (the reverse roll). Padded positions map to no token.

export interface WindowAttentionRefOptions {
  windowSize: number;
  shift?: number;
  relativePositionBias?: Arr | null;
  scale?: number;
}

/** Python slice [start:end] of a length-len axis, as a half-open range. */
function pySlice(start: number, end: number | null, len: number): [number, number] {
  const norm = (x: number): number => Math.min(Math.max(x < 0 ? x + len : x, 0), len);
  return [norm(start), end === null ? len : norm(end)];
}

interface RefWindows {
  g: WindowGeometry;
  /** per window, per local token: the spatial token (y * wg + x) or -1 for padding */
  tokens: Int32Array[];
  /** per window, per local token: Swin's img_mask region id (0 everywhere when shift = 0) */
  regions: Int32Array[];
  index: Int32Array;
}

function refWindows(shape: readonly number[], M: number, shift: number): RefWindows {
  const g = geometry(shape, M, shift);
  const { hp, wp, hg, wg } = g;
  // rolled[R][C]: the (padded) source token of rolled position (R, C): torch.roll by -s reads x[(R + s) % Hp]
  const rolled = new Int32Array(hp * wp);
  for (let R = 0; R < hp; R++) {
    for (let C = 0; C < wp; C++) {
      const y = (R + shift) % hp;
      const x = (C + shift) % wp;
      rolled[R * wp + C] = y < hg && x < wg ? y * wg + x : -1;
    }
  }
  const img = new Int32Array(hp * wp);
  if (shift > 0) {
    let cnt = 0;
    const hs: [number, number | null][] = [[0, -M], [-M, -shift], [-shift, null]];
    for (const [h0, h1] of hs) {
      for (const [w0, w1] of hs) {
        const [ya, yb] = pySlice(h0, h1, hp);
        const [xa, xb] = pySlice(w0, w1, wp);
        for (let y = ya; y < yb; y++) for (let x = xa; x < xb; x++) img[y * wp + x] = cnt;
        cnt++;
      }
    }
  }
  const tokens: Int32Array[] = [];
  const regions: Int32Array[] = [];
  for (let wy = 0; wy < g.nwh; wy++) {
    for (let wx = 0; wx < g.nww; wx++) {
      const t = new Int32Array(g.n);
      const r = new Int32Array(g.n);
      for (let a = 0; a < M; a++) {
        for (let c = 0; c < M; c++) {
          const at = (wy * M + a) * wp + (wx * M + c);
          t[a * M + c] = rolled[at]!;
          r[a * M + c] = img[at]!;
        }
      }
      tokens.push(t);
      regions.push(r);
    }
  }
  return { g, tokens, regions, index: relativePositionIndex(M) };
}

function forEachWindow(
  q: Arr, k: Arr, opts: WindowAttentionRefOptions,
  fn: (w: RefWindows, b: number, win: number, h: number, P: Float64Array, rowOf: (t: number) => number) => void,
): RefWindows {
  const w = refWindows(q.shape, opts.windowSize, opts.shift ?? 0);
  const { g } = w;
  const scale = opts.scale ?? g.dim ** -0.5;
  const table = opts.relativePositionBias ?? null;
  const n = g.n;
  const P = new Float64Array(n * n);
  for (let b = 0; b < g.B; b++) {
    for (let win = 0; win < g.nwin; win++) {
      const toks = w.tokens[win]!;
      const regs = w.regions[win]!;
      for (let h = 0; h < g.heads; h++) {
        const rowOf = (t: number): number => ((b * g.hg * g.wg + toks[t]!) * g.heads + h) * g.dim;
        P.fill(0);
        for (let i = 0; i < n; i++) {
          if (toks[i]! < 0) continue;
          let mx = -Infinity;
          for (let j = 0; j < n; j++) {
            if (toks[j]! < 0) continue;
            let s = 0;
            const qi = rowOf(i);
            const kj = rowOf(j);
            for (let d = 0; d < g.dim; d++) s += q.data[qi + d]! * k.data[kj + d]!;
            s *= scale;
            if (table) s += table.data[w.index[i * n + j]! * g.heads + h]!;
            if (regs[i] !== regs[j]) s += -100;
            P[i * n + j] = s;
            mx = Math.max(mx, s);
          }
          let l = 0;
          for (let j = 0; j < n; j++) {
            if (toks[j]! < 0) continue;
            const e = Math.exp(P[i * n + j]! - mx);
            P[i * n + j] = e;
            l += e;
          }
          for (let j = 0; j < n; j++) P[i * n + j]! /= l;
        }
        fn(w, b, win, h, P, rowOf);
      }
    }
  }
  return w;
}

/** Float64 reference of windowAttention (same options, on Arr). */
export function windowAttentionRef(q: Arr, k: Arr, v: Arr, opts: WindowAttentionRefOptions): Arr {
  const out = arr(q.shape);
  forEachWindow(q, k, opts, (w, _b, win, _h, P, rowOf) => {
    const { n, dim } = w.g;
    const toks = w.tokens[win]!;
    for (let i = 0; i < n; i++) {
      if (toks[i]! < 0) continue;
      const oi = rowOf(i);
      for (let j = 0; j < n; j++) {
        if (toks[j]! < 0) continue;
        const pij = P[i * n + j]!;
        const vj = rowOf(j);
        for (let d = 0; d < dim; d++) out.data[oi + d]! += pij * v.data[vj + d]!;
      }
    }
  });
  return out;
}

/** Float64 reference backward: [dq, dk, dv, dTable (null without a table)] for output gradient g. */
export function windowAttentionRefBackward(
  g: Arr, q: Arr, k: Arr, v: Arr, opts: WindowAttentionRefOptions,
): [Arr, Arr, Arr, Arr | null] {
  const dq = arr(q.shape);
  const dk = arr(k.shape);
  const dv = arr(v.shape);
  const table = opts.relativePositionBias ?? null;
  const dt = table ? arr(table.shape) : null;
  const scale = opts.scale ?? (q.shape[4] ?? 1) ** -0.5;
  forEachWindow(q, k, opts, (w, _b, win, h, P, rowOf) => {
    const { n, dim, heads } = w.g;
    const toks = w.tokens[win]!;
    const dS = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      if (toks[i]! < 0) continue;
      const gi = rowOf(i);
      // dP_ij = g_i . v_j ; dS = P (dP - sum_j P dP)
      let dot = 0;
      for (let j = 0; j < n; j++) {
        dS[j] = 0;
        if (toks[j]! < 0) continue;
        const vj = rowOf(j);
        let s = 0;
        for (let d = 0; d < dim; d++) s += g.data[gi + d]! * v.data[vj + d]!;
        dS[j] = s;
        dot += P[i * n + j]! * s;
        for (let d = 0; d < dim; d++) dv.data[vj + d]! += P[i * n + j]! * g.data[gi + d]!;
      }
      for (let j = 0; j < n; j++) {
        if (toks[j]! < 0) continue;
        const ds = P[i * n + j]! * (dS[j]! - dot);
        const kj = rowOf(j);
        const qi = rowOf(i);
        for (let d = 0; d < dim; d++) {
          dq.data[qi + d]! += scale * ds * k.data[kj + d]!;
          dk.data[kj + d]! += scale * ds * q.data[qi + d]!;
        }
        if (dt) dt.data[w.index[i * n + j]! * heads + h]! += ds;
      }
    }
  });
  return [dq, dk, dv, dt];
}
