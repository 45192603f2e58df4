// clipGradNorm: the total gradient norm over many parameters, computed and applied on the GPU with
// no readback (kernels/optim.wgsl: norm_partial, norm_final, grad_scale). Dispatches:
// ceil(#grads / 8) partial-norm passes (each workgroup reduces 16384 elements of one gradient), one
// final reduction (fixed order: deterministic), and ceil(#distinct grads / 8) in-place scalings.
// PyTorch semantics: coef = min(maxNorm / (norm + 1e-6), 1); every gradient is multiplied by coef.
import { check, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { dummies, optimKernel, vec4Bind } from './adam.js';

const WG = 256;
/** vec4s per lane per tile: a tile is WG·ITEMS·4 = 16384 elements of one gradient */
const ITEMS = 16;
const TILE = WG * ITEMS * 4;
const PER_DISPATCH = 8;

export interface ClipGradNormOptions {
  /** p of the p-norm: any finite p > 0, or Infinity (max |g|); default 2 */
  normType?: number;
}

/**
 * Scales the gradients of params in place so their total normType-norm is at most maxNorm, and
 * returns the total norm (before clipping) as a one-element tensor that stays on the GPU.
 * Parameters without a gradient are skipped. Non-finite norms are not detected (that would need a
 * readback); as in PyTorch they propagate into the gradients.
 */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number, opts: ClipGradNormOptions = {}): Tensor {
  const op = 'clipGradNorm';
  const list = [...params];
  check(list.length > 0, op, 'params is empty');
  list.forEach((p, i) => {
    check(p instanceof Tensor, op, `params[${i}] is not a Tensor`);
    p.storage; // throws DisposedError
  });
  check(typeof maxNorm === 'number' && Number.isFinite(maxNorm) && maxNorm >= 0, op, `maxNorm must be a finite number >= 0, got ${String(maxNorm)}`);
  const normType = opts.normType ?? 2;
  check(typeof normType === 'number' && (normType === Infinity || (Number.isFinite(normType) && normType > 0)), op, `normType must be a finite number > 0 or Infinity, got ${String(normType)}`);
  const dev = list[0]!.device;
  const grads: Tensor[] = [];
  list.forEach((p, i) => {
    check(p.device === dev, op, `params[${i}] lives on another device than params[0]`);
    const g = p.grad;
    if (!g) return;
    check(!g.disposed && g.dtype === 'float32', op, `params[${i}].grad ${fmtShape(g.shape)} must be a live float32 tensor`);
    grads.push(g);
  });
  const kind = normType === 2 ? 0 : normType === Infinity ? 1 : 2;
  const nonEmpty = grads.filter((g) => g.size > 0);
  const tilesOf = (g: Tensor): number => Math.ceil(g.size / TILE);
  const totalTiles = nonEmpty.reduce((a, g) => a + tilesOf(g), 0);
  const partials = dev.empty([totalTiles]);
  const pad = dummies(dev, PER_DISPATCH);
  const post: (() => void)[] = [];
  let base = 0;
  for (let k = 0; k < nonEmpty.length; k += PER_DISPATCH) {
    const batch = nonEmpty.slice(k, k + PER_DISPATCH);
    const bindings: Record<string, Tensor | { buffer: GPUBuffer; offset: number; size: number }> = {};
    const sizes: number[] = [];
    const tiles: number[] = [];
    let t = 0;
    for (let s = 0; s < PER_DISPATCH; s++) {
      const g = batch[s];
      bindings[`ng${s}`] = g ? vec4Bind(g, false, post) : pad[0]!;
      t += g ? tilesOf(g) : 0;
      sizes.push(g ? g.size : 0);
      tiles.push(t);
    }
    bindings.partials = partials;
    dev.dispatch(optimKernel, 'norm_partial', {
      bindings,
      uniforms: {
        sizes_lo: sizes.slice(0, 4), sizes_hi: sizes.slice(4), tiles_lo: tiles.slice(0, 4), tiles_hi: tiles.slice(4),
        part_base: base, kind, norm_type: kind === 2 ? normType : 2,
      },
      overrides: { WG, ITEMS },
      workgroups: dev.grid1d(t, 1),
    });
    base += t;
  }
  post.splice(0).forEach((f) => f());
  const norm = dev.empty([]);
  const coef = dev.empty([1]);
  dev.dispatch(optimKernel, 'norm_final', {
    bindings: { fpartials: partials, norm, coef },
    uniforms: { count: totalTiles, kind, norm_type: kind === 2 ? normType : 2, max_norm: maxNorm },
    overrides: { WG },
    workgroups: [1],
  });
  partials.dispose();
  // scale each distinct gradient buffer once (gradients of different parameters may share storage)
  const seen = new Set<GPUBuffer>();
  const unique = nonEmpty.filter((g) => {
    const b = g.storage.buffer;
    if (seen.has(b)) return false;
    seen.add(b);
    return true;
  });
  for (let k = 0; k < unique.length; k += PER_DISPATCH) {
    const batch = unique.slice(k, k + PER_DISPATCH);
    const bindings: Record<string, Tensor | { buffer: GPUBuffer; offset: number; size: number }> = { scoef: coef };
    const ends: number[] = [];
    const sizes: number[] = [];
    let e = 0;
    for (let s = 0; s < PER_DISPATCH; s++) {
      const g = batch[s];
      bindings[`sg${s}`] = g ? vec4Bind(g, true, post) : pad[s]!;
      e += g ? Math.ceil(g.size / 4) : 0;
      ends.push(e);
      sizes.push(g ? g.size : 0);
    }
    dev.dispatch(optimKernel, 'grad_scale', {
      bindings,
      uniforms: { ends_lo: ends.slice(0, 4), ends_hi: ends.slice(4), sizes_lo: sizes.slice(0, 4), sizes_hi: sizes.slice(4) },
      overrides: { WG },
      workgroups: dev.grid1d(e, WG),
    });
    post.splice(0).forEach((f) => f());
  }
  coef.dispose();
  return norm;
}
