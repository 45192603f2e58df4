// Fused optimizer updates and gradient-norm clipping, multi-tensor, 4 elements per invocation.
//
// Parameters and gradients live in their own buffers (modules and autodiff own them), and WebGPU
// has no arrays of bindings, so one dispatch updates up to 4 parameters: slots 0..3 each bind the
// parameter (read_write) and its gradient (read). Optimizer state (exp_avg, exp_avg_sq, momentum
// buffers) lives in arenas owned by the optimizer, one buffer per state kind, each parameter at a
// 256-byte aligned offset given per slot. Adam binds 4 + 4 + 2 = 10 storage buffers, the portable
// limit. The slots' vec4s are concatenated into one 1-D index space (`ends` are cumulative vec4
// counts) so a dispatch is one grid; unused slots are empty and bind dummy buffers.
// Buffers are bound rounded up to 16 bytes and read as vec4 (on lavapipe a vec4 load per lane is
// 4-8x faster than 4 scalar gathers; on GPUs it is the usual 128-bit access). The last vec4 of a
// parameter whose size is not a multiple of 4 is stored component by component, so nothing past
// the tensor is written (arena padding is the optimizer's own, so state is stored whole).
// Each element is read once and written once per step: Adam moves 7 floats per parameter.

override WG: u32 = 256u;

@group(0) @binding(0) var<storage, read_write> p0: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> p1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> p2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> p3: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> g0: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> g1: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> g2: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> g3: array<vec4<f32>>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn load_p(s: u32, j: u32) -> vec4<f32> {
  switch s {
    case 0u: { return p0[j]; }
    case 1u: { return p1[j]; }
    case 2u: { return p2[j]; }
    default: { return p3[j]; }
  }
}

fn store_p(s: u32, j: u32, v: vec4<f32>) {
  switch s {
    case 0u: { p0[j] = v; }
    case 1u: { p1[j] = v; }
    case 2u: { p2[j] = v; }
    default: { p3[j] = v; }
  }
}

fn load_g(s: u32, j: u32) -> vec4<f32> {
  switch s {
    case 0u: { return g0[j]; }
    case 1u: { return g1[j]; }
    case 2u: { return g2[j]; }
    default: { return g3[j]; }
  }
}

fn store_p1(s: u32, j: u32, c: u32, v: f32) {
  switch s {
    case 0u: { p0[j][c] = v; }
    case 1u: { p1[j][c] = v; }
    case 2u: { p2[j][c] = v; }
    default: { p3[j][c] = v; }
  }
}

// Stores vec4 j of slot s's parameter, which has n elements: whole, or only the components < n.
fn store_p_masked(s: u32, j: u32, n: u32, v: vec4<f32>) {
  if (4u * j + 4u <= n) {
    store_p(s, j, v);
    return;
  }
  for (var c = 0u; c < 4u; c++) {
    if (4u * j + c < n) { store_p1(s, j, c, v[c]); }
  }
}

// slot of concatenated vec4 i, given the cumulative slot ends
fn slot4(i: u32, ends: vec4<u32>) -> u32 {
  return select(0u, 1u, i >= ends.x) + select(0u, 1u, i >= ends.y) + select(0u, 1u, i >= ends.z);
}

fn start4(s: u32, ends: vec4<u32>) -> u32 {
  if (s == 0u) { return 0u; }
  return ends[s - 1u];
}

// ---- Adam / AdamW (PyTorch semantics, bias-corrected) --------------------------------------------

struct AdamParams {
  ends: vec4<u32>,           // cumulative vec4 counts of the slots
  sizes: vec4<u32>,          // elements of each slot's parameter
  m_off: vec4<u32>,          // vec4 offset of each slot's exp_avg in the exp_avg arena
  v_off: vec4<u32>,          // ... of exp_avg_sq
  step_size: vec4<f32>,      // lr / (1 - β1^t), per slot (each parameter has its own step t)
  inv_sqrt_bc2: vec4<f32>,   // 1 / sqrt(1 - β2^t), per slot
  beta1: f32,
  beta2: f32,
  eps: f32,
  decay_mul: f32,            // AdamW: p ← p · (1 − lr·wd); 1 for Adam
  coupled_wd: f32,           // Adam: g ← g + wd·p; 0 for AdamW
}

@group(0) @binding(8) var<storage, read_write> exp_avg: array<vec4<f32>>;
@group(0) @binding(9) var<storage, read_write> exp_avg_sq: array<vec4<f32>>;
@group(0) @binding(10) var<uniform> ap: AdamParams;

