// LSTM family (PyTorch gate order i, f, g, o; G = 4H gate rows).
// The input part x·W_ihᵀ of every time step is one matmul done up front (xg, [T, B, G]); these
// kernels run only the recurrence, one dispatch per time step:
//   lstm_step_fwd  h·W_hhᵀ + xg[t] + b_ih + b_hh -> gates -> c = f·c' + i·g, h = o·tanh(c)
//   lstm_step_bwd  dh_rec = dgates[t+1]·W_hh fused with the pointwise gate gradients of step t
//                  (dh0_only = 1: only dh0 = dgates[0]·W_hh)
//   lstm_hpath_bwd the part of dL/dc that flows through h = o·tanh(c) from outside gradients of h
// Each invocation owns one hidden unit j of R batch rows: the 4 gate dot products of R rows share
// their weight loads (4·R accumulators), neighbouring invocations read neighbouring weights.
// dW_hh, dW_ih, db and dx are not here: they are one matmul/sum over all steps at the end.

override WG: u32 = 64u;
// 1: wt holds W_hhᵀ [H, G] (coalesced across j; used for sequences, transposed once per call)
// 0: wt holds W_hh [G, H] as given (strided; used for a single step, where a transpose costs more)
override WT_TRANSPOSED: bool = true;
const R: u32 = 4u;  // batch rows per invocation

struct StepParams {
  t: u32,         // time step
  B: u32,
  H: u32,
  has_bias: u32,  // bit 0: b_ih bound, bit 1: b_hh bound (else placeholders)
}

struct BwdParams {
  t: u32,
  B: u32,
  H: u32,
  T: u32,
  has_gh: u32,    // 0: no gradient reached the h outputs (gh is a placeholder)
  dh0_only: u32,  // 1: only dh0 = dg[0]·W_hh
}

struct PathParams {
  n: u32,         // T·B·H
  H: u32,
}

// ---- forward bindings
@group(0) @binding(0) var<storage, read> xg: array<f32>;          // [T, B, G]
@group(0) @binding(1) var<storage, read> wt: array<f32>;          // W_hhᵀ [H, G] or W_hh [G, H]
@group(0) @binding(2) var<storage, read> bih: array<f32>;         // [G]
@group(0) @binding(3) var<storage, read> bhh: array<f32>;         // [G]
@group(0) @binding(4) var<storage, read> h0: array<f32>;          // [B, H]
@group(0) @binding(5) var<storage, read> c0: array<f32>;          // [B, H]
@group(0) @binding(6) var<storage, read_write> hs: array<f32>;    // [T, B, H]
@group(0) @binding(7) var<storage, read_write> cs: array<f32>;    // [T, B, H]
@group(0) @binding(8) var<storage, read_write> acts: array<f32>;  // [T, B, G]: i, f, g, o after activation
@group(0) @binding(9) var<uniform> sp: StepParams;

// ---- backward bindings (other names on the same numbers)
@group(0) @binding(0) var<storage, read> sacts: array<f32>;       // [T, B, G] saved activations
@group(0) @binding(1) var<storage, read> scs: array<f32>;         // [T, B, H] saved cell states
@group(0) @binding(2) var<storage, read> sc0: array<f32>;         // [B, H]
@group(0) @binding(3) var<storage, read> whh: array<f32>;         // [G, H]
@group(0) @binding(4) var<storage, read> gh: array<f32>;          // [T, B, H] dL/dh from outside
@group(0) @binding(5) var<storage, read> gc: array<f32>;          // [T, B, H] dL/dc from outside (incl. hpath)
@group(0) @binding(6) var<storage, read_write> dg: array<f32>;    // [T, B, G] gate pre-activation grads
@group(0) @binding(7) var<storage, read_write> carry: array<f32>; // [B, H] dL/dc_t · f_t, passed to step t-1
@group(0) @binding(8) var<storage, read_write> dh0: array<f32>;   // [B, H]
@group(0) @binding(9) var<uniform> bp: BwdParams;

// ---- hpath bindings
@group(0) @binding(0) var<storage, read> pacts: array<f32>;
@group(0) @binding(1) var<storage, read> pcs: array<f32>;
@group(0) @binding(2) var<storage, read> pgh: array<f32>;
@group(0) @binding(3) var<storage, read_write> pout: array<f32>;
@group(0) @binding(4) var<uniform> pp: PathParams;

// tanh that stays finite for large |v|
fn tanh_s(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigm(v: f32) -> f32 {
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}

// weight of gate row n = gate·H + j at input k
fn w_at(n: u32, k: u32) -> f32 {
  if (WT_TRANSPOSED) { return wt[k * 4u * sp.H + n]; }
  return wt[n * sp.H + k];
}

fn w4(j: u32, k: u32) -> vec4<f32> {
  let H = sp.H;
  return vec4<f32>(w_at(j, k), w_at(H + j, k), w_at(2u * H + j, k), w_at(3u * H + j, k));
}

// pointwise cell update of batch row b, unit j, from the recurrent gate pre-activations acc
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
  hs[so] = o * tanh_s(c);
  acts[xo] = i;
  acts[xo + H] = f;
  acts[xo + 2u * H] = g;
  acts[xo + 3u * H] = o;
}

