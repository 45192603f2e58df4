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
//    with A shared through subgroup broadcasts instead of workgroup memory. Each invocation owns 16
//    rows × 2 columns (32 accumulators in 16 vec2s); a workgroup is WG/qw row groups of qw
//    invocations (16·WG/qw rows × 2·qw columns; qw is chosen per problem, default 16, and is always
//    a multiple of the subgroup size so that a subgroup never spans two row groups, which assumes
//    consecutive invocations form subgroups). Grid x walks the row groups, so consecutive
//    workgroups reuse one K × 2·qw strip of B from cache; grid y walks the column strips.
//    Per 8 k, lanes 0..7 of every subgroup load the 16 × 8 block of A that all lanes of the row
//    group need, each a different part; subgroupBroadcast then hands every lane the 16 A values of
//    one k, and the lane's own B pair (one vec2) does 32 FMAs. No barriers, no shared memory.
//    Why: on CPU implementations (lavapipe/llvmpipe: 8 lanes across invocations) every divergent
//    load, global or workgroup, is a per-lane loop (a vec4 costs about as much as a scalar), while a
//    broadcast is a register permute. Measured there at 1024³: B loads dominate (removing them
//    triples the rate), so each B load feeds as many rows as the 32 vector registers allow (16), and
//    A comes as vec4s where the layout permits (+15-20% over scalar A loads); 16×2 measured ~1.3x
//    the earlier 8×4 tile. On GPUs it is warp-level register tiling (one shuffle per 2 FMAs,
//    coalesced loads, no bank conflicts).
//    Entry points differ in how A and B are fetched (the TS side picks by strides and alignment):
//      matmul_sg_ak_bn: A rows contiguous in k (lane j loads rows m0+j, m0+8+j as vec4s along k),
//                       B rows contiguous in n (one vec2 per k)            -- plain A·B
//      matmul_sg_ak_bk: same A; B columns contiguous in k (transB, a linear weight [out, in]): one
//                       vec4 per column per 4 k, transposed in registers   -- X·Wᵀ
//      matmul_sg_am_bn: A columns contiguous in m (transA; lane j loads A(m0..m0+15, k0+j) as 4
//                       vec4s), B as ak_bn                                  -- Xᵀ·G (weight grads)
//      matmul_sg_s:     any strides / sizes: scalar loads of both.
// Edges: rows/columns past M/N read clamped (valid) addresses and are not stored; the K tail
// (K % 8; exactly 4 on the vec4-along-k paths) runs once with zeros for k >= K. All loops have uniform bounds (subgroup ops stay in
// uniform control flow).

// tiled kernel
override TX: u32 = 16u;    // workgroup = TX × TY invocations, each computing 4 × 4 outputs
override TY: u32 = 16u;
override BK: u32 = 16u;    // k depth of one workgroup-memory tile
// subgroup kernels
override WG: u32 = 64u;    // invocations per workgroup (each owns 2 columns of 16 rows)

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

@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b2: array<vec2<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;

// 16 rows × 2 columns of accumulators: row i is r<i>.
struct Acc {
  r0: vec2<f32>, r1: vec2<f32>, r2: vec2<f32>, r3: vec2<f32>,
  r4: vec2<f32>, r5: vec2<f32>, r6: vec2<f32>, r7: vec2<f32>,
  r8: vec2<f32>, r9: vec2<f32>, r10: vec2<f32>, r11: vec2<f32>,
  r12: vec2<f32>, r13: vec2<f32>, r14: vec2<f32>, r15: vec2<f32>,
}

