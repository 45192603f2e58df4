// Device profiling kernels, run once per adapter at createDevice: the same row sums done by a
// workgroup tree (barriers, workgroup memory) and by one invocation per row (a plain loop).
// Which is faster tells ops whether cooperation inside a workgroup pays on this adapter (GPUs)
// or costs more than it saves (CPU-like adapters that run invocations as SIMD lanes).

struct Params { rows: u32, cols: u32, }

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

var<workgroup> partial: array<f32, 64>;

@compute @workgroup_size(64)
fn rows_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = wid.x;
  var acc = 0.0;
  for (var j = lid; j < p.cols; j += 64u) { acc += x[row * p.cols + j]; }
  partial[lid] = acc;
  workgroupBarrier();
  for (var s = 32u; s > 0u; s = s / 2u) {
    if (lid < s) { partial[lid] += partial[lid + s]; }
    workgroupBarrier();
  }
  if (lid == 0u) { y[row] = partial[0]; }
}

@compute @workgroup_size(64)
fn rows_loop(@builtin(global_invocation_id) gid: vec3<u32>) {
  let row = gid.x;
  if (row >= p.rows) { return; }
  var acc = 0.0;
  for (var j = 0u; j < p.cols; j++) { acc += x[row * p.cols + j]; }
  y[row] = acc;
}