// grid: (ceil(H / WG), ceil(B / R)); invocation (j, rows b0..b0+R-1)
@compute @workgroup_size(WG)
fn lstm_step_fwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let H = sp.H;
  let B = sp.B;
  let j = gid.x;
  let b0 = gid.y * R;
  if (j >= H || b0 >= B) { return; }
  // rows past B repeat the last row (valid loads), their results are not written
  let r1 = min(b0 + 1u, B - 1u);
  let r2 = min(b0 + 2u, B - 1u);
  let r3 = min(b0 + 3u, B - 1u);
  var a0 = vec4<f32>(0.0);
  var a1 = vec4<f32>(0.0);
  var a2 = vec4<f32>(0.0);
  var a3 = vec4<f32>(0.0);
  if (sp.t == 0u) {
    for (var k = 0u; k < H; k++) {
      let w = w4(j, k);
      a0 += h0[b0 * H + k] * w;
      a1 += h0[r1 * H + k] * w;
      a2 += h0[r2 * H + k] * w;
      a3 += h0[r3 * H + k] * w;
    }
  } else {
    let base = (sp.t - 1u) * B * H;
    for (var k = 0u; k < H; k++) {
      let w = w4(j, k);
      a0 += hs[base + b0 * H + k] * w;
      a1 += hs[base + r1 * H + k] * w;
      a2 += hs[base + r2 * H + k] * w;
      a3 += hs[base + r3 * H + k] * w;
    }
  }
  cell_fwd(a0, b0, j);
  if (b0 + 1u < B) { cell_fwd(a1, b0 + 1u, j); }
  if (b0 + 2u < B) { cell_fwd(a2, b0 + 2u, j); }
  if (b0 + 3u < B) { cell_fwd(a3, b0 + 3u, j); }
}

// pointwise gate gradients of step bp.t for row b, unit j, given dh_rec = dgates[t+1]·W_hh
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
  // gc already holds the outside dL/dh through tanh(c) (lstm_hpath_bwd); add the recurrent part
  var dc = gc[so] + dhr * o * (1.0 - tc * tc);
  if (t + 1u < bp.T) { dc += carry[b * H + j]; }
  dg[ao] = dc * g * i * (1.0 - i);
  dg[ao + H] = dc * cprev * f * (1.0 - f);
  dg[ao + 2u * H] = dc * i * (1.0 - g * g);
  dg[ao + 3u * H] = dh * tc * o * (1.0 - o);
  carry[b * H + j] = dc * f;
}

// grid: (ceil(H / WG), ceil(B / R))
@compute @workgroup_size(WG)
fn lstm_step_bwd(@builtin(global_invocation_id) gid: vec3<u32>) {
  let H = bp.H;
  let B = bp.B;
  let G = 4u * H;
  let j = gid.x;
  let b0 = gid.y * R;
  if (j >= H || b0 >= B) { return; }
  let r1 = min(b0 + 1u, B - 1u);
  let r2 = min(b0 + 2u, B - 1u);
  let r3 = min(b0 + 3u, B - 1u);
  // dgates of the step after this one (t + 1), or of step 0 for the final dh0 pass
  let has_next = bp.dh0_only != 0u || bp.t + 1u < bp.T;
  var d = vec4<f32>(0.0);
  if (has_next) {
    var nt = bp.t + 1u;
    if (bp.dh0_only != 0u) { nt = 0u; }
    let base = nt * B * G;
    let o0 = base + b0 * G;
    let o1 = base + r1 * G;
    let o2 = base + r2 * G;
    let o3 = base + r3 * G;
    // two partial sums per row keep 8 independent FMA chains
    var e = vec4<f32>(0.0);
    var k = 0u;
    for (; k + 1u < G; k += 2u) {
      let w0 = whh[k * H + j];
      let w1 = whh[(k + 1u) * H + j];
      d += vec4<f32>(dg[o0 + k], dg[o1 + k], dg[o2 + k], dg[o3 + k]) * w0;
      e += vec4<f32>(dg[o0 + k + 1u], dg[o1 + k + 1u], dg[o2 + k + 1u], dg[o3 + k + 1u]) * w1;
    }
    d += e;
  }
  if (bp.dh0_only != 0u) {
    dh0[b0 * H + j] = d.x;
    if (b0 + 1u < B) { dh0[(b0 + 1u) * H + j] = d.y; }
    if (b0 + 2u < B) { dh0[(b0 + 2u) * H + j] = d.z; }
    if (b0 + 3u < B) { dh0[(b0 + 3u) * H + j] = d.w; }
    return;
  }
  cell_bwd(d.x, b0, j);
  if (b0 + 1u < B) { cell_bwd(d.y, b0 + 1u, j); }
  if (b0 + 2u < B) { cell_bwd(d.z, b0 + 2u, j); }
  if (b0 + 3u < B) { cell_bwd(d.w, b0 + 3u, j); }
}

// pout = pgh · o · (1 - tanh(c)²) over [T, B, H]: dL/dc through h = o·tanh(c) from outside grads of h
@compute @workgroup_size(WG)
fn lstm_hpath_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let e = gid.x + gid.y * nwg.x * WG;
  if (e >= pp.n) { return; }
  let H = pp.H;
  let row = e / H;          // t·B + b
  let j = e - row * H;
  let o = pacts[row * 4u * H + 3u * H + j];
  let tc = tanh_s(pcs[e]);
  pout[e] = pgh[e] * o * (1.0 - tc * tc);
}