// acc(i, :) += A(i) · bv for one k, with A(0..15) packed in q0..q3 (A(4s + c) = q<s>[c]).
fn mac(acc: ptr<function, Acc>, q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>, bv: vec2<f32>) {
  (*acc).r0 = fma(vec2<f32>(q0.x), bv, (*acc).r0);
  (*acc).r1 = fma(vec2<f32>(q0.y), bv, (*acc).r1);
  (*acc).r2 = fma(vec2<f32>(q0.z), bv, (*acc).r2);
  (*acc).r3 = fma(vec2<f32>(q0.w), bv, (*acc).r3);
  (*acc).r4 = fma(vec2<f32>(q1.x), bv, (*acc).r4);
  (*acc).r5 = fma(vec2<f32>(q1.y), bv, (*acc).r5);
  (*acc).r6 = fma(vec2<f32>(q1.z), bv, (*acc).r6);
  (*acc).r7 = fma(vec2<f32>(q1.w), bv, (*acc).r7);
  (*acc).r8 = fma(vec2<f32>(q2.x), bv, (*acc).r8);
  (*acc).r9 = fma(vec2<f32>(q2.y), bv, (*acc).r9);
  (*acc).r10 = fma(vec2<f32>(q2.z), bv, (*acc).r10);
  (*acc).r11 = fma(vec2<f32>(q2.w), bv, (*acc).r11);
  (*acc).r12 = fma(vec2<f32>(q3.x), bv, (*acc).r12);
  (*acc).r13 = fma(vec2<f32>(q3.y), bv, (*acc).r13);
  (*acc).r14 = fma(vec2<f32>(q3.z), bv, (*acc).r14);
  (*acc).r15 = fma(vec2<f32>(q3.w), bv, (*acc).r15);
}

// Per-invocation setup shared by the subgroup kernels.
struct Tile {
  off: vec3<u32>,  // batch offsets of A, B, C
  m0: u32,         // first of the 16 rows
  n0: u32,         // first of the 2 columns
  j: u32,          // this lane's index within its group of 8 (which row or k it loads)
}

fn sg_tile(wid: vec3<u32>, li: u32, lane: u32) -> Tile {
  var t: Tile;
  t.off = batch_offsets(wid.z + p.z0);
  // WG / qw row groups of 16 rows side by side, qw invocations (2 columns each) per row group
  t.m0 = (wid.x * (WG / p.qw) + li / p.qw) * 16u;
  t.n0 = (wid.y * p.qw + li % p.qw) * 2u;
  t.j = lane % 8u;
  return t;
}

fn bias2(n0: u32) -> vec2<f32> {
  if (p.has_bias == 0u) { return vec2<f32>(0.0); }
  let nl = p.N - 1u;
  return vec2<f32>(bias[min(n0, nl)], bias[min(n0 + 1u, nl)]);
}

fn store2(t: Tile, i: u32, v: vec2<f32>) {
  let m = t.m0 + i;
  if (m >= p.M || t.n0 >= p.N) { return; }
  let r = t.off.z + m * p.N + t.n0;
  c[r] = v.x;
  if (t.n0 + 1u < p.N) { c[r + 1u] = v.y; }
}

fn finish(acc: Acc, t: Tile) {
  let bv = bias2(t.n0);
  store2(t, 0u, acc.r0 + bv);
  store2(t, 1u, acc.r1 + bv);
  store2(t, 2u, acc.r2 + bv);
  store2(t, 3u, acc.r3 + bv);
  store2(t, 4u, acc.r4 + bv);
  store2(t, 5u, acc.r5 + bv);
  store2(t, 6u, acc.r6 + bv);
  store2(t, 7u, acc.r7 + bv);
  store2(t, 8u, acc.r8 + bv);
  store2(t, 9u, acc.r9 + bv);
  store2(t, 10u, acc.r10 + bv);
  store2(t, 11u, acc.r11 + bv);
  store2(t, 12u, acc.r12 + bv);
  store2(t, 13u, acc.r13 + bv);
  store2(t, 14u, acc.r14 + bv);
  store2(t, 15u, acc.r15 + bv);
}

// ---- A rows contiguous in k (sak == 1): lane j holds rows m0+j and m0+8+j as vec4s along k ----

// vec4 index of A(m0 + j, 0) and A(m0 + 8 + j, 0) (rows clamped to M-1).
fn ak_rows(t: Tile) -> vec2<u32> {
  let ml = p.M - 1u;
  return vec2<u32>(t.off.x + min(t.m0 + t.j, ml) * p.sam, t.off.x + min(t.m0 + 8u + t.j, ml) * p.sam) / 4u;
}

