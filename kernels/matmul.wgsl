enable subgroups;

// Matmul family: C[z] = op(A[z]) · op(B[z]) (+ bias[n]), op = identity or transpose.
// Transposes are never materialised: A element (m, k) is read at a_base + m*sam + k*sak and B element
// (k, n) at b_base + k*sbk + n*sbn, so transA/transB are just other strides (and, for the vec4 paths,
// another load shape). Batches run on grid z: z -> (z / zdiv, z % zdiv), two broadcastable batch
// levels with their own strides (0 = broadcast); the TS side merges/folds batch dims down to two.
// C is always contiguous [batch, M, N]; bias (has_bias = 1) is added per output column in the
// epilogue. Sizes, strides and flags are uniforms, so one pipeline per entry point serves every
// problem (a cold LLVM compile on lavapipe costs ~1-2 s per pipeline).
//
// Two kernel families share this file:
//
// 1. matmul_tiled (portable; the part above the "subgroup kernels" marker, valid without
//    `enable subgroups`): the classic GPU tiling. A TX×TY workgroup computes a (4·TY)×(4·TX) tile;
//    per BK-deep step it stages the A and B tiles in workgroup memory (loads coalesced for either
//    layout), then every invocation accumulates a 4×4 register block from vec4 reads.
//
// 2. matmul_sg_* (needs the `subgroups` feature and subgroups of at least 8 lanes): register tiling
//    with A shared through subgroup broadcasts instead of workgroup memory. Each invocation owns 8
//    rows × 4 columns (32 accumulators in 8 vec4s); a workgroup is WG/qw row groups of qw
//    invocations (8·WG/qw rows × 4·qw columns; qw is chosen per problem, default 16, and is always
//    a multiple of the subgroup size so that a subgroup never spans two row groups, which assumes
//    consecutive invocations form subgroups). Grid x walks the row groups, so consecutive
//    workgroups reuse one K × 4·qw strip of B from cache; grid y walks the column strips.
//    For 8 k at a time, lane j of every subgroup loads A(m0+i, k0+j) for its 8 rows;
//    subgroupBroadcast(·, t) then hands every lane the A values of k0+t, and the lane's own B row
//    segment (one vec4) does 32 FMAs. No barriers, no shared memory. Why: on CPU implementations (lavapipe/llvmpipe: 8 lanes across
//    invocations) every divergent load, global or workgroup, is a per-lane scalar loop (~15 cycles
//    per scalar), while a broadcast is one register permute; this layout needs 1 vec4 + 1 scalar
//    load per 32 FMAs per lane (measured ~4-5x the workgroup-memory kernel there). On GPUs it is
//    warp-level register tiling (one shuffle per 4 FMAs, coalesced vec4 loads, no bank conflicts).
//    Three entry points differ only in how a lane fetches its 4 B values of one k:
//      matmul_sg_n4: B rows contiguous in n (B [K, N], N % 4 == 0): one vec4 per k.
//      matmul_sg_k4: B columns contiguous in k (transB, e.g. a [out, in] weight; K % 4 == 0):
//                    4 vec4 (one per column) per 4 k, transposed in registers.
//      matmul_sg_s:  any strides / sizes: 4 scalar loads per k.
// Edges: rows/columns past M/N read clamped (valid) addresses and are not stored; the K tail
// (K % 8) runs once with zeros for k >= K. All loops have uniform bounds (subgroup ops stay in
// uniform control flow).

// tiled kernel
override TX: u32 = 16u;    // workgroup = TX × TY invocations, each computing 4 × 4 outputs
override TY: u32 = 16u;
override BK: u32 = 16u;    // k depth of one workgroup-memory tile
// subgroup kernels
override WG: u32 = 64u;    // invocations per workgroup (each owns 4 columns of 8 rows)

struct Params {
  M: u32,
  N: u32,
  K: u32,
  sam: u32,    // A strides of (m, k)
  sak: u32,
  sbk: u32,    // B strides of (k, n)
  sbn: u32,
  a_off: u32,  // element offsets (for dispatches split over rows or batches)
  b_off: u32,
  c_off: u32,
  z0: u32,     // first batch index of this dispatch
  zdiv: u32,   // batch index z -> (z / zdiv, z % zdiv)
  a_z1: u32,
  a_z2: u32,
  b_z1: u32,
  b_z2: u32,
  has_bias: u32,  // 1: add bias[n] to every output element of column n
  qw: u32,        // subgroup kernels: invocations per row group (a multiple of the subgroup size)
}

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> p: Params;

