enable subgroups;
// Teams (8 lanes) of one workgroup may run different tile counts; shuffles only read lanes of the
// caller's own team, which are all active (teams return and loop together).
diagnostic(off, subgroup_uniformity);

// Fused scaled-dot-product attention, FlashAttention-2 style, forward and backward.
//
//   S = scale * Q K^T + bias,  P = softmax(S) over the unmasked keys,  O = dropout(P) V
//
// q [B, H, Nq, D], k/v [B, H, Nk, D], contiguous. No kernel materialises the Nq x Nk score matrix;
// the only Nq x Nk buffer is dmask (dS), written only when a float mask requires grad.
//
// Forward: online softmax per query row (running max m and sum l; the output accumulator is
// rescaled by exp(m_old - m_new) per key tile); writes O and the row logsumexp lse = m + log(l).
// Backward (FlashAttention-2), three passes, none with atomics (WGSL has no float atomics and the
// gradients must be deterministic):
//   attention_bwd_prep*: ld[i] = (lse_i, delta_i = sum_d dO_i * O_i)
//   attention_bwd_dq*:   query-major; recompute P = exp(S - lse), dP = dO V^T, dS = P (dP - delta),
//                        dQ = scale * dS K; optionally writes dS (the gradient of a float mask)
//   attention_bwd_dkdv*: key-major; the same P and dS per (i, j): dV = P~^T dO, dK = scale * dS^T Q
//
// Masking (one set of helpers, so backward sees exactly the forward's mask):
// - key j of row i is masked when j >= keyLengths[b] (clamped to [0, Nk]), when causal and j > i
//   (top-left aligned like PyTorch's is_causal, also when Nq != Nk), when a bool mask is 0, or when
//   an additive float mask value is not finite (-inf). A score at or below -FLT_MAX counts as
//   masked (NEG_BIG is the sentinel). The mask is indexed through broadcast strides over (b,h,i,j).
// - a row with no unmasked key gets O = 0, lse = 0 and zero gradients (never NaN).
// Dropout: keep(b,h,i,j) = pcg(j + pcg(i + pcg(bh + pcg(seed)))) >= drop_thresh (a counter-based
// hash: backward regenerates the forward's keep-mask exactly); kept weights are scaled by
// keep_scale = 1 / (1 - p). The softmax normaliser l sums the undropped P.
//
// Two kernel families share this file:
// 1. Portable (*_generic, attention_bwd_prep; everything above the "subgroup kernels" marker,
//    valid without `enable subgroups`): any head dim. An invocation owns one row (query or key) and
//    DC = 8 output columns, loops over the other rows one at a time and recomputes the scores per
//    column chunk. Simple and correct everywhere; the fallback.
// 2. Subgroup kernels (*_sg; D % 4 == 0, subgroups of at least 8 lanes): register tiling with
//    operands shared through subgroup shuffles (the layout of kernels/matmul.wgsl's subgroup path).
//    A team of 8 lanes owns 32 rows (lane l: rows r0 + l + 8m, m < 4); the other operand streams
//    in tiles of 32 rows (fwd, dq: keys) or 16 rows (dkdv: queries): lane l loads rows t + l + 8g
//    (one vec4 per 4 columns) and subgroupShuffle hands each to every lane of the team, where it
//    meets the lane's 4 rows: 16 FMAs per shuffled vec4. A tile's scores (4 rows x 32 keys) live
//    in registers (mat4x4s, static indices only); the accumulator rows (O, dQ, or dK and dV) are
//    read-modified-written once per tile, 4 columns at a time, in workgroup memory or storage
//    (see ACC_ROW below).
//    Why: on lavapipe (8 lanes across invocations) every load, uniform or not, global or workgroup,
//    is a per-lane scalar loop (~60 ns per vec4 per 8 lanes from storage, ~25 ns from workgroup
//    memory, ~85 FMAs' worth) while a shuffle is a register permute; what counts is FMAs per load
//    (~40 here). On GPUs it is warp-level register tiling (coalesced vec4 loads, shuffles instead
//    of shared-memory traffic). Teams of 8 lanes (shuffle index (lane & ~7) | t) work for any
//    subgroup size that is a multiple of 8 with invocations laid out linearly, as implementations
//    do for 1-D workgroups; WG = 8 * teams is an override.
//    Compile time matters on llvmpipe (minutes for the first version): every load/store site is
//    expanded into a per-lane loop, so per-element mask reads and dS stores sit in one runtime-
//    length loop each (mask_tile), and dynamically indexed private arrays are avoided (they become
//    select ladders).

override WG: u32 = 64u;  // invocations per workgroup (subgroup kernels: 8 per team)
const DC: u32 = 8u;      // generic kernels: output columns per invocation

const NEG_BIG: f32 = -3.4028234e38;

const F_CAUSAL: u32 = 1u;
const F_KEYLEN: u32 = 2u;
const F_DROPOUT: u32 = 4u;
const F_DMASK: u32 = 8u;
const F_ACC_SHARED: u32 = 16u; // subgroup kernels: accumulators in workgroup memory

struct Params {
  bh: u32,            // B * H
  heads: u32,         // H
  nq: u32,
  nk: u32,
  scale: f32,
  seed: u32,
  drop_thresh: u32,   // keep iff hash >= drop_thresh (0: keep all)
  keep_scale: f32,    // 1 / (1 - p)
  mstride: vec4<u32>, // mask strides over (b, h, i, j); 0 on broadcast dims
  flags: u32,         // F_*
  mask_kind: u32,     // 0 none, 1 bool (u32 0/1), 2 additive f32 (bits)
  hd: u32,            // head dim D
  nchunk: u32,        // generic kernels: ceil(D / 8) column chunks
}

@group(0) @binding(10) var<uniform> p: Params;

// generic (scalar)
@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(7) var<storage, read> dout: array<f32>;
@group(0) @binding(5) var<storage, read_write> dq: array<f32>;
@group(0) @binding(5) var<storage, read_write> dk: array<f32>;
@group(0) @binding(6) var<storage, read_write> dv: array<f32>;
// shared by both families
@group(0) @binding(3) var<storage, read> mask: array<u32>;        // bool as u32 0/1, or f32 bits
@group(0) @binding(4) var<storage, read> klen: array<i32>;        // [B]
@group(0) @binding(6) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(8) var<storage, read> ld: array<vec2<f32>>;    // (lse, delta) per row
@group(0) @binding(9) var<storage, read_write> dmask: array<f32>; // dS [B, H, Nq, Nk]
// prep
@group(0) @binding(0) var<storage, read> o: array<f32>;
@group(0) @binding(1) var<storage, read> lse: array<f32>;
@group(0) @binding(2) var<storage, read_write> ld_out: array<vec2<f32>>;

// ---- shared helpers ------------------------------------------------------------------------------

// PCG output permutation (RXS-M-XS) used as a 32-bit integer hash.
fn pcg(x: u32) -> u32 {
  let s = x * 747796405u + 2891336453u;
  let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
  return (w >> 22u) ^ w;
}

fn row_hash(bh: u32, i: u32) -> u32 {
  return pcg(i + pcg(bh + pcg(p.seed)));
}

// dropout multiplier of (row hash rh, key j): 0 or keep_scale; 1 without dropout
fn drop_mul(rh: u32, j: u32) -> f32 {
  if ((p.flags & F_DROPOUT) == 0u) { return 1.0; }
  return select(0.0, p.keep_scale, pcg(j + rh) >= p.drop_thresh);
}

