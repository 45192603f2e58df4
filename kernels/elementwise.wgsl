// Elementwise family: unary maps with their derivatives, and binary ops with numpy broadcasting.
// Memory-bound: one element per invocation, 1-D grids folded into y past 65535 workgroups.
// The op is an override constant, so each op gets its own specialised pipeline (no runtime switch).

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
  n: u32,
  alpha: f32,
  beta: f32,
}

// Broadcast indexing for rank <= 8: the output's shape and each input's strides over the output
// index space (0 where an input is broadcast), split into two vec4s.
struct BinaryParams {
  n: u32,
  rank: u32,
  contiguous: u32,  // 1 when a, b and out have one shape: skip index math
  shape_lo: vec4<u32>,
  shape_hi: vec4<u32>,
  astr_lo: vec4<u32>,
  astr_hi: vec4<u32>,
  bstr_lo: vec4<u32>,
  bstr_hi: vec4<u32>,
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read> y: array<f32>;      // forward output (saved for backward)
@group(0) @binding(2) var<storage, read> gy: array<f32>;     // gradient of y
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<uniform> up: UnaryParams;

@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<uniform> bp: BinaryParams;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// erf with |error| < 1.5e-7 (Abramowitz & Stegun 7.1.26), below f32 resolution of the result.
fn erf_approx(v: f32) -> f32 {
  let s = sign(v);
  let t = 1.0 / (1.0 + 0.3275911 * abs(v));
  let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1.0 - poly * exp(-v * v));
}

// tanh that stays finite for large |v| (WGSL's tanh may overflow through exp on some drivers)
fn tanh_safe(v: f32) -> f32 {
  let e = exp(-2.0 * abs(v));
  return sign(v) * (1.0 - e) / (1.0 + e);
}

fn sigmoid(v: f32) -> f32 {
  // split on sign so exp never overflows
  if (v >= 0.0) { return 1.0 / (1.0 + exp(-v)); }
  let e = exp(v);
  return e / (1.0 + e);
}

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const INV_SQRT_2: f32 = 0.7071067811865476;
const INV_SQRT_2PI: f32 = 0.3989422804014327;

fn unary(v: f32) -> f32 {
  switch UOP {
    case U_NEG: { return -v; }
    case U_EXP: { return exp(v); }
    case U_LOG: { return log(v); }
    case U_SQRT: { return sqrt(v); }
    case U_TANH: { return tanh_safe(v); }
    case U_SIGMOID: { return sigmoid(v); }
    case U_RELU: { return max(v, 0.0); }
    case U_GELU: { return 0.5 * v * (1.0 + erf_approx(v * INV_SQRT_2)); }
    case U_GELU_TANH: {
      return 0.5 * v * (1.0 + tanh_safe(SQRT_2_OVER_PI * (v + 0.044715 * v * v * v)));
    }
    case U_AFFINE: { return up.alpha * v + up.beta; }
    case U_SQUARE: { return v * v; }
    case U_RECIP: { return 1.0 / v; }
    case U_ABS: { return abs(v); }
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
    case U_TANH: { return 1.0 - o * o; }
    case U_SIGMOID: { return o * (1.0 - o); }
    case U_RELU: { return select(0.0, 1.0, v > 0.0); }
    case U_GELU: {
      return 0.5 * (1.0 + erf_approx(v * INV_SQRT_2)) + v * INV_SQRT_2PI * exp(-0.5 * v * v);
    }
    case U_GELU_TANH: {
      let u = SQRT_2_OVER_PI * (v + 0.044715 * v * v * v);
      let t = tanh_safe(u);
      return 0.5 * (1.0 + t) + 0.5 * v * (1.0 - t * t) * SQRT_2_OVER_PI * (1.0 + 3.0 * 0.044715 * v * v);
    }
    case U_AFFINE: { return up.alpha; }
    case U_SQUARE: { return 2.0 * v; }
    case U_RECIP: { return -o * o; }
    case U_ABS: { return sign(v); }
    default: { return 1.0; }
  }
}

@compute @workgroup_size(WG)
fn unary_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  out[i] = unary(x[i]);
}

// out = gy * f'(x)   (y = f(x) is bound for ops whose derivative is cheaper from the output)
@compute @workgroup_size(WG)
fn unary_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= up.n) { return; }
  out[i] = gy[i] * unary_grad(x[i], y[i]);
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
  for (var d = bp.rank; d > 0u; d--) {
    let s = pick(bp.shape_lo, bp.shape_hi, d - 1u);
    let k = rem % s;
    rem = rem / s;
    ia += k * pick(bp.astr_lo, bp.astr_hi, d - 1u);
    ib += k * pick(bp.bstr_lo, bp.bstr_hi, d - 1u);
  }
  c[i] = binary(a[ia], b[ib]);
}