// Element offsets of A, B and C for batch index z.
fn batch_offsets(z: u32) -> vec3<u32> {
  let z1 = z / p.zdiv;
  let z2 = z % p.zdiv;
  return vec3<u32>(
    p.a_off + z1 * p.a_z1 + z2 * p.a_z2,
    p.b_off + z1 * p.b_z1 + z2 * p.b_z2,
    p.c_off + z * p.M * p.N,
  );
}

// bias[n0 .. n0+3] (columns past N read a clamped address; they are never stored)
fn bias4(n0: u32) -> vec4<f32> {
  if (p.has_bias == 0u) { return vec4<f32>(0.0); }
  let nl = p.N - 1u;
  return vec4<f32>(bias[min(n0, nl)], bias[min(n0 + 1u, nl)], bias[min(n0 + 2u, nl)], bias[min(n0 + 3u, nl)]);
}

// Stores one row segment C[m, n0 .. n0+3] (+ bias) where inside [M, N].
fn store_row(cbase: u32, m: u32, n0: u32, v: vec4<f32>) {
  if (m >= p.M) { return; }
  let r = cbase + m * p.N;
  if (n0 + 3u < p.N) {
    c[r + n0] = v.x;
    c[r + n0 + 1u] = v.y;
    c[r + n0 + 2u] = v.z;
    c[r + n0 + 3u] = v.w;
    return;
  }
  for (var q = 0u; q < 4u; q++) {
    if (n0 + q < p.N) { c[r + n0 + q] = v[q]; }
  }
}

// ---- 1. tiled (workgroup memory) -----------------------------------------------------------------

var<workgroup> As: array<vec4<f32>, BK * TY>;  // As[k * TY + ty] = A(4ty .. 4ty+3, k) of the tile
var<workgroup> Bs: array<vec4<f32>, BK * TX>;  // Bs[k * TX + tx] = B(k, 4tx .. 4tx+3) of the tile

@compute @workgroup_size(TX, TY)
fn matmul_tiled(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(local_invocation_index) li: u32) {
  let off = batch_offsets(wid.z + p.z0);
  let m0 = wid.y * 4u * TY;
  let n0 = wid.x * 4u * TX;
  let nthreads = TX * TY;
  // Coalescing: consecutive invocations read consecutive addresses of whichever index has stride 1.
  let a_k_fast = p.sak == 1u;
  let b_k_fast = p.sbk == 1u && p.sbn != 1u;
  var acc0 = vec4<f32>(0.0);
  var acc1 = vec4<f32>(0.0);
  var acc2 = vec4<f32>(0.0);
  var acc3 = vec4<f32>(0.0);
  for (var k0 = 0u; k0 < p.K; k0 += BK) {
    for (var e = li; e < BK * 4u * TY; e += nthreads) {
      var kk: u32;
      var mm: u32;
      if (a_k_fast) { kk = e % BK; mm = e / BK; } else { mm = e % (4u * TY); kk = e / (4u * TY); }
      let m = m0 + mm;
      let k = k0 + kk;
      var v = 0.0;
      if (m < p.M && k < p.K) { v = a[off.x + m * p.sam + k * p.sak]; }
      As[kk * TY + mm / 4u][mm % 4u] = v;
    }
    for (var e = li; e < BK * 4u * TX; e += nthreads) {
      var kk: u32;
      var nn: u32;
      if (b_k_fast) { kk = e % BK; nn = e / BK; } else { nn = e % (4u * TX); kk = e / (4u * TX); }
      let n = n0 + nn;
      let k = k0 + kk;
      var v = 0.0;
      if (n < p.N && k < p.K) { v = b[off.y + k * p.sbk + n * p.sbn]; }
      Bs[kk * TX + nn / 4u][nn % 4u] = v;
    }
    workgroupBarrier();
    for (var kk = 0u; kk < BK; kk++) {
      let av = As[kk * TY + lid.y];
      let bv = Bs[kk * TX + lid.x];
      acc0 = fma(vec4<f32>(av.x), bv, acc0);
      acc1 = fma(vec4<f32>(av.y), bv, acc1);
      acc2 = fma(vec4<f32>(av.z), bv, acc2);
      acc3 = fma(vec4<f32>(av.w), bv, acc3);
    }
    workgroupBarrier();
  }
  let n = n0 + 4u * lid.x;
  let m = m0 + 4u * lid.y;
  let bv = bias4(n);
  store_row(off.z, m, n, acc0 + bv);
  store_row(off.z, m + 1u, n, acc1 + bv);
  store_row(off.z, m + 2u, n, acc2 + bv);
  store_row(off.z, m + 3u, n, acc3 + bv);
}