fn grid_bh(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y + wid.z * nwg.y;
}

// keys j >= key_limit(b, i) are masked for row i (key lengths and the causal diagonal)
fn key_limit(b: u32, i: u32) -> u32 {
  var e = p.nk;
  if ((p.flags & F_KEYLEN) != 0u) { e = min(e, u32(clamp(klen[b], 0, i32(p.nk)))); }
  if ((p.flags & F_CAUSAL) != 0u) { e = min(e, i + 1u); }
  return e;
}

// the mask tensor applied to score s of (b, h, i, j); s == NEG_BIG (already masked, maybe j >= nk)
// stays masked without reading the mask
fn apply_mask(s: f32, b: u32, h: u32, i: u32, j: u32) -> f32 {
  if (p.mask_kind == 0u || s <= NEG_BIG) { return s; }
  let mv = mask[b * p.mstride.x + h * p.mstride.y + i * p.mstride.z + j * p.mstride.w];
  if (p.mask_kind == 1u) { return select(NEG_BIG, s, mv != 0u); }
  if ((mv & 0x7f800000u) == 0x7f800000u) { return NEG_BIG; }  // -inf (any non-finite) masks
  return max(s + bitcast<f32>(mv), NEG_BIG);
}

// the score of (b, h, i, j) from its scaled dot product s, NEG_BIG when masked; lim = key_limit(b, i)
fn masked_score(s: f32, b: u32, h: u32, i: u32, j: u32, lim: u32) -> f32 {
  if (j >= lim) { return NEG_BIG; }
  return apply_mask(s, b, h, i, j);
}

// ---- portable kernels: any head dim --------------------------------------------------------------
// grid x = row blocks * nchunk; an invocation owns a row and output columns [d0, d0 + DC).

fn dot_qk(qr: u32, kr: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < p.hd; d++) { s += q[qr * p.hd + d] * k[kr * p.hd + d]; }
  return s;
}

fn dot_gv(qr: u32, vr: u32) -> f32 {
  var s = 0.0;
  for (var d = 0u; d < p.hd; d++) { s += dout[qr * p.hd + d] * v[vr * p.hd + d]; }
  return s;
}

// Generic kernels handle 8 output columns d0..d0+7 of a row at a time; indices are clamped to the
// row's last column (only valid columns are stored). One function per buffer: a helper that
// touched all of them would make every entry point bind all of them.
struct Cols8 {
  a: vec4<u32>,
  b: vec4<u32>,
}
fn cols8(base: u32, d0: u32) -> Cols8 {
  let last = vec4<u32>(p.hd - 1u);
  let c = vec4<u32>(d0, d0 + 1u, d0 + 2u, d0 + 3u);
  return Cols8(min(c, last) + vec4<u32>(base), min(c + vec4<u32>(4u), last) + vec4<u32>(base));
}
fn v8(base: u32, d0: u32) -> mat2x4<f32> {
  let c = cols8(base, d0);
  let a = c.a;
  let b = c.b;
  return mat2x4<f32>(vec4<f32>(v[a.x], v[a.y], v[a.z], v[a.w]), vec4<f32>(v[b.x], v[b.y], v[b.z], v[b.w]));
}
fn k8(base: u32, d0: u32) -> mat2x4<f32> {
  let c = cols8(base, d0);
  let a = c.a;
  let b = c.b;
  return mat2x4<f32>(vec4<f32>(k[a.x], k[a.y], k[a.z], k[a.w]), vec4<f32>(k[b.x], k[b.y], k[b.z], k[b.w]));
}
fn q8(base: u32, d0: u32) -> mat2x4<f32> {
  let c = cols8(base, d0);
  let a = c.a;
  let b = c.b;
  return mat2x4<f32>(vec4<f32>(q[a.x], q[a.y], q[a.z], q[a.w]), vec4<f32>(q[b.x], q[b.y], q[b.z], q[b.w]));
}
fn g8(base: u32, d0: u32) -> mat2x4<f32> {
  let c = cols8(base, d0);
  let a = c.a;
  let b = c.b;
  return mat2x4<f32>(vec4<f32>(dout[a.x], dout[a.y], dout[a.z], dout[a.w]), vec4<f32>(dout[b.x], dout[b.y], dout[b.z], dout[b.w]));
}
// number of valid columns from d0 (<= 8)
fn ncols(d0: u32) -> u32 {
  return min(8u, p.hd - d0);
}

@compute @workgroup_size(WG)
fn attention_fwd_generic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                         @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = grid_bh(wid, nwg);
  if (bh >= p.bh) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  let chunk = wid.x % p.nchunk;
  let r0 = (wid.x / p.nchunk) * WG;
  let d0 = chunk * DC;
  let i = min(r0 + lid, p.nq - 1u);
  let row_ok = r0 + lid < p.nq;
  let lim = key_limit(b, i);
  let kend = key_limit(b, min(r0 + WG, p.nq) - 1u);  // the largest limit in the block
  let rh = row_hash(bh, i);
  let qr = bh * p.nq + i;
  let kvb = bh * p.nk;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var m = NEG_BIG;
  var l = 0.0;
  for (var j = 0u; j < kend; j++) {
    let s = masked_score(dot_qk(qr, kvb + j) * p.scale, b, h, i, j, lim);
    let mt = max(m, s);
    let alpha = exp(m - mt);
    let pj = select(0.0, exp(s - mt), s > NEG_BIG);
    l = l * alpha + pj;
    m = mt;
    let pd = pj * drop_mul(rh, j);
    let x = v8((kvb + j) * p.hd, d0);
    a0 = a0 * alpha + pd * x[0];
    a1 = a1 * alpha + pd * x[1];
  }
  if (row_ok) {
    let inv = select(0.0, 1.0 / l, l > 0.0);
    let res = mat2x4<f32>(a0 * inv, a1 * inv);
    for (var c = 0u; c < ncols(d0); c++) { out[qr * p.hd + d0 + c] = res[c / 4u][c % 4u]; }
    if (chunk == 0u) { lse_out[qr] = select(0.0, m + log(l), l > 0.0); }
  }
}

// ld[row] = (lse, delta = sum_d dO * O); one invocation per row, any head dim
@compute @workgroup_size(WG)
fn attention_bwd_prep(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.bh * p.nq) { return; }
  var d = 0.0;
  let base = r * p.hd;
  for (var c = 0u; c < p.hd; c++) { d += o[base + c] * dout[base + c]; }
  ld_out[r] = vec2<f32>(lse[r], d);
}

@compute @workgroup_size(WG)
fn attention_bwd_dq_generic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                            @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = grid_bh(wid, nwg);
  if (bh >= p.bh) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  let chunk = wid.x % p.nchunk;
  let r0 = (wid.x / p.nchunk) * WG;
  let d0 = chunk * DC;
  let i = min(r0 + lid, p.nq - 1u);
  let row_ok = r0 + lid < p.nq;
  let lim = key_limit(b, i);
  let kend = key_limit(b, min(r0 + WG, p.nq) - 1u);
  let rh = row_hash(bh, i);
  let qr = bh * p.nq + i;
  let kvb = bh * p.nk;
  let st = ld[qr];
  let write_ds = (p.flags & F_DMASK) != 0u && row_ok && chunk == 0u;
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  for (var j = 0u; j < kend; j++) {
    let s = masked_score(dot_qk(qr, kvb + j) * p.scale, b, h, i, j, lim);
    let pj = select(0.0, exp(s - st.x), s > NEG_BIG);
    let ds = pj * (dot_gv(qr, kvb + j) * drop_mul(rh, j) - st.y);
    if (write_ds) { dmask[qr * p.nk + j] = ds; }
    let x = k8((kvb + j) * p.hd, d0);
    a0 += ds * x[0];
    a1 += ds * x[1];
  }
  if (row_ok) {
    let res = mat2x4<f32>(a0 * p.scale, a1 * p.scale);
    for (var c = 0u; c < ncols(d0); c++) { dq[qr * p.hd + d0 + c] = res[c / 4u][c % 4u]; }
  }
}

