// Cross-entropy fused with log-softmax (PyTorch semantics: ignore_index, label_smoothing).
// logits are viewed as [N, C, S] (S = product of the trailing dims, 1 for [N, C]); a "row" is one
// (n, s) pair with its C logits at stride S; targets are [N·S] int32.
//   row loss = (1-ε)·(lse - x[y]) + ε·(lse - Σ_c x[c] / C)      (0 where y == ignore_index)
// Forward: per row (or per lane, merged across the workgroup as (max, Σexp) pairs) an online pass
// for max and Σ exp(x - max) (one exp per element) and Σ x, writing the row loss and lse (saved for
// backward); then one workgroup reduces the rows (sum, non-ignored count)
// in a fixed order, so the result is deterministic.
// Backward: gx = w_row · (softmax - (1-ε)·onehot(y) - ε/C), recomputing softmax from the saved lse;
// w_row = gy[row] ('none'), gy ('sum') or gy / count ('mean'). Elementwise over N·C·S, or with many
// classes (S = 1) one workgroup per row.
// A target outside [0, C) that is not ignore_index gives a NaN row loss and NaN gradients, never an
// out-of-bounds read, and is recorded in `flag` (see kernels/embedding.wgsl).

override WG: u32 = 128u;

const NEG_BIG: f32 = -3.402823466e38;

struct FwdParams {
  rows: u32,         // N · S
  classes: u32,      // C
  inner: u32,        // S
  ignore_index: i32,
  smoothing: f32,    // ε
  call: u32,         // id of this call for the out-of-range flag
}

@group(0) @binding(0) var<storage, read> logits: array<f32>;
@group(0) @binding(1) var<storage, read> targets: array<i32>;
@group(0) @binding(2) var<storage, read_write> loss: array<f32>;   // [rows]
@group(0) @binding(3) var<storage, read_write> lse: array<f32>;    // [rows]
@group(0) @binding(4) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(5) var<uniform> fp: FwdParams;

fn clamped_target(r: u32) -> u32 {
  return u32(clamp(targets[r], 0, i32(fp.classes) - 1));
}

fn row_base(r: u32) -> u32 {
  let n = r / fp.inner;
  let s = r - n * fp.inner;
  return n * fp.classes * fp.inner + s;
}

fn qnan() -> f32 {
  return bitcast<f32>(0x7fc00000u | (fp.rows & 0u));
}

// online (max, Σ exp(x - max)) merge
fn merge(m1: f32, s1: f32, m2: f32, s2: f32) -> vec2<f32> {
  let m = max(m1, m2);
  return vec2<f32>(m, s1 * exp(m1 - m) + s2 * exp(m2 - m));
}

// y's logit is read by the caller at a clamped class (never out of bounds) and used only if y is valid
fn finish_row(r: u32, m: f32, se: f32, sx: f32, xy: f32) {
  let l = m + log(se);
  lse[r] = l;
  let y = targets[r];
  if (y == fp.ignore_index) {
    loss[r] = 0.0;
    return;
  }
  if (y < 0 || u32(y) >= fp.classes) {
    loss[r] = qnan();
    atomicAdd(&flag[0], 1u);
    atomicMin(&flag[1], fp.call);
    atomicMax(&flag[2], fp.call);
    return;
  }
  let c = f32(fp.classes);
  loss[r] = (1.0 - fp.smoothing) * (l - xy) + fp.smoothing * (l - sx / c);
}

// One invocation per row (small C, or S > 1 where neighbouring invocations read neighbouring s).
// Two branchless passes over the row: max, then Σ exp(x - max) and Σ x (one exp per element).
@compute @workgroup_size(WG)
fn ce_fwd_small(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = gid.x + gid.y * nwg.x * WG;
  if (r >= fp.rows) { return; }
  let base = row_base(r);
  var m = NEG_BIG;
  for (var c = 0u; c < fp.classes; c++) { m = max(m, logits[base + c * fp.inner]); }
  var se = 0.0;
  var sx = 0.0;
  for (var c = 0u; c < fp.classes; c++) {
    let x = logits[base + c * fp.inner];
    se += exp(x - m);
    sx += x;
  }
  finish_row(r, m, se, sx, logits[base + clamped_target(r) * fp.inner]);
}

