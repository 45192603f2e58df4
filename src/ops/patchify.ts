// patchify: the ViT patch split [B, C, H, W] → [B, (H/p)·(W/p), C·p·p], patches in row-major grid
// order, each flattened channel-major then row then column (the order of a Conv2d weight
// [D, C, p, p], so patchify(x, p) · W.reshape(D, -1)ᵀ equals a stride-p convolution). It is a
// permutation: forward and backward are both one gather (kernels/conv.wgsl).
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import type { Tensor } from '../tensor.js';
import { checkImage, convDispatch, type Geometry } from './conv.js';
import { type Arr, arr } from '../reference.js';

function patchGeometry(shape: readonly number[], p: number, op: string): Geometry {
  check(typeof p === 'number' && Number.isInteger(p) && p >= 1, op, `patchSize must be a positive integer, got ${String(p)}`);
  const [B, C, H, W] = shape as [number, number, number, number];
  check(
    H % p === 0 && W % p === 0, op,
    `x ${fmtShape(shape)}: H = ${H} and W = ${W} must be divisible by patchSize ${p}`,
  );
  return { B, C, H, W, kh: p, kw: p, sh: p, sw: p, ph: 0, pw: 0, dh: 1, dw: 1, Ho: H / p, Wo: W / p };
}

/** [B, C, H, W] → [B, (H/p)·(W/p), C·p·p] (H and W divisible by p). */
export function patchify(x: Tensor, patchSize: number): Tensor {
  checkImage(x, 'patchify');
  const g = patchGeometry(x.shape, patchSize, 'patchify');
  const dev = x.device;
  const out = dev.empty([g.B, g.Ho * g.Wo, g.C * g.kh * g.kw]);
  // one invocation per (patch, channel, patch row) copies p pixels
  convDispatch(x, 'patchify_fwd', { x, out }, g, g.C * patchSize, g.B * g.Ho * g.Wo);
  return record('patchify', out, [x], (gy) => {
    const gx = dev.empty(x.shape);
    convDispatch(gy, 'patchify_bwd', { gy, gx }, g, g.C * patchSize, g.B * g.Ho * g.Wo);
    return [gx];
  });
}

// ---- float64 references -------------------------------------------------------------------------

export function patchifyRef(x: Arr, p: number): Arr {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const Hp = H / p;
  const Wp = W / p;
  const D = C * p * p;
  const out = arr([B, Hp * Wp, D]);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          const l = Math.floor(y / p) * Wp + Math.floor(xx / p);
          const e = (c * p + (y % p)) * p + (xx % p);
          out.data[(b * Hp * Wp + l) * D + e] = x.data[((b * C + c) * H + y) * W + xx]!;
        }
  return out;
}

export function patchifyRefBackward(gy: Arr, x: Arr, p: number): [Arr] {
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const Wp = W / p;
  const L = (H / p) * Wp;
  const D = C * p * p;
  const gx = arr(x.shape);
  for (let b = 0; b < B; b++)
    for (let c = 0; c < C; c++)
      for (let y = 0; y < H; y++)
        for (let xx = 0; xx < W; xx++) {
          const l = Math.floor(y / p) * Wp + Math.floor(xx / p);
          const e = (c * p + (y % p)) * p + (xx % p);
          gx.data[((b * C + c) * H + y) * W + xx] = gy.data[(b * L + l) * D + e]!;
        }
  return [gx];
}
