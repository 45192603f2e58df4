// Window attention family: Swin's W-MSA / SW-MSA computed on spatially laid out tokens
// q/k/v/out [B, Hg, Wg, heads, D] (row-major). Nothing is rolled, padded or partitioned in memory:
// every kernel maps (window, token-in-window) to a spatial token on the fly. This is the portable
// version; kernels/window_attention_sg.wgsl computes the same with subgroup shuffles.
//
// Geometry (the same in every entry point):
//   - the grid is padded at the bottom/right to Hp x Wp (multiples of M); padded tokens do not exist
//     in memory: as keys they are excluded (weight exactly 0), as queries they produce nothing;
//   - the padded map is rolled by -shift on both axes (torch.roll(x, (-s, -s))): window (wy, wx),
//     local token (r, c) sits at rolled (R, C) = (wy*M + r, wx*M + c), which is the padded token
//     ((R + s) mod Hp, (C + s) mod Wp). Writing outputs back at that token is the reverse roll;
//   - region mask (Swin's img_mask built with slices (0,-M), (-M,-s), (-s,None) on the rolled map):
//     a query and a key from different regions get -100 added to their logit (as timm);
//   - relative position bias: table[((ri - rj + M - 1) * (2M - 1) + (ci - cj + M - 1)) * heads + h].
//   logit = scale * q.k + bias + mask; out = softmax(logits) v.
//
// Work layout: a lane owns one row of a window's attention matrix: one query in fwd and bwd_q, one
// key in bwd_kv (the transpose). A block of `blk` lanes covers `blk` rows of one (image, window,
// head) (a query/key block; `nqb` blocks per window); a workgroup holds `nblk` blocks (small windows
// share a workgroup). The lane's row of logits / probabilities / dLogits lives in workgroup memory as
// rowbuf[token][lane] (lanes touch consecutive words). No lane ever reads another lane's slot, so
// there are no barriers (a one-pass backward with barriers between a row phase and a column phase
// ran 2x slower on lavapipe, where barriers turn the shader into coroutines). Phases per row: dot
// products with 16 tokens at a time (16 accumulators: the lane's own row is loaded once per 16 FMAs,
// the other tokens' rows are the same for the whole block, a broadcast from cache), finished in place
// (scale, bias, mask, exp) as they are stored; then weighted row sums of 16 output columns at a time
// (a partial last chunk clamps its loads to column D - 1 and stores only the valid columns). WG and
// SMEM do not depend on the window size: one pipeline per entry point serves every configuration.
//   - fwd: logits, max, exp and sum (lse saved for backward), out = P v / sum.
//   - bwd_q: P = exp(logit - lse), dLogit = P (go.v - delta) with delta = go_i . out_i, dq = scale *
//     dLogit k; dLogit is also written to ds [B, heads, nwin, n(j), n(i)] (the size of one attention
//     matrix, half of q+k+v for Swin's 49-token windows and D = 32).
//   - bwd_kv: P by columns (recomputed from lse), dv = P^T go, dk = scale * ds^T q.
//   - bwd_sum + bwd_table: the bias-table gradient: ds summed over images and windows per (head, j, i),
//     then per table entry over the (i, j) pairs of its relative offset; fixed order, no atomics.
// 6 matrix products in the backward (recomputing the logits twice) instead of the 4 of a
// materialised-attention backward; no n x n matrix besides ds is ever stored.

override WG: u32 = 64u;     // lanes per workgroup
override SMEM: u32 = 4096u; // words of workgroup memory (>= n * lanes)

struct Params {
  batch: u32,
  hg: u32,        // grid height / width (tokens)
  wg: u32,
  heads: u32,
  dim: u32,       // head dim D
  m: u32,         // window size M
  shift: u32,
  hp: u32,        // padded grid (multiples of M)
  wp: u32,
  nww: u32,       // windows along W (Wp / M)
  nwin: u32,      // windows per image
  n: u32,         // tokens per window M*M
  blk: u32,       // lanes (rows) per block
  nblk: u32,      // blocks per workgroup
  lanes: u32,     // blk * nblk: the stride of rowbuf
  nqb: u32,       // blocks per window (ceil(n / blk))
  items: u32,     // blocks in the dispatch
  has_bias: u32,
  want_ds: u32,   // bwd_q: write dLogit to ds (for bwd_kv and bwd_table)
  tsize: u32,     // (2M - 1)^2
  scale: f32,
  inv_m: f32,     // 1 / M: (r, c) of token t without an integer division (exact for t < 2^16)
}