var<workgroup> sm: array<f32, WG>;
var<workgroup> ss: array<f32, WG>;
var<workgroup> sxs: array<f32, WG>;

// One workgroup per row (large C): a strided online pass per lane, then a tree merge of (max, Σexp, Σx).
@compute @workgroup_size(WG)
fn ce_fwd_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  let valid = r < fp.rows;
  var m = NEG_BIG;
  var se = 0.0;
  var sx = 0.0;
  if (valid) {
    let base = row_base(r);
    for (var c = lid; c < fp.classes; c += WG) {
      let x = logits[base + c * fp.inner];
      if (x > m) {
        se = se * exp(m - x) + 1.0;
        m = x;
      } else {
        se += exp(x - m);
      }
      sx += x;
    }
  }
  sm[lid] = m;
  ss[lid] = se;
  sxs[lid] = sx;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let a = merge(sm[lid], ss[lid], sm[lid + k], ss[lid + k]);
      sm[lid] = a.x;
      ss[lid] = a.y;
      sxs[lid] = sxs[lid] + sxs[lid + k];
    }
    workgroupBarrier();
  }
  if (lid == 0u && valid) { finish_row(r, sm[0], ss[0], sxs[0], logits[row_base(r) + clamped_target(r) * fp.inner]); }
}

@group(0) @binding(0) var<storage, read> logits4: array<vec4<f32>>;

// C % 4 == 0 and S == 1: the row kernel reading vec4s (4-8x fewer loads on lavapipe, 128-bit loads
// on GPUs). Per vec4 the online update is branchless: m' = max(m, max(x)), se·exp(m - m') + Σexp(x - m').
@compute @workgroup_size(WG)
fn ce_fwd_row4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  let valid = r < fp.rows;
  var m = NEG_BIG;
  var se = 0.0;
  var sx = 0.0;
  if (valid) {
    let c4 = fp.classes / 4u;
    let base = r * c4;
    for (var k = lid; k < c4; k += WG) {
      let x = logits4[base + k];
      let mn = max(m, max(max(x.x, x.y), max(x.z, x.w)));
      let e = exp(x - vec4<f32>(mn));
      se = se * exp(m - mn) + ((e.x + e.y) + (e.z + e.w));
      m = mn;
      sx += (x.x + x.y) + (x.z + x.w);
    }
  }
  sm[lid] = m;
  ss[lid] = se;
  sxs[lid] = sx;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      let a = merge(sm[lid], ss[lid], sm[lid + k], ss[lid + k]);
      sm[lid] = a.x;
      ss[lid] = a.y;
      sxs[lid] = sxs[lid] + sxs[lid + k];
    }
    workgroupBarrier();
  }
  if (lid == 0u && valid) {
    let j = r * fp.classes + clamped_target(r);
    finish_row(r, sm[0], ss[0], sxs[0], logits4[j / 4u][j % 4u]);
  }
}

// ---- reduction over rows ------------------------------------------------------------------------

struct ReduceParams {
  rows: u32,
  ignore_index: i32,
  mean: u32,          // 1: divide by the number of non-ignored rows
}

@group(0) @binding(0) var<storage, read> rloss: array<f32>;
@group(0) @binding(1) var<storage, read> rtarget: array<i32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;    // [1]
@group(0) @binding(3) var<storage, read_write> stats: array<f32>;  // [1]: non-ignored count
@group(0) @binding(4) var<uniform> rp: ReduceParams;

var<workgroup> rsum: array<f32, WG>;
var<workgroup> rcnt: array<u32, WG>;

@compute @workgroup_size(WG)
fn ce_reduce(@builtin(local_invocation_index) lid: u32) {
  var s = 0.0;
  var cnt = 0u;
  for (var r = lid; r < rp.rows; r += WG) {
    s += rloss[r];
    cnt += select(1u, 0u, rtarget[r] == rp.ignore_index);
  }
  rsum[lid] = s;
  rcnt[lid] = cnt;
  workgroupBarrier();
  for (var k = WG / 2u; k > 0u; k = k / 2u) {
    if (lid < k) {
      rsum[lid] += rsum[lid + k];
      rcnt[lid] += rcnt[lid + k];
    }
    workgroupBarrier();
  }
  if (lid == 0u) {
    let c = f32(rcnt[0]);
    // mean over zero targets is 0/0 = NaN, as in PyTorch
    out[0] = select(rsum[0], rsum[0] / c, rp.mean == 1u);
    stats[0] = c;
  }
}

