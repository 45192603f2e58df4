// Dropout with a counter-based RNG: element i is kept iff hash(seed, i) >= threshold, where hash is a
// stateless 32-bit mix of the element index and the 64-bit seed. Nothing is stored: the backward
// recomputes the same mask from (seed, i), so it is just this kernel applied to the output gradient.
// Kept values are scaled by 1/(1-p); P(keep) = 1 - threshold / 2^32 = 1 - p up to 2^-32.
// The hash is mirrored exactly by dropoutMask() in src/ops/dropout.ts (the tests compare masks).

override WG: u32 = 256u;

struct Params {
  n: u32,
  threshold: u32,   // floor(p · 2^32)
  k1: u32,          // mix32(seed_lo ^ 0x9e3779b9)             (seed = seed_hi · 2^32 + seed_lo,
  k2: u32,          // mix32(seed_hi + k1 + 0x85ebca6b)          computed once on the CPU)
  scale: f32,       // 1 / (1 - p)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> out4: array<vec4<f32>>;

// A bijective 32-bit avalanche mix (xorshift-multiply, the "lowbias32" constants).
fn mix32(v: u32) -> u32 {
  var h = v;
  h ^= h >> 16u;
  h *= 0x7feb352du;
  h ^= h >> 15u;
  h *= 0x846ca68bu;
  h ^= h >> 16u;
  return h;
}

// Two keyed rounds: the index is xored with one seed-derived key, mixed, offset by a second key,
// and mixed again, so masks of different seeds are not permutations of each other.
fn dropout_hash(i: u32) -> u32 {
  return mix32(mix32(i ^ p.k1) + p.k2);
}

@compute @workgroup_size(WG)
fn dropout_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= p.n) { return; }
  let keep = dropout_hash(i) >= p.threshold;
  out[i] = select(0.0, x[i] * p.scale, keep);
}

// Four elements per invocation with vec4 loads and stores, when both buffers hold ceil(n/4) vec4s
// (pool buffers are multiples of 16 bytes): the lanes past n of the last vec4 only touch padding.
// On lavapipe a load is a per-lane loop whatever its width, so this moves ~3x the bytes per load.
@compute @workgroup_size(WG)
fn dropout_fwd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  let b = 4u * i;
  if (b >= p.n) { return; }
  let h = vec4<u32>(dropout_hash(b), dropout_hash(b + 1u), dropout_hash(b + 2u), dropout_hash(b + 3u));
  out4[i] = select(vec4<f32>(0.0), x4[i] * p.scale, h >= vec4<u32>(p.threshold));
}