@group(0) @binding(0) var<storage, read> q: array<f32>;
@group(0) @binding(1) var<storage, read> k: array<f32>;
@group(0) @binding(2) var<storage, read> v: array<f32>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> o: array<f32>;
@group(0) @binding(6) var<storage, read> go: array<f32>;
@group(0) @binding(8) var<storage, read_write> dq: array<f32>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;       // dLogit [B, heads, nwin, n(j), n(i)]
@group(0) @binding(7) var<storage, read> ds_in: array<f32>;    // ds, read by bwd_kv
@group(0) @binding(8) var<storage, read_write> dk: array<f32>;
@group(0) @binding(9) var<storage, read_write> dv: array<f32>;
// bias-table gradient
@group(0) @binding(0) var<storage, read> gs: array<f32>;            // bwd_sum: ds; bwd_table: its sums
@group(0) @binding(1) var<storage, read_write> gsums: array<f32>;    // [heads, n(j), n(i)]
@group(0) @binding(1) var<storage, read_write> dtable: array<f32>;   // [(2M-1)^2, heads]
@group(0) @binding(10) var<uniform> p: Params;

var<workgroup> rowbuf: array<f32, SMEM>;  // [other token][lane]

const INVALID: u32 = 0xffffffffu;
const EXCLUDED: f32 = -3.0e38;
const MASK_VALUE: f32 = -100.0;

// ---- work items and geometry -----------------------------------------------

struct Item {
  ok: bool,
  row: u32,   // token of the window this lane owns
  win: u32,
  z: u32,     // b * heads + h
}

fn item_of(wid: vec3<u32>, nwg: vec3<u32>, lane: u32) -> Item {
  let blk = lane / p.blk;
  let it = (wid.x + wid.y * nwg.x) * p.nblk + blk;
  let qbi = it % p.nqb;
  let rest = it / p.nqb;
  return Item(lane < p.lanes && it < p.items, qbi * p.blk + lane % p.blk, rest % p.nwin, rest / p.nwin);
}

struct Win {
  b: u32,
  h: u32,
  y0: u32,
  x0: u32,
}

fn make_win(b: u32, win: u32, h: u32) -> Win {
  return Win(b, h, (win / p.nww) * p.m, (win % p.nww) * p.m);
}

fn rc_of(t: u32) -> vec2<u32> {
  let r = u32((f32(t) + 0.5) * p.inv_m);
  return vec2<u32>(r, t - r * p.m);
}
fn next_rc(rc: vec2<u32>) -> vec2<u32> {
  if (rc.y + 1u == p.m) { return vec2<u32>(rc.x + 1u, 0u); }
  return vec2<u32>(rc.x, rc.y + 1u);
}

fn token_at(w: Win, rc: vec2<u32>) -> u32 {
  var y = w.y0 + rc.x + p.shift;
  if (y >= p.hp) { y -= p.hp; }
  var x = w.x0 + rc.y + p.shift;
  if (x >= p.wp) { x -= p.wp; }
  if (y >= p.hg || x >= p.wg) { return INVALID; }
  return (w.b * p.hg + y) * p.wg + x;
}

fn safe_base(w: Win, t: u32) -> u32 {
  if (t >= p.n) { return 0u; }
  let tok = token_at(w, rc_of(t));
  if (tok == INVALID) { return 0u; }
  return (tok * p.heads + w.h) * p.dim;
}

fn axis_region(c: u32, len: u32) -> u32 {
  if (c < len - p.m) { return 0u; }
  if (c < len - p.shift) { return 1u; }
  return 2u;
}

fn region_at(w: Win, rc: vec2<u32>) -> u32 {
  if (p.shift == 0u) { return 0u; }
  return axis_region(w.y0 + rc.x, p.hp) * 3u + axis_region(w.x0 + rc.y, p.wp);
}