// ---- backward -----------------------------------------------------------------------------------

struct BwdParams {
  rows: u32,         // N · S
  total: u32,        // N · C · S
  classes: u32,
  inner: u32,
  ignore_index: i32,
  smoothing: f32,
  mode: u32,         // 0: none, 1: sum, 2: mean
}

@group(0) @binding(0) var<storage, read> blogits: array<f32>;
@group(0) @binding(1) var<storage, read> btarget: array<i32>;
@group(0) @binding(2) var<storage, read> blse: array<f32>;
@group(0) @binding(3) var<storage, read> gy: array<f32>;
@group(0) @binding(4) var<storage, read> bstats: array<f32>;
@group(0) @binding(5) var<storage, read_write> gx: array<f32>;
@group(0) @binding(6) var<uniform> bp: BwdParams;

fn row_weight(r: u32) -> f32 {
  if (bp.mode == 0u) { return gy[r]; }
  if (bp.mode == 1u) { return gy[0]; }
  return gy[0] / bstats[0];
}

// S == 1 with many classes: one workgroup per row, lanes over c (no per-element index division;
// the row's target, lse and weight are read once per lane).
@compute @workgroup_size(WG)
fn ce_bwd_row(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= bp.rows) { return; }
  let base = r * bp.classes;
  let y = btarget[r];
  if (y == bp.ignore_index || y < 0 || u32(y) >= bp.classes) {
    let v = select(bitcast<f32>(0x7fc00000u | (bp.total & 0u)), 0.0, y == bp.ignore_index);
    for (var c = lid; c < bp.classes; c += WG) { gx[base + c] = v; }
    return;
  }
  let w = row_weight(r);
  let l = blse[r];
  let off = bp.smoothing / f32(bp.classes);
  let hit = 1.0 - bp.smoothing;
  for (var c = lid; c < bp.classes; c += WG) {
    let p = exp(blogits[base + c] - l);
    gx[base + c] = w * (p - (select(0.0, hit, c == u32(y)) + off));
  }
}

@group(0) @binding(0) var<storage, read> blogits4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> gx4: array<vec4<f32>>;

// ce_bwd_row for C % 4 == 0: vec4 loads and stores.
@compute @workgroup_size(WG)
fn ce_bwd_row4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= bp.rows) { return; }
  let c4 = bp.classes / 4u;
  let base = r * c4;
  let y = btarget[r];
  if (y == bp.ignore_index || y < 0 || u32(y) >= bp.classes) {
    let v = select(bitcast<f32>(0x7fc00000u | (bp.total & 0u)), 0.0, y == bp.ignore_index);
    for (var k = lid; k < c4; k += WG) { gx4[base + k] = vec4<f32>(v); }
    return;
  }
  let w = row_weight(r);
  let l = blse[r];
  let off = bp.smoothing / f32(bp.classes);
  let hit = 1.0 - bp.smoothing;
  for (var k = lid; k < c4; k += WG) {
    let p = exp(blogits4[base + k] - vec4<f32>(l));
    let cls = vec4<u32>(4u * k) + vec4<u32>(0u, 1u, 2u, 3u);
    let t = select(vec4<f32>(0.0), vec4<f32>(hit), cls == vec4<u32>(u32(y))) + vec4<f32>(off);
    gx4[base + k] = w * (p - t);
  }
}

@compute @workgroup_size(WG)
fn ce_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= bp.total) { return; }
  let cs = bp.classes * bp.inner;
  let n = e / cs;
  let rem = e - n * cs;
  let c = rem / bp.inner;
  let s = rem - c * bp.inner;
  let r = n * bp.inner + s;
  let y = btarget[r];
  if (y == bp.ignore_index) {
    gx[e] = 0.0;
    return;
  }
  if (y < 0 || u32(y) >= bp.classes) {
    gx[e] = bitcast<f32>(0x7fc00000u | (bp.total & 0u));
    return;
  }
  let w = row_weight(r);
  let p = exp(blogits[e] - blse[r]);
  let t = select(0.0, 1.0 - bp.smoothing, u32(y) == c) + bp.smoothing / f32(bp.classes);
  gx[e] = w * (p - t);
}
