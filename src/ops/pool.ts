// 2-D max pooling on NCHW images (PyTorch's max_pool2d, floor mode): padding is -inf, the first
// maximum in row-major window order wins, and the forward saves that argmax (a flat index into the
// H·W plane) so backward routes each output gradient to it. Backward is a gather: each input pixel
// sums the gradients of the windows that chose it (kernels/conv.wgsl), so no atomics are needed.
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import type { Tensor } from '../tensor.js';
import { checkImage, convDispatch, geometry, pair, type Geometry, type Size2 } from './conv.js';
import { type Arr, arr } from '../reference.js';

export interface MaxPool2dOptions {
  kernelSize: Size2;
  /** default kernelSize */
  stride?: Size2;
  /** implicit -inf padding on both sides, at most half the effective kernel size; default 0 */
  padding?: Size2;
  /** default 1 */
  dilation?: Size2;
}

/** Some window of one axis that has no in-bounds tap (it lies entirely in the padding), or -1. */
function emptyWindow(n: number, k: number, s: number, p: number, d: number, nOut: number): number {
  for (let o = 0; o < nOut; o++) {
    let any = false;
    for (let i = 0; i < k && !any; i++) {
      const pos = o * s - p + i * d;
      any = pos >= 0 && pos < n;
    }
    if (!any) return o;
  }
  return -1;
}

export function poolGeometry(shape: readonly number[], opts: MaxPool2dOptions, op = 'maxPool2d'): Geometry {
  const o = opts ?? ({} as MaxPool2dOptions);
  const k = pair(o.kernelSize, undefined, op, 'kernelSize', 1);
  const g = geometry(shape, op, o, { stride: k });
  const ekh = g.dh * (g.kh - 1) + 1;
  const ekw = g.dw * (g.kw - 1) + 1;
  check(
    2 * g.ph <= ekh && 2 * g.pw <= ekw, op,
    `padding [${g.ph}, ${g.pw}] must be at most half the effective kernel size [${ekh}, ${ekw}] (kernelSize [${g.kh}, ${g.kw}], dilation [${g.dh}, ${g.dw}])`,
  );
  const eh = emptyWindow(g.H, g.kh, g.sh, g.ph, g.dh, g.Ho);
  const ew = emptyWindow(g.W, g.kw, g.sw, g.pw, g.dw, g.Wo);
  check(
    eh < 0 && ew < 0, op,
    `x ${fmtShape(shape)}: a pooling window lies entirely in the padding (output ${eh >= 0 ? `row ${eh}` : `column ${ew}`}; ` +
      `kernelSize [${g.kh}, ${g.kw}], stride [${g.sh}, ${g.sw}], padding [${g.ph}, ${g.pw}], dilation [${g.dh}, ${g.dw}])`,
  );
  return g;
}

/** Max pooling over [B, C, H, W] → [B, C, Ho, Wo]; the gradient goes to each window's first maximum. */
export function maxPool2d(x: Tensor, opts: MaxPool2dOptions): Tensor {
  checkImage(x, 'maxPool2d');
  const g = poolGeometry(x.shape, opts);
  const dev = x.device;
  const out = dev.empty([g.B, g.C, g.Ho, g.Wo]);
  const idx = dev.empty(out.shape, 'int32');
  convDispatch(x, 'maxpool_fwd', { x, out, idx }, g, g.Ho * g.Wo, g.B * g.C);
  // windows that cannot overlap scatter their gradient (see kernels/conv.wgsl); others gather
  const disjoint = g.sh >= (g.kh - 1) * g.dh + 1 && g.sw >= (g.kw - 1) * g.dw + 1;
  const node = record('maxPool2d', out, [x], (gy) => {
    if (disjoint) {
      const gx = dev.zeros(x.shape);
      convDispatch(gy, 'maxpool_bwd_scatter', { gy, at: idx, gx }, g, g.Ho * g.Wo, g.B * g.C);
      return [gx];
    }
    const gx = dev.empty(x.shape);
    convDispatch(gy, 'maxpool_bwd', { gy, at: idx, gx }, g, g.H * g.W, g.B * g.C);
    return [gx];
  });
  if (!node.requiresGrad) idx.dispose();
  return node;
}

// ---- float64 references -------------------------------------------------------------------------

/** Max pooling in float64 with the argmax (flat index into the H·W plane) of every output. */
export function maxPool2dRefWithIndices(x: Arr, opts: MaxPool2dOptions): { y: Arr; idx: Int32Array } {
  const g = poolGeometry(x.shape, opts, 'ref');
  const y = arr([g.B, g.C, g.Ho, g.Wo]);
  const idx = new Int32Array(y.data.length);
  for (let bc = 0; bc < g.B * g.C; bc++)
    for (let oh = 0; oh < g.Ho; oh++)
      for (let ow = 0; ow < g.Wo; ow++) {
        let best = -Infinity;
        let arg = -1;
        for (let i = 0; i < g.kh; i++)
          for (let j = 0; j < g.kw; j++) {
            const yy = oh * g.sh - g.ph + i * g.dh;
            const xx = ow * g.sw - g.pw + j * g.dw;
            if (yy < 0 || yy >= g.H || xx < 0 || xx >= g.W) continue;
            const v = x.data[bc * g.H * g.W + yy * g.W + xx]!;
            if (arg < 0 || v > best) {
              best = v;
              arg = yy * g.W + xx;
            }
          }
        const o = (bc * g.Ho + oh) * g.Wo + ow;
        y.data[o] = best;
        idx[o] = arg;
      }
  return { y, idx };
}

export function maxPool2dRef(x: Arr, opts: MaxPool2dOptions): Arr {
  return maxPool2dRefWithIndices(x, opts).y;
}

export function maxPool2dRefBackward(gy: Arr, x: Arr, opts: MaxPool2dOptions): [Arr] {
  const { idx } = maxPool2dRefWithIndices(x, opts);
  const [B, C, H, W] = x.shape as [number, number, number, number];
  const L = gy.data.length / (B * C);
  const gx = arr(x.shape);
  for (let o = 0; o < gy.data.length; o++) {
    const bc = Math.floor(o / L);
    gx.data[bc * H * W + idx[o]!]! += gy.data[o]!;
  }
  return [gx];
}