fn bias_mask(w: Win, qi: vec2<u32>, kj: vec2<u32>) -> f32 {
  var s = 0.0;
  if (p.has_bias == 1u) {
    let idx = (qi.x + p.m - 1u - kj.x) * (2u * p.m - 1u) + (qi.y + p.m - 1u - kj.y);
    s = table[idx * p.heads + w.h];
  }
  if (region_at(w, qi) != region_at(w, kj)) { s += MASK_VALUE; }
  return s;
}

// ---- dot products and weighted sums ---------------------------------------------------------------

// Row offsets of tokens t..t+3 (row 0 for padding or t >= n: those results are discarded).
fn bases4(w: Win, t: u32) -> vec4<u32> {
  return vec4<u32>(safe_base(w, t), safe_base(w, t + 1u), safe_base(w, t + 2u), safe_base(w, t + 3u));
}

// Dot products of the lane's own row (xb) with the rows of 16 consecutive tokens t.. (the same rows
// for the whole block). One function per buffer pair: WGSL cannot pass storage pointers portably.
// Result [c][r] = token t + 4c + r.
fn dot16_qk(xb: u32, w: Win, t: u32) -> mat4x4<f32> {
  let y0 = bases4(w, t);
  let y1 = bases4(w, t + 4u);
  let y2 = bases4(w, t + 8u);
  let y3 = bases4(w, t + 12u);
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim; d++) {
    let x = q[xb + d];
    a[0] += x * vec4<f32>(k[y0.x + d], k[y0.y + d], k[y0.z + d], k[y0.w + d]);
    a[1] += x * vec4<f32>(k[y1.x + d], k[y1.y + d], k[y1.z + d], k[y1.w + d]);
    a[2] += x * vec4<f32>(k[y2.x + d], k[y2.y + d], k[y2.z + d], k[y2.w + d]);
    a[3] += x * vec4<f32>(k[y3.x + d], k[y3.y + d], k[y3.z + d], k[y3.w + d]);
  }
  return a;
}
fn dot16_gov(xb: u32, w: Win, t: u32) -> mat4x4<f32> {
  let y0 = bases4(w, t);
  let y1 = bases4(w, t + 4u);
  let y2 = bases4(w, t + 8u);
  let y3 = bases4(w, t + 12u);
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim; d++) {
    let x = go[xb + d];
    a[0] += x * vec4<f32>(v[y0.x + d], v[y0.y + d], v[y0.z + d], v[y0.w + d]);
    a[1] += x * vec4<f32>(v[y1.x + d], v[y1.y + d], v[y1.z + d], v[y1.w + d]);
    a[2] += x * vec4<f32>(v[y2.x + d], v[y2.y + d], v[y2.z + d], v[y2.w + d]);
    a[3] += x * vec4<f32>(v[y3.x + d], v[y3.y + d], v[y3.z + d], v[y3.w + d]);
  }
  return a;
}
fn dot16_kq(xb: u32, w: Win, t: u32) -> mat4x4<f32> {
  let y0 = bases4(w, t);
  let y1 = bases4(w, t + 4u);
  let y2 = bases4(w, t + 8u);
  let y3 = bases4(w, t + 12u);
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim; d++) {
    let x = k[xb + d];
    a[0] += x * vec4<f32>(q[y0.x + d], q[y0.y + d], q[y0.z + d], q[y0.w + d]);
    a[1] += x * vec4<f32>(q[y1.x + d], q[y1.y + d], q[y1.z + d], q[y1.w + d]);
    a[2] += x * vec4<f32>(q[y2.x + d], q[y2.y + d], q[y2.z + d], q[y2.w + d]);
    a[3] += x * vec4<f32>(q[y3.x + d], q[y3.y + d], q[y3.z + d], q[y3.w + d]);
  }
  return a;
}

// sum over the window's tokens t of rowbuf[rb + t * rs] * X[t][d0 .. d0+16) (columns clamped into
// the row); (rb, rs) = (lane, lanes) reads the lane's own row of rowbuf
fn col(d: u32) -> u32 {
  return min(d, p.dim - 1u);
}