// ==== subgroup kernels (everything below needs `enable subgroups`) ====

@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;

// 8 rows × 4 columns of accumulators: row i is r<i>.
struct Acc {
  r0: vec4<f32>,
  r1: vec4<f32>,
  r2: vec4<f32>,
  r3: vec4<f32>,
  r4: vec4<f32>,
  r5: vec4<f32>,
  r6: vec4<f32>,
  r7: vec4<f32>,
}

// acc(i, :) += A(i) * bv for the 8 rows, A(0..3) in x and A(4..7) in y.
fn mac(acc: ptr<function, Acc>, x: vec4<f32>, y: vec4<f32>, bv: vec4<f32>) {
  (*acc).r0 = fma(vec4<f32>(x.x), bv, (*acc).r0);
  (*acc).r1 = fma(vec4<f32>(x.y), bv, (*acc).r1);
  (*acc).r2 = fma(vec4<f32>(x.z), bv, (*acc).r2);
  (*acc).r3 = fma(vec4<f32>(x.w), bv, (*acc).r3);
  (*acc).r4 = fma(vec4<f32>(y.x), bv, (*acc).r4);
  (*acc).r5 = fma(vec4<f32>(y.y), bv, (*acc).r5);
  (*acc).r6 = fma(vec4<f32>(y.z), bv, (*acc).r6);
  (*acc).r7 = fma(vec4<f32>(y.w), bv, (*acc).r7);
}

// Per-invocation setup shared by the subgroup kernels.
struct Tile {
  off: vec3<u32>,    // batch offsets of A, B, C
  m0: u32,           // first of the 8 rows
  n0: u32,           // first of the 4 columns
  ra: vec4<u32>,     // A offsets of rows m0..m0+3 (clamped to M-1)
  rb: vec4<u32>,     // A offsets of rows m0+4..m0+7
  j: u32,            // which k of a group of 8 this lane loads
}

fn sg_tile(wid: vec3<u32>, li: u32, lane: u32) -> Tile {
  var t: Tile;
  t.off = batch_offsets(wid.z + p.z0);
  // WG / qw row groups of 8 rows side by side, qw invocations (4 columns each) per row group
  t.m0 = (wid.x * (WG / p.qw) + li / p.qw) * 8u;
  t.n0 = (wid.y * p.qw + li % p.qw) * 4u;
  let ml = vec4<u32>(p.M - 1u);
  t.ra = t.off.x + min(vec4<u32>(t.m0) + vec4<u32>(0u, 1u, 2u, 3u), ml) * p.sam;
  t.rb = t.off.x + min(vec4<u32>(t.m0) + vec4<u32>(4u, 5u, 6u, 7u), ml) * p.sam;
  t.j = lane % 8u;
  return t;
}

// This lane's A values for k (8 rows), zero when k >= K.
fn load_a8(t: Tile, k: u32) -> array<vec4<f32>, 2> {
  let ok = k < p.K;
  let ka = min(k, p.K - 1u) * p.sak;
  let x = vec4<f32>(a[t.ra.x + ka], a[t.ra.y + ka], a[t.ra.z + ka], a[t.ra.w + ka]);
  let y = vec4<f32>(a[t.rb.x + ka], a[t.rb.y + ka], a[t.rb.z + ka], a[t.rb.w + ka]);
  return array<vec4<f32>, 2>(select(vec4<f32>(0.0), x, ok), select(vec4<f32>(0.0), y, ok));
}

