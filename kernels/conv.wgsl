// Convolution family on NCHW images: patchify (ViT patches), im2col / col2im (torch unfold / fold),
// and 2-D max pooling (conv2d is im2col + matmul, src/ops/conv.ts). Every entry point is a gather: one invocation per
// element (or short run of elements) it writes, so no two invocations write the same address, no
// atomics are needed and results are deterministic.
//
// Grids are 2-D: x runs over the positions inside one image plane (`inner`, WG invocations per
// workgroup), y and z over planes or rows (`outer` = wid.y + wid.z · nwg.y, folded into z past
// 65535). Integer division by a runtime value is a scalar loop on lavapipe (no SIMD divide), so the
// decode from flat indices is kept to one or two divisions per invocation and the window walks
// enumerate only the taps that exist instead of testing every (i, j) with a modulo.
// - patchify_fwd / patchify_bwd: a pure permutation [B, C, Hp·p, Wp·p] <-> [B, Hp·Wp, C·p·p]; one
//   invocation copies the p pixels of one patch row (contiguous on both sides).
// - im2col_fwd: cols[b, (c·kh + i)·kw + j, oh·Wo + ow] = x[b, c, oh·sh - ph + i·dh, ow·sw - pw + j·dw]
//   (0 outside the image); one invocation per (output position, kernel row), looping over j.
//   With `extra`, each image gets that many more rows: the first is ones when `ones` is set (the conv
//   bias rides in the GEMM), the rest zeros (padding the GEMM's K to a multiple of 4, its vector path).
// - im2col_bwd (col2im, the adjoint): each input pixel sums the columns that read it, in a fixed order.
// - maxpool_fwd: max over the window (implicit -inf padding), first maximum in row-major window
//   order wins (as PyTorch); writes the argmax as a flat index into the H·W plane.
// - maxpool_bwd: each input pixel sums the output gradients of the windows whose argmax it is.
// - maxpool_bwd_scatter: windows that cannot overlap (stride >= dilated extent, e.g. 2×2 s2): each
//   output writes its gradient to its argmax in a zeroed gx (distinct pixels, so no races). Per
//   output 2 loads instead of 2 per input pixel and no window search: on lavapipe, where a load is
//   a per-lane loop, SimpleCNN's two 2×2 s2 backwards went from 29 to about 3 ms (dev.startTrace).

override WG: u32 = 256u;
// The window geometry is specialised per pipeline: divisions by these become multiplies and shifts
// (a division by a runtime value is a scalar loop on lavapipe), and the tap loops unroll.
override KH: u32 = 1u;  // kernel rows (patchify: p)
override KW: u32 = 1u;  // kernel columns
override SH: u32 = 1u;  // strides
override SW: u32 = 1u;
override PH: u32 = 0u;  // zero (im2col, conv) or -inf (max pool) padding
override PW: u32 = 0u;
override DH: u32 = 1u;  // dilations
override DW: u32 = 1u;
// windows that can cover one pixel along each axis (derived; not set by the host)
override NCY: u32 = ((KH - 1u) * DH) / SH + 1u;
override NCX: u32 = ((KW - 1u) * DW) / SW + 1u;

struct Params {
  inner: u32,        // invocations along x (per plane / row)
  outer: u32,        // planes / rows along y, z
  c: u32,            // channels
  ckk: u32,          // C · kh · kw (patchify: C · p · p)
  l: u32,            // Ho · Wo output positions per image
  ones: u32,         // im2col: 1 = the first appended row is ones (conv bias), else zeros
  extra: u32,        // im2col: rows appended to each image's columns (0 = plain im2col)
  in_hw: vec2<u32>,  // H, W
  out_hw: vec2<u32>, // Ho, Wo (patchify: H / p, W / p)
}

@group(0) @binding(0) var<storage, read> x: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read_write> idx: array<i32>;
@group(0) @binding(3) var<uniform> p: Params;

@group(0) @binding(0) var<storage, read> gy: array<f32>;
@group(0) @binding(1) var<storage, read_write> gx: array<f32>;
@group(0) @binding(2) var<storage, read> at: array<i32>;

fn outer_id(wid: vec3<u32>, nwg: vec3<u32>) -> u32 {
  return wid.y + wid.z * nwg.y;
}