fn acc16_v(w: Win, rb: u32, rs: u32, d0: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    let b = (tok * p.heads + w.h) * p.dim;
    let x = rowbuf[rb + t * rs];
    a[0] += x * vec4<f32>(v[b + col(d0)], v[b + col(d0 + 1u)], v[b + col(d0 + 2u)], v[b + col(d0 + 3u)]);
    a[1] += x * vec4<f32>(v[b + col(d0 + 4u)], v[b + col(d0 + 5u)], v[b + col(d0 + 6u)], v[b + col(d0 + 7u)]);
    a[2] += x * vec4<f32>(v[b + col(d0 + 8u)], v[b + col(d0 + 9u)], v[b + col(d0 + 10u)], v[b + col(d0 + 11u)]);
    a[3] += x * vec4<f32>(v[b + col(d0 + 12u)], v[b + col(d0 + 13u)], v[b + col(d0 + 14u)], v[b + col(d0 + 15u)]);
  }
  return a;
}

fn acc16_k(w: Win, rb: u32, rs: u32, d0: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    let b = (tok * p.heads + w.h) * p.dim;
    let x = rowbuf[rb + t * rs];
    a[0] += x * vec4<f32>(k[b + col(d0)], k[b + col(d0 + 1u)], k[b + col(d0 + 2u)], k[b + col(d0 + 3u)]);
    a[1] += x * vec4<f32>(k[b + col(d0 + 4u)], k[b + col(d0 + 5u)], k[b + col(d0 + 6u)], k[b + col(d0 + 7u)]);
    a[2] += x * vec4<f32>(k[b + col(d0 + 8u)], k[b + col(d0 + 9u)], k[b + col(d0 + 10u)], k[b + col(d0 + 11u)]);
    a[3] += x * vec4<f32>(k[b + col(d0 + 12u)], k[b + col(d0 + 13u)], k[b + col(d0 + 14u)], k[b + col(d0 + 15u)]);
  }
  return a;
}

fn acc16_go(w: Win, rb: u32, rs: u32, d0: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    let b = (tok * p.heads + w.h) * p.dim;
    let x = rowbuf[rb + t * rs];
    a[0] += x * vec4<f32>(go[b + col(d0)], go[b + col(d0 + 1u)], go[b + col(d0 + 2u)], go[b + col(d0 + 3u)]);
    a[1] += x * vec4<f32>(go[b + col(d0 + 4u)], go[b + col(d0 + 5u)], go[b + col(d0 + 6u)], go[b + col(d0 + 7u)]);
    a[2] += x * vec4<f32>(go[b + col(d0 + 8u)], go[b + col(d0 + 9u)], go[b + col(d0 + 10u)], go[b + col(d0 + 11u)]);
    a[3] += x * vec4<f32>(go[b + col(d0 + 12u)], go[b + col(d0 + 13u)], go[b + col(d0 + 14u)], go[b + col(d0 + 15u)]);
  }
  return a;
}

// Σ_t dLogit(t, j) · q row t over the window's tokens (bwd_kv: column j of one window-head, from ds)
fn acc16_q_ds(w: Win, rb: u32, rs: u32, d0: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    let b = (tok * p.heads + w.h) * p.dim;
    let x = ds_in[rb + t * rs];
    a[0] += x * vec4<f32>(q[b + col(d0)], q[b + col(d0 + 1u)], q[b + col(d0 + 2u)], q[b + col(d0 + 3u)]);
    a[1] += x * vec4<f32>(q[b + col(d0 + 4u)], q[b + col(d0 + 5u)], q[b + col(d0 + 6u)], q[b + col(d0 + 7u)]);
    a[2] += x * vec4<f32>(q[b + col(d0 + 8u)], q[b + col(d0 + 9u)], q[b + col(d0 + 10u)], q[b + col(d0 + 11u)]);
    a[3] += x * vec4<f32>(q[b + col(d0 + 12u)], q[b + col(d0 + 13u)], q[b + col(d0 + 14u)], q[b + col(d0 + 15u)]);
  }
  return a;
}

