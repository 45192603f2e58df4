// Composite oracle for ops.windowAttention, written plainly from core ops the way timm's Swin does it:
//   pad (bottom/right, to multiples of M) -> torch.roll(x, (-s, -s)) -> window_partition
//   -> attention per window: (q * scale) @ k^T + relative position bias + mask -> softmax -> @ v
//   -> window_reverse -> roll back (+s, +s) -> crop.
// The mask is Swin's img_mask construction (regions from slices (0,-M), (-M,-s), (-s,None) on both
// axes, -100 between different regions), plus -1e9 on padded keys (exp underflows to exactly 0 in
// f32 and f64, so padded keys get weight exactly 0, as the fused kernel's exclusion).
// The bias is gathered by a constant one-hot matrix E [N*N, (2M-1)^2] built from timm's meshgrid
// construction of relative_position_index, then E @ table: gradients reach the table through matmul.
//
// Only type imports: the caller passes the `ops` namespace, so this file runs against src/ (tests)
// and against the built package (bench, transpiled at run time) alike.
import type { Tensor } from '../../src/index.js';

/** The subset of `ops` the composite uses (structural, so both src/ and dist/ namespaces fit). */
export interface CompositeOps {
  matmul(a: Tensor, b: Tensor): Tensor;
  softmax(x: Tensor, dim?: number): Tensor;
  add(a: Tensor, b: Tensor | number): Tensor;
  mul(a: Tensor, b: Tensor | number): Tensor;
  reshape(x: Tensor, shape: readonly number[]): Tensor;
  permute(x: Tensor, dims: readonly number[]): Tensor;
  transpose(x: Tensor, dim0?: number, dim1?: number): Tensor;
  slice(x: Tensor, dim: number, start: number, end?: number, step?: number): Tensor;
  concat(xs: readonly Tensor[], dim?: number): Tensor;
}

export interface CompositeOptions {
  windowSize: number;
  shift?: number;
  relativePositionBias?: Tensor | null;
  scale?: number;
}

/** Python slice [start:end] over an axis of length len, as [lo, hi). */
function pySlice(start: number, end: number | null, len: number): [number, number] {
  const norm = (x: number): number => Math.min(Math.max(x < 0 ? x + len : x, 0), len);
  return [norm(start), end === null ? len : norm(end)];
}

/** torch.roll of a [H, W] map by (sh, sw). */
function rollMap(a: Float64Array, H: number, W: number, sh: number, sw: number): Float64Array {
  const out = new Float64Array(H * W);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) out[(((y + sh) % H + H) % H) * W + (((x + sw) % W + W) % W)] = a[y * W + x]!;
  }
  return out;
}

/** window_partition of a [Hp, Wp] map: [nWin, M*M]. */
function partitionMap(a: Float64Array, Hp: number, Wp: number, M: number): Float64Array[] {
  const wins: Float64Array[] = [];
  for (let wy = 0; wy < Hp / M; wy++) {
    for (let wx = 0; wx < Wp / M; wx++) {
      const w = new Float64Array(M * M);
      for (let r = 0; r < M; r++) for (let c = 0; c < M; c++) w[r * M + c] = a[(wy * M + r) * Wp + wx * M + c]!;
      wins.push(w);
    }
  }
  return wins;
}

/**
 * The additive attention mask [nWin, N, N] (row-major Float32Array): Swin's SW-MSA region mask
 * (-100, as timm's attn_mask) plus -1e9 on keys that are padding. All zeros for shift 0 without padding.
 */
export function swinAttentionMask(Hg: number, Wg: number, M: number, s: number): Float32Array {
  const Hp = Math.ceil(Hg / M) * M;
  const Wp = Math.ceil(Wg / M) * M;
  const N = M * M;
  // img_mask on the (padded) rolled map, exactly as timm builds it
  const img = new Float64Array(Hp * Wp);
  if (s > 0) {
    let cnt = 0;
    const sl: [number, number | null][] = [[0, -M], [-M, -s], [-s, null]];
    for (const h of sl) {
      for (const w of sl) {
        const [y0, y1] = pySlice(h[0], h[1], Hp);
        const [x0, x1] = pySlice(w[0], w[1], Wp);
        for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) img[y * Wp + x] = cnt;
        cnt++;
      }
    }
  }
  const regionWins = partitionMap(img, Hp, Wp, M);
  // padding indicator on the padded map, rolled like the tokens
  const pad = new Float64Array(Hp * Wp);
  for (let y = 0; y < Hp; y++) for (let x = 0; x < Wp; x++) pad[y * Wp + x] = y >= Hg || x >= Wg ? 1 : 0;
  const padWins = partitionMap(rollMap(pad, Hp, Wp, -s, -s), Hp, Wp, M);
  const out = new Float32Array(regionWins.length * N * N);
  regionWins.forEach((mw, w) => {
    for (let i = 0; i < N; i++) {
      for (let j = 0; j < N; j++) {
        let v = mw[i] !== mw[j] ? -100 : 0;
        if (padWins[w]![j]) v += -1e9;
        out[(w * N + i) * N + j] = v;
      }
    }
  });
  return out;
}