@compute @workgroup_size(WG)
fn attention_bwd_dkdv_generic(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                              @builtin(num_workgroups) nwg: vec3<u32>) {
  let bh = grid_bh(wid, nwg);
  if (bh >= p.bh) { return; }
  let b = bh / p.heads;
  let h = bh % p.heads;
  let chunk = wid.x % p.nchunk;
  let c0 = (wid.x / p.nchunk) * WG;
  let d0 = chunk * DC;
  let j = min(c0 + lid, p.nk - 1u);
  let key_ok = c0 + lid < p.nk;
  // queries that can see a key of this block: causal starts at the block's first key; a block
  // entirely past keyLengths[b] is seen by none
  var qs = 0u;
  if ((p.flags & F_CAUSAL) != 0u) { qs = min(c0, p.nq); }
  var qe = p.nq;
  if ((p.flags & F_KEYLEN) != 0u && i32(c0) >= klen[b]) { qe = qs; }
  let qbase = bh * p.nq;
  let kr = bh * p.nk + j;
  var k0 = vec4<f32>(0.0);
  var k1 = vec4<f32>(0.0);
  var v0 = vec4<f32>(0.0);
  var v1 = vec4<f32>(0.0);
  for (var i = qs; i < qe; i++) {
    let qr = qbase + i;
    let st = ld[qr];
    let s = masked_score(dot_qk(qr, kr) * p.scale, b, h, i, j, key_limit(b, i));
    let pj = select(0.0, exp(s - st.x), s > NEG_BIG);
    let dm = drop_mul(row_hash(bh, i), j);
    let ds = pj * (dot_gv(qr, kr) * dm - st.y);
    let pv = pj * dm;
    let g = g8(qr * p.hd, d0);
    let x = q8(qr * p.hd, d0);
    v0 += pv * g[0];
    v1 += pv * g[1];
    k0 += ds * x[0];
    k1 += ds * x[1];
  }
  if (key_ok) {
    let rk = mat2x4<f32>(k0 * p.scale, k1 * p.scale);
    let rv = mat2x4<f32>(v0, v1);
    for (var c = 0u; c < ncols(d0); c++) {
      dk[kr * p.hd + d0 + c] = rk[c / 4u][c % 4u];
      dv[kr * p.hd + d0 + c] = rv[c / 4u][c % 4u];
    }
  }
}

// ==== subgroup kernels (need `enable subgroups`; TS cuts the portable module above this line) ====

@group(0) @binding(0) var<storage, read> q4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> out4: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> dout4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dq4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> dk4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> dv4: array<vec4<f32>>;
@group(0) @binding(0) var<storage, read> o4: array<vec4<f32>>;

// Accumulator rows (O, dQ, or dK and dV) of the team's 32 own rows: in workgroup memory when the
// F_ACC_SHARED flag is set (one team per workgroup and ACC_LEN vec4s of workgroup memory; on
// lavapipe a per-lane workgroup access costs ~40% of a storage one), else read-modified-written in
// the output buffer itself (several teams per workgroup, as on GPUs). Row stride ACC_ROW vec4s
// (D <= 128); dK/dV use two halves (ACC_LEN = 2048, 32 KiB), O and dQ one (16 KiB). A runtime flag,
// not an override, so one pipeline serves (and the tests cover) both.
const ACC_ROW: u32 = 32u;
const ACC_HALF: u32 = 1024u;
override ACC_LEN: u32 = 1u;
var<workgroup> acc_sh: array<vec4<f32>, ACC_LEN>;

// One team: 8 lanes, `tb` = (subgroup lane & ~7), `ln` = lane & 7. A tile of 32 rows is four
// groups of 8, one row of each per lane (`x` = this lane's vec4 of that row); group g's scores
// live in a_g (tile rows 8g..8g+3) and b_g (8g+4..8g+7), one vec4 per own row.

// acc (4 own rows x 8 tile rows: a = tile rows 0..3, b = 4..7) += own rows . tile rows
fn qk8(a: ptr<function, mat4x4<f32>>, b: ptr<function, mat4x4<f32>>,
       r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>, x: vec4<f32>, tb: u32) {
  let t0 = subgroupShuffle(x, tb);
  let t1 = subgroupShuffle(x, tb | 1u);
  let t2 = subgroupShuffle(x, tb | 2u);
  let t3 = subgroupShuffle(x, tb | 3u);
  (*a)[0] += vec4<f32>(dot(r0, t0), dot(r0, t1), dot(r0, t2), dot(r0, t3));
  (*a)[1] += vec4<f32>(dot(r1, t0), dot(r1, t1), dot(r1, t2), dot(r1, t3));
  (*a)[2] += vec4<f32>(dot(r2, t0), dot(r2, t1), dot(r2, t2), dot(r2, t3));
  (*a)[3] += vec4<f32>(dot(r3, t0), dot(r3, t1), dot(r3, t2), dot(r3, t3));
  let t4 = subgroupShuffle(x, tb | 4u);
  let t5 = subgroupShuffle(x, tb | 5u);
  let t6 = subgroupShuffle(x, tb | 6u);
  let t7 = subgroupShuffle(x, tb | 7u);
  (*b)[0] += vec4<f32>(dot(r0, t4), dot(r0, t5), dot(r0, t6), dot(r0, t7));
  (*b)[1] += vec4<f32>(dot(r1, t4), dot(r1, t5), dot(r1, t6), dot(r1, t7));
  (*b)[2] += vec4<f32>(dot(r2, t4), dot(r2, t5), dot(r2, t6), dot(r2, t7));
  (*b)[3] += vec4<f32>(dot(r3, t4), dot(r3, t5), dot(r3, t6), dot(r3, t7));
}