// Finishing 16 raw dot products s of the lane's row with tokens t.. (tokens past the window are
// dropped; loops with a run-time trip count are not unrolled, which keeps lavapipe's compile time down):
// logit16: logits of the lane's query qi -> rowbuf, returns their max;
// prob16_q: P = exp(logit - lse_i) of the lane's query (0 for padded keys);
// prob16_k: P = exp(logit - lse of each query) of the lane's key kj (0 for padded queries).
fn logit16(w: Win, qi: vec2<u32>, lane: u32, t: u32, s: mat4x4<f32>) -> f32 {
  var m = s;
  var mx = EXCLUDED;
  var rc = rc_of(t);
  for (var c = 0u; c < min(16u, p.n - t); c++) {
    var l = EXCLUDED;
    if (token_at(w, rc) != INVALID) { l = p.scale * m[c / 4u][c % 4u] + bias_mask(w, qi, rc); }
    rowbuf[(t + c) * p.lanes + lane] = l;
    mx = max(mx, l);
    rc = next_rc(rc);
  }
  return mx;
}
fn prob16_q(w: Win, qi: vec2<u32>, lane: u32, t: u32, s: mat4x4<f32>, lse_i: f32) {
  var m = s;
  var rc = rc_of(t);
  for (var c = 0u; c < min(16u, p.n - t); c++) {
    var pr = 0.0;
    if (token_at(w, rc) != INVALID) { pr = exp(p.scale * m[c / 4u][c % 4u] + bias_mask(w, qi, rc) - lse_i); }
    rowbuf[(t + c) * p.lanes + lane] = pr;
    rc = next_rc(rc);
  }
}
fn prob16_k(w: Win, kj: vec2<u32>, lane: u32, t: u32, s: mat4x4<f32>) {
  var m = s;
  var rc = rc_of(t);
  for (var c = 0u; c < min(16u, p.n - t); c++) {
    let qt = token_at(w, rc);
    var pr = 0.0;
    if (qt != INVALID) { pr = exp(p.scale * m[c / 4u][c % 4u] + bias_mask(w, rc, kj) - lse[qt * p.heads + w.h]); }
    rowbuf[(t + c) * p.lanes + lane] = pr;
    rc = next_rc(rc);
  }
}

// rowbuf[t..] *= (dp - delta) for 16 tokens (dLogit of the lane's query)
fn mul16_q(t: u32, lane: u32, dp: mat4x4<f32>, dl: f32) {
  var m = dp;
  for (var c = 0u; c < min(16u, p.n - t); c++) {
    let at = (t + c) * p.lanes + lane;
    rowbuf[at] = rowbuf[at] * (m[c / 4u][c % 4u] - dl);
  }
}

// ---- forward ------------------------------------------------------------------------------------

// Logits of query qi (row qb) against every key of the window -> rowbuf[j][lane]; returns the max.
fn query_logits(w: Win, qb: u32, qi: vec2<u32>, lane: u32) -> f32 {
  var mx = EXCLUDED;
  for (var j = 0u; j < p.n; j += 16u) {
    mx = max(mx, logit16(w, qi, lane, j, dot16_qk(qb, w, j)));
  }
  return mx;
}

@compute @workgroup_size(WG)
fn window_attention_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lane: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let qi = rc_of(min(it.row, p.n - 1u));
  let qt = token_at(w, qi);
  let live = it.row < p.n && qt != INVALID;
  let qb = select(0u, (qt * p.heads + w.h) * p.dim, live);
  let mx = query_logits(w, qb, qi, lane);
  var l = 0.0;
  for (var j = 0u; j < p.n; j++) {
    let e = exp(rowbuf[j * p.lanes + lane] - mx);
    rowbuf[j * p.lanes + lane] = e;
    l += e;
  }
  if (live) { lse_out[qt * p.heads + w.h] = mx + log(l); }
  let inv = 1.0 / l;
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_v(w, lane, p.lanes, d0);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(16u, p.dim - d0); c++) { out[qb + d0 + c] = m[c / 4u][c % 4u] * inv; }
    }
  }
}

// ---- backward: dq and the bias-gradient partial sums ----------------------------------------------

