// Reductions over one axis of a tensor viewed as [outer, R, inner]. A pass may split R into
// `nchunks` chunks of `chunk` elements: it then writes partial results shaped [outer, nchunks,
// inner] (without a split, chunk = R and nchunks = 1), and a second pass reduces the partials.
// Output element o = (a, s, b) reduces x[a, j, b] for j in [s * chunk, min(R, (s + 1) * chunk)).
//
// Entry points (TS picks one per pass from the shape; see src/ops/reduce.ts):
// - reduce_thread:  one invocation per output, a sequential loop over its chunk. No barriers.
//   For inner > 1 neighbouring invocations read neighbouring addresses (coalesced); for inner == 1
//   it suits short rows, where a workgroup tree would cost more in barriers than it saves.
// - reduce_thread4: inner == 1 with chunk and R multiples of 4: the same with vec4 loads.
// - reduce_cols4:   inner a multiple of 4: one invocation per 4 adjacent outputs, vec4 loads.
// - reduce_tree:    inner == 1, long chunks: a workgroup per output, strided loads then a tree in
//                   workgroup memory with fan-in 8 (two barrier rounds for WG = 64).
// OP: 0 = sum (times `scale`), 1 = max; max also writes the index (within R) of the first maximum,
// for backward. IDX_IN = 1 (second pass of a split max): the input's indices come from `xi`, and
// the index written is xi at the winning position.
// max never needs an identity value (no -inf constant): each invocation starts from an "empty"
// state (index -1) and the first element it sees replaces it, so rows of -inf give -inf.

override WG: u32 = 64u;
override OP: u32 = 0u;
override IDX_IN: u32 = 0u;

struct Params {
  outer: u32,
  r: u32,
  inner: u32,
  chunk: u32,
  nchunks: u32,
  scale: f32,   // multiplies a sum (1/count for mean)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> y: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;
@group(0) @binding(4) var<storage, read> xi: array<i32>;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read_write> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> idx4: array<vec4<i32>>;

var<workgroup> sval: array<f32, WG>;
var<workgroup> sidx: array<i32, WG>;

// Running state: value and index within R; index -1 = nothing seen yet (max only).
struct Acc {
  v: f32,
  i: i32,
}

fn acc_init() -> Acc {
  return Acc(0.0, -1);
}

// Adds element (v, j). For max, elements arrive in increasing j within one invocation, so strict
// > keeps the first maximum.
fn acc_add(s: Acc, v: f32, j: i32) -> Acc {
  if (OP == 0u) { return Acc(s.v + v, 0); }
  if (s.i < 0 || v > s.v) { return Acc(v, j); }
  return s;
}

// Merges two states in any order: ties keep the smaller index.
fn acc_merge(s: Acc, t: Acc) -> Acc {
  if (OP == 0u) { return Acc(s.v + t.v, 0); }
  if (t.i < 0) { return s; }
  if (s.i < 0 || t.v > s.v || (t.v == s.v && t.i < s.i)) { return t; }
  return s;
}

// Writes output o. Empty chunks (R = 0) give 0 for sum; max never reduces an empty axis.
fn finish(o: u32, s: Acc) {
  if (OP == 0u) {
    y[o] = s.v * p.scale;
  } else {
    y[o] = s.v;
    var k = max(s.i, 0);
    if (IDX_IN == 1u) {
      let a = o / (p.nchunks * p.inner);
      let b = o % p.inner;
      k = xi[(a * p.r + u32(k)) * p.inner + b];
    }
    idx[o] = k;
  }
}

fn n_out() -> u32 {
  return p.outer * p.nchunks * p.inner;
}

@compute @workgroup_size(WG)
fn reduce_thread(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= n_out()) { return; }
  let b = o % p.inner;
  let s = (o / p.inner) % p.nchunks;
  let a = o / (p.inner * p.nchunks);
  let j0 = s * p.chunk;
  let j1 = min(p.r, j0 + p.chunk);
  var acc = acc_init();
  var pos = (a * p.r + j0) * p.inner + b;
  for (var j = j0; j < j1; j++) {
    acc = acc_add(acc, x[pos], i32(j));
    pos += p.inner;
  }
  finish(o, acc);
}