// acc (4 own rows, one vec4 column chunk each) += W (4 own rows x 8 tile rows: wa, wb) . tile chunk x
fn wx8(acc: ptr<function, mat4x4<f32>>, wa: mat4x4<f32>, wb: mat4x4<f32>, x: vec4<f32>, tb: u32) {
  var t = subgroupShuffle(x, tb);
  (*acc)[0] += wa[0].x * t; (*acc)[1] += wa[1].x * t; (*acc)[2] += wa[2].x * t; (*acc)[3] += wa[3].x * t;
  t = subgroupShuffle(x, tb | 1u);
  (*acc)[0] += wa[0].y * t; (*acc)[1] += wa[1].y * t; (*acc)[2] += wa[2].y * t; (*acc)[3] += wa[3].y * t;
  t = subgroupShuffle(x, tb | 2u);
  (*acc)[0] += wa[0].z * t; (*acc)[1] += wa[1].z * t; (*acc)[2] += wa[2].z * t; (*acc)[3] += wa[3].z * t;
  t = subgroupShuffle(x, tb | 3u);
  (*acc)[0] += wa[0].w * t; (*acc)[1] += wa[1].w * t; (*acc)[2] += wa[2].w * t; (*acc)[3] += wa[3].w * t;
  t = subgroupShuffle(x, tb | 4u);
  (*acc)[0] += wb[0].x * t; (*acc)[1] += wb[1].x * t; (*acc)[2] += wb[2].x * t; (*acc)[3] += wb[3].x * t;
  t = subgroupShuffle(x, tb | 5u);
  (*acc)[0] += wb[0].y * t; (*acc)[1] += wb[1].y * t; (*acc)[2] += wb[2].y * t; (*acc)[3] += wb[3].y * t;
  t = subgroupShuffle(x, tb | 6u);
  (*acc)[0] += wb[0].z * t; (*acc)[1] += wb[1].z * t; (*acc)[2] += wb[2].z * t; (*acc)[3] += wb[3].z * t;
  t = subgroupShuffle(x, tb | 7u);
  (*acc)[0] += wb[0].w * t; (*acc)[1] += wb[1].w * t; (*acc)[2] += wb[2].w * t; (*acc)[3] += wb[3].w * t;
}

// vec4 index of the first column of rows base + r (r clamped to n - 1), for 4 rows
fn rows_at(base: u32, r: vec4<u32>, n: u32) -> vec4<u32> {
  return (vec4<u32>(base) + min(r, vec4<u32>(n - 1u))) * (p.hd / 4u);
}

// scaled scores of own row i against keys j0..j0+3 with the key-length/causal limit lim applied
fn limit_keys(s: vec4<f32>, j0: u32, lim: u32) -> vec4<f32> {
  let j = vec4<u32>(j0, j0 + 1u, j0 + 2u, j0 + 3u);
  return select(vec4<f32>(NEG_BIG), s * p.scale, j < vec4<u32>(lim));
}

// scaled scores of queries i0..i0+3 against own key j with the limits applied; kl = key_limit
// without causal. Queries past nq (the clamped tail of the last tile) are masked here.
fn limit_queries(s: vec4<f32>, i0: u32, j: u32, kl: u32) -> vec4<f32> {
  let i = vec4<u32>(i0, i0 + 1u, i0 + 2u, i0 + 3u);
  var ok = (vec4<u32>(j) < vec4<u32>(kl)) & (i < vec4<u32>(p.nq));
  if ((p.flags & F_CAUSAL) != 0u) { ok = ok & (vec4<u32>(j) <= i); }
  return select(vec4<f32>(NEG_BIG), s * p.scale, ok);
}

// the mask tensor's additive value at (b, h, i, j): 0 / NEG_BIG for a bool mask, the bias (NEG_BIG
// when not finite) for a float mask
fn mask_bias(b: u32, h: u32, i: u32, j: u32) -> f32 {
  let mv = mask[b * p.mstride.x + h * p.mstride.y + i * p.mstride.z + j * p.mstride.w];
  if (p.mask_kind == 1u) { return select(NEG_BIG, 0.0, mv != 0u); }
  if ((mv & 0x7f800000u) == 0x7f800000u) { return NEG_BIG; }
  return bitcast<f32>(mv);
}

// x + bias, where an already masked x (or an overflow) stays masked
fn add_bias(x: vec4<f32>, bias: vec4<f32>) -> vec4<f32> {
  return select(max(x + bias, vec4<f32>(NEG_BIG)), vec4<f32>(NEG_BIG), x <= vec4<f32>(NEG_BIG));
}

// Adds the mask tensor to a tile of limited scores: 4 own rows (row r: w0[r] = tile rows 0..3,
// w1[r] = 4..7, w2[r] = 8..11, w3[r] = 12..15). by_key: own rows are queries rc and the tile
// rows keys t + u; else own rows are keys rc and the tile rows queries t + u. One load site in a
// loop with a runtime trip count: llvmpipe expands every load site into a per-lane loop, and 64
// unrolled sites made these kernels take minutes to compile.
fn mask_tile(w0: ptr<function, mat4x4<f32>>, w1: ptr<function, mat4x4<f32>>, w2: ptr<function, mat4x4<f32>>,
             w3: ptr<function, mat4x4<f32>>, b: u32, h: u32, rc: vec4<u32>, t: u32, by_key: bool) {
  let n = min(16u, select(p.nq, p.nk, by_key) - t);
  for (var r = 0u; r < 4u; r++) {
    var bias = mat4x4<f32>();
    for (var u = 0u; u < n; u++) {
      var x: f32;
      if (by_key) { x = mask_bias(b, h, rc[r], t + u); } else { x = mask_bias(b, h, t + u, rc[r]); }
      bias[u / 4u][u % 4u] = x;
    }
    (*w0)[r] = add_bias((*w0)[r], bias[0]);
    (*w1)[r] = add_bias((*w1)[r], bias[1]);
    (*w2)[r] = add_bias((*w2)[r], bias[2]);
    (*w3)[r] = add_bias((*w3)[r], bias[3]);
  }
}

fn drop_keys(rh: u32, j0: u32) -> vec4<f32> {
  if ((p.flags & F_DROPOUT) == 0u) { return vec4<f32>(1.0); }
  let x = vec4<u32>(pcg(j0 + rh), pcg(j0 + 1u + rh), pcg(j0 + 2u + rh), pcg(j0 + 3u + rh));
  return select(vec4<f32>(0.0), vec4<f32>(p.keep_scale), x >= vec4<u32>(p.drop_thresh));
}

// dropout multipliers of queries with row hashes rh (4 queries) against key j
fn drop_queries(rh: vec4<u32>, j: u32) -> vec4<f32> {
  if ((p.flags & F_DROPOUT) == 0u) { return vec4<f32>(1.0); }
  let x = vec4<u32>(pcg(j + rh.x), pcg(j + rh.y), pcg(j + rh.z), pcg(j + rh.w));
  return select(vec4<f32>(0.0), vec4<f32>(p.keep_scale), x >= vec4<u32>(p.drop_thresh));
}

// the team's values of lanes 0..3 (lo) or 4..7 as a vec4
fn team4f(x: f32, tb: u32) -> vec4<f32> {
  return vec4<f32>(subgroupShuffle(x, tb), subgroupShuffle(x, tb | 1u), subgroupShuffle(x, tb | 2u), subgroupShuffle(x, tb | 3u));
}
fn team4f_hi(x: f32, tb: u32) -> vec4<f32> {
  return vec4<f32>(subgroupShuffle(x, tb | 4u), subgroupShuffle(x, tb | 5u), subgroupShuffle(x, tb | 6u), subgroupShuffle(x, tb | 7u));
}
fn team4u(x: u32, tb: u32) -> vec4<u32> {
  return vec4<u32>(subgroupShuffle(x, tb), subgroupShuffle(x, tb | 1u), subgroupShuffle(x, tb | 2u), subgroupShuffle(x, tb | 3u));
}
fn team4u_hi(x: u32, tb: u32) -> vec4<u32> {
  return vec4<u32>(subgroupShuffle(x, tb | 4u), subgroupShuffle(x, tb | 5u), subgroupShuffle(x, tb | 6u), subgroupShuffle(x, tb | 7u));
}

