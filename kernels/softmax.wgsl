// Softmax family: softmax and logSoftmax, forward and backward, over one axis of a tensor seen as
// [outer, R, inner]. A "row" is one (o, i) pair; its R elements sit at o*R*inner + j*inner + i.
// So any dim is reduced in place through strides: no permute copies before or after.
//
// Three layouts of the same math, chosen per call in src/ops/softmax.ts (row length, row count,
// adapter):
//   *_row   one invocation per row, no barriers. inner == 1: vec4 loads over the 16-byte-aligned
//           body of the row (xa, a vec4 view of the same buffer) plus scalar head and tail, so
//           any R vectorises; inner > 1: scalar loads, and neighbouring invocations read
//           neighbouring addresses (coalesced). Short and medium rows, many rows.
//   *_col4  inner % 4 == 0: one invocation per 4 neighbouring rows (i .. i+3), vec4 loads and
//           stores, each component its own row. Reductions over a non-last dim.
//   *_wg    one workgroup per row for long rows that are too few to fill the device: strided
//           loads (coalesced), then a radix-FAN tree in workgroup memory, ceil(log_FAN(WG))
//           barrier levels (FAN = 8: 2 levels at WG = 64, 3 at 256).
// Numerics: every path subtracts the row max before exp, so no offset overflows. The forward of
// *_wg keeps a running (max, sum) per invocation and merges pairs in the tree (one tree, not two).
// LOG = 1 selects logSoftmax: y = (x - m) - log(s); softmax is y = exp(x - m) * (1 / s).
// Backward, from the saved output yo and the output gradient g (t = the row reduction):
//   softmax      t = sum(g * yo),  gx = yo * (g - t)
//   logSoftmax   t = sum(g),       gx = g - exp(yo) * t

override WG: u32 = 64u;
override FAN: u32 = 8u;
override LOG: u32 = 0u;

struct Params {
  rows: u32,   // rows (for *_col4: groups of 4 rows)
  r: u32,      // row length R
  inner: u32,  // stride between the elements of a row (for *_col4: inner / 4, in vec4s)
  vec: u32,    // *_row: 1 when the vec4 views (xa, yoa, ga) are bound over the whole tensor
}

// forward
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> xa: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> y4: array<vec4<f32>>;

// backward (yo: the saved forward output)
@group(0) @binding(0) var<storage, read> yo: array<f32>;
@group(0) @binding(1) var<storage, read> yoa: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> g: array<f32>;
@group(0) @binding(5) var<storage, read> ga: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;
@group(0) @binding(0) var<storage, read> yo4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> gx4: array<vec4<f32>>;

var<workgroup> red_m: array<f32, WG>;
var<workgroup> red_s: array<f32, WG>;

const NEG_MAX: f32 = -3.402823466e38;

// ---- math shared by every layout ---------------------------------------------------------------