@compute @workgroup_size(WG)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= ap.ends.w) { return; }
  let s = slot4(i, ap.ends);
  let j = i - start4(s, ap.ends);
  var p = load_p(s, j);
  let g = load_g(s, j) + ap.coupled_wd * p;
  p = p * ap.decay_mul;
  let mo = ap.m_off[s] + j;
  let vo = ap.v_off[s] + j;
  let m = ap.beta1 * exp_avg[mo] + (1.0 - ap.beta1) * g;
  let v = ap.beta2 * exp_avg_sq[vo] + (1.0 - ap.beta2) * g * g;
  exp_avg[mo] = m;
  exp_avg_sq[vo] = v;
  let denom = sqrt(v) * ap.inv_sqrt_bc2[s] + ap.eps;
  store_p_masked(s, j, ap.sizes[s], p - ap.step_size[s] * m / denom);
}

// ---- SGD (momentum, dampening, nesterov, coupled weight decay; PyTorch semantics) ---------------

struct SgdParams {
  ends: vec4<u32>,
  sizes: vec4<u32>,
  buf_off: vec4<u32>,        // vec4 offset of each slot's momentum buffer
  first: vec4<u32>,          // 1: the slot's buffer is uninitialised, so buf ← g (no dampening)
  lr: f32,
  momentum: f32,             // 0: plain SGD, the buffer is not touched
  dampening: f32,
  weight_decay: f32,
  nesterov: u32,
}

@group(0) @binding(8) var<storage, read_write> momentum_buffer: array<vec4<f32>>;
@group(0) @binding(10) var<uniform> sp: SgdParams;

@compute @workgroup_size(WG)
fn sgd_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= sp.ends.w) { return; }
  let s = slot4(i, sp.ends);
  let j = i - start4(s, sp.ends);
  let p = load_p(s, j);
  var g = load_g(s, j) + sp.weight_decay * p;
  if (sp.momentum != 0.0) {
    let o = sp.buf_off[s] + j;
    var b = g;
    if (sp.first[s] == 0u) { b = sp.momentum * momentum_buffer[o] + (1.0 - sp.dampening) * g; }
    momentum_buffer[o] = b;
    if (sp.nesterov == 1u) { g = g + sp.momentum * b; } else { g = b; }
  }
  store_p_masked(s, j, sp.sizes[s], p - sp.lr * g);
}

// ---- clipGradNorm: total norm on the GPU, in-place scaling, no readback ------------------------
// norm_partial: up to 8 gradients per dispatch; each workgroup reduces one tile of WG·ITEMS vec4s
//   of one gradient (tiles never straddle gradients; components past the size are excluded) into
//   partials[part_base + tile].
// norm_final: one workgroup reduces every partial in a fixed order → norm and the clip coefficient.
// grad_scale: up to 8 (distinct) gradients per dispatch, g ← g · coef.
// Reduction orders depend only on the sizes, so the norm is deterministic.

override ITEMS: u32 = 16u;

struct NormParams {
  sizes_lo: vec4<u32>,     // elements of gradients 0..3
  sizes_hi: vec4<u32>,     // ... 4..7
  tiles_lo: vec4<u32>,     // cumulative tile ends of gradients 0..3
  tiles_hi: vec4<u32>,     // ... 4..7
  part_base: u32,
  kind: u32,               // 0: p = 2, 1: p = ∞, 2: other finite p
  norm_type: f32,
}

@group(0) @binding(0) var<storage, read> ng0: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> ng1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> ng2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> ng3: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> ng4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> ng5: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> ng6: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read> ng7: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read_write> partials: array<f32>;
@group(0) @binding(9) var<uniform> np: NormParams;

fn load_ng(s: u32, j: u32) -> vec4<f32> {
  switch s {
    case 0u: { return ng0[j]; }
    case 1u: { return ng1[j]; }
    case 2u: { return ng2[j]; }
    case 3u: { return ng3[j]; }
    case 4u: { return ng4[j]; }
    case 5u: { return ng5[j]; }
    case 6u: { return ng6[j]; }
    default: { return ng7[j]; }
  }
}

fn pick8(lo: vec4<u32>, hi: vec4<u32>, s: u32) -> u32 {
  if (s < 4u) { return lo[s]; }
  return hi[s - 4u];
}

// slot of i given 8 cumulative ends (branchless: i < the last end, so it is not compared)
fn slot8(i: u32, lo: vec4<u32>, hi: vec4<u32>) -> u32 {
  let a = select(vec4<u32>(0u), vec4<u32>(1u), vec4<u32>(i) >= lo);
  let b = select(vec3<u32>(0u), vec3<u32>(1u), vec3<u32>(i) >= hi.xyz);
  return a.x + a.y + a.z + a.w + b.x + b.y + b.z;
}

// the norm's contribution of 4 elements, `live` of which (from the front) are real
fn norm_term4(g: vec4<f32>, live: u32) -> f32 {
  let a = abs(g);
  var t: vec4<f32>;
  switch np.kind {
    case 0u: { t = g * g; }
    case 1u: { t = a; }
    default: { t = pow(a, vec4<f32>(np.norm_type)); }
  }
  let keep = vec4<u32>(0u, 1u, 2u, 3u) < vec4<u32>(live);
  t = select(vec4<f32>(0.0), t, keep);
  if (np.kind == 1u) { return max(max(t.x, t.y), max(t.z, t.w)); }
  return (t.x + t.y) + (t.z + t.w);
}