// One k: lanes 0..7 hold A(m0 + lane, k) in u and A(m0 + 8 + lane, k) in v.
fn mac_k(acc: ptr<function, Acc>, u: f32, v: f32, bv: vec2<f32>) {
  let q0 = vec4<f32>(subgroupBroadcast(u, 0u), subgroupBroadcast(u, 1u), subgroupBroadcast(u, 2u), subgroupBroadcast(u, 3u));
  let q1 = vec4<f32>(subgroupBroadcast(u, 4u), subgroupBroadcast(u, 5u), subgroupBroadcast(u, 6u), subgroupBroadcast(u, 7u));
  let q2 = vec4<f32>(subgroupBroadcast(v, 0u), subgroupBroadcast(v, 1u), subgroupBroadcast(v, 2u), subgroupBroadcast(v, 3u));
  let q3 = vec4<f32>(subgroupBroadcast(v, 4u), subgroupBroadcast(v, 5u), subgroupBroadcast(v, 6u), subgroupBroadcast(v, 7u));
  mac(acc, q0, q1, q2, q3, bv);
}

// Four k (x = rows m0+j, y = rows m0+8+j, k .. k+3) against B rows k .. k+3 starting at vec2 bi.
fn ak4_bn(acc: ptr<function, Acc>, x: vec4<f32>, y: vec4<f32>, bi: u32, bstep: u32) {
  mac_k(acc, x.x, y.x, b2[bi]);
  mac_k(acc, x.y, y.y, b2[bi + bstep]);
  mac_k(acc, x.z, y.z, b2[bi + 2u * bstep]);
  mac_k(acc, x.w, y.w, b2[bi + 3u * bstep]);
}

// B(k, n0 .. n0+1) is one vec2: sbn == 1, and N, sbk and the B offsets are even.
@compute @workgroup_size(WG)
fn matmul_sg_ak_bn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let ar = ak_rows(t);
  let bstep = p.sbk / 2u;
  let bcol = (t.off.y + min(t.n0, p.N - 2u)) / 2u;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let q = k0 / 4u;
    ak4_bn(&acc, a4[ar.x + q], a4[ar.y + q], bcol + k0 * bstep, bstep);
    ak4_bn(&acc, a4[ar.x + q + 1u], a4[ar.y + q + 1u], bcol + (k0 + 4u) * bstep, bstep);
  }
  if (kmain < p.K) {  // K % 4 == 0: four k left
    let q = kmain / 4u;
    ak4_bn(&acc, a4[ar.x + q], a4[ar.y + q], bcol + kmain * bstep, bstep);
  }
  finish(acc, t);
}

// Four k against B columns n0, n0+1 held as vec4s along k (w0, w1).
fn ak4_bk(acc: ptr<function, Acc>, x: vec4<f32>, y: vec4<f32>, w0: vec4<f32>, w1: vec4<f32>) {
  mac_k(acc, x.x, y.x, vec2<f32>(w0.x, w1.x));
  mac_k(acc, x.y, y.y, vec2<f32>(w0.y, w1.y));
  mac_k(acc, x.z, y.z, vec2<f32>(w0.z, w1.z));
  mac_k(acc, x.w, y.w, vec2<f32>(w0.w, w1.w));
}

// B(k .. k+3, n) is one vec4 per column (transB, e.g. a [out, in] weight): sbk == 1, and K, sbn and
// the B offsets are multiples of 4.
@compute @workgroup_size(WG)
fn matmul_sg_ak_bk(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let ar = ak_rows(t);
  let nl = p.N - 1u;
  let bc = vec2<u32>(t.off.y + min(t.n0, nl) * p.sbn, t.off.y + min(t.n0 + 1u, nl) * p.sbn) / 4u;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let q = k0 / 4u;
    ak4_bk(&acc, a4[ar.x + q], a4[ar.y + q], b4[bc.x + q], b4[bc.y + q]);
    ak4_bk(&acc, a4[ar.x + q + 1u], a4[ar.y + q + 1u], b4[bc.x + q + 1u], b4[bc.y + q + 1u]);
  }
  if (kmain < p.K) {  // K % 4 == 0: four k left
    let q = kmain / 4u;
    ak4_bk(&acc, a4[ar.x + q], a4[ar.y + q], b4[bc.x + q], b4[bc.y + q]);
  }
  finish(acc, t);
}

