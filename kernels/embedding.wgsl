// Embedding family: out[t, :] = weight[idx[t], :], and a deterministic backward dW[v, :] = Σ_{t: idx[t] = v} gy[t, :]
// without float atomics.
//
// Out-of-range indices never read out of bounds: the forward writes NaN for the whole output row
// (so a loss computed from it is NaN, never silently plausible) and records the call in `flag`
// (integer atomics: [count, first call id, last call id, unused]); the TS side reads the flag in
// ops.checkIndexErrors(dev). The backward skips such positions.
//
// Backward = a stable counting sort of positions by index (CSR: offsets[v] .. offsets[v+1] are the
// positions t with idx[t] = v, ascending), then for each (v, d) a sum over its bucket in
// ascending t. The summation order is a function of the indices alone, so dW is bit-reproducible.
// When indices come from the CPU the CSR is built there (O(N + V)); for GPU-resident indices:
//   embedding_count   histogram of valid indices (u32 atomicAdd: counts are order-independent)
//   embedding_scan    one workgroup: exclusive prefix sum of counts -> offsets[0..V], cursor = offsets
//   embedding_fill    one workgroup: walks positions in chunks of WG; each position's slot is
//                     cursor[v] + (number of earlier positions in the chunk with the same v):
//                     O(N·WG) compares, O(N / WG) barriers. Stable, hence deterministic.
//   embedding_bwd     one workgroup per v, lanes over d: O(V·D + N·D) work, each dW element written
//                     once, no integer division per element (lavapipe scalarizes vector division).

override WG: u32 = 256u;
/** rows per workgroup of the row kernels (amortizes per-workgroup cost when D is small) */
override ROWS: u32 = 1u;

struct FwdParams {
  n: u32,       // number of indices
  dim: u32,     // D
  vocab: u32,   // V
  call: u32,    // id of this call (for the out-of-range flag)
}

@group(0) @binding(0) var<storage, read> idx: array<i32>;
@group(0) @binding(1) var<storage, read> weight: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> flag: array<atomic<u32>>;
@group(0) @binding(4) var<uniform> fp: FwdParams;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

fn report_bad(call: u32) {
  atomicAdd(&flag[0], 1u);
  atomicMin(&flag[1], call);
  atomicMax(&flag[2], call);
}

fn valid_index(v: i32, vocab: u32) -> bool {
  return v >= 0 && u32(v) < vocab;
}

// One workgroup per ROWS output rows (rows folded over x and y of the grid); lanes stride over d, so
// a row's index is read once per workgroup and weight/out accesses are contiguous across lanes.
@compute @workgroup_size(WG)
fn embedding_fwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let t0 = (wid.x + wid.y * nwg.x) * ROWS;
  for (var t = t0; t < min(t0 + ROWS, fp.n); t++) {
    let v = idx[t];
    let o = t * fp.dim;
    if (!valid_index(v, fp.vocab)) {
      // a runtime quiet NaN (a const-expression NaN is a shader-creation error)
      let nan = bitcast<f32>(0x7fc00000u | (fp.n & 0u));
      for (var d = lid; d < fp.dim; d += WG) { out[o + d] = nan; }
      if (lid == 0u) { report_bad(fp.call); }
      continue;
    }
    let w = u32(v) * fp.dim;
    for (var d = lid; d < fp.dim; d += WG) { out[o + d] = weight[w + d]; }
  }
}

// ---- backward: CSR build on the GPU ------------------------------------------------------------

struct CsrParams {
  n: u32,       // number of indices
  vocab: u32,   // V
}

@group(0) @binding(0) var<storage, read> cidx: array<i32>;
@group(0) @binding(1) var<storage, read_write> counts: array<atomic<u32>>;
@group(0) @binding(2) var<uniform> cp: CsrParams;

@compute @workgroup_size(WG)
fn embedding_count(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let t = linear_id(gid, nwg);
  if (t >= cp.n) { return; }
  let v = cidx[t];
  if (valid_index(v, cp.vocab)) { atomicAdd(&counts[u32(v)], 1u); }
}

@group(0) @binding(0) var<storage, read> hist: array<u32>;
@group(0) @binding(1) var<storage, read_write> offsets: array<u32>;   // V + 1
@group(0) @binding(2) var<storage, read_write> cursor: array<u32>;    // V
@group(0) @binding(3) var<uniform> sp: CsrParams;