fn pexp(s: vec4<f32>, m: f32) -> vec4<f32> {
  return select(vec4<f32>(0.0), exp(s - m), s > vec4<f32>(NEG_BIG));
}

fn pexp4(s: vec4<f32>, m: vec4<f32>) -> vec4<f32> {
  return select(vec4<f32>(0.0), exp(s - m), s > vec4<f32>(NEG_BIG));
}

fn max4(a: vec4<f32>) -> f32 {
  return max(max(a.x, a.y), max(a.z, a.w));
}

fn sum4(a: vec4<f32>) -> f32 {
  return (a.x + a.y) + (a.z + a.w);
}

// accumulator access: own row slot `sh` (workgroup memory) / vec4 index `g` (storage)
fn o_get(sh: u32, g: u32) -> vec4<f32> {
  if ((p.flags & F_ACC_SHARED) != 0u) { return acc_sh[sh]; }
  return out4[g];
}
fn o_put(sh: u32, g: u32, x: vec4<f32>, ok: bool) {
  if ((p.flags & F_ACC_SHARED) != 0u) { acc_sh[sh] = x; } else if (ok) { out4[g] = x; }
}
fn dq_get(sh: u32, g: u32) -> vec4<f32> {
  if ((p.flags & F_ACC_SHARED) != 0u) { return acc_sh[sh]; }
  return dq4[g];
}
fn dq_put(sh: u32, g: u32, x: vec4<f32>, ok: bool) {
  if ((p.flags & F_ACC_SHARED) != 0u) { acc_sh[sh] = x; } else if (ok) { dq4[g] = x; }
}
fn dk_get(sh: u32, g: u32) -> vec4<f32> {
  if ((p.flags & F_ACC_SHARED) != 0u) { return acc_sh[sh]; }
  return dk4[g];
}
fn dk_put(sh: u32, g: u32, x: vec4<f32>, ok: bool) {
  if ((p.flags & F_ACC_SHARED) != 0u) { acc_sh[sh] = x; } else if (ok) { dk4[g] = x; }
}
fn dv_get(sh: u32, g: u32) -> vec4<f32> {
  if ((p.flags & F_ACC_SHARED) != 0u) { return acc_sh[ACC_HALF + sh]; }
  return dv4[g];
}
fn dv_put(sh: u32, g: u32, x: vec4<f32>, ok: bool) {
  if ((p.flags & F_ACC_SHARED) != 0u) { acc_sh[ACC_HALF + sh] = x; } else if (ok) { dv4[g] = x; }
}

struct Team {
  bh: u32,
  b: u32,
  h: u32,
  tb: u32,        // subgroup lane of the team's lane 0
  ln: u32,        // lane within the team
  r0: u32,        // first own row
  own: vec4<u32>, // own rows r0 + ln + 8m (unclamped)
  ok: vec4<bool>, // own rows that exist
  rc: vec4<u32>,  // own rows clamped to the last row
  sh: vec4<u32>,  // own rows' accumulator slots in workgroup memory
}

// n = rows of the own operand (nq for fwd/dq, nk for dkdv); valid = false for teams past the end
fn team_of(wid: vec3<u32>, nwg: vec3<u32>, lid: u32, sid: u32, n: u32) -> Team {
  let bh = grid_bh(wid, nwg);
  let ln = sid & 7u;
  let r0 = (wid.x * (WG / 8u) + lid / 8u) * 32u;
  let own = vec4<u32>(r0 + ln, r0 + ln + 8u, r0 + ln + 16u, r0 + ln + 24u);
  return Team(bh, bh / p.heads, bh % p.heads, sid & ~7u, ln, r0, own, own < vec4<u32>(n),
              min(own, vec4<u32>(max(n, 1u) - 1u)), vec4<u32>(ln, ln + 8u, ln + 16u, ln + 24u) * ACC_ROW);
}