@compute @workgroup_size(WG)
fn window_attention_bwd_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lane: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let n = p.n;
  let qi = rc_of(min(it.row, n - 1u));
  let qt = token_at(w, qi);
  let live = it.row < n && qt != INVALID;
  let qb = select(0u, (qt * p.heads + w.h) * p.dim, live);
  var dl = 0.0;
  var lse_i = 3.0e38;  // a lane without a query: P = 0
  if (live) {
    for (var d = 0u; d < p.dim; d++) { dl += go[qb + d] * o[qb + d]; }
    lse_i = lse[qt * p.heads + w.h];
  }
  // P_ij = exp(logit - lse_i) (a padded key: P = 0)
  for (var j = 0u; j < n; j += 16u) {
    prob16_q(w, qi, lane, j, dot16_qk(qb, w, j), lse_i);
  }
  // dLogit_ij = P_ij (go_i . v_j - delta_i), delta_i = go_i . out_i
  for (var j = 0u; j < n; j += 16u) {
    mul16_q(j, lane, dot16_gov(qb, w, j), dl);
  }
  if (p.want_ds == 1u && it.row < n) {
    let base = (it.z * p.nwin + it.win) * n * n + it.row;  // (b, h, win), + j * n
    for (var j = 0u; j < n; j++) { ds[base + j * n] = select(0.0, rowbuf[j * p.lanes + lane], live); }
  }
  // dq_i = scale * sum_j dLogit_ij k_j
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_k(w, lane, p.lanes, d0);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(16u, p.dim - d0); c++) { dq[qb + d0 + c] = m[c / 4u][c % 4u] * p.scale; }
    }
  }
}

// ---- backward: dk, dv (one lane per key) ------------------------------------------------------

@compute @workgroup_size(WG)
fn window_attention_bwd_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lane: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let n = p.n;
  let kj = rc_of(min(it.row, n - 1u));
  let kt = token_at(w, kj);
  let live = it.row < n && kt != INVALID;
  let kb = select(0u, (kt * p.heads + w.h) * p.dim, live);
  // P_ij for every query i of the window (column j of the attention matrix)
  for (var i = 0u; i < n; i += 16u) {
    prob16_k(w, kj, lane, i, dot16_kq(kb, w, i));
  }
  // dv_j = sum_i P_ij go_i
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_go(w, lane, p.lanes, d0);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(16u, p.dim - d0); c++) { dv[kb + d0 + c] = m[c / 4u][c % 4u]; }
    }
  }
  // dk_j = scale * sum_i dLogit_ij q_i (dLogit from bwd_q)
  let dsb = (it.z * p.nwin + it.win) * n * n + min(it.row, n - 1u) * n;
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_q_ds(w, dsb, 1u, d0);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(16u, p.dim - d0); c++) { dk[kb + d0 + c] = m[c / 4u][c % 4u] * p.scale; }
    }
  }
}

// ---- backward: bias table -------------------------------------------------------------------------
// Deterministic, no atomics, in two fixed-order passes: bwd_sum adds ds over images and windows per
// (head, j, i) (neighbouring invocations read neighbouring words), then bwd_table gathers, per table
// entry, the (i, j) pairs of its relative offset.

@compute @workgroup_size(WG)
fn window_attention_bwd_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  let nn = p.n * p.n;
  if (e >= p.heads * nn) { return; }
  let h = e / nn;
  let ji = e % nn;
  var acc = 0.0;
  for (var b = 0u; b < p.batch; b++) {
    for (var win = 0u; win < p.nwin; win++) {
      acc += gs[((b * p.heads + h) * p.nwin + win) * nn + ji];
    }
  }
  gsums[e] = acc;
}

// One invocation per table entry (idx, h): the pairs (i, j) with relative offset (dh, dw) = idx.
@compute @workgroup_size(WG)
fn window_attention_bwd_table(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= p.tsize * p.heads) { return; }
  let h = e % p.heads;
  let idx = e / p.heads;
  let m = i32(p.m);
  let dh = i32(idx / (2u * p.m - 1u)) - (m - 1);
  let dw = i32(idx % (2u * p.m - 1u)) - (m - 1);
  let n = p.n;
  let base = h * n * n;
  var acc = 0.0;
  for (var ri = max(0, dh); ri < min(m, m + dh); ri++) {
    for (var ci = max(0, dw); ci < min(m, m + dw); ci++) {
      let ti = u32(ri * m + ci);
      let tj = u32((ri - dh) * m + (ci - dw));
      acc += gs[base + tj * n + ti];
    }
  }
  dtable[idx * p.heads + h] = acc;
}
