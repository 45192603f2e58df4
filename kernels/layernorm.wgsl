// LayerNorm family over the trailing C elements of each of N rows (x seen as [N, C]):
//   forward   y = (x - mean) * rstd * w + b, and saves mean, rstd = 1 / sqrt(var + eps) per row
//             (biased variance, two-pass: var = mean((x - mean)^2), like llm.c layernorm_forward;
//             the mean is x0 + mean(x - x0) with x0 the row's first element, so a large common
//             offset costs no precision beyond rounding the mean itself to f32).
//   backward  dn = g * w,  xhat = (x - mean) * rstd
//             dx = (dn - mean(dn) - xhat * mean(dn * xhat)) * rstd       one fused kernel per row
//             dw = sum over rows of g * xhat,  db = sum over rows of g   one fused column kernel
// w and b are optional: has_w / has_b say whether they are bound (a placeholder is bound if not).
//
// Layouts, chosen in src/ops/layernorm.ts by N, C and the adapter:
//   ln_*_row   one invocation per row, scalar loads, no barriers.
//   ln_*_row4  the same with vec4 loads and stores, for C % 4 == 0 (every row is 16-byte aligned).
//   ln_*_wg    one workgroup per row (few long rows): strided loads, radix-FAN trees in workgroup
//              memory. The forward merges per-invocation (count, mean, M2) triples with Chan's
//              formula, so it stays two-pass-accurate with one tree.
//   ln_params / ln_params4 (C % 4 == 0, 4 columns per invocation): dw and db for the columns of
//              one chunk of rows; ln_params_sum adds the chunks' partial sums in a fixed order.
//              Deterministic, no atomics.

override WG: u32 = 64u;
override FAN: u32 = 8u;

struct Params {
  rows: u32,     // N
  c: u32,        // C (for *_row4 and ln_params4: C / 4)
  eps: f32,
  has_w: u32,
  has_b: u32,
  inv_c: f32,    // 1 / C (of scalar elements)
}

// forward
@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> mean: array<f32>;
@group(0) @binding(5) var<storage, read_write> rstd: array<f32>;
@group(0) @binding(6) var<uniform> p: Params;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> w4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> y4: array<vec4<f32>>;

// backward (dx): x, w as above; the saved statistics are read-only here
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> g4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;
@group(0) @binding(3) var<storage, read_write> gx4: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> smean: array<f32>;
@group(0) @binding(5) var<storage, read> srstd: array<f32>;

// backward (dw, db): x / x4, g / g4, smean, srstd as above; partial sums of chunk k at k * C
@group(0) @binding(1) var<storage, read_write> dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> db: array<f32>;
@group(0) @binding(1) var<storage, read_write> dw4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> db4: array<vec4<f32>>;

struct ParamsSum {
  rows: u32,     // N
  c: u32,        // columns (for ln_params4: C / 4)
  chunks: u32,   // partial sums per column
  rows_per_chunk: u32,
  has_w: u32,
  has_b: u32,
}
@group(0) @binding(6) var<uniform> ps: ParamsSum;
@group(0) @binding(0) var<storage, read> pw: array<f32>;
@group(0) @binding(4) var<storage, read> pb: array<f32>;

var<workgroup> red_a: array<f32, WG>;
var<workgroup> red_b: array<f32, WG>;
var<workgroup> red_c: array<f32, WG>;

fn row_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}
fn hsum(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }

// ---- forward --------------------------------------------------------------------------------------

fn affine(v: f32, j: u32) -> f32 {
  var o = v;
  if (p.has_w == 1u) { o = o * w[j]; }
  if (p.has_b == 1u) { o = o + b[j]; }
  return o;
}
fn affine4(v: vec4<f32>, j: u32) -> vec4<f32> {
  var o = v;
  if (p.has_w == 1u) { o = o * w4[j]; }
  if (p.has_b == 1u) { o = o + b4[j]; }
  return o;
}

@compute @workgroup_size(WG)
fn ln_fwd_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.c;
  let x0 = x[base];  // shift: the sum of x - x0 keeps the mean accurate under large offsets
  var s = 0.0;
  for (var j = 0u; j < p.c; j++) { s += x[base + j] - x0; }
  let mu = x0 + s * p.inv_c;
  var v = 0.0;
  for (var j = 0u; j < p.c; j++) {
    let d = x[base + j] - mu;
    v += d * d;
  }
  let rs = inverseSqrt(v * p.inv_c + p.eps);
  for (var j = 0u; j < p.c; j++) { y[base + j] = affine((x[base + j] - mu) * rs, j); }
  mean[row] = mu;
  rstd[row] = rs;
}