// k = log(s) for logSoftmax, 1 / s for softmax
fn fwd_k(s: f32) -> f32 {
  if (LOG == 1u) { return log(s); }
  return 1.0 / s;
}
fn fwd_k4(s: vec4<f32>) -> vec4<f32> {
  if (LOG == 1u) { return log(s); }
  return 1.0 / s;
}
fn fwd_val(v: f32, m: f32, k: f32) -> f32 {
  if (LOG == 1u) { return (v - m) - k; }
  return exp(v - m) * k;
}
fn fwd_val4(v: vec4<f32>, m: vec4<f32>, k: vec4<f32>) -> vec4<f32> {
  if (LOG == 1u) { return (v - m) - k; }
  return exp(v - m) * k;
}
fn bwd_term(gv: f32, o: f32) -> f32 {
  if (LOG == 1u) { return gv; }
  return gv * o;
}
fn bwd_term4(gv: vec4<f32>, o: vec4<f32>) -> vec4<f32> {
  if (LOG == 1u) { return gv; }
  return gv * o;
}
fn bwd_val(gv: f32, o: f32, t: f32) -> f32 {
  if (LOG == 1u) { return gv - exp(o) * t; }
  return o * (gv - t);
}
fn bwd_val4(gv: vec4<f32>, o: vec4<f32>, t: vec4<f32>) -> vec4<f32> {
  if (LOG == 1u) { return gv - exp(o) * t; }
  return o * (gv - t);
}
fn hmax(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// ---- *_row: one invocation per row ------------------------------------------------------------

// A row as scalar head j in [0, h), vec4 body q in [q0, q1) (vec4 index into the whole buffer)
// and scalar tail j in [t, R); scalar element j lives at b + j * s.
struct Span { b: u32, s: u32, h: u32, q0: u32, q1: u32, t: u32 }

fn row_span(row: u32) -> Span {
  let o = row / p.inner;
  let b = o * p.r * p.inner + (row - o * p.inner);
  if (p.inner != 1u || p.vec == 0u) { return Span(b, p.inner, p.r, 0u, 0u, p.r); }
  let e = b + p.r;
  let a0 = min((b + 3u) & ~3u, e);  // first 16-byte-aligned element (or the end)
  let a1 = max(e & ~3u, a0);         // end of the aligned body
  return Span(b, 1u, a0 - b, a0 / 4u, a1 / 4u, a1 - b);
}

fn row_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

@compute @workgroup_size(WG)
fn softmax_fwd_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let sp = row_span(row);
  var m4 = vec4<f32>(NEG_MAX);
  for (var j = 0u; j < sp.h; j++) { m4.x = max(m4.x, x[sp.b + j * sp.s]); }
  for (var q = sp.q0; q < sp.q1; q++) { m4 = max(m4, xa[q]); }
  for (var j = sp.t; j < p.r; j++) { m4.y = max(m4.y, x[sp.b + j * sp.s]); }
  let m = hmax(m4);
  var s4 = vec4<f32>(0.0);
  for (var j = 0u; j < sp.h; j++) { s4.x += exp(x[sp.b + j * sp.s] - m); }
  for (var q = sp.q0; q < sp.q1; q++) { s4 += exp(xa[q] - m); }
  for (var j = sp.t; j < p.r; j++) { s4.y += exp(x[sp.b + j * sp.s] - m); }
  let k = fwd_k(hsum(s4));
  for (var j = 0u; j < sp.h; j++) {
    let i = sp.b + j * sp.s;
    y[i] = fwd_val(x[i], m, k);
  }
  for (var q = sp.q0; q < sp.q1; q++) {
    let v = fwd_val4(xa[q], vec4<f32>(m), vec4<f32>(k));
    y[4u * q] = v.x;
    y[4u * q + 1u] = v.y;
    y[4u * q + 2u] = v.z;
    y[4u * q + 3u] = v.w;
  }
  for (var j = sp.t; j < p.r; j++) {
    let i = sp.b + j * sp.s;
    y[i] = fwd_val(x[i], m, k);
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let sp = row_span(row);
  var t4 = vec4<f32>(0.0);
  for (var j = 0u; j < sp.h; j++) {
    let i = sp.b + j * sp.s;
    t4.x += bwd_term(g[i], yo[i]);
  }
  for (var q = sp.q0; q < sp.q1; q++) { t4 += bwd_term4(ga[q], yoa[q]); }
  for (var j = sp.t; j < p.r; j++) {
    let i = sp.b + j * sp.s;
    t4.y += bwd_term(g[i], yo[i]);
  }
  let t = hsum(t4);
  for (var j = 0u; j < sp.h; j++) {
    let i = sp.b + j * sp.s;
    gx[i] = bwd_val(g[i], yo[i], t);
  }
  for (var q = sp.q0; q < sp.q1; q++) {
    let v = bwd_val4(ga[q], yoa[q], vec4<f32>(t));
    gx[4u * q] = v.x;
    gx[4u * q + 1u] = v.y;
    gx[4u * q + 2u] = v.z;
    gx[4u * q + 3u] = v.w;
  }
  for (var j = sp.t; j < p.r; j++) {
    let i = sp.b + j * sp.s;
    gx[i] = bwd_val(g[i], yo[i], t);
  }
}

// ---- *_col4: one invocation per 4 neighbouring rows (inner % 4 == 0) --------------------------

fn col4_base(q: u32) -> u32 {
  let o = q / p.inner;
  return o * p.r * p.inner + (q - o * p.inner);
}

@compute @workgroup_size(WG)
fn softmax_fwd_col4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = row_id(gid, nwg);
  if (q >= p.rows) { return; }
  let b = col4_base(q);
  var m = vec4<f32>(NEG_MAX);
  for (var j = 0u; j < p.r; j++) { m = max(m, x4[b + j * p.inner]); }
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < p.r; j++) { s += exp(x4[b + j * p.inner] - m); }
  let k = fwd_k4(s);
  for (var j = 0u; j < p.r; j++) {
    let i = b + j * p.inner;
    y4[i] = fwd_val4(x4[i], m, k);
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd_col4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let q = row_id(gid, nwg);
  if (q >= p.rows) { return; }
  let b = col4_base(q);
  var t = vec4<f32>(0.0);
  for (var j = 0u; j < p.r; j++) {
    let i = b + j * p.inner;
    t += bwd_term4(g4[i], yo4[i]);
  }
  for (var j = 0u; j < p.r; j++) {
    let i = b + j * p.inner;
    gx4[i] = bwd_val4(g4[i], yo4[i], t);
  }
}

