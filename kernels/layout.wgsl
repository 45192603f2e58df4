// Layout family: one strided copy serves permute, expand (broadcast), slice, slice's backward
// (scatter into a zeroed tensor) and concat. Each invocation maps one index of the copied region
// to a source and a destination offset. Rank <= 8 (shape and strides as two vec4s each).
// Elements are moved as u32 bits, so the copy is exact for every 32-bit dtype (float32 NaN payloads,
// int32 values whose bits look like NaN) and no float canonicalisation can touch them.

override WG: u32 = 256u;
// The rank after TS drops size-1 dims and merges dims both sides walk contiguously; an override so
// the index loop unrolls with constant vector indices.
override RANK: u32 = 8u;

struct CopyParams {
  n: u32,
  src_offset: u32,
  dst_offset: u32,
  shape_lo: vec4<u32>,
  shape_hi: vec4<u32>,
  src_lo: vec4<u32>,
  src_hi: vec4<u32>,
  dst_lo: vec4<u32>,
  dst_hi: vec4<u32>,
}

@group(0) @binding(0) var<storage, read> src: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst: array<u32>;
@group(0) @binding(2) var<uniform> p: CopyParams;

fn pick(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 {
  if (d < 4u) { return lo[d]; }
  return hi[d - 4u];
}

// (source, destination) element offsets of linear index i
fn offsets(i: u32) -> vec2<u32> {
  var rem = i;
  var so = vec2<u32>(p.src_offset, p.dst_offset);
  for (var d = RANK; d > 0u; d--) {
    let extent = pick(p.shape_lo, p.shape_hi, d - 1u);
    let k = rem % extent;
    rem = rem / extent;
    so += k * vec2<u32>(pick(p.src_lo, p.src_hi, d - 1u), pick(p.dst_lo, p.dst_hi, d - 1u));
  }
  return so;
}

@compute @workgroup_size(WG)
fn strided_copy(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let so = offsets(i);
  dst[so.y] = src[so.x];
}

// Runs of 4 along the last (collapsed) dim, for shapes whose last extent is a multiple of 4: one
// invocation decomposes the index of its first element and copies 4 (lavapipe has no vector integer
// division, so the RANK divisions per element dominated). dev.startTrace on a Transformer encoder
// layer's training step: the rank-5 head split/merge copies 40 -> 12 ms, the rank-4 ones 9.4 -> 2.7.
@compute @workgroup_size(WG)
fn strided_copy_run4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i * 4u >= p.n) { return; }
  let so = offsets(i * 4u);
  let s = so.x;
  let o = so.y;
  let ss = pick(p.src_lo, p.src_hi, RANK - 1u);
  let ds = pick(p.dst_lo, p.dst_hi, RANK - 1u);
  dst[o] = src[s];
  dst[o + ds] = src[s + ss];
  dst[o + 2u * ds] = src[s + 2u * ss];
  dst[o + 3u * ds] = src[s + 3u * ss];
}