@compute @workgroup_size(WG)
fn attention_fwd_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                    @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
  let tm = team_of(wid, nwg, lid, sid, p.nq);
  if (tm.bh >= p.bh || tm.r0 >= p.nq) { return; }  // whole teams return together
  let b = tm.b;
  let h = tm.h;
  let tb = tm.tb;
  let ln = tm.ln;
  let rc = tm.rc;
  let qb = rows_at(tm.bh * p.nq, rc, p.nq);
  let kend = key_limit(b, min(tm.r0 + 32u, p.nq) - 1u);  // the largest limit of the team's rows
  let lims = vec4<u32>(key_limit(b, rc.x), key_limit(b, rc.y), key_limit(b, rc.z), key_limit(b, rc.w));
  let kvb = tm.bh * p.nk;
  let hd4 = p.hd / 4u;
  let rh = vec4<u32>(row_hash(tm.bh, rc.x), row_hash(tm.bh, rc.y), row_hash(tm.bh, rc.z), row_hash(tm.bh, rc.w));
  var m = vec4<f32>(NEG_BIG);
  var l = vec4<f32>(0.0);
  for (var t = 0u; t < kend; t += 32u) {
    let kr = rows_at(kvb, vec4<u32>(t + ln, t + 8u + ln, t + 16u + ln, t + 24u + ln), p.nk);
    var a0 = mat4x4<f32>();
    var b0 = mat4x4<f32>();
    var a1 = mat4x4<f32>();
    var b1 = mat4x4<f32>();
    var a2 = mat4x4<f32>();
    var b2 = mat4x4<f32>();
    var a3 = mat4x4<f32>();
    var b3 = mat4x4<f32>();
    for (var c = 0u; c < hd4; c++) {
      let x0 = q4[qb.x + c];
      let x1 = q4[qb.y + c];
      let x2 = q4[qb.z + c];
      let x3 = q4[qb.w + c];
      qk8(&a0, &b0, x0, x1, x2, x3, k4[kr.x + c], tb);
      qk8(&a1, &b1, x0, x1, x2, x3, k4[kr.y + c], tb);
      qk8(&a2, &b2, x0, x1, x2, x3, k4[kr.z + c], tb);
      qk8(&a3, &b3, x0, x1, x2, x3, k4[kr.w + c], tb);
    }
    for (var r = 0u; r < 4u; r++) {
      a0[r] = limit_keys(a0[r], t, lims[r]);
      b0[r] = limit_keys(b0[r], t + 4u, lims[r]);
      a1[r] = limit_keys(a1[r], t + 8u, lims[r]);
      b1[r] = limit_keys(b1[r], t + 12u, lims[r]);
      a2[r] = limit_keys(a2[r], t + 16u, lims[r]);
      b2[r] = limit_keys(b2[r], t + 20u, lims[r]);
      a3[r] = limit_keys(a3[r], t + 24u, lims[r]);
      b3[r] = limit_keys(b3[r], t + 28u, lims[r]);
    }
    if (p.mask_kind != 0u) {
      mask_tile(&a0, &b0, &a1, &b1, b, h, rc, t, true);
      if (t + 16u < p.nk) { mask_tile(&a2, &b2, &a3, &b3, b, h, rc, t + 16u, true); }
    }
    // online softmax: new running max, rescale factor, P~ (dropped out) into a/b
    var alpha = vec4<f32>(1.0);
    for (var r = 0u; r < 4u; r++) {
      let mt = max(m[r], max(max(max(max4(a0[r]), max4(b0[r])), max(max4(a1[r]), max4(b1[r]))),
                             max(max(max4(a2[r]), max4(b2[r])), max(max4(a3[r]), max4(b3[r])))));
      alpha[r] = exp(m[r] - mt);
      m[r] = mt;
      let p0 = pexp(a0[r], mt);
      let p1 = pexp(b0[r], mt);
      let p2 = pexp(a1[r], mt);
      let p3 = pexp(b1[r], mt);
      let p4 = pexp(a2[r], mt);
      let p5 = pexp(b2[r], mt);
      let p6 = pexp(a3[r], mt);
      let p7 = pexp(b3[r], mt);
      l[r] = l[r] * alpha[r] + sum4(((p0 + p1) + (p2 + p3)) + ((p4 + p5) + (p6 + p7)));
      a0[r] = p0 * drop_keys(rh[r], t);
      b0[r] = p1 * drop_keys(rh[r], t + 4u);
      a1[r] = p2 * drop_keys(rh[r], t + 8u);
      b1[r] = p3 * drop_keys(rh[r], t + 12u);
      a2[r] = p4 * drop_keys(rh[r], t + 16u);
      b2[r] = p5 * drop_keys(rh[r], t + 20u);
      a3[r] = p6 * drop_keys(rh[r], t + 24u);
      b3[r] = p7 * drop_keys(rh[r], t + 28u);
    }
    let sh = tm.sh;
    for (var c = 0u; c < hd4; c++) {
      var acc = mat4x4<f32>();
      if (t > 0u) {
        acc = mat4x4<f32>(o_get(sh.x + c, qb.x + c) * alpha.x, o_get(sh.y + c, qb.y + c) * alpha.y,
                          o_get(sh.z + c, qb.z + c) * alpha.z, o_get(sh.w + c, qb.w + c) * alpha.w);
      }
      wx8(&acc, a0, b0, v4[kr.x + c], tb);
      wx8(&acc, a1, b1, v4[kr.y + c], tb);
      wx8(&acc, a2, b2, v4[kr.z + c], tb);
      wx8(&acc, a3, b3, v4[kr.w + c], tb);
      o_put(sh.x + c, qb.x + c, acc[0], tm.ok.x);
      o_put(sh.y + c, qb.y + c, acc[1], tm.ok.y);
      o_put(sh.z + c, qb.z + c, acc[2], tm.ok.z);
      o_put(sh.w + c, qb.w + c, acc[3], tm.ok.w);
    }
  }
  // O = acc / l (0 for rows without an unmasked key)
  let inv = select(vec4<f32>(0.0), 1.0 / l, l > vec4<f32>(0.0));
  let sh = tm.sh;
  for (var c = 0u; c < hd4; c++) {
    var acc = mat4x4<f32>();
    if (kend > 0u) {
      acc = mat4x4<f32>(o_get(sh.x + c, qb.x + c) * inv.x, o_get(sh.y + c, qb.y + c) * inv.y,
                        o_get(sh.z + c, qb.z + c) * inv.z, o_get(sh.w + c, qb.w + c) * inv.w);
    }
    if (tm.ok.x) { out4[qb.x + c] = acc[0]; }
    if (tm.ok.y) { out4[qb.y + c] = acc[1]; }
    if (tm.ok.z) { out4[qb.z + c] = acc[2]; }
    if (tm.ok.w) { out4[qb.w + c] = acc[3]; }
  }
  let lse4 = select(vec4<f32>(0.0), m + log(l), l > vec4<f32>(0.0));
  let lb = tm.bh * p.nq;
  if (tm.ok.x) { lse_out[lb + tm.own.x] = lse4.x; }
  if (tm.ok.y) { lse_out[lb + tm.own.y] = lse4.y; }
  if (tm.ok.z) { lse_out[lb + tm.own.z] = lse4.z; }
  if (tm.ok.w) { lse_out[lb + tm.own.w] = lse4.w; }
}

// ld[row] = (lse, delta = sum_d dO * O), vec4 loads (D % 4 == 0)
@compute @workgroup_size(WG)
fn attention_bwd_prep_sg(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= p.bh * p.nq) { return; }
  let hd4 = p.hd / 4u;
  var d = vec4<f32>(0.0);
  for (var c = 0u; c < hd4; c++) { d += o4[r * hd4 + c] * dout4[r * hd4 + c]; }
  ld_out[r] = vec2<f32>(lse[r], sum4(d));
}

// dS = P (dP * dropout - delta) of one own row over 4 keys (P from the limited/masked score s)
// (parameter names must not shadow bindings: wgsl_reflect would count them as uses)
fn ds4(s: vec4<f32>, dp: vec4<f32>, lsum: f32, delta: f32, rh: u32, j0: u32) -> vec4<f32> {
  return pexp(s, lsum) * (dp * drop_keys(rh, j0) - delta);
}