// inner == 1, chunk % 4 == 0 and r % 4 == 0 (so every chunk starts on a vec4)
@compute @workgroup_size(WG)
fn reduce_thread4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = gid.x + gid.y * nwg.x * WG;
  if (o >= n_out()) { return; }
  let s = o % p.nchunks;
  let a = o / p.nchunks;
  let j0 = s * p.chunk;
  let j1 = min(p.r, j0 + p.chunk);
  let base = (a * p.r) / 4u;
  if (OP == 0u) {
    var v = vec4<f32>(0.0);
    for (var j = j0 / 4u; j < j1 / 4u; j++) { v += x4[base + j]; }
    finish(o, Acc((v.x + v.y) + (v.z + v.w), 0));
    return;
  }
  // four running maxima, one per lane of the vec4 (lane k sees j = 4q + k in increasing order)
  var acc = acc_init();
  if (j1 > j0) {
    var m = x4[base + j0 / 4u];
    var q = vec4<u32>(j0 / 4u);
    for (var j = j0 / 4u + 1u; j < j1 / 4u; j++) {
      let v = x4[base + j];
      let gt = v > m;
      m = select(m, v, gt);
      q = select(q, vec4<u32>(j), gt);
    }
    let jj = vec4<i32>(q * 4u + vec4<u32>(0u, 1u, 2u, 3u));
    acc = acc_merge(acc_merge(Acc(m.x, jj.x), Acc(m.y, jj.y)), acc_merge(Acc(m.z, jj.z), Acc(m.w, jj.w)));
  }
  finish(o, acc);
}

// inner % 4 == 0: invocation o4 handles outputs 4*o4 .. 4*o4 + 3 (same a and s, adjacent b)
@compute @workgroup_size(WG)
fn reduce_cols4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o4 = gid.x + gid.y * nwg.x * WG;
  if (o4 * 4u >= n_out()) { return; }
  let o = o4 * 4u;
  let b = o % p.inner;
  let s = (o / p.inner) % p.nchunks;
  let a = o / (p.inner * p.nchunks);
  let j0 = s * p.chunk;
  let j1 = min(p.r, j0 + p.chunk);
  let step = p.inner / 4u;
  var pos = ((a * p.r + j0) * p.inner + b) / 4u;
  if (OP == 0u) {
    var v = vec4<f32>(0.0);
    for (var j = j0; j < j1; j++) {
      v += x4[pos];
      pos += step;
    }
    y4[o4] = v * p.scale;
    return;
  }
  var m = vec4<f32>(0.0);
  var q = vec4<i32>(0);
  if (j1 > j0) {
    m = x4[pos];
    q = vec4<i32>(i32(j0));
    for (var j = j0 + 1u; j < j1; j++) {
      pos += step;
      let v = x4[pos];
      let gt = v > m;
      m = select(m, v, gt);
      q = select(q, vec4<i32>(i32(j)), gt);
    }
  }
  y4[o4] = m;
  if (IDX_IN == 1u) {
    let rowbase = a * p.r * p.inner + b;
    q = vec4<i32>(xi[rowbase + u32(q.x) * p.inner], xi[rowbase + u32(q.y) * p.inner + 1u],
                  xi[rowbase + u32(q.z) * p.inner + 2u], xi[rowbase + u32(q.w) * p.inner + 3u]);
  }
  idx4[o4] = q;
}

@compute @workgroup_size(WG)
fn reduce_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = wid.x + wid.y * nwg.x;   // uniform across the workgroup
  let valid = o < n_out();
  var acc = acc_init();
  if (valid) {
    let s = o % p.nchunks;
    let a = o / p.nchunks;
    let j0 = s * p.chunk;
    let j1 = min(p.r, j0 + p.chunk);
    let base = a * p.r;
    for (var j = j0 + lid; j < j1; j += WG) { acc = acc_add(acc, x[base + j], i32(j)); }
  }
  sval[lid] = acc.v;
  if (OP == 1u) { sidx[lid] = acc.i; }
  workgroupBarrier();
  // fan-in 8: the first `next` invocations merge the slots lid, lid + next, lid + 2 next, ...
  // (they read only slots >= next and write only slot lid < next, so no slot is read and written
  // in one round by different invocations). WG = 64: two rounds, three barriers in all.
  var width = WG;
  while (width > 1u) {
    let next = (width + 7u) / 8u;
    if (lid < next) {
      if (OP == 0u) {
        var t = sval[lid];
        for (var k = lid + next; k < width; k += next) { t += sval[k]; }
        sval[lid] = t;
      } else {
        var t = Acc(sval[lid], sidx[lid]);
        for (var k = lid + next; k < width; k += next) { t = acc_merge(t, Acc(sval[k], sidx[k])); }
        sval[lid] = t.v;
        sidx[lid] = t.i;
      }
    }
    workgroupBarrier();
    width = next;
  }
  if (lid == 0u && valid) {
    if (OP == 0u) { finish(o, Acc(sval[0], 0)); } else { finish(o, Acc(sval[0], sidx[0])); }
  }
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
