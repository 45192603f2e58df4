// Reductions over one axis of a tensor viewed as [outer, R, inner].
// - rows (inner == 1): a workgroup per row, strided loads then a shared-memory tree; long rows
//   stay parallel. Rows are spread over x and y of the grid (65535 per dimension).
// - cols (inner > 1): one invocation per (outer, inner) output looping over R: neighbouring
//   invocations read neighbouring addresses, so loads coalesce, and no barrier is needed.
// OP: 0 = sum, 1 = max (max also writes the index of the first maximum, for backward).

override WG: u32 = 64u;
override OP: u32 = 0u;

struct Params {
  outer: u32,
  r: u32,
  inner: u32,
  scale: f32,   // multiplies the result (1/R for mean)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

var<workgroup> sval: array<f32, WG>;
var<workgroup> sidx: array<i32, WG>;

const NEG_INF: f32 = -3.402823466e38;

fn combine(av: f32, ai: i32, bv: f32, bi: i32) -> vec2<f32> {
  // returns (value, index as bits); ties keep the smaller index
  if (OP == 0u) { return vec2<f32>(av + bv, 0.0); }
  if (bv > av || (bv == av && bi < ai)) { return vec2<f32>(bv, bitcast<f32>(bi)); }
  return vec2<f32>(av, bitcast<f32>(ai));
}

@compute @workgroup_size(WG)
fn reduce_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = wid.x + wid.y * nwg.x;
  let valid = row < p.outer;
  var acc = select(NEG_INF, 0.0, OP == 0u);
  var ai: i32 = 2147483647;
  if (valid) {
    let base = row * p.r;
    for (var j = lid; j < p.r; j += WG) {
      let c = combine(acc, ai, x[base + j], i32(j));
      acc = c.x;
      ai = bitcast<i32>(c.y);
    }
  }
  sval[lid] = acc;
  sidx[lid] = ai;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s / 2u) {
    if (lid < s) {
      let c = combine(sval[lid], sidx[lid], sval[lid + s], sidx[lid + s]);
      sval[lid] = c.x;
      sidx[lid] = bitcast<i32>(c.y);
    }
    workgroupBarrier();
  }
  if (lid == 0u && valid) {
    y[row] = sval[0] * p.scale;
    if (OP == 1u) { idx[row] = select(sidx[0], 0, p.r == 0u); }
  }
}

@compute @workgroup_size(WG)
fn reduce_cols(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= p.outer * p.inner) { return; }
  let a = o / p.inner;
  let b = o % p.inner;
  let base = a * p.r * p.inner + b;
  var acc = select(NEG_INF, 0.0, OP == 0u);
  var ai: i32 = 0;
  for (var j = 0u; j < p.r; j++) {
    let v = x[base + j * p.inner];
    if (OP == 0u) { acc += v; } else if (v > acc) { acc = v; ai = i32(j); }
  }
  y[o] = acc * p.scale;
  if (OP == 1u) { idx[o] = ai; }
}

struct ScatterParams {
  n: u32,       // outer * inner
  r: u32,
  inner: u32,
}

@group(0) @binding(0) var<storage, read> gy: array<f32>;
@group(0) @binding(1) var<storage, read> at: array<i32>;
@group(0) @binding(2) var<storage, read_write> gx: array<f32>;
@group(0) @binding(3) var<uniform> sp: ScatterParams;

// Backward of max: each output's gradient goes to its argmax; gx was cleared to 0 and every
// position is written by at most one invocation, so no atomics and the result is deterministic.
@compute @workgroup_size(WG)
fn max_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= sp.n) { return; }
  let a = o / sp.inner;
  let b = o % sp.inner;
  gx[(a * sp.r + u32(at[o])) * sp.inner + b] = gy[o];
}