/** One-hot gather matrix [N*N, (2M-1)^2] of timm's relative_position_index (meshgrid construction). */
export function relativeBiasOneHot(M: number): Float32Array {
  const N = M * M;
  const T = (2 * M - 1) ** 2;
  // coords_flatten: [2, N] with torch.meshgrid(arange(M), arange(M), indexing='ij')
  const ch = Array.from({ length: N }, (_, t) => Math.floor(t / M));
  const cw = Array.from({ length: N }, (_, t) => t % M);
  const E = new Float32Array(N * N * T);
  for (let i = 0; i < N; i++) {
    for (let j = 0; j < N; j++) {
      const rel0 = ch[i]! - ch[j]! + (M - 1);
      const rel1 = cw[i]! - cw[j]! + (M - 1);
      E[(i * N + j) * T + rel0 * (2 * M - 1) + rel1] = 1;
    }
  }
  return E;
}

/** torch.roll(x, shift, dim) from slice + concat. */
function roll(ops: CompositeOps, x: Tensor, shift: number, dim: number): Tensor {
  const L = x.shape[dim]!;
  const s = ((shift % L) + L) % L;
  if (s === 0) return x;
  return ops.concat([ops.slice(x, dim, L - s, L), ops.slice(x, dim, 0, L - s)], dim);
}

/** Zero padding at the end of dim up to length len. */
function padTo(ops: CompositeOps, x: Tensor, dim: number, len: number): Tensor {
  const cur = x.shape[dim]!;
  if (cur === len) return x;
  const shape = [...x.shape];
  shape[dim] = len - cur;
  return ops.concat([x, x.device.zeros(shape)], dim);
}

/** Window attention from core ops; q/k/v [B, Hg, Wg, heads, D] -> [B, Hg, Wg, heads, D]. */
export function windowAttentionComposite(ops: CompositeOps, q: Tensor, k: Tensor, v: Tensor, opts: CompositeOptions): Tensor {
  const [B, Hg, Wg, heads, D] = q.shape as [number, number, number, number, number];
  const M = opts.windowSize;
  const s = opts.shift ?? 0;
  const scale = opts.scale ?? D ** -0.5;
  const Hp = Math.ceil(Hg / M) * M;
  const Wp = Math.ceil(Wg / M) * M;
  const nH = Hp / M;
  const nW = Wp / M;
  const nWin = nH * nW;
  const N = M * M;
  const dev = q.device;

  const partition = (x: Tensor): Tensor => {
    const padded = padTo(ops, padTo(ops, x, 1, Hp), 2, Wp);
    const rolled = roll(ops, roll(ops, padded, -s, 1), -s, 2);
    const w = ops.reshape(rolled, [B, nH, M, nW, M, heads, D]);
    const p = ops.permute(w, [0, 1, 3, 5, 2, 4, 6]); // [B, nH, nW, heads, M, M, D]
    return ops.reshape(p, [B * nWin * heads, N, D]);
  };
  const qw = ops.mul(partition(q), scale);
  const kw = partition(k);
  const vw = partition(v);

  let attn = ops.reshape(ops.matmul(qw, ops.transpose(kw, -2, -1)), [B, nWin, heads, N, N]);
  if (opts.relativePositionBias) {
    const E = dev.tensor(relativeBiasOneHot(M), [N * N, (2 * M - 1) ** 2]);
    const bias = ops.permute(ops.reshape(ops.matmul(E, opts.relativePositionBias), [N, N, heads]), [2, 0, 1]);
    attn = ops.add(attn, bias); // [heads, N, N] broadcast over B, windows
  }
  if (s > 0 || Hp !== Hg || Wp !== Wg) {
    const mask = dev.tensor(swinAttentionMask(Hg, Wg, M, s), [nWin, 1, N, N]);
    attn = ops.add(attn, mask); // broadcast over B and heads
  }
  const probs = ops.reshape(ops.softmax(attn, -1), [B * nWin * heads, N, N]);
  const ow = ops.matmul(probs, vw); // [B*nWin*heads, N, D]
  // window_reverse, roll back, crop
  const merged = ops.reshape(ops.permute(ops.reshape(ow, [B, nH, nW, heads, M, M, D]), [0, 1, 4, 2, 5, 3, 6]), [B, Hp, Wp, heads, D]);
  const back = roll(ops, roll(ops, merged, s, 1), s, 2);
  const cropH = Hp !== Hg ? ops.slice(back, 1, 0, Hg) : back;
  return Wp !== Wg ? ops.slice(cropH, 2, 0, Wg) : cropH;
}