// ---- A read per k (transA or any strides): lane j holds A(m0 .. m0+15, k0 + j) in 4 vec4s ----

struct A16 { q0: vec4<f32>, q1: vec4<f32>, q2: vec4<f32>, q3: vec4<f32>, }

// sam == 1 (A stored [K, M], M and the A offsets multiples of 4): 4 vec4 loads; zero for k >= K.
fn am_load(t: Tile, k: u32) -> A16 {
  let base = (t.off.x + min(k, p.K - 1u) * p.sak) / 4u;
  let ql = p.M / 4u - 1u;
  let m4 = t.m0 / 4u;
  var r = A16(a4[base + min(m4, ql)], a4[base + min(m4 + 1u, ql)], a4[base + min(m4 + 2u, ql)], a4[base + min(m4 + 3u, ql)]);
  if (k >= p.K) { r = A16(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0)); }
  return r;
}

// One A(m0 + i, ·) element at k offset ka (row clamped to M-1).
fn a_at(t: Tile, i: u32, ka: u32) -> f32 {
  return a[t.off.x + min(t.m0 + i, p.M - 1u) * p.sam + ka];
}

// Any strides: 16 scalar loads; zero for k >= K.
fn as_load(t: Tile, k: u32) -> A16 {
  let ka = min(k, p.K - 1u) * p.sak;
  var r = A16(
    vec4<f32>(a_at(t, 0u, ka), a_at(t, 1u, ka), a_at(t, 2u, ka), a_at(t, 3u, ka)),
    vec4<f32>(a_at(t, 4u, ka), a_at(t, 5u, ka), a_at(t, 6u, ka), a_at(t, 7u, ka)),
    vec4<f32>(a_at(t, 8u, ka), a_at(t, 9u, ka), a_at(t, 10u, ka), a_at(t, 11u, ka)),
    vec4<f32>(a_at(t, 12u, ka), a_at(t, 13u, ka), a_at(t, 14u, ka), a_at(t, 15u, ka)));
  if (k >= p.K) { r = A16(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0)); }
  return r;
}

// The k held by lane s (a constant in the unrolled loops; dynamic in the K tail, where a shuffle is
// fine because it runs once).
fn mac_m(acc: ptr<function, Acc>, g: A16, s: u32, bv: vec2<f32>) {
  mac(acc, subgroupShuffle(g.q0, s), subgroupShuffle(g.q1, s), subgroupShuffle(g.q2, s), subgroupShuffle(g.q3, s), bv);
}

// B(k, n0 .. n0+1) of the scalar path (clamped columns).
fn b_s(bq: vec2<u32>, k: u32) -> vec2<f32> {
  let kb = k * p.sbk;
  return vec2<f32>(b[bq.x + kb], b[bq.y + kb]);
}