var<workgroup> part: array<u32, WG>;

// One workgroup. Lane l owns the contiguous chunk [l·c, (l+1)·c) of the V counts.
@compute @workgroup_size(WG)
fn embedding_scan(@builtin(local_invocation_index) lid: u32) {
  let c = (sp.vocab + WG - 1u) / WG;
  let lo = min(lid * c, sp.vocab);
  let hi = min(lo + c, sp.vocab);
  var s = 0u;
  for (var v = lo; v < hi; v++) { s += hist[v]; }
  part[lid] = s;
  workgroupBarrier();
  // Hillis-Steele inclusive scan over the WG partial sums
  for (var k = 1u; k < WG; k = k * 2u) {
    var add = 0u;
    if (lid >= k) { add = part[lid - k]; }
    workgroupBarrier();
    part[lid] += add;
    workgroupBarrier();
  }
  var run = part[lid] - s;  // exclusive prefix of this chunk
  for (var v = lo; v < hi; v++) {
    offsets[v] = run;
    cursor[v] = run;
    run += hist[v];
  }
  if (lid == WG - 1u) { offsets[sp.vocab] = part[WG - 1u]; }
}

@group(0) @binding(0) var<storage, read> fidx: array<i32>;
@group(0) @binding(1) var<storage, read_write> fcursor: array<u32>;
@group(0) @binding(2) var<storage, read_write> order: array<u32>;
@group(0) @binding(3) var<uniform> fillp: CsrParams;

var<workgroup> skey: array<i32, WG>;

// One workgroup; stable placement of positions into their buckets.
@compute @workgroup_size(WG)
fn embedding_fill(@builtin(local_invocation_index) lid: u32) {
  for (var base = 0u; base < fillp.n; base += WG) {
    let t = base + lid;
    var key = -1;
    if (t < fillp.n) {
      let v = fidx[t];
      if (valid_index(v, fillp.vocab)) { key = v; }
    }
    skey[lid] = key;
    workgroupBarrier();
    var before = 0u;
    var after = 0u;
    if (key >= 0) {
      for (var j = 0u; j < WG; j++) {
        let same = skey[j] == key;
        before += select(0u, 1u, same && j < lid);
        after += select(0u, 1u, same && j > lid);
      }
    }
    if (key >= 0) {
      let slot = fcursor[u32(key)] + before;
      order[slot] = t;
    }
    // every lane has read the cursor before any lane advances it
    storageBarrier();
    workgroupBarrier();
    if (key >= 0 && after == 0u) {
      fcursor[u32(key)] += before + 1u;   // the last occurrence in the chunk advances the bucket
    }
    storageBarrier();
    workgroupBarrier();
  }
}

// ---- backward: the gather-sum -------------------------------------------------------------------

struct BwdParams {
  vocab: u32,
  dim: u32,
  padding_idx: i32,  // row whose gradient is forced to 0 (-1: none)
}

@group(0) @binding(0) var<storage, read> gy: array<f32>;       // [N, D]
@group(0) @binding(1) var<storage, read> boffsets: array<u32>; // [V + 1]
@group(0) @binding(2) var<storage, read> border: array<u32>;   // [N] positions sorted by index (stable)
@group(0) @binding(3) var<storage, read_write> gw: array<f32>; // [V, D]
@group(0) @binding(4) var<uniform> bp: BwdParams;

// One workgroup per ROWS table rows v; lanes stride over d and walk v's bucket in ascending position.
@compute @workgroup_size(WG)
fn embedding_bwd(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
                 @builtin(num_workgroups) nwg: vec3<u32>) {
  let v0 = (wid.x + wid.y * nwg.x) * ROWS;
  for (var v = v0; v < min(v0 + ROWS, bp.vocab); v++) {
    let o = v * bp.dim;
    if (i32(v) == bp.padding_idx) {
      for (var d = lid; d < bp.dim; d += WG) { gw[o + d] = 0.0; }
      continue;
    }
    let lo = boffsets[v];
    let hi = boffsets[v + 1u];
    for (var d = lid; d < bp.dim; d += WG) {
      var acc = 0.0;
      for (var k = lo; k < hi; k++) {
        acc += gy[border[k] * bp.dim + d];
      }
      gw[o + d] = acc;
    }
  }
}
