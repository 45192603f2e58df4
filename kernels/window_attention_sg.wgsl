// Window attention with subgroup shuffles: the same math, geometry, binding names, parameters and
// work layout as kernels/window_attention.wgsl (the portable version, which documents them), used when
// the device has 'subgroups' with subgroup sizes that are multiples of 8 (blocks are multiples of 8
// lanes) and D % 4 == 0: q/k/v/go/o and the outputs are read and written as vec4 (4 columns of a row;
// rows start at multiples of D, so every vec4 is aligned).
//
// Why: a lane owns one row of a window's attention matrix (a query in fwd/bwd_q, a key in bwd_kv)
// and needs every other token's q/k/v/go row. In the portable kernel each lane loads them itself
// (a broadcast from cache on a GPU, but on lavapipe every load is a gather costing ~8 FMAs, and
// workgroup or private memory is no cheaper). Here the 8 lanes of a cluster (subgroup ids 8c..8c+7,
// which are 8 consecutive local invocations of one block, so one (image, window, head)) split the
// loads: lane l loads token (t + l)'s value and subgroupShuffle hands it to the 7 others. One load
// serves 8 lanes, and on lavapipe a vec4 load costs about half of 4 scalar ones: per 4 columns and
// 16 tokens a lane issues 3 vec4 loads for 64 FMAs (measured ~1.7x the scalar-load version). Lanes of
// a cluster never leave before a shuffle (idle lanes go as whole clusters); lanes without a row
// compute on row 0 and write nothing.
enable subgroups;
// Shuffles run in control flow that is uniform per cluster of 8 lanes (one block), not per subgroup:
// every lane of a cluster shares its work item and window, so all 8 are active at each shuffle, and a
// shuffle only reads lanes of its own cluster. Tint cannot prove that (it tracks uniformity per
// workgroup), hence:
diagnostic(off, subgroup_uniformity);

override WG: u32 = 64u;     // lanes per workgroup
override SMEM: u32 = 4096u; // words of workgroup memory (>= n * lanes)

struct Params {
  batch: u32,
  hg: u32,
  wg: u32,
  heads: u32,
  dim: u32,
  m: u32,
  shift: u32,
  hp: u32,
  wp: u32,
  nww: u32,
  nwin: u32,
  n: u32,
  blk: u32,
  nblk: u32,
  lanes: u32,
  nqb: u32,
  items: u32,
  has_bias: u32,
  want_ds: u32,
  tsize: u32,
  scale: f32,
  inv_m: f32,
}

@group(0) @binding(0) var<storage, read> q: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> k: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> v: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> table: array<f32>;
@group(0) @binding(4) var<storage, read_write> lse_out: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> lse: array<f32>;
@group(0) @binding(5) var<storage, read> o: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> go: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> dq: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> ds: array<f32>;
@group(0) @binding(7) var<storage, read> ds_in: array<f32>;
@group(0) @binding(8) var<storage, read_write> dk: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> dv: array<vec4<f32>>;
@group(0) @binding(10) var<uniform> p: Params;

var<workgroup> rowbuf: array<f32, SMEM>;  // [other token][lane]

const INVALID: u32 = 0xffffffffu;
const EXCLUDED: f32 = -3.0e38;
const MASK_VALUE: f32 = -100.0;

// ---- work items and geometry (as the portable kernel) -----------------------------------------------

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

// Offset, in vec4s, of the head-h row of spatial token tok.
fn row4(tok: u32, h: u32) -> u32 {
  return (tok * p.heads + h) * (p.dim / 4u);
}

