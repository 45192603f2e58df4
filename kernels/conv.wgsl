// Convolution family on NCHW images: patchify (ViT patches), im2col / col2im (torch unfold / fold)
// and 2-D max pooling. Every entry point is a gather: one invocation per element it writes, so no
// two invocations write the same address, no atomics are needed and results are deterministic.
// - patchify_fwd / patchify_bwd: a pure permutation [B, C, Hp·p, Wp·p] <-> [B, Hp·Wp, C·p·p].
// - im2col_fwd: cols[b, (c·kh + i)·kw + j, oh·Wo + ow] = x[b, c, oh·sh - ph + i·dh, ow·sw - pw + j·dw]
//   (0 outside the image). Consecutive invocations write consecutive l = oh·Wo + ow: coalesced.
// - im2col_bwd (col2im, the adjoint): each input pixel sums the columns that read it, in a fixed order.
// - maxpool_fwd: max over the window (implicit -inf padding), first maximum in row-major window
//   order wins (as PyTorch); writes the argmax as a flat index into the H·W plane.
// - maxpool_bwd: each input pixel sums the output gradients of the windows whose argmax it is.
// 1-D grids fold into y past 65535 workgroups: i = gid.x + gid.y · nwg.x · WG.

override WG: u32 = 256u;

struct Params {
  n: u32,            // elements written by this dispatch
  c: u32,            // channels
  ckk: u32,          // C · kh · kw (patchify: C · p · p)
  l: u32,            // Ho · Wo output positions per image
  in_hw: vec2<u32>,  // H, W
  out_hw: vec2<u32>, // Ho, Wo (patchify: H / p, W / p)
  k: vec2<u32>,      // kh, kw
  stride: vec2<u32>, // sh, sw
  pad: vec2<u32>,    // ph, pw
  dil: vec2<u32>,    // dh, dw
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> gy: array<f32>;
@group(0) @binding(1) var<storage, read_write> gx: array<f32>;
@group(0) @binding(2) var<storage, read> at: array<i32>;

fn linear_id(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return gid.x + gid.y * nwg.x * WG;
}

// ---- patchify ------------------------------------------------------------------------------------

// out[b, ph·Wp + pw, (c·p + i)·p + j] = x[b, c, ph·p + i, pw·p + j]
@compute @workgroup_size(WG)
fn patchify_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = linear_id(gid, nwg);
  if (o >= p.n) { return; }
  let ps = p.k.x;
  let e = o % p.ckk;
  let t = o / p.ckk;
  let l = t % p.l;
  let b = t / p.l;
  let c = e / (ps * ps);
  let r = e % (ps * ps);
  let yy = (l / p.out_hw.y) * ps + r / ps;
  let xx = (l % p.out_hw.y) * ps + r % ps;
  out[o] = x[((b * p.c + c) * p.in_hw.x + yy) * p.in_hw.y + xx];
}

// gx[b, c, y, x] = gy[b, (y / p)·Wp + x / p, (c·p + y % p)·p + x % p]
@compute @workgroup_size(WG)
fn patchify_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= p.n) { return; }
  let ps = p.k.x;
  let xx = i % p.in_hw.y;
  let t = i / p.in_hw.y;
  let yy = t % p.in_hw.x;
  let bc = t / p.in_hw.x;
  let c = bc % p.c;
  let b = bc / p.c;
  let l = (yy / ps) * p.out_hw.y + xx / ps;
  let e = (c * ps + yy % ps) * ps + xx % ps;
  gx[i] = gy[(b * p.l + l) * p.ckk + e];
}

// ---- im2col / col2im -----------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn im2col_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = linear_id(gid, nwg);
  if (o >= p.n) { return; }
  let l = o % p.l;
  let t = o / p.l;
  let r = t % p.ckk;
  let b = t / p.ckk;
  let kk = p.k.x * p.k.y;
  let c = r / kk;
  let ki = (r % kk) / p.k.y;
  let kj = r % p.k.y;
  let yy = i32((l / p.out_hw.y) * p.stride.x + ki * p.dil.x) - i32(p.pad.x);
  let xx = i32((l % p.out_hw.y) * p.stride.y + kj * p.dil.y) - i32(p.pad.y);
  var v = 0.0;
  if (yy >= 0 && yy < i32(p.in_hw.x) && xx >= 0 && xx < i32(p.in_hw.y)) {
    v = x[((b * p.c + c) * p.in_hw.x + u32(yy)) * p.in_hw.y + u32(xx)];
  }
  out[o] = v;
}