// Same without the k < K guard (main loop: k is always in range).
fn load_a8_in(t: Tile, k: u32) -> array<vec4<f32>, 2> {
  let ka = k * p.sak;
  return array<vec4<f32>, 2>(
    vec4<f32>(a[t.ra.x + ka], a[t.ra.y + ka], a[t.ra.z + ka], a[t.ra.w + ka]),
    vec4<f32>(a[t.rb.x + ka], a[t.rb.y + ka], a[t.rb.z + ka], a[t.rb.w + ka]),
  );
}

// K tail (K % 8 values left): lanes hold A for k = kt + j (zero past K); B rows k < K only.
// Shuffles (dynamic lane index) are fine here: it runs once per invocation.
fn tail_n4(acc: ptr<function, Acc>, t: Tile, kt: u32, bcol: u32, bstep: u32) {
  let av = load_a8(t, kt + t.j);
  for (var s = 0u; s < p.K - kt; s++) {
    mac(acc, subgroupShuffle(av[0], s), subgroupShuffle(av[1], s), b4[bcol + (kt + s) * bstep]);
  }
}

fn finish(acc: Acc, t: Tile) {
  let bv = bias4(t.n0);
  store_row(t.off.z, t.m0, t.n0, acc.r0 + bv);
  store_row(t.off.z, t.m0 + 1u, t.n0, acc.r1 + bv);
  store_row(t.off.z, t.m0 + 2u, t.n0, acc.r2 + bv);
  store_row(t.off.z, t.m0 + 3u, t.n0, acc.r3 + bv);
  store_row(t.off.z, t.m0 + 4u, t.n0, acc.r4 + bv);
  store_row(t.off.z, t.m0 + 5u, t.n0, acc.r5 + bv);
  store_row(t.off.z, t.m0 + 6u, t.n0, acc.r6 + bv);
  store_row(t.off.z, t.m0 + 7u, t.n0, acc.r7 + bv);
}

// B(k, n0..n0+3) is one vec4: sbn == 1, and sbk, the B batch offset and n0 are multiples of 4.
@compute @workgroup_size(WG)
fn matmul_sg_n4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let bstep = p.sbk / 4u;
  let bcol = t.off.y / 4u + min(t.n0, p.N - 4u) / 4u;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let av = load_a8_in(t, k0 + t.j);
    let x = av[0];
    let y = av[1];
    var bi = bcol + k0 * bstep;
    mac(&acc, subgroupBroadcast(x, 0u), subgroupBroadcast(y, 0u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 1u), subgroupBroadcast(y, 1u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 2u), subgroupBroadcast(y, 2u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 3u), subgroupBroadcast(y, 3u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 4u), subgroupBroadcast(y, 4u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 5u), subgroupBroadcast(y, 5u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 6u), subgroupBroadcast(y, 6u), b4[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(x, 7u), subgroupBroadcast(y, 7u), b4[bi]);
  }
  if (kmain < p.K) { tail_n4(&acc, t, kmain, bcol, bstep); }
  finish(acc, t);
}

// B(k .. k+3, n) is one vec4 per column: sbk == 1, and sbn, the B batch offset and K are multiples
// of 4. Four column vec4s w0..w3 (columns n0..n0+3, k = 4q .. 4q+3) are transposed in registers
// into four k rows; lanes s0 .. s0+3 hold the A values of those k.
fn mac_k4(acc: ptr<function, Acc>, x: vec4<f32>, y: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>, w2: vec4<f32>,
          w3: vec4<f32>, hi: bool) {
  if (hi) {
    mac(acc, subgroupBroadcast(x, 4u), subgroupBroadcast(y, 4u), vec4<f32>(w0.x, w1.x, w2.x, w3.x));
    mac(acc, subgroupBroadcast(x, 5u), subgroupBroadcast(y, 5u), vec4<f32>(w0.y, w1.y, w2.y, w3.y));
    mac(acc, subgroupBroadcast(x, 6u), subgroupBroadcast(y, 6u), vec4<f32>(w0.z, w1.z, w2.z, w3.z));
    mac(acc, subgroupBroadcast(x, 7u), subgroupBroadcast(y, 7u), vec4<f32>(w0.w, w1.w, w2.w, w3.w));
  } else {
    mac(acc, subgroupBroadcast(x, 0u), subgroupBroadcast(y, 0u), vec4<f32>(w0.x, w1.x, w2.x, w3.x));
    mac(acc, subgroupBroadcast(x, 1u), subgroupBroadcast(y, 1u), vec4<f32>(w0.y, w1.y, w2.y, w3.y));
    mac(acc, subgroupBroadcast(x, 2u), subgroupBroadcast(y, 2u), vec4<f32>(w0.z, w1.z, w2.z, w3.z));
    mac(acc, subgroupBroadcast(x, 3u), subgroupBroadcast(y, 3u), vec4<f32>(w0.w, w1.w, w2.w, w3.w));
  }
}

