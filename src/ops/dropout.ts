// Dropout with a counter-based RNG (kernels/dropout.wgsl): the mask of element i is a pure function
// of (seed, i), so the same seed gives the same mask, and the backward recomputes it instead of
// storing it (0 bytes saved; the backward is the forward kernel applied to the output gradient).
import src from '../../kernels/dropout.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { record } from '../autodiff.js';
import { Tensor } from '../tensor.js';
import { checkTensor, fits4, range4 } from './elementwise.js';
import { type Arr, mapArr } from '../reference.js';

const K = kernel('dropout.wgsl', src);
const WG = 256;
const TWO32 = 2 ** 32;

export interface DropoutOptions {
  /**
   * Seed of the mask (a non-negative integer below 2^53). Without one, seeds are drawn from a
   * process-wide sequence (so a run is reproducible, but two calls never share a mask).
   */
  seed?: number;
  /** false: identity (like F.dropout(training=False)); default true */
  training?: boolean;
}

let seedState = 0x2545f491;
/** The next seed of the process-wide sequence (a 32-bit Weyl step, mixed). */
export function nextDropoutSeed(): number {
  seedState = (seedState + 0x9e3779b9) >>> 0;
  return mix32(seedState);
}

function mix32(v: number): number {
  let h = v >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x7feb352d) >>> 0;
  h ^= h >>> 15;
  h = Math.imul(h, 0x846ca68b) >>> 0;
  h ^= h >>> 16;
  return h >>> 0;
}

/** The two 32-bit keys of a seed (the kernel gets them as uniforms). */
export function dropoutKeys(seed: number): [number, number] {
  const lo = seed % TWO32 >>> 0;
  const hi = Math.floor(seed / TWO32) >>> 0;
  const k1 = mix32((lo ^ 0x9e3779b9) >>> 0);
  const k2 = mix32((hi + k1 + 0x85ebca6b) >>> 0);
  return [k1, k2];
}

/** The kernel's hash of element i, bit-exact on the CPU. */
export function dropoutHash(seed: number, i: number): number {
  const [k1, k2] = dropoutKeys(seed);
  return mix32((mix32((i ^ k1) >>> 0) + k2) >>> 0);
}

function threshold(p: number): number {
  return Math.min(TWO32 - 1, Math.floor(p * TWO32));
}

/** The keep-mask (1 = kept) the GPU uses for n elements, computed on the CPU. */
export function dropoutMask(n: number, p: number, seed: number): Uint8Array {
  const t = threshold(p);
  const [k1, k2] = dropoutKeys(seed);
  const m = new Uint8Array(n);
  for (let i = 0; i < n; i++) m[i] = mix32((mix32((i ^ k1) >>> 0) + k2) >>> 0) >= t ? 1 : 0;
  return m;
}

function checkArgs(x: unknown, p: number, seed: number | undefined, op: string): asserts x is Tensor {
  checkTensor(x, op, 'x');
  check(typeof p === 'number' && p >= 0 && p < 1, op, `p must be in [0, 1), got ${p} (x ${fmtShape(x.shape)})`);
  if (seed !== undefined) {
    check(Number.isSafeInteger(seed) && seed >= 0, op, `seed must be a non-negative integer below 2^53, got ${seed}`);
  }
}

function dropoutRaw(x: Tensor, p: number, seed: number): Tensor {
  const dev = x.device;
  const out = dev.empty(x.shape);
  const keys = dropoutKeys(seed);
  const vec4 = fits4(x.size, x, out);
  dev.dispatch(K, vec4 ? 'dropout_fwd4' : 'dropout_fwd', {
    bindings: vec4 ? { x4: range4(x, x.size), out4: range4(out, x.size) } : { x, out },
    uniforms: { n: x.size, threshold: threshold(p), k1: keys[0], k2: keys[1], scale: 1 / (1 - p) },
    overrides: { WG },
    workgroups: dev.grid1d(vec4 ? Math.ceil(x.size / 4) : x.size, WG),
  });
  return out;
}

/**
 * Zeroes each element with probability p and scales the rest by 1/(1-p). p must be in [0, 1);
 * p = 0 (or training: false) is the identity (a view of x, no GPU work).
 */
export function dropout(x: Tensor, p: number, opts: DropoutOptions = {}): Tensor {
  const op = 'dropout';
  checkArgs(x, p, opts.seed, op);
  if (p === 0 || opts.training === false) {
    x.storage.retain();
    const view = new Tensor(x.device, x.storage, x.shape, x.dtype);
    return record(op, view, [x], (g) => [g]);
  }
  const seed = opts.seed ?? nextDropoutSeed();
  const out = dropoutRaw(x, p, seed);
  return record(op, out, [x], (g) => [dropoutRaw(g, p, seed)]);
}

// ---- float64 references -------------------------------------------------------------------------

export function dropoutRef(x: Arr, p: number, seed: number): Arr {
  const m = dropoutMask(x.data.length, p, seed);
  return mapArr(x, (v, i) => (m[i] ? v / (1 - p) : 0));
}

export function dropoutRefBackward(g: Arr, p: number, seed: number): Arr {
  return dropoutRef(g, p, seed);
}