// Output index along one axis whose kernel tap `i` reads input coordinate `pos`, or -1 if none:
// o·s - pad + i·d == pos with 0 <= o < n_out.
fn tap_source(pos: u32, i: u32, s: u32, pad: u32, d: u32, n_out: u32) -> i32 {
  let t = i32(pos + pad) - i32(i * d);
  if (t < 0) { return -1; }
  let tu = u32(t);
  if (tu % s != 0u) { return -1; }
  let o = tu / s;
  if (o >= n_out) { return -1; }
  return i32(o);
}

@compute @workgroup_size(WG)
fn im2col_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= p.n) { return; }
  let xx = i % p.in_hw.y;
  let t = i / p.in_hw.y;
  let yy = t % p.in_hw.x;
  let bc = t / p.in_hw.x;          // b · C + c
  // rows of this (b, c) in gy start at (b · C + c) · kh · kw
  let row0 = bc * p.k.x * p.k.y;
  var acc = 0.0;
  for (var ki = 0u; ki < p.k.x; ki++) {
    let oh = tap_source(yy, ki, p.stride.x, p.pad.x, p.dil.x, p.out_hw.x);
    if (oh < 0) { continue; }
    for (var kj = 0u; kj < p.k.y; kj++) {
      let ow = tap_source(xx, kj, p.stride.y, p.pad.y, p.dil.y, p.out_hw.y);
      if (ow < 0) { continue; }
      acc += gy[(row0 + ki * p.k.y + kj) * p.l + u32(oh) * p.out_hw.y + u32(ow)];
    }
  }
  gx[i] = acc;
}

// ---- max pooling ---------------------------------------------------------------------------------

@compute @workgroup_size(WG)
fn maxpool_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let o = linear_id(gid, nwg);
  if (o >= p.n) { return; }
  let l = o % p.l;
  let plane = o / p.l;              // b · C + c
  let base = plane * p.in_hw.x * p.in_hw.y;
  let y0 = i32((l / p.out_hw.y) * p.stride.x) - i32(p.pad.x);
  let x0 = i32((l % p.out_hw.y) * p.stride.y) - i32(p.pad.y);
  var best = 0.0;
  var arg: i32 = -1;
  for (var ki = 0u; ki < p.k.x; ki++) {
    let yy = y0 + i32(ki * p.dil.x);
    if (yy < 0 || yy >= i32(p.in_hw.x)) { continue; }
    for (var kj = 0u; kj < p.k.y; kj++) {
      let xx = x0 + i32(kj * p.dil.y);
      if (xx < 0 || xx >= i32(p.in_hw.y)) { continue; }
      let j = yy * i32(p.in_hw.y) + xx;
      let v = x[base + u32(j)];
      // the first valid element seeds the max (so -inf inputs keep a valid argmax)
      if (arg < 0 || v > best) {
        best = v;
        arg = j;
      }
    }
  }
  out[o] = best;
  idx[o] = arg;
}

@compute @workgroup_size(WG)
fn maxpool_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = linear_id(gid, nwg);
  if (i >= p.n) { return; }
  let xx = i % p.in_hw.y;
  let t = i / p.in_hw.y;
  let yy = t % p.in_hw.x;
  let plane = t / p.in_hw.x;
  let me = i32(yy * p.in_hw.y + xx);
  let obase = plane * p.l;
  var acc = 0.0;
  for (var ki = 0u; ki < p.k.x; ki++) {
    let oh = tap_source(yy, ki, p.stride.x, p.pad.x, p.dil.x, p.out_hw.x);
    if (oh < 0) { continue; }
    for (var kj = 0u; kj < p.k.y; kj++) {
      let ow = tap_source(xx, kj, p.stride.y, p.pad.y, p.dil.y, p.out_hw.y);
      if (ow < 0) { continue; }
      let o = obase + u32(oh) * p.out_hw.y + u32(ow);
      if (at[o] == me) { acc += gy[o]; }
    }
  }
  gx[i] = acc;
}
