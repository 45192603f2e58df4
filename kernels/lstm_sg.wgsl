// LSTM recurrence with subgroup broadcasts (used when the device has 'subgroups' with subgroups of
// at least 8 lanes and hiddenSize % 4 == 0; kernels/lstm.wgsl is the portable version and defines
// the math; this file computes the same thing faster).
//
// Why: each invocation owns hidden unit j of R = 8 batch rows, so the 4 gate weights of (k, j) are
// one vec4 load reused by 8 rows (32 FMAs), while the h (forward) or dgates (backward) values are
// the same for every invocation of a subgroup. Instead of every lane loading them, lane l of each
// 8-lane group loads a different chunk and subgroupShuffle hands it to the others: one load serves
// 8 lanes. (On lavapipe loads cost ~10x an FMA and workgroup memory is no cheaper than storage;
// on GPUs this is the register-level broadcast that saves shared-memory traffic.)
//
// Weights: wp[k·H + j] = (W_hh[j, k], W_hh[H + j, k], W_hh[2H + j, k], W_hh[3H + j, k]), i.e. W_hh
// regrouped as [H(k), H(j), 4 gates]. Forward reads wp[k·H + j] for its unit j; backward
// (dh[b, j'] = Σ_k' Σ_g dg[b, g·H + k'] · W_hh[g·H + k', j']) reads wp[j'·H + k'] for its j'.
enable subgroups;

override WG: u32 = 64u;   // a multiple of 8
const R: u32 = 8u;        // batch rows per invocation

struct StepParams {
  t: u32,
  B: u32,
  H: u32,
  has_bias: u32,  // bit 0: b_ih bound, bit 1: b_hh bound
}

struct BwdParams {
  t: u32,
  B: u32,
  H: u32,
  T: u32,
  has_gh: u32,
  dh0_only: u32,
}

// ---- forward
@group(0) @binding(0) var<storage, read> xg: array<f32>;              // [T, B, 4H]
@group(0) @binding(1) var<storage, read> wp: array<vec4<f32>>;        // [H, H] of gate vec4s
@group(0) @binding(2) var<storage, read> bih: array<f32>;
@group(0) @binding(3) var<storage, read> bhh: array<f32>;
@group(0) @binding(4) var<storage, read> h0: array<vec4<f32>>;        // [B, H/4]
@group(0) @binding(5) var<storage, read> c0: array<f32>;              // [B, H]
@group(0) @binding(6) var<storage, read_write> hs: array<vec4<f32>>;  // [T, B, H/4]
@group(0) @binding(7) var<storage, read_write> cs: array<f32>;        // [T, B, H]
@group(0) @binding(8) var<storage, read_write> acts: array<f32>;      // [T, B, 4H]
@group(0) @binding(9) var<uniform> sp: StepParams;

// ---- backward
@group(0) @binding(0) var<storage, read> sacts: array<f32>;
@group(0) @binding(1) var<storage, read> scs: array<f32>;
@group(0) @binding(2) var<storage, read> sc0: array<f32>;
@group(0) @binding(3) var<storage, read> bwp: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read> gh: array<f32>;
@group(0) @binding(5) var<storage, read> gc: array<f32>;
@group(0) @binding(6) var<storage, read_write> dg: array<f32>;         // [T, B, 4H] gate-major (for the matmuls)
@group(0) @binding(7) var<storage, read_write> dgi: array<vec4<f32>>;  // [T, B, H] gate vec4s (for the recurrence)
@group(0) @binding(8) var<storage, read_write> carry: array<f32>;      // [B, H]
@group(0) @binding(9) var<storage, read_write> dh0: array<f32>;        // [B, H]
@group(0) @binding(10) var<uniform> bp: BwdParams;

