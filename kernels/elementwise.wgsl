// Elementwise family: unary maps with their derivatives, and binary ops with numpy broadcasting.
// Memory-bound: one element (or one vec4 of elements) per invocation, 1-D grids folded into y past
// 65535 workgroups. The op is an override constant, so each op gets its own specialised pipeline.
// The *4 entry points read and write vec4s (wide loads: ~2.4x the bandwidth of scalar loads on
// lavapipe, coalesced 16-byte accesses on GPUs); TS uses them when every bound buffer holds
// ceil(n/4)*16 bytes. Lanes past n compute on padding and write only into padding.
//
// Accuracy: every map is written so that its relative error stays within a few ULP plus the WGSL
// error of exp (3 + 2|x| ULP) over the whole f32 range, with no cancellation:
// - tanh: odd Taylor polynomial below |v| = 0.5, (1 - e) / (1 + e) with e = exp(-2|v|) above;
//   its derivative 1 - tanh^2 = 4e / (1 + e)^2 from the input (not 1 - y*y, which cancels).
// - sigmoid: split on sign so exp never overflows; derivative s(v) * s(-v) (not y * (1 - y)).
// - gelu (erf form): Phi(v) = erfc(-v/sqrt2) / 2 with erfc(z) = t P(t) exp(-z^2), t = 1/(1 + z/2),
//   P a degree-10 polynomial fitted (weighted least squares, relative error 1.1e-8) to
//   erfc(z) exp(z^2) / t on t in (0, 1]; relative accuracy holds in the negative tail, where
//   0.5 * (1 + erf) would cancel.
// - gelu (tanh form): 0.5 v (1 + tanh u) = v * sigmoid(2u), which does not cancel for v < 0.

override WG: u32 = 256u;
// unary op codes
const U_NEG: u32 = 0u;
const U_EXP: u32 = 1u;
const U_LOG: u32 = 2u;
const U_SQRT: u32 = 3u;
const U_TANH: u32 = 4u;
const U_SIGMOID: u32 = 5u;
const U_RELU: u32 = 6u;
const U_GELU: u32 = 7u;       // x * Phi(x), erf form
const U_GELU_TANH: u32 = 8u;  // tanh approximation
const U_AFFINE: u32 = 9u;     // alpha * x + beta
const U_SQUARE: u32 = 10u;
const U_RECIP: u32 = 11u;
const U_ABS: u32 = 12u;
const U_MAX_SCALAR: u32 = 13u;  // max(x, alpha); gradient to x where x >= alpha (ties: to x)
const U_DIV_SCALAR: u32 = 14u;  // x / alpha
override UOP: u32 = 0u;

// binary op codes
const B_ADD: u32 = 0u;
const B_SUB: u32 = 1u;
const B_MUL: u32 = 2u;
const B_DIV: u32 = 3u;
const B_MAX: u32 = 4u;
const B_GE: u32 = 5u;  // 1 where u >= v (backward of maximum)
override BOP: u32 = 0u;

struct UnaryParams {
  n: u32,       // elements (scalar entries) or vec4s (the *4 entries)
  alpha: f32,
  beta: f32,
}

// Broadcast indexing for rank <= 8: the output's shape and each input's strides over the output
// index space (0 where an input is broadcast), split into two vec4s. TS drops size-1 dims and merges
// dims that both inputs walk contiguously (a bias add [N, C] + [C] is rank 2), and passes the rank
// as the override RANK: the index loop then has a constant trip count and unrolls, with constant
// vector indices (a dynamic rank made a bias add ~8x slower on lavapipe).
override RANK: u32 = 8u;
struct BinaryParams {
  n: u32,
  contiguous: u32,  // 1 when a, b and out have one shape: skip index math
  shape_lo: vec4<u32>,
  shape_hi: vec4<u32>,
  astr_lo: vec4<u32>,
  astr_hi: vec4<u32>,
  bstr_lo: vec4<u32>,
  bstr_hi: vec4<u32>,
}