// The output positions o along one axis whose window reads input coordinate pos
// (o·s - pad + i·d == pos for some tap 0 <= i < k, 0 <= o < n_out): [lo, hi], empty if lo > hi.
// Every o in the range has 0 <= pos + pad - o·s <= (k - 1)·d; the tap exists when d divides it.
fn out_range(pos: u32, k: u32, s: u32, pad: u32, d: u32, n_out: u32) -> vec2<i32> {
  let t = pos + pad;
  let span = (k - 1u) * d;
  let lo = select(0u, (t - span + s - 1u) / s, t > span);
  let hi = min(i32(t / s), i32(n_out) - 1);
  return vec2<i32>(i32(lo), hi);
}

// ---- patchify ------------------------------------------------------------------------------------

// inner = c·p + i (patch row i of channel c), outer = b·L + l (patch l of image b):
// out[b, l, (c·p + i)·p + j] = x[b, c, ph·p + i, pw·p + j] for j < p.
@compute @workgroup_size(WG)
fn patchify_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = outer_id(wid, nwg);
  let e = gid.x;
  if (e >= p.inner || row >= p.outer) { return; }
  let ps = KH;
  let c = e / ps;
  let i = e - c * ps;
  let b = row / p.l;
  let l = row - b * p.l;
  let ph = l / p.out_hw.y;
  let pw = l - ph * p.out_hw.y;
  let src = ((b * p.c + c) * p.in_hw.x + ph * ps + i) * p.in_hw.y + pw * ps;
  let dst = row * p.ckk + e * ps;
  for (var j = 0u; j < ps; j++) { out[dst + j] = x[src + j]; }
}

// the same decomposition, copying back: gx[b, c, ph·p + i, pw·p + j] = gy[b, l, (c·p + i)·p + j]
@compute @workgroup_size(WG)
fn patchify_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = outer_id(wid, nwg);
  let e = gid.x;
  if (e >= p.inner || row >= p.outer) { return; }
  let ps = KH;
  let c = e / ps;
  let i = e - c * ps;
  let b = row / p.l;
  let l = row - b * p.l;
  let ph = l / p.out_hw.y;
  let pw = l - ph * p.out_hw.y;
  let dst = ((b * p.c + c) * p.in_hw.x + ph * ps + i) * p.in_hw.y + pw * ps;
  let src = row * p.ckk + e * ps;
  for (var j = 0u; j < ps; j++) { gx[dst + j] = gy[src + j]; }
}

// ---- im2col / col2im -----------------------------------------------------------------------------

// inner = l (output position), outer = (b·C + c)·kh + i: writes the kw columns of kernel row i.
@compute @workgroup_size(WG)
fn im2col_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let row = outer_id(wid, nwg);
  let l = gid.x;
  if (l >= p.inner || row >= p.outer) { return; }
  let plane = row / KH;          // b·C + c
  let i = row - plane * KH;
  let oh = l / p.out_hw.y;
  let ow = l - oh * p.out_hw.y;
  let yy = i32(oh * SH + i * DH) - i32(PH);
  let yok = yy >= 0 && yy < i32(p.in_hw.x);
  let src = (plane * p.in_hw.x + u32(max(yy, 0))) * p.in_hw.y;
  let x0 = i32(ow * SW) - i32(PW);
  let b = plane / p.c;
  // row (c·kh + i)·kw + j of image b, whose rows start at b·(C·kh·kw + extra)
  var dst = (row * KW + b * p.extra) * p.l + l;
  for (var j = 0u; j < KW; j++) {
    let xx = x0 + i32(j * DW);
    var v = 0.0;
    if (yok && xx >= 0 && xx < i32(p.in_hw.y)) { v = x[src + u32(xx)]; }
    out[dst] = v;
    dst += p.l;
  }
  // the last kernel row of the last channel also writes the appended rows, if any
  if (p.extra != 0u && i == KH - 1u && plane - b * p.c == p.c - 1u) {
    let base = b * (p.ckk + p.extra) + p.ckk;
    for (var r = 0u; r < p.extra; r++) { out[(base + r) * p.l + l] = select(0.0, 1.0, r == 0u && p.ones != 0u); }
  }
}