@compute @workgroup_size(WG)
fn attention_bwd_dq_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                       @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
  let tm = team_of(wid, nwg, lid, sid, p.nq);
  if (tm.bh >= p.bh || tm.r0 >= p.nq) { return; }
  let b = tm.b;
  let h = tm.h;
  let tb = tm.tb;
  let ln = tm.ln;
  let rc = tm.rc;
  let qb = rows_at(tm.bh * p.nq, rc, p.nq);
  let kend = key_limit(b, min(tm.r0 + 32u, p.nq) - 1u);
  let lims = vec4<u32>(key_limit(b, rc.x), key_limit(b, rc.y), key_limit(b, rc.z), key_limit(b, rc.w));
  let kvb = tm.bh * p.nk;
  let hd4 = p.hd / 4u;
  let rh = vec4<u32>(row_hash(tm.bh, rc.x), row_hash(tm.bh, rc.y), row_hash(tm.bh, rc.z), row_hash(tm.bh, rc.w));
  let st0 = ld[tm.bh * p.nq + rc.x];
  let st1 = ld[tm.bh * p.nq + rc.y];
  let st2 = ld[tm.bh * p.nq + rc.z];
  let st3 = ld[tm.bh * p.nq + rc.w];
  let lse4 = vec4<f32>(st0.x, st1.x, st2.x, st3.x);
  let del4 = vec4<f32>(st0.y, st1.y, st2.y, st3.y);
  let write_ds = (p.flags & F_DMASK) != 0u;
  let sh = tm.sh;
  for (var t = 0u; t < kend; t += 32u) {
    let kr = rows_at(kvb, vec4<u32>(t + ln, t + 8u + ln, t + 16u + ln, t + 24u + ln), p.nk);
    // scores S (a/b) and dP = dO V^T (e/f) of the 4 own rows x 32 keys
    var a0 = mat4x4<f32>();
    var b0 = mat4x4<f32>();
    var a1 = mat4x4<f32>();
    var b1 = mat4x4<f32>();
    var a2 = mat4x4<f32>();
    var b2 = mat4x4<f32>();
    var a3 = mat4x4<f32>();
    var b3 = mat4x4<f32>();
    for (var c = 0u; c < hd4; c++) {
      let x0 = q4[qb.x + c];
      let x1 = q4[qb.y + c];
      let x2 = q4[qb.z + c];
      let x3 = q4[qb.w + c];
      qk8(&a0, &b0, x0, x1, x2, x3, k4[kr.x + c], tb);
      qk8(&a1, &b1, x0, x1, x2, x3, k4[kr.y + c], tb);
      qk8(&a2, &b2, x0, x1, x2, x3, k4[kr.z + c], tb);
      qk8(&a3, &b3, x0, x1, x2, x3, k4[kr.w + c], tb);
    }
    var e0 = mat4x4<f32>();
    var f0 = mat4x4<f32>();
    var e1 = mat4x4<f32>();
    var f1 = mat4x4<f32>();
    var e2 = mat4x4<f32>();
    var f2 = mat4x4<f32>();
    var e3 = mat4x4<f32>();
    var f3 = mat4x4<f32>();
    for (var c = 0u; c < hd4; c++) {
      let x0 = dout4[qb.x + c];
      let x1 = dout4[qb.y + c];
      let x2 = dout4[qb.z + c];
      let x3 = dout4[qb.w + c];
      qk8(&e0, &f0, x0, x1, x2, x3, v4[kr.x + c], tb);
      qk8(&e1, &f1, x0, x1, x2, x3, v4[kr.y + c], tb);
      qk8(&e2, &f2, x0, x1, x2, x3, v4[kr.z + c], tb);
      qk8(&e3, &f3, x0, x1, x2, x3, v4[kr.w + c], tb);
    }
    for (var r = 0u; r < 4u; r++) {
      a0[r] = limit_keys(a0[r], t, lims[r]);
      b0[r] = limit_keys(b0[r], t + 4u, lims[r]);
      a1[r] = limit_keys(a1[r], t + 8u, lims[r]);
      b1[r] = limit_keys(b1[r], t + 12u, lims[r]);
      a2[r] = limit_keys(a2[r], t + 16u, lims[r]);
      b2[r] = limit_keys(b2[r], t + 20u, lims[r]);
      a3[r] = limit_keys(a3[r], t + 24u, lims[r]);
      b3[r] = limit_keys(b3[r], t + 28u, lims[r]);
    }
    if (p.mask_kind != 0u) {
      mask_tile(&a0, &b0, &a1, &b1, b, h, rc, t, true);
      if (t + 16u < p.nk) { mask_tile(&a2, &b2, &a3, &b3, b, h, rc, t + 16u, true); }
    }
    // dS into a/b (unscaled while dmask is written, then times scale for dQ)
    for (var r = 0u; r < 4u; r++) {
      a0[r] = ds4(a0[r], e0[r], lse4[r], del4[r], rh[r], t);
      b0[r] = ds4(b0[r], f0[r], lse4[r], del4[r], rh[r], t + 4u);
      a1[r] = ds4(a1[r], e1[r], lse4[r], del4[r], rh[r], t + 8u);
      b1[r] = ds4(b1[r], f1[r], lse4[r], del4[r], rh[r], t + 12u);
      a2[r] = ds4(a2[r], e2[r], lse4[r], del4[r], rh[r], t + 16u);
      b2[r] = ds4(b2[r], f2[r], lse4[r], del4[r], rh[r], t + 20u);
      a3[r] = ds4(a3[r], e3[r], lse4[r], del4[r], rh[r], t + 24u);
      b3[r] = ds4(b3[r], f3[r], lse4[r], del4[r], rh[r], t + 28u);
    }
    if (write_ds) {
      // one store site in a runtime-length loop (see mask_tile)
      let n = min(32u, p.nk - t);
      for (var r = 0u; r < 4u; r++) {
        if (tm.ok[r]) {
          let base = (tm.bh * p.nq + rc[r]) * p.nk + t;
          let lo = mat4x4<f32>(a0[r], b0[r], a1[r], b1[r]);
          let hi = mat4x4<f32>(a2[r], b2[r], a3[r], b3[r]);
          for (var u = 0u; u < n; u++) {
            dmask[base + u] = select(hi[(u - 16u) / 4u][u % 4u], lo[u / 4u][u % 4u], u < 16u);
          }
        }
      }
    }
    for (var c = 0u; c < hd4; c++) {
      var acc = mat4x4<f32>();
      if (t > 0u) {
        acc = mat4x4<f32>(dq_get(sh.x + c, qb.x + c), dq_get(sh.y + c, qb.y + c),
                          dq_get(sh.z + c, qb.z + c), dq_get(sh.w + c, qb.w + c));
      }
      wx8(&acc, a0, b0, k4[kr.x + c], tb);
      wx8(&acc, a1, b1, k4[kr.y + c], tb);
      wx8(&acc, a2, b2, k4[kr.z + c], tb);
      wx8(&acc, a3, b3, k4[kr.w + c], tb);
      dq_put(sh.x + c, qb.x + c, acc[0], tm.ok.x);
      dq_put(sh.y + c, qb.y + c, acc[1], tm.ok.y);
      dq_put(sh.z + c, qb.z + c, acc[2], tm.ok.z);
      dq_put(sh.w + c, qb.w + c, acc[3], tm.ok.w);
    }
  }
  // dQ = scale * sum dS K (0 for rows without keys)
  for (var c = 0u; c < hd4; c++) {
    var acc = mat4x4<f32>();
    if (kend > 0u) {
      acc = mat4x4<f32>(dq_get(sh.x + c, qb.x + c), dq_get(sh.y + c, qb.y + c),
                        dq_get(sh.z + c, qb.z + c), dq_get(sh.w + c, qb.w + c)) * p.scale;
    }
    if (tm.ok.x) { dq4[qb.x + c] = acc[0]; }
    if (tm.ok.y) { dq4[qb.y + c] = acc[1]; }
    if (tm.ok.z) { dq4[qb.z + c] = acc[2]; }
    if (tm.ok.w) { dq4[qb.w + c] = acc[3]; }
  }
}

// dK/dV weights of queries t..t+15 against the team's 4 own keys: P~ (for dV, in pa/pb) and dS
// (for dK, in sa/sb), each 4 own keys x 16 queries (two groups of 8)
struct KvWeights {
  pa0: mat4x4<f32>,
  pb0: mat4x4<f32>,
  pa1: mat4x4<f32>,
  pb1: mat4x4<f32>,
  sa0: mat4x4<f32>,
  sb0: mat4x4<f32>,
  sa1: mat4x4<f32>,
  sb1: mat4x4<f32>,
}

