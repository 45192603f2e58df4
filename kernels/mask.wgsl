// Boolean masks (u32 0/1) to additive float masks: 0 where attention is allowed, -inf where not.
// `invert` flips the meaning, for PyTorch's nn.MultiheadAttention masks (true = masked out).

override WG: u32 = 256u;

struct Params {
  n: u32,
  invert: u32,
  masked: f32,  // -inf, passed in: WGSL constant expressions cannot be infinite
}

@group(0) @binding(0) var<storage, read> m: array<u32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;

@compute @workgroup_size(WG)
fn bool_to_additive(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let allowed = (m[i] != 0u) != (p.invert == 1u);
  out[i] = select(p.masked, 0.0, allowed);
}