// inner = y·W + x (input pixel), outer = b·C + c
@compute @workgroup_size(WG)
fn im2col_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = outer_id(wid, nwg);
  let pix = gid.x;
  if (pix >= p.inner || plane >= p.outer) { return; }
  let yy = pix / p.in_hw.y;
  let xx = pix - yy * p.in_hw.y;
  let ry = out_range(yy, KH, SH, PH, DH, p.out_hw.x);
  let rx = out_range(xx, KW, SW, PW, DW, p.out_hw.y);
  let row0 = plane * KH * KW + (plane / p.c) * p.extra;  // rows of (b, c) in the columns
  var acc = 0.0;
  // fixed trip counts (NCY × NCX candidate windows) unroll; a window reads the pixel when it is in
  // range and the offset into it is a multiple of the dilation
  for (var a = 0u; a < NCY; a++) {
    let oh = ry.x + i32(a);
    let ty = yy + PH - u32(oh) * SH;
    let ki = ty / DH;
    let yok = oh <= ry.y && ki * DH == ty;
    for (var c = 0u; c < NCX; c++) {
      let ow = rx.x + i32(c);
      let tx = xx + PW - u32(ow) * SW;
      let kj = tx / DW;
      if (yok && ow <= rx.y && kj * DW == tx) {
        acc += gy[(row0 + ki * KW + kj) * p.l + u32(oh) * p.out_hw.y + u32(ow)];
      }
    }
  }
  gx[plane * p.inner + pix] = acc;
}

// ---- max pooling ---------------------------------------------------------------------------------

// inner = oh·Wo + ow, outer = b·C + c
@compute @workgroup_size(WG)
fn maxpool_fwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = outer_id(wid, nwg);
  let l = gid.x;
  if (l >= p.inner || plane >= p.outer) { return; }
  let base = plane * p.in_hw.x * p.in_hw.y;
  let oh = l / p.out_hw.y;
  let ow = l - oh * p.out_hw.y;
  let y0 = i32(oh * SH) - i32(PH);
  let x0 = i32(ow * SW) - i32(PW);
  var best = 0.0;
  var arg: i32 = -1;
  for (var ki = 0u; ki < KH; ki++) {
    let yy = y0 + i32(ki * DH);
    if (yy < 0 || yy >= i32(p.in_hw.x)) { continue; }
    for (var kj = 0u; kj < KW; kj++) {
      let xx = x0 + i32(kj * DW);
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
  let o = plane * p.inner + l;
  out[o] = best;
  idx[o] = arg;
}

// inner = Ho·Wo (output position), outer = b·C + c; gx is zero on entry.
@compute @workgroup_size(WG)
fn maxpool_bwd_scatter(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = outer_id(wid, nwg);
  let l = gid.x;
  if (l >= p.inner || plane >= p.outer) { return; }
  let o = plane * p.inner + l;
  gx[plane * p.in_hw.x * p.in_hw.y + u32(at[o])] = gy[o];
}

// inner = y·W + x (input pixel), outer = b·C + c
@compute @workgroup_size(WG)
fn maxpool_bwd(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
  let plane = outer_id(wid, nwg);
  let pix = gid.x;
  if (pix >= p.inner || plane >= p.outer) { return; }
  let yy = pix / p.in_hw.y;
  let xx = pix - yy * p.in_hw.y;
  let ry = out_range(yy, KH, SH, PH, DH, p.out_hw.x);
  let rx = out_range(xx, KW, SW, PW, DW, p.out_hw.y);
  let me = i32(pix);
  let obase = plane * p.l;
  var acc = 0.0;
  // at most NCY × NCX windows cover a pixel: fixed trip counts unroll; windows past the range are
  // masked. With dilation some covering windows skip the pixel, but then their argmax is another
  // pixel, so comparing the argmax is enough.
  for (var a = 0u; a < NCY; a++) {
    let oh = ry.x + i32(a);
    for (var c = 0u; c < NCX; c++) {
      let ow = rx.x + i32(c);
      if (oh <= ry.y && ow <= rx.y) {
        let o = obase + u32(oh) * p.out_hw.y + u32(ow);
        if (at[o] == me) { acc += gy[o]; }
      }
    }
  }
  gx[plane * p.inner + pix] = acc;
}
