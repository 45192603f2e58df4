// Shared test helpers: one call checks an op's GPU forward and backward against its float64
// reference, the reference backward against float64 central differences, and the GPU gradients
// against f32 central differences (gradcheck). Tolerances are passed by each test with a reason.
import { expect } from 'vitest';
import { createDevice, gradcheck, type Device, type GradcheckOptions, type Tensor } from '../src/index.js';
import { type Arr, arr } from '../src/reference.js';
import { mulberry32 } from '../src/random.js';

export { arr, type Arr };

export async function makeDevice(): Promise<Device> {
  return createDevice();
}

export function rng(seed: number): () => number {
  return mulberry32(seed);
}

/** Uniform random array in [lo, hi). */
export function randArr(shape: readonly number[], rnd: () => number, lo = -1, hi = 1): Arr {
  const a = arr(shape);
  for (let i = 0; i < a.data.length; i++) a.data[i] = lo + (hi - lo) * rnd();
  return a;
}

/** A random integer in [lo, hi]. */
export function randInt(rnd: () => number, lo: number, hi: number): number {
  return lo + Math.floor(rnd() * (hi - lo + 1));
}

export function toTensor(dev: Device, a: Arr, requiresGrad = false): Tensor {
  return dev.tensor(Float32Array.from(a.data), a.shape, { requiresGrad });
}

export async function toArr(t: Tensor): Promise<Arr> {
  return arr(t.shape, await t.toArray());
}

export interface Tol {
  atol: number;
  rtol: number;
}

/** Asserts |actual - expected| <= atol + rtol * |expected| elementwise (and equal shapes). */
export function expectClose(actual: Arr, expected: Arr, tol: Tol, what: string): void {
  expect(actual.shape, `${what}: shape`).toEqual(expected.shape);
  let worst = -Infinity;
  let at = -1;
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i]!;
    const e = expected.data[i]!;
    if (Number.isNaN(a) !== Number.isNaN(e)) {
      worst = Infinity;
      at = i;
      break;
    }
    if (Number.isNaN(e) || (a === e)) continue;
    const excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (excess > worst) {
      worst = excess;
      at = i;
    }
  }
  if (worst > 0) {
    expect.fail(`${what}: element ${at} is ${actual.data[at]} but the reference is ${expected.data[at]} (atol ${tol.atol}, rtol ${tol.rtol})`);
  }
}

/** Projects out on R: L = sum(out * R). */
function project(out: Arr, R: Arr): number {
  let s = 0;
  for (let i = 0; i < out.data.length; i++) s += out.data[i]! * R.data[i]!;
  return s;
}

/**
 * Checks a float64 reference backward against float64 central differences of the reference forward.
 * Tight tolerance: both sides are float64, the step 1e-6 leaves truncation and rounding near 1e-8.
 */
export function refGradcheck(
  ref: (...xs: Arr[]) => Arr,
  refBackward: (g: Arr, ...xs: Arr[]) => readonly (Arr | null)[],
  xs: Arr[],
  R: Arr,
  wrt: readonly number[],
  what: string,
): void {
  const grads = refBackward(R, ...xs);
  const eps = 1e-6;
  for (const i of wrt) {
    const g = grads[i];
    expect(g, `${what}: reference backward gives no grad for input ${i}`).toBeTruthy();
    const num = arr(xs[i]!.shape);
    for (let k = 0; k < xs[i]!.data.length; k++) {
      const x0 = xs[i]!.data[k]!;
      const plus = xs.map((x, j) => (j === i ? { shape: x.shape, data: x.data.slice() } : x));
      plus[i]!.data[k] = x0 + eps;
      const lp = project(ref(...plus), R);
      plus[i]!.data[k] = x0 - eps;
      const lm = project(ref(...plus), R);
      num.data[k] = (lp - lm) / (2 * eps);
    }
    expectClose(g!, num, { atol: 1e-6, rtol: 1e-5 }, `${what}: float64 reference backward vs central differences (input ${i})`);
  }
}

export interface CheckOpSpec {
  name: string;
  dev: Device;
  inputs: Arr[];
  /** the op under test on GPU tensors */
  gpu: (...ts: Tensor[]) => Tensor;
  /** float64 reference forward */
  ref: (...xs: Arr[]) => Arr;
  /** float64 reference backward: (output grad, ...inputs) → grad per input */
  refBackward?: (g: Arr, ...xs: Arr[]) => readonly (Arr | null)[];
  /** which inputs are differentiated (default: all) */
  wrt?: number[];
  fwdTol: Tol;
  bwdTol?: Tol;
  /** options for the GPU gradcheck; false to skip it for this case (say why at the call site) */
  gradcheck?: GradcheckOptions | false;
  seed?: number;
}

/** Forward vs reference, reference backward vs central differences, GPU backward vs reference, gradcheck. */
export async function checkOp(s: CheckOpSpec): Promise<void> {
  const { dev } = s;
  const wrt = s.wrt ?? s.inputs.map((_, i) => i);
  const ts = s.inputs.map((a, i) => toTensor(dev, a, wrt.includes(i)));
  const out = s.gpu(...ts);
  const expected = s.ref(...s.inputs);
  expectClose(await toArr(out), expected, s.fwdTol, `${s.name} forward`);
  if (s.refBackward) {
    const rnd = rng(s.seed ?? 99);
    const R = randArr(expected.shape, rnd);
    refGradcheck(s.ref, s.refBackward, s.inputs, R, wrt, s.name);
    out.backward(toTensor(dev, R));
    const refGrads = s.refBackward(R, ...s.inputs);
    for (const i of wrt) {
      const g = ts[i]!.grad;
      expect(g, `${s.name}: no GPU grad for input ${i}`).toBeTruthy();
      expectClose(await toArr(g!), refGrads[i]!, s.bwdTol ?? s.fwdTol, `${s.name} backward (input ${i})`);
    }
  }
  out.dispose();
  ts.forEach((t) => {
    t.grad?.dispose();
    t.dispose();
  });
  if (s.gradcheck !== false) {
    const gin = s.inputs.map((a, i) => toTensor(dev, a, wrt.includes(i)));
    const r = await gradcheck(s.gpu, gin, s.gradcheck ?? {});
    if (!r.ok) {
      expect.fail(`${s.name}: gradcheck failed: worst ${JSON.stringify(r.worst)}, maxAbsError ${r.maxAbsError}`);
    }
    gin.forEach((t) => t.dispose());
  }
}