fn tanh_s(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigm(v: f32) -> f32 {
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}

fn cell_fwd(acc: vec4<f32>, b: u32, j: u32) {
  let H = sp.H;
  let G = 4u * H;
  let xo = (sp.t * sp.B + b) * G + j;
  var pre = acc + vec4<f32>(xg[xo], xg[xo + H], xg[xo + 2u * H], xg[xo + 3u * H]);
  if ((sp.has_bias & 1u) != 0u) { pre += vec4<f32>(bih[j], bih[H + j], bih[2u * H + j], bih[3u * H + j]); }
  if ((sp.has_bias & 2u) != 0u) { pre += vec4<f32>(bhh[j], bhh[H + j], bhh[2u * H + j], bhh[3u * H + j]); }
  let i = sigm(pre.x);
  let f = sigm(pre.y);
  let g = tanh_s(pre.z);
  let o = sigm(pre.w);
  var cprev: f32;
  if (sp.t == 0u) { cprev = c0[b * H + j]; } else { cprev = cs[((sp.t - 1u) * sp.B + b) * H + j]; }
  let c = f * cprev + i * g;
  let so = (sp.t * sp.B + b) * H + j;
  cs[so] = c;
  hs[so / 4u][so % 4u] = o * tanh_s(c);
  acts[xo] = i;
  acts[xo + H] = f;
  acts[xo + 2u * H] = g;
  acts[xo + 3u * H] = o;
}

// grid: (ceil(H / WG), ceil(B / R))
@compute @workgroup_size(WG)
fn lstm_step_fwd_sg(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(subgroup_invocation_id) sl: u32) {
  let H = sp.H;
  let B = sp.B;
  let H4 = H / 4u;
  let j = wid.x * WG + lid.x;
  let jj = min(j, H - 1u);   // lanes past H compute a copy of unit H-1 (they must join the shuffles)
  let b0 = wid.y * R;
  let l8 = sl & 7u;
  var rowo: array<u32, 8>;   // vec4 offset of each row's h_{t-1}
  var base = 0u;
  if (sp.t > 0u) { base = (sp.t - 1u) * B * H4; }
  for (var r = 0u; r < R; r++) { rowo[r] = base + min(b0 + r, B - 1u) * H4; }
  var a: array<vec4<f32>, 8>;
  for (var c = 0u; c < H4; c += 8u) {
    // lane l8 loads h[row, 4(c + l8) .. 4(c + l8) + 3] of every row
    let q = min(c + l8, H4 - 1u);
    var x: array<vec4<f32>, 8>;
    if (sp.t == 0u) {
      for (var r = 0u; r < R; r++) { x[r] = h0[rowo[r] + q]; }
    } else {
      for (var r = 0u; r < R; r++) { x[r] = hs[rowo[r] + q]; }
    }
    for (var l = 0u; l < 8u; l++) {
      if (c + l >= H4) { break; }
      let k = (c + l) * 4u;
      let w0 = wp[k * H + jj];
      let w1 = wp[(k + 1u) * H + jj];
      let w2 = wp[(k + 2u) * H + jj];
      let w3 = wp[(k + 3u) * H + jj];
      for (var r = 0u; r < R; r++) {
        let y = subgroupShuffle(x[r], l);
        a[r] += y.x * w0 + y.y * w1 + y.z * w2 + y.w * w3;
      }
    }
  }
  if (j >= H) { return; }
  for (var r = 0u; r < R; r++) {
    if (b0 + r < B) { cell_fwd(a[r], b0 + r, j); }
  }
}

fn cell_bwd(dhr: f32, b: u32, j: u32) {
  let H = bp.H;
  let G = 4u * H;
  let t = bp.t;
  let ao = (t * bp.B + b) * G + j;
  let i = sacts[ao];
  let f = sacts[ao + H];
  let g = sacts[ao + 2u * H];
  let o = sacts[ao + 3u * H];
  let so = (t * bp.B + b) * H + j;
  let c = scs[so];
  var cprev: f32;
  if (t == 0u) { cprev = sc0[b * H + j]; } else { cprev = scs[so - bp.B * H]; }
  let tc = tanh_s(c);
  var dh = dhr;
  if (bp.has_gh != 0u) { dh += gh[so]; }
  var dc = gc[so] + dhr * o * (1.0 - tc * tc);
  if (t + 1u < bp.T) { dc += carry[b * H + j]; }
  let d = vec4<f32>(dc * g * i * (1.0 - i), dc * cprev * f * (1.0 - f), dc * i * (1.0 - g * g), dh * tc * o * (1.0 - o));
  dg[ao] = d.x;
  dg[ao + H] = d.y;
  dg[ao + 2u * H] = d.z;
  dg[ao + 3u * H] = d.w;
  dgi[so] = d;
  carry[b * H + j] = dc * f;
}

// grid: (ceil(ceil(H / 2) / WG), ceil(B / R)); each invocation owns units j and j + ceil(H/2) of R
// rows, so one shuffled dgates value feeds two weight vectors.
// dh_rec[b, j] = Σ_k Σ_g dgi[t+1][b, k][g] · wp[j·H + k][g]
@compute @workgroup_size(WG)
fn lstm_step_bwd_sg(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                    @builtin(subgroup_invocation_id) sl: u32) {
  let H = bp.H;
  let B = bp.B;
  let Hh = (H + 1u) / 2u;
  let j = wid.x * WG + lid.x;
  let j2 = j + Hh;
  let ja = min(j, H - 1u);
  let jb = min(j2, H - 1u);
  let b0 = wid.y * R;
  let l8 = sl & 7u;
  var a: array<f32, 8>;
  var e: array<f32, 8>;
  if (bp.dh0_only != 0u || bp.t + 1u < bp.T) {
    var nt = bp.t + 1u;
    if (bp.dh0_only != 0u) { nt = 0u; }
    var rowo: array<u32, 8>;
    for (var r = 0u; r < R; r++) { rowo[r] = (nt * B + min(b0 + r, B - 1u)) * H; }
    for (var c = 0u; c < H; c += 8u) {
      let q = min(c + l8, H - 1u);
      var x: array<vec4<f32>, 8>;
      for (var r = 0u; r < R; r++) { x[r] = dgi[rowo[r] + q]; }
      for (var l = 0u; l < 8u; l++) {
        if (c + l >= H) { break; }
        let wa = bwp[ja * H + c + l];
        let wb = bwp[jb * H + c + l];
        for (var r = 0u; r < R; r++) {
          let y = subgroupShuffle(x[r], l);
          a[r] += dot(y, wa);
          e[r] += dot(y, wb);
        }
      }
    }
  }
  for (var r = 0u; r < R; r++) {
    let b = b0 + r;
    if (b >= B) { break; }
    if (bp.dh0_only != 0u) {
      if (j < Hh) { dh0[b * H + j] = a[r]; }
      if (j2 < H) { dh0[b * H + j2] = e[r]; }
    } else {
      if (j < Hh) { cell_bwd(a[r], b, j); }
      if (j2 < H) { cell_bwd(e[r], b, j2); }
    }
  }
}