fn kv_weights(tm: Team, t: u32, kb: vec4<u32>, kl: u32) -> KvWeights {
  let qbase = tm.bh * p.nq;
  let hd4 = p.hd / 4u;
  let tb = tm.tb;
  let ln = tm.ln;
  let qr = rows_at(qbase, vec4<u32>(t + ln, t + 8u + ln, 0u, 0u), p.nq);
  // a_g[r]: queries t+8g..t+8g+3 against own key r, b_g[r]: t+8g+4..t+8g+7
  var a0 = mat4x4<f32>();
  var b0 = mat4x4<f32>();
  var a1 = mat4x4<f32>();
  var b1 = mat4x4<f32>();
  for (var c = 0u; c < hd4; c++) {
    let x0 = k4[kb.x + c];
    let x1 = k4[kb.y + c];
    let x2 = k4[kb.z + c];
    let x3 = k4[kb.w + c];
    qk8(&a0, &b0, x0, x1, x2, x3, q4[qr.x + c], tb);
    qk8(&a1, &b1, x0, x1, x2, x3, q4[qr.y + c], tb);
  }
  var e0 = mat4x4<f32>();
  var f0 = mat4x4<f32>();
  var e1 = mat4x4<f32>();
  var f1 = mat4x4<f32>();
  for (var c = 0u; c < hd4; c++) {
    let x0 = v4[kb.x + c];
    let x1 = v4[kb.y + c];
    let x2 = v4[kb.z + c];
    let x3 = v4[kb.w + c];
    qk8(&e0, &f0, x0, x1, x2, x3, dout4[qr.x + c], tb);
    qk8(&e1, &f1, x0, x1, x2, x3, dout4[qr.y + c], tb);
  }
  // (lse, delta) of the 16 queries: lane l loads queries t + l and t + 8 + l, the team shares them
  let sa = ld[qbase + min(t + ln, p.nq - 1u)];
  let sb = ld[qbase + min(t + 8u + ln, p.nq - 1u)];
  let la0 = team4f(sa.x, tb);
  let lb0 = team4f_hi(sa.x, tb);
  let la1 = team4f(sb.x, tb);
  let lb1 = team4f_hi(sb.x, tb);
  let da0 = team4f(sa.y, tb);
  let db0 = team4f_hi(sa.y, tb);
  let da1 = team4f(sb.y, tb);
  let db1 = team4f_hi(sb.y, tb);
  // dropout row hashes of the 16 queries, shared the same way
  var ha0 = vec4<u32>(0u);
  var hb0 = vec4<u32>(0u);
  var ha1 = vec4<u32>(0u);
  var hb1 = vec4<u32>(0u);
  if ((p.flags & F_DROPOUT) != 0u) {
    let ra = row_hash(tm.bh, t + ln);
    let rb = row_hash(tm.bh, t + 8u + ln);
    ha0 = team4u(ra, tb);
    hb0 = team4u_hi(ra, tb);
    ha1 = team4u(rb, tb);
    hb1 = team4u_hi(rb, tb);
  }
  for (var r = 0u; r < 4u; r++) {
    let j = tm.rc[r];
    a0[r] = limit_queries(a0[r], t, j, kl);
    b0[r] = limit_queries(b0[r], t + 4u, j, kl);
    a1[r] = limit_queries(a1[r], t + 8u, j, kl);
    b1[r] = limit_queries(b1[r], t + 12u, j, kl);
  }
  if (p.mask_kind != 0u) { mask_tile(&a0, &b0, &a1, &b1, tm.b, tm.h, tm.rc, t, false); }
  var w: KvWeights;
  for (var r = 0u; r < 4u; r++) {
    let j = tm.rc[r];
    let p0 = pexp4(a0[r], la0);
    let p1 = pexp4(b0[r], lb0);
    let p2 = pexp4(a1[r], la1);
    let p3 = pexp4(b1[r], lb1);
    let m0 = drop_queries(ha0, j);
    let m1 = drop_queries(hb0, j);
    let m2 = drop_queries(ha1, j);
    let m3 = drop_queries(hb1, j);
    w.pa0[r] = p0 * m0;
    w.pb0[r] = p1 * m1;
    w.pa1[r] = p2 * m2;
    w.pb1[r] = p3 * m3;
    w.sa0[r] = p0 * (e0[r] * m0 - da0);
    w.sb0[r] = p1 * (f0[r] * m1 - db0);
    w.sa1[r] = p2 * (e1[r] * m2 - da1);
    w.sb1[r] = p3 * (f1[r] * m3 - db1);
  }
  return w;
}

@compute @workgroup_size(WG)
fn attention_bwd_dkdv_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                         @builtin(num_workgroups) nwg: vec3<u32>, @builtin(subgroup_invocation_id) sid: u32) {
  let tm = team_of(wid, nwg, lid, sid, p.nk);
  if (tm.bh >= p.bh || tm.r0 >= p.nk) { return; }
  let tb = tm.tb;
  let ln = tm.ln;
  let kb = rows_at(tm.bh * p.nk, tm.rc, p.nk);
  // queries that can see a key of the team: causal starts at its first key; a team entirely past
  // keyLengths[b] is seen by none
  var qs = 0u;
  if ((p.flags & F_CAUSAL) != 0u) { qs = min(tm.r0, p.nq); }
  var qe = p.nq;
  var kl = p.nk;
  if ((p.flags & F_KEYLEN) != 0u) {
    kl = u32(clamp(klen[tm.b], 0, i32(p.nk)));
    if (tm.r0 >= kl) { qe = qs; }
  }
  let qbase = tm.bh * p.nq;
  let hd4 = p.hd / 4u;
  let sh = tm.sh;
  for (var t = qs; t < qe; t += 16u) {
    let w = kv_weights(tm, t, kb, kl);
    let qr = rows_at(qbase, vec4<u32>(t + ln, t + 8u + ln, 0u, 0u), p.nq);
    for (var c = 0u; c < hd4; c++) {
      var av = mat4x4<f32>();
      var ak = mat4x4<f32>();
      if (t > qs) {
        av = mat4x4<f32>(dv_get(sh.x + c, kb.x + c), dv_get(sh.y + c, kb.y + c), dv_get(sh.z + c, kb.z + c), dv_get(sh.w + c, kb.w + c));
        ak = mat4x4<f32>(dk_get(sh.x + c, kb.x + c), dk_get(sh.y + c, kb.y + c), dk_get(sh.z + c, kb.z + c), dk_get(sh.w + c, kb.w + c));
      }
      wx8(&av, w.pa0, w.pb0, dout4[qr.x + c], tb);
      wx8(&av, w.pa1, w.pb1, dout4[qr.y + c], tb);
      wx8(&ak, w.sa0, w.sb0, q4[qr.x + c], tb);
      wx8(&ak, w.sa1, w.sb1, q4[qr.y + c], tb);
      dv_put(sh.x + c, kb.x + c, av[0], tm.ok.x);
      dv_put(sh.y + c, kb.y + c, av[1], tm.ok.y);
      dv_put(sh.z + c, kb.z + c, av[2], tm.ok.z);
      dv_put(sh.w + c, kb.w + c, av[3], tm.ok.w);
      dk_put(sh.x + c, kb.x + c, ak[0], tm.ok.x);
      dk_put(sh.y + c, kb.y + c, ak[1], tm.ok.y);
      dk_put(sh.z + c, kb.z + c, ak[2], tm.ok.z);
      dk_put(sh.w + c, kb.w + c, ak[3], tm.ok.w);
    }
  }
  // dV = sum P~ dO, dK = scale * sum dS Q (0 for keys no query sees)
  for (var c = 0u; c < hd4; c++) {
    var av = mat4x4<f32>();
    var ak = mat4x4<f32>();
    if (qs < qe) {
      av = mat4x4<f32>(dv_get(sh.x + c, kb.x + c), dv_get(sh.y + c, kb.y + c), dv_get(sh.z + c, kb.z + c), dv_get(sh.w + c, kb.w + c));
      ak = mat4x4<f32>(dk_get(sh.x + c, kb.x + c), dk_get(sh.y + c, kb.y + c), dk_get(sh.z + c, kb.z + c), dk_get(sh.w + c, kb.w + c)) * p.scale;
    }
    if (tm.ok.x) { dv4[kb.x + c] = av[0]; dk4[kb.x + c] = ak[0]; }
    if (tm.ok.y) { dv4[kb.y + c] = av[1]; dk4[kb.y + c] = ak[1]; }
    if (tm.ok.z) { dv4[kb.z + c] = av[2]; dk4[kb.z + c] = ak[2]; }
    if (tm.ok.w) { dv4[kb.w + c] = av[3]; dk4[kb.w + c] = ak[3]; }
  }
}