@compute @workgroup_size(WG)
fn ln_fwd_row4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.c;
  let x0 = x4[base].x;
  var s = vec4<f32>(0.0);
  for (var j = 0u; j < p.c; j++) { s += x4[base + j] - x0; }
  let mu = x0 + hsum(s) * p.inv_c;
  var v = vec4<f32>(0.0);
  for (var j = 0u; j < p.c; j++) {
    let d = x4[base + j] - mu;
    v += d * d;
  }
  let rs = inverseSqrt(hsum(v) * p.inv_c + p.eps);
  for (var j = 0u; j < p.c; j++) { y4[base + j] = affine4((x4[base + j] - mu) * rs, j); }
  mean[row] = mu;
  rstd[row] = rs;
}

fn wg_row(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.x + wid.y * nwg.x;
}

// Merges the per-invocation (count, mean, M2) in red_a/b/c into element 0 (Chan et al.).
// Level by level, invocation l < st merges l, l + st, ... (< width): reads >= st, writes < st.
fn tree_moments(lid: u32) {
  workgroupBarrier();
  var width = WG;
  loop {
    if (width <= 1u) { break; }
    let st = (width + FAN - 1u) / FAN;
    if (lid < st) {
      var n = red_a[lid];
      var mu = red_b[lid];
      var m2 = red_c[lid];
      for (var k = 1u; k < FAN; k++) {
        let i = lid + k * st;
        if (i < width) {
          let n2 = red_a[i];
          let nt = n + n2;
          if (n2 > 0.0) {
            let d = red_b[i] - mu;
            let f = n2 / nt;
            mu = mu + d * f;
            m2 = m2 + red_c[i] + d * d * n * f;
            n = nt;
          }
        }
      }
      red_a[lid] = n;
      red_b[lid] = mu;
      red_c[lid] = m2;
    }
    width = st;
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn ln_fwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wg_row(wid, nwg);
  if (row >= p.rows) { return; }  // workgroup-uniform
  let base = row * p.c;
  // this invocation's elements j = lid, lid + WG, ...: count, mean, then M2 about that mean,
  // all of x - x0 (the shift keeps the mean accurate under large offsets)
  let x0 = x[base];
  var cnt = 0u;
  if (lid < p.c) { cnt = (p.c - lid + WG - 1u) / WG; }
  var s = 0.0;
  for (var j = lid; j < p.c; j += WG) { s += x[base + j] - x0; }
  let n = f32(cnt);
  let mu_l = select(0.0, s / n, cnt > 0u);
  var m2 = 0.0;
  for (var j = lid; j < p.c; j += WG) {
    let d = (x[base + j] - x0) - mu_l;
    m2 += d * d;
  }
  red_a[lid] = n;
  red_b[lid] = mu_l;
  red_c[lid] = m2;
  tree_moments(lid);
  let mu = x0 + red_b[0];
  let rs = inverseSqrt(red_c[0] * p.inv_c + p.eps);
  for (var j = lid; j < p.c; j += WG) { y[base + j] = affine((x[base + j] - mu) * rs, j); }
  if (lid == 0u) {
    mean[row] = mu;
    rstd[row] = rs;
  }
}

// ---- backward: dx -------------------------------------------------------------------------------

fn dnorm(gv: f32, j: u32) -> f32 {
  if (p.has_w == 1u) { return gv * w[j]; }
  return gv;
}
fn dnorm4(gv: vec4<f32>, j: u32) -> vec4<f32> {
  if (p.has_w == 1u) { return gv * w4[j]; }
  return gv;
}

@compute @workgroup_size(WG)
fn ln_bwd_row(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.c;
  let mu = smean[row];
  let rs = srstd[row];
  var sa = 0.0;
  var sb = 0.0;
  for (var j = 0u; j < p.c; j++) {
    let dn = dnorm(g[base + j], j);
    sa += dn;
    sb += dn * ((x[base + j] - mu) * rs);
  }
  let ma = sa * p.inv_c;
  let mb = sb * p.inv_c;
  for (var j = 0u; j < p.c; j++) {
    let xh = (x[base + j] - mu) * rs;
    gx[base + j] = (dnorm(g[base + j], j) - ma - xh * mb) * rs;
  }
}

@compute @workgroup_size(WG)
fn ln_bwd_row4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = row_id(gid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.c;
  let mu = smean[row];
  let rs = srstd[row];
  var sa = vec4<f32>(0.0);
  var sb = vec4<f32>(0.0);
  for (var j = 0u; j < p.c; j++) {
    let dn = dnorm4(g4[base + j], j);
    sa += dn;
    sb += dn * ((x4[base + j] - mu) * rs);
  }
  let ma = hsum(sa) * p.inv_c;
  let mb = hsum(sb) * p.inv_c;
  for (var j = 0u; j < p.c; j++) {
    let xh = (x4[base + j] - mu) * rs;
    gx4[base + j] = (dnorm4(g4[base + j], j) - ma - xh * mb) * rs;
  }
}

// Sums red_a and red_b into element 0, same radix-FAN scheme as tree_moments.
fn tree_sum2(lid: u32) {
  workgroupBarrier();
  var width = WG;
  loop {
    if (width <= 1u) { break; }
    let st = (width + FAN - 1u) / FAN;
    if (lid < st) {
      var a = red_a[lid];
      var c = red_b[lid];
      for (var k = 1u; k < FAN; k++) {
        let i = lid + k * st;
        if (i < width) {
          a += red_a[i];
          c += red_b[i];
        }
      }
      red_a[lid] = a;
      red_b[lid] = c;
    }
    width = st;
    workgroupBarrier();
  }
}

@compute @workgroup_size(WG)
fn ln_bwd_wg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
             @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wg_row(wid, nwg);
  if (row >= p.rows) { return; }
  let base = row * p.c;
  let mu = smean[row];
  let rs = srstd[row];
  var sa = 0.0;
  var sb = 0.0;
  for (var j = lid; j < p.c; j += WG) {
    let dn = dnorm(g[base + j], j);
    sa += dn;
    sb += dn * ((x[base + j] - mu) * rs);
  }
  red_a[lid] = sa;
  red_b[lid] = sb;
  tree_sum2(lid);
  let ma = red_a[0] * p.inv_c;
  let mb = red_b[0] * p.inv_c;
  for (var j = lid; j < p.c; j += WG) {
    let xh = (x[base + j] - mu) * rs;
    gx[base + j] = (dnorm(g[base + j], j) - ma - xh * mb) * rs;
  }
}