// Row offset (vec4s) of local token t for this lane's share of a chunk; row 0 for padding or t >= n.
fn safe_base(w: Win, t: u32) -> u32 {
  if (t >= p.n) { return 0u; }
  let tok = token_at(w, rc_of(t));
  if (tok == INVALID) { return 0u; }
  return row4(tok, w.h);
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

// ---- cluster exchange ------------------------------------------------------------------------------

fn lo4(x: f32, sb: u32) -> vec4<f32> {
  return vec4<f32>(subgroupShuffle(x, sb), subgroupShuffle(x, sb + 1u), subgroupShuffle(x, sb + 2u), subgroupShuffle(x, sb + 3u));
}
fn hi4(x: f32, sb: u32) -> vec4<f32> {
  return vec4<f32>(subgroupShuffle(x, sb + 4u), subgroupShuffle(x, sb + 5u), subgroupShuffle(x, sb + 6u), subgroupShuffle(x, sb + 7u));
}

// One column of 16 dot products: the lane's own value x times the 16 tokens' values (u: tokens
// t + 0..7, z: tokens t + 8..15, one per cluster lane).
fn fma16(a: ptr<function, mat4x4<f32>>, x: f32, u: f32, z: f32, sb: u32) {
  (*a)[0] += x * lo4(u, sb);
  (*a)[1] += x * hi4(u, sb);
  (*a)[2] += x * lo4(z, sb);
  (*a)[3] += x * hi4(z, sb);
}

// Dot products of the lane's own row (xb) with the rows of 16 consecutive tokens; this lane loads the
// rows of tokens t + l (ya) and t + 8 + l (yb), 4 columns at a time. Result [c][r] = token t + 4c + r.
fn dot16_qk(xb: u32, ya: u32, yb: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim / 4u; d++) {
    let x = q[xb + d];
    let u = k[ya + d];
    let z = k[yb + d];
    fma16(&a, x.x, u.x, z.x, sb);
    fma16(&a, x.y, u.y, z.y, sb);
    fma16(&a, x.z, u.z, z.z, sb);
    fma16(&a, x.w, u.w, z.w, sb);
  }
  return a;
}
fn dot16_gov(xb: u32, ya: u32, yb: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim / 4u; d++) {
    let x = go[xb + d];
    let u = v[ya + d];
    let z = v[yb + d];
    fma16(&a, x.x, u.x, z.x, sb);
    fma16(&a, x.y, u.y, z.y, sb);
    fma16(&a, x.z, u.z, z.z, sb);
    fma16(&a, x.w, u.w, z.w, sb);
  }
  return a;
}
fn dot16_kq(xb: u32, ya: u32, yb: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  for (var d = 0u; d < p.dim / 4u; d++) {
    let x = k[xb + d];
    let u = q[ya + d];
    let z = q[yb + d];
    fma16(&a, x.x, u.x, z.x, sb);
    fma16(&a, x.y, u.y, z.y, sb);
    fma16(&a, x.z, u.z, z.z, sb);
    fma16(&a, x.w, u.w, z.w, sb);
  }
  return a;
}

// sum over the window's tokens t of rowbuf[rb + t * rs] * X[t][d0 .. d0+16): lanes l = 0..3 of a
// cluster load the vec4 of columns d0 + 4l.. (clamped into the row; lanes 4..7 repeat them) and the
// cluster shares them. (rb, rs) = (lane, lanes) reads the lane's own row of rowbuf.
fn quad(d0: u32, l8: u32) -> u32 {
  return min(d0 / 4u + (l8 & 3u), p.dim / 4u - 1u);
}
fn fma4x4(a: ptr<function, mat4x4<f32>>, x: f32, u: vec4<f32>, sb: u32) {
  for (var m = 0u; m < 4u; m++) {
    (*a)[m] += x * vec4<f32>(subgroupShuffle(u.x, sb + m), subgroupShuffle(u.y, sb + m),
                             subgroupShuffle(u.z, sb + m), subgroupShuffle(u.w, sb + m));
  }
}
fn acc16_v(w: Win, rb: u32, rs: u32, d0: u32, l8: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  let c4 = quad(d0, l8);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    fma4x4(&a, rowbuf[rb + t * rs], v[row4(tok, w.h) + c4], sb);
  }
  return a;
}
fn acc16_k(w: Win, rb: u32, rs: u32, d0: u32, l8: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  let c4 = quad(d0, l8);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    fma4x4(&a, rowbuf[rb + t * rs], k[row4(tok, w.h) + c4], sb);
  }
  return a;
}
fn acc16_go(w: Win, rb: u32, rs: u32, d0: u32, l8: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  let c4 = quad(d0, l8);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    fma4x4(&a, rowbuf[rb + t * rs], go[row4(tok, w.h) + c4], sb);
  }
  return a;
}
// Σ_t dLogit(t, j) · q row t over the window's tokens (bwd_kv: column j of one window-head, from ds)
fn acc16_q_ds(w: Win, rb: u32, rs: u32, d0: u32, l8: u32, sb: u32) -> mat4x4<f32> {
  var a = mat4x4<f32>();
  var rc = vec2<u32>(0u);
  let c4 = quad(d0, l8);
  for (var t = 0u; t < p.n; t++) {
    let tok = token_at(w, rc);
    rc = next_rc(rc);
    if (tok == INVALID) { continue; }
    fma4x4(&a, ds_in[rb + t * rs], q[row4(tok, w.h) + c4], sb);
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
fn query_logits(w: Win, qb: u32, qi: vec2<u32>, lane: u32, l8: u32, sb: u32) -> f32 {
  var mx = EXCLUDED;
  for (var j = 0u; j < p.n; j += 16u) {
    mx = max(mx, logit16(w, qi, lane, j, dot16_qk(qb, safe_base(w, j + l8), safe_base(w, j + 8u + l8), sb)));
  }
  return mx;
}

@compute @workgroup_size(WG)
fn window_attention_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                        @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }  // whole clusters
  let l8 = sg & 7u;
  let sb = sg - l8;
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let qi = rc_of(min(it.row, p.n - 1u));
  let qt = token_at(w, qi);
  let live = it.row < p.n && qt != INVALID;
  let qb = select(0u, row4(qt, w.h), live);
  let mx = query_logits(w, qb, qi, lane, l8, sb);
  var l = 0.0;
  for (var j = 0u; j < p.n; j++) {
    let e = exp(rowbuf[j * p.lanes + lane] - mx);
    rowbuf[j * p.lanes + lane] = e;
    l += e;
  }
  if (live) { lse_out[qt * p.heads + w.h] = mx + log(l); }
  let inv = 1.0 / l;
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_v(w, lane, p.lanes, d0, l8, sb);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(4u, (p.dim - d0) / 4u); c++) { out[qb + d0 / 4u + c] = m[c] * inv; }
    }
  }
}