struct Binary4Params {
  n: u32,       // vec4s
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;      // forward output (saved for backward)
@group(0) @binding(2) var<storage, read> gy: array<f32>;     // gradient of y
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> up: UnaryParams;

@group(0) @binding(0) var<storage, read> x4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> y4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> gy4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out4: array<vec4<f32>>;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> bp: BinaryParams;

@group(0) @binding(0) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> c4: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> bp4: Binary4Params;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// exp(-h) for h = v*v/2, correcting for the rounding of v*v with fma (exact where fma is fused;
// harmless where it is not). Without the correction the rounding of v*v alone costs h ULP.
// Past sq = 256 the result underflows anyway; the guard keeps inf - inf out when v*v overflows.
fn exp_neg_half_sq(v: f32) -> f32 {
  let sq = v * v;
  let lo = select(0.0, fma(v, v, -sq), sq < 256.0);
  return exp(-0.5 * sq) * (1.0 - 0.5 * lo);
}

// erfc(z) for z >= 0 with relative error ~1e-7 (see the header); e2 = exp(-z*z) is passed in.
fn erfc_pos(z: f32, e2: f32) -> f32 {
  let t = 1.0 / (1.0 + 0.5 * z);
  var p = 0.04252309639;
  p = p * t - 0.2315956266;
  p = p * t + 0.4875185146;
  p = p * t - 0.4483041856;
  p = p * t + 0.1278707507;
  p = p * t - 0.05751228604;
  p = p * t + 0.09306047104;
  p = p * t + 0.1753696067;
  p = p * t + 0.2468810202;
  p = p * t + 0.2820938429;
  p = p * t + 0.2820947948;
  return t * p * e2;
}

const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;
const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_C: f32 = 0.044715;

// Phi(v) = P(N(0,1) <= v), with relative accuracy for v < 0. ev = exp(-v*v/2).
fn phi_cdf(v: f32, ev: f32) -> f32 {
  let q = 0.5 * erfc_pos(abs(v) * INV_SQRT_2, ev);
  return select(q, 1.0 - q, v > 0.0);
}

fn tanh_acc(v: f32) -> f32 {
  let av = abs(v);
  if (av < 0.5) {
    // Taylor series of tanh to v^15: truncation < 2^-26 relative for |v| < 0.5
    let s = v * v;
    var p = -0.0014558343870513183;
    p = p * s + 0.003592128036572481;
    p = p * s - 0.008863235529902197;
    p = p * s + 0.021869488536155203;
    p = p * s - 0.05396825396825397;
    p = p * s + 0.13333333333333333;
    p = p * s - 0.3333333333333333;
    return v + v * (s * p);
  }
  let e = exp(-2.0 * av);
  return sign(v) * ((1.0 - e) / (1.0 + e));
}

// 1 - tanh(v)^2 = 4e / (1 + e)^2, e = exp(-2|v|)
fn tanh_grad(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  let d = 1.0 + e;
  return (4.0 * e) / (d * d);
}

fn sigmoid(v: f32) -> f32 {
  // split on sign so exp never overflows
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}

fn unary(v: f32) -> f32 {
  switch UOP {
    case U_NEG: { return -v; }
    case U_EXP: { return exp(v); }
    case U_LOG: { return log(v); }
    case U_SQRT: { return sqrt(v); }
    case U_TANH: { return tanh_acc(v); }
    case U_SIGMOID: { return sigmoid(v); }
    case U_RELU: { return max(v, 0.0); }
    case U_GELU: { return v * phi_cdf(v, exp_neg_half_sq(v)); }
    case U_GELU_TANH: {
      return v * sigmoid(2.0 * SQRT_2_OVER_PI * (v + GELU_C * v * v * v));
    }
    case U_AFFINE: { return up.alpha * v + up.beta; }
    case U_SQUARE: { return v * v; }
    case U_RECIP: { return 1.0 / v; }
    case U_ABS: { return abs(v); }
    case U_MAX_SCALAR: { return max(v, up.alpha); }
    case U_DIV_SCALAR: { return v / up.alpha; }
    default: { return v; }
  }
}

// d unary / dv, from the input v and the saved output o
fn unary_grad(v: f32, o: f32) -> f32 {
  switch UOP {
    case U_NEG: { return -1.0; }
    case U_EXP: { return o; }
    case U_LOG: { return 1.0 / v; }
    case U_SQRT: { return 0.5 / o; }
    case U_TANH: { return tanh_grad(v); }
    case U_SIGMOID: { return o * sigmoid(-v); }
    case U_RELU: { return select(0.0, 1.0, v > 0.0); }
    case U_GELU: {
      // Phi(v) + v phi(v); the two terms cancel near v = -0.75 (a root of gelu')
      let ev = exp_neg_half_sq(v);
      return phi_cdf(v, ev) + v * INV_SQRT_2PI * ev;
    }
    case U_GELU_TANH: {
      // d/dv [v s(2u)] = s + 2 v s (1 - s) u',  s = sigmoid(2u), 1 - s = sigmoid(-2u)
      let u2 = 2.0 * SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
      let s = sigmoid(u2);
      let sm = sigmoid(-u2);
      return s + 2.0 * v * s * sm * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * v * v);
    }
    case U_AFFINE: { return up.alpha; }
    case U_SQUARE: { return 2.0 * v; }
    case U_RECIP: { return -o * o; }
    case U_ABS: { return sign(v); }
    case U_MAX_SCALAR: { return select(0.0, 1.0, v >= up.alpha); }
    case U_DIV_SCALAR: { return 1.0 / up.alpha; }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(WG)
fn unary_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  out[i] = unary(x[i]);
}

@compute @workgroup_size(WG)
fn unary_fwd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  let v = x4[i];
  out4[i] = vec4<f32>(unary(v.x), unary(v.y), unary(v.z), unary(v.w));
}