@compute @workgroup_size(WG)
fn matmul_sg_k4(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let nl = vec4<u32>(p.N - 1u);
  // vec4 index of B(0, n) for the 4 columns (clamped to N-1)
  let cq = (vec4<u32>(t.off.y) + min(vec4<u32>(t.n0) + vec4<u32>(0u, 1u, 2u, 3u), nl) * p.sbn) / 4u;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let av = load_a8_in(t, k0 + t.j);
    let q0 = k0 / 4u;
    mac_k4(&acc, av[0], av[1], b4[cq.x + q0], b4[cq.y + q0], b4[cq.z + q0], b4[cq.w + q0], false);
    let q1 = q0 + 1u;
    mac_k4(&acc, av[0], av[1], b4[cq.x + q1], b4[cq.y + q1], b4[cq.z + q1], b4[cq.w + q1], true);
  }
  if (kmain < p.K) {
    // K % 4 == 0, so exactly 4 k remain: lanes 0..3 hold them
    let av = load_a8(t, kmain + t.j);
    let q0 = kmain / 4u;
    mac_k4(&acc, av[0], av[1], b4[cq.x + q0], b4[cq.y + q0], b4[cq.z + q0], b4[cq.w + q0], false);
  }
  finish(acc, t);
}

// Any strides and sizes: the 4 B values of one k are 4 scalar loads.
fn load_b_s(bq: vec4<u32>, k: u32) -> vec4<f32> {
  let kb = k * p.sbk;
  return vec4<f32>(b[bq.x + kb], b[bq.y + kb], b[bq.z + kb], b[bq.w + kb]);
}

@compute @workgroup_size(WG)
fn matmul_sg_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
               @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let nl = vec4<u32>(p.N - 1u);
  let bq = t.off.y + min(vec4<u32>(t.n0) + vec4<u32>(0u, 1u, 2u, 3u), nl) * p.sbn;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let av = load_a8_in(t, k0 + t.j);
    let x = av[0];
    let y = av[1];
    mac(&acc, subgroupBroadcast(x, 0u), subgroupBroadcast(y, 0u), load_b_s(bq, k0));
    mac(&acc, subgroupBroadcast(x, 1u), subgroupBroadcast(y, 1u), load_b_s(bq, k0 + 1u));
    mac(&acc, subgroupBroadcast(x, 2u), subgroupBroadcast(y, 2u), load_b_s(bq, k0 + 2u));
    mac(&acc, subgroupBroadcast(x, 3u), subgroupBroadcast(y, 3u), load_b_s(bq, k0 + 3u));
    mac(&acc, subgroupBroadcast(x, 4u), subgroupBroadcast(y, 4u), load_b_s(bq, k0 + 4u));
    mac(&acc, subgroupBroadcast(x, 5u), subgroupBroadcast(y, 5u), load_b_s(bq, k0 + 5u));
    mac(&acc, subgroupBroadcast(x, 6u), subgroupBroadcast(y, 6u), load_b_s(bq, k0 + 6u));
    mac(&acc, subgroupBroadcast(x, 7u), subgroupBroadcast(y, 7u), load_b_s(bq, k0 + 7u));
  }
  if (kmain < p.K) {
    let av = load_a8(t, kmain + t.j);
    for (var s = 0u; s < p.K - kmain; s++) {
      mac(&acc, subgroupShuffle(av[0], s), subgroupShuffle(av[1], s), load_b_s(bq, kmain + s));
    }
  }
  finish(acc, t);
}