// ---- *_wg: one workgroup per row ----------------------------------------------------------------

fn wg_row(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

fn wg_base(row: u32) -> u32 {
  let o = row / p.inner;
  return o * p.r * p.inner + (row - o * p.inner);
}

// Merges the WG (max, sum-of-exp) pairs in red_m/red_s into element 0. Level by level, invocation
// l < st merges l, l + st, l + 2 st, ... (< width): reads at >= st, writes below st, so no race.
fn tree_max_sum(lid: u32) {
  workgroupBarrier();
  var width = WG;
  loop {
    if (width <= 1u) { break; }
    let st = (width + FAN - 1u) / FAN;
    if (lid < st) {
      var m = red_m[lid];
      var s = red_s[lid];
      for (var k = 1u; k < FAN; k++) {
        let i = lid + k * st;
        if (i < width) {
          let m2 = red_m[i];
          let mn = max(m, m2);
          s = s * exp(m - mn) + red_s[i] * exp(m2 - mn);
          m = mn;
        }
      }
      red_m[lid] = m;
      red_s[lid] = s;
    }
    width = st;
    workgroupBarrier();
  }
}

// Sums red_s into element 0, same scheme.
fn tree_sum(lid: u32) {
  workgroupBarrier();
  var width = WG;
  loop {
    if (width <= 1u) { break; }
    let st = (width + FAN - 1u) / FAN;
    if (lid < st) {
      var s = red_s[lid];
      for (var k = 1u; k < FAN; k++) {
        let i = lid + k * st;
        if (i < width) { s += red_s[i]; }
      }
      red_s[lid] = s;
    }
    width = st;
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn softmax_fwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wg_row(wid, nwg);
  if (row >= p.rows) { return; }  // workgroup-uniform: the barriers below stay uniform
  let b = wg_base(row);
  var m = NEG_MAX;
  var s = 0.0;
  for (var j = lid; j < p.r; j += WG) {
    let v = x[b + j * p.inner];
    if (v > m) {  // rare after the first few elements: one exp per element in the common case
      s = s * exp(m - v);
      m = v;
    }
    s += exp(v - m);
  }
  red_m[lid] = m;
  red_s[lid] = s;
  tree_max_sum(lid);
  let mr = red_m[0];
  let k = fwd_k(red_s[0]);
  for (var j = lid; j < p.r; j += WG) {
    let i = b + j * p.inner;
    y[i] = fwd_val(x[i], mr, k);
  }
}

@compute @workgroup_size(WG)
fn softmax_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wg_row(wid, nwg);
  if (row >= p.rows) { return; }
  let b = wg_base(row);
  var t = 0.0;
  for (var j = lid; j < p.r; j += WG) {
    let i = b + j * p.inner;
    t += bwd_term(g[i], yo[i]);
  }
  red_s[lid] = t;
  tree_sum(lid);
  let tr = red_s[0];
  for (var j = lid; j < p.r; j += WG) {
    let i = b + j * p.inner;
    gx[i] = bwd_val(g[i], yo[i], tr);
  }
}