// out = gy * f'(x)   (y = f(x) is bound for ops whose derivative is cheaper from the output)
@compute @workgroup_size(WG)
fn unary_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  out[i] = gy[i] * unary_grad(x[i], y[i]);
}

@compute @workgroup_size(WG)
fn unary_bwd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  let v = x4[i];
  let o = y4[i];
  out4[i] = gy4[i] * vec4<f32>(unary_grad(v.x, o.x), unary_grad(v.y, o.y), unary_grad(v.z, o.z), unary_grad(v.w, o.w));
}

fn binary(u: f32, v: f32) -> f32 {
  switch BOP {
    case B_ADD: { return u + v; }
    case B_SUB: { return u - v; }
    case B_MUL: { return u * v; }
    case B_DIV: { return u / v; }
    case B_MAX: { return max(u, v); }
    case B_GE: { return select(0.0, 1.0, u >= v); }
    default: { return u; }
  }
}

fn pick(lo: vec4<u32>, hi: vec4<u32>, d: u32) -> u32 {
  if (d < 4u) { return lo[d]; }
  return hi[d - 4u];
}

@compute @workgroup_size(WG)
fn binary_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= bp.n) { return; }
  if (bp.contiguous == 1u) {
    c[i] = binary(a[i], b[i]);
    return;
  }
  var rem = i;
  var ia = 0u;
  var ib = 0u;
  for (var d = RANK; d > 0u; d--) {
    let s = pick(bp.shape_lo, bp.shape_hi, d - 1u);
    let k = rem % s;
    rem = rem / s;
    ia += k * pick(bp.astr_lo, bp.astr_hi, d - 1u);
    ib += k * pick(bp.bstr_lo, bp.bstr_hi, d - 1u);
  }
  c[i] = binary(a[ia], b[ib]);
}

// a, b and c of one shape, four elements per invocation
@compute @workgroup_size(WG)
fn binary_fwd4(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= bp4.n) { return; }
  let u = a4[i];
  let v = b4[i];
  c4[i] = vec4<f32>(binary(u.x, v.x), binary(u.y, v.y), binary(u.z, v.z), binary(u.w, v.w));
}