// A stored [K, M] (transA: weight gradients Xᵀ·G), B(k, n0 .. n0+1) one vec2 (as matmul_sg_ak_bn).
@compute @workgroup_size(WG)
fn matmul_sg_am_bn(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
                   @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let bstep = p.sbk / 2u;
  let bcol = (t.off.y + min(t.n0, p.N - 2u)) / 2u;
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let g = am_load(t, k0 + t.j);
    var bi = bcol + k0 * bstep;
    mac(&acc, subgroupBroadcast(g.q0, 0u), subgroupBroadcast(g.q1, 0u), subgroupBroadcast(g.q2, 0u), subgroupBroadcast(g.q3, 0u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 1u), subgroupBroadcast(g.q1, 1u), subgroupBroadcast(g.q2, 1u), subgroupBroadcast(g.q3, 1u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 2u), subgroupBroadcast(g.q1, 2u), subgroupBroadcast(g.q2, 2u), subgroupBroadcast(g.q3, 2u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 3u), subgroupBroadcast(g.q1, 3u), subgroupBroadcast(g.q2, 3u), subgroupBroadcast(g.q3, 3u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 4u), subgroupBroadcast(g.q1, 4u), subgroupBroadcast(g.q2, 4u), subgroupBroadcast(g.q3, 4u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 5u), subgroupBroadcast(g.q1, 5u), subgroupBroadcast(g.q2, 5u), subgroupBroadcast(g.q3, 5u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 6u), subgroupBroadcast(g.q1, 6u), subgroupBroadcast(g.q2, 6u), subgroupBroadcast(g.q3, 6u), b2[bi]);
    bi += bstep;
    mac(&acc, subgroupBroadcast(g.q0, 7u), subgroupBroadcast(g.q1, 7u), subgroupBroadcast(g.q2, 7u), subgroupBroadcast(g.q3, 7u), b2[bi]);
  }
  if (kmain < p.K) {
    let g = am_load(t, kmain + t.j);
    for (var s = 0u; s < p.K - kmain; s++) { mac_m(&acc, g, s, b2[bcol + (kmain + s) * bstep]); }
  }
  finish(acc, t);
}

// Any strides and sizes: scalar loads of A (16 per 8 k) and B (2 per k).
@compute @workgroup_size(WG)
fn matmul_sg_s(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) li: u32,
               @builtin(subgroup_invocation_id) lane: u32) {
  let t = sg_tile(wid, li, lane);
  let nl = p.N - 1u;
  let bq = vec2<u32>(t.off.y + min(t.n0, nl) * p.sbn, t.off.y + min(t.n0 + 1u, nl) * p.sbn);
  var acc: Acc;
  let kmain = p.K & ~7u;
  for (var k0 = 0u; k0 < kmain; k0 += 8u) {
    let g = as_load(t, k0 + t.j);
    mac(&acc, subgroupBroadcast(g.q0, 0u), subgroupBroadcast(g.q1, 0u), subgroupBroadcast(g.q2, 0u), subgroupBroadcast(g.q3, 0u), b_s(bq, k0));
    mac(&acc, subgroupBroadcast(g.q0, 1u), subgroupBroadcast(g.q1, 1u), subgroupBroadcast(g.q2, 1u), subgroupBroadcast(g.q3, 1u), b_s(bq, k0 + 1u));
    mac(&acc, subgroupBroadcast(g.q0, 2u), subgroupBroadcast(g.q1, 2u), subgroupBroadcast(g.q2, 2u), subgroupBroadcast(g.q3, 2u), b_s(bq, k0 + 2u));
    mac(&acc, subgroupBroadcast(g.q0, 3u), subgroupBroadcast(g.q1, 3u), subgroupBroadcast(g.q2, 3u), subgroupBroadcast(g.q3, 3u), b_s(bq, k0 + 3u));
    mac(&acc, subgroupBroadcast(g.q0, 4u), subgroupBroadcast(g.q1, 4u), subgroupBroadcast(g.q2, 4u), subgroupBroadcast(g.q3, 4u), b_s(bq, k0 + 4u));
    mac(&acc, subgroupBroadcast(g.q0, 5u), subgroupBroadcast(g.q1, 5u), subgroupBroadcast(g.q2, 5u), subgroupBroadcast(g.q3, 5u), b_s(bq, k0 + 5u));
    mac(&acc, subgroupBroadcast(g.q0, 6u), subgroupBroadcast(g.q1, 6u), subgroupBroadcast(g.q2, 6u), subgroupBroadcast(g.q3, 6u), b_s(bq, k0 + 6u));
    mac(&acc, subgroupBroadcast(g.q0, 7u), subgroupBroadcast(g.q1, 7u), subgroupBroadcast(g.q2, 7u), subgroupBroadcast(g.q3, 7u), b_s(bq, k0 + 7u));
  }
  if (kmain < p.K) {
    let g = as_load(t, kmain + t.j);
    for (var s = 0u; s < p.K - kmain; s++) { mac_m(&acc, g, s, b_s(bq, kmain + s)); }
  }
  finish(acc, t);
}