// ---- backward: dw, db ---------------------------------------------------------------------------
// Invocation (column c, chunk k) sums rows [k * rows_per_chunk, ...) of column c. Neighbouring
// invocations take neighbouring columns, so every row's loads coalesce. With one chunk the sums
// are the final dw, db; otherwise they are partials at k * C + c, summed by ln_params_sum.

@compute @workgroup_size(WG)
fn ln_params(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = row_id(gid, nwg);
  if (id >= ps.c * ps.chunks) { return; }
  let k = id / ps.c;
  let c = id - k * ps.c;
  let r0 = k * ps.rows_per_chunk;
  let r1 = min(r0 + ps.rows_per_chunk, ps.rows);
  var sw = 0.0;
  var sbias = 0.0;
  for (var r = r0; r < r1; r++) {
    let gv = g[r * ps.c + c];
    sw += gv * ((x[r * ps.c + c] - smean[r]) * srstd[r]);
    sbias += gv;
  }
  if (ps.has_w == 1u) { dw[id] = sw; }
  if (ps.has_b == 1u) { db[id] = sbias; }
}

@compute @workgroup_size(WG)
fn ln_params4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let id = row_id(gid, nwg);
  if (id >= ps.c * ps.chunks) { return; }
  let k = id / ps.c;
  let c = id - k * ps.c;
  let r0 = k * ps.rows_per_chunk;
  let r1 = min(r0 + ps.rows_per_chunk, ps.rows);
  var sw = vec4<f32>(0.0);
  var sbias = vec4<f32>(0.0);
  for (var r = r0; r < r1; r++) {
    let gv = g4[r * ps.c + c];
    sw += gv * ((x4[r * ps.c + c] - smean[r]) * srstd[r]);
    sbias += gv;
  }
  if (ps.has_w == 1u) { dw4[id] = sw; }
  if (ps.has_b == 1u) { db4[id] = sbias; }
}

// dw[c] = sum over k of pw[k * C + c] (and db from pb), k in order: deterministic.
@compute @workgroup_size(WG)
fn ln_params_sum(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let c = row_id(gid, nwg);
  if (c >= ps.c) { return; }
  var sw = 0.0;
  var sbias = 0.0;
  for (var k = 0u; k < ps.chunks; k++) {
    sw += pw[k * ps.c + c];
    sbias += pb[k * ps.c + c];
  }
  if (ps.has_w == 1u) { dw[c] = sw; }
  if (ps.has_b == 1u) { db[c] = sbias; }
}