// ---- backward: dq and the bias-gradient partial sums ----------------------------------------------

@compute @workgroup_size(WG)
fn window_attention_bwd_q(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                          @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }
  let l8 = sg & 7u;
  let sb = sg - l8;
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let n = p.n;
  let qi = rc_of(min(it.row, n - 1u));
  let qt = token_at(w, qi);
  let live = it.row < n && qt != INVALID;
  let qb = select(0u, row4(qt, w.h), live);
  var dl = 0.0;
  var lse_i = 3.0e38;  // a lane without a query: P = 0, its (unused) row stays finite
  if (live) {
    for (var d = 0u; d < p.dim / 4u; d++) { dl += dot(go[qb + d], o[qb + d]); }
    lse_i = lse[qt * p.heads + w.h];
  }
  // P_ij = exp(logit - lse_i) (a padded key: P = 0)
  for (var j = 0u; j < n; j += 16u) {
    prob16_q(w, qi, lane, j, dot16_qk(qb, safe_base(w, j + l8), safe_base(w, j + 8u + l8), sb), lse_i);
  }
  // dLogit_ij = P_ij (go_i . v_j - delta_i), delta_i = go_i . out_i
  for (var j = 0u; j < n; j += 16u) {
    mul16_q(j, lane, dot16_gov(qb, safe_base(w, j + l8), safe_base(w, j + 8u + l8), sb), dl);
  }
  if (p.want_ds == 1u && it.row < n) {
    let base = (it.z * p.nwin + it.win) * n * n + it.row;  // (b, h, win), + j * n
    for (var j = 0u; j < n; j++) { ds[base + j * n] = select(0.0, rowbuf[j * p.lanes + lane], live); }
  }
  // dq_i = scale * sum_j dLogit_ij k_j
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_k(w, lane, p.lanes, d0, l8, sb);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(4u, (p.dim - d0) / 4u); c++) { dq[qb + d0 / 4u + c] = m[c] * p.scale; }
    }
  }
}

// ---- backward: dk, dv (one lane per key) ------------------------------------------------------

@compute @workgroup_size(WG)
fn window_attention_bwd_kv(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                           @builtin(local_invocation_index) lane: u32, @builtin(subgroup_invocation_id) sg: u32) {
  let it = item_of(wid, nwg, lane);
  if (!it.ok) { return; }
  let l8 = sg & 7u;
  let sb = sg - l8;
  let w = make_win(it.z / p.heads, it.win, it.z % p.heads);
  let n = p.n;
  let kj = rc_of(min(it.row, n - 1u));
  let kt = token_at(w, kj);
  let live = it.row < n && kt != INVALID;
  let kb = select(0u, row4(kt, w.h), live);
  // P_ij for every query i of the window (column j of the attention matrix)
  for (var i = 0u; i < n; i += 16u) {
    prob16_k(w, kj, lane, i, dot16_kq(kb, safe_base(w, i + l8), safe_base(w, i + 8u + l8), sb));
  }
  // dv_j = sum_i P_ij go_i
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_go(w, lane, p.lanes, d0, l8, sb);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(4u, (p.dim - d0) / 4u); c++) { dv[kb + d0 / 4u + c] = m[c]; }
    }
  }
  // dk_j = scale * sum_i dLogit_ij q_i (dLogit from bwd_q)
  let dsb = (it.z * p.nwin + it.win) * n * n + min(it.row, n - 1u) * n;
  for (var d0 = 0u; d0 < p.dim; d0 += 16u) {
    let a = acc16_q_ds(w, dsb, 1u, d0, l8, sb);
    if (live) {
      var m = a;
      for (var c = 0u; c < min(4u, (p.dim - d0) / 4u); c++) { dk[kb + d0 / 4u + c] = m[c] * p.scale; }
    }
  }
}