fn norm_combine(a: f32, b: f32, kind: u32) -> f32 {
  if (kind == 1u) { return max(a, b); }
  return a + b;
}

var<workgroup> red: array<f32, WG>;

@compute @workgroup_size(WG)
fn norm_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let w = wid.x + wid.y * nwg.x;
  let total_tiles = np.tiles_hi.w;
  var acc = 0.0;
  if (w < total_tiles) {
    let s = slot8(w, np.tiles_lo, np.tiles_hi);
    var tile_start = 0u;
    if (s > 0u) { tile_start = pick8(np.tiles_lo, np.tiles_hi, s - 1u); }
    let n = pick8(np.sizes_lo, np.sizes_hi, s);
    let base = (w - tile_start) * WG * ITEMS;
    for (var k = 0u; k < ITEMS; k++) {
      let j = base + k * WG + lid;
      if (4u * j < n) { acc = norm_combine(acc, norm_term4(load_ng(s, j), min(n - 4u * j, 4u)), np.kind); }
    }
  }
  red[lid] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] = norm_combine(red[lid], red[lid + k], np.kind); }
    workgroupBarrier();
  }
  if (lid == 0u && w < total_tiles) { partials[np.part_base + w] = red[0]; }
}

struct FinalParams {
  count: u32,
  kind: u32,
  norm_type: f32,
  max_norm: f32,
}

@group(0) @binding(0) var<storage, read> fpartials: array<f32>;
@group(0) @binding(1) var<storage, read_write> norm: array<f32>;   // [1]
@group(0) @binding(2) var<storage, read_write> coef: array<f32>;   // [1]
@group(0) @binding(3) var<uniform> fp: FinalParams;

@compute @workgroup_size(WG)
fn norm_final(@builtin(local_invocation_index) lid: u32) {
  var acc = 0.0;
  for (var i = lid; i < fp.count; i += WG) { acc = norm_combine(acc, fpartials[i], fp.kind); }
  red[lid] = acc;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) { red[lid] = norm_combine(red[lid], red[lid + k], fp.kind); }
    workgroupBarrier();
  }
  if (lid == 0u) {
    var total = red[0];
    if (fp.kind == 0u) { total = sqrt(total); } else if (fp.kind == 2u) { total = pow(total, 1.0 / fp.norm_type); }
    norm[0] = total;
    // PyTorch: clamp(max_norm / (norm + 1e-6), max = 1)
    coef[0] = min(fp.max_norm / (total + 1e-6), 1.0);
  }
}

struct ScaleParams {
  ends_lo: vec4<u32>,      // cumulative vec4 counts of gradients 0..3
  ends_hi: vec4<u32>,      // ... 4..7
  sizes_lo: vec4<u32>,     // elements of gradients 0..3
  sizes_hi: vec4<u32>,     // ... 4..7
}

@group(0) @binding(0) var<storage, read_write> sg0: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> sg1: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> sg2: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> sg3: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> sg4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> sg5: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read_write> sg6: array<vec4<f32>>;
@group(0) @binding(7) var<storage, read_write> sg7: array<vec4<f32>>;
@group(0) @binding(8) var<storage, read> scoef: array<f32>;
@group(0) @binding(9) var<uniform> scp: ScaleParams;

fn scale_comp(s: u32, j: u32, c: u32, f: f32) {
  switch s {
    case 0u: { sg0[j][c] *= f; }
    case 1u: { sg1[j][c] *= f; }
    case 2u: { sg2[j][c] *= f; }
    case 3u: { sg3[j][c] *= f; }
    case 4u: { sg4[j][c] *= f; }
    case 5u: { sg5[j][c] *= f; }
    case 6u: { sg6[j][c] *= f; }
    default: { sg7[j][c] *= f; }
  }
}

@compute @workgroup_size(WG)
fn grad_scale(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= scp.ends_hi.w) { return; }
  let s = slot8(i, scp.ends_lo, scp.ends_hi);
  var j = i;
  if (s > 0u) { j = i - pick8(scp.ends_lo, scp.ends_hi, s - 1u); }
  let n = pick8(scp.sizes_lo, scp.sizes_hi, s);
  let f = scoef[0];
  if (4u * j + 4u > n) {
    // the partial last vec4: only the components inside the tensor
    for (var c = 0u; c < 4u; c++) {
      if (4u * j + c < n) { scale_comp(s, j, c, f); }
    }
    return;
  }
  switch s {
    case 0u: { sg0[j] *= f; }
    case 1u: { sg1[j] *= f; }
    case 2u: { sg2[j] *= f; }
    case 3u: { sg3[j] *= f; }
    case 4u: { sg4[j] *= f; }
    case 5u: { sg5[j] *= f; }
    case 6u: { sg6[j] *= f; }
    default: { sg7[j] *= f; }
  }
}
