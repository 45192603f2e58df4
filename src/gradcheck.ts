// gradcheck: compares the engine's analytic gradients with central finite differences.
// The output is projected on a fixed random tensor R (L = sum(out * R), accumulated in float64 on
// the CPU), so one backward pass gives every input gradient and each finite difference costs two
// forward passes.
import { ShapeError } from './errors.js';
import { mulberry32 } from './random.js';
import { noGrad } from './autodiff.js';
import { Tensor, tidy } from './tensor.js';

export interface GradcheckOptions {
  /** finite-difference step (default 1e-3: in f32, smaller steps drown in rounding) */
  eps?: number;
  /** absolute tolerance per element (default 1e-3) */
  atol?: number;
  /** relative tolerance per element (default 1e-2) */
  rtol?: number;
  seed?: number;
  /** check only these input indices (default: inputs with requiresGrad, or all float32 inputs) */
  wrt?: number[];
}

export interface GradcheckResult {
  ok: boolean;
  maxAbsError: number;
  maxRelError: number;
  /** the worst element: input index, flat element index, analytic and numeric values */
  worst: { input: number; index: number; analytic: number; numeric: number } | null;
  analytic: Float64Array[];
  numeric: Float64Array[];
}

export async function gradcheck(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOptions = {},
): Promise<GradcheckResult> {
  const eps = opts.eps ?? 1e-3;
  const atol = opts.atol ?? 1e-3;
  const rtol = opts.rtol ?? 1e-2;
  if (!inputs.length) throw new ShapeError('gradcheck: no inputs');
  const dev = inputs[0]!.device;
  let wrt = opts.wrt ?? inputs.map((t, i) => (t.requiresGrad ? i : -1)).filter((i) => i >= 0);
  if (!wrt.length) wrt = inputs.map((t, i) => (t.dtype === 'float32' ? i : -1)).filter((i) => i >= 0);
  for (const i of wrt) {
    if (inputs[i]?.dtype !== 'float32') throw new ShapeError(`gradcheck: input ${i} is not a float32 tensor`);
  }
  const values = await Promise.all(inputs.map((t) => (t.dtype === 'float32' ? t.toArray() : Promise.resolve(null))));

  // analytic: leaves that require grad, backward of L = sum(out * R)
  const leaves = inputs.map((t, i) => {
    if (!wrt.includes(i)) return t;
    return dev.tensor(values[i]!, t.shape, { requiresGrad: true });
  });
  const out = fn(...leaves);
  if (!(out instanceof Tensor)) throw new ShapeError('gradcheck: fn must return a Tensor');
  const rnd = mulberry32(opts.seed ?? 1234);
  const R = Float64Array.from({ length: out.size }, () => rnd() * 2 - 1);
  const rT = dev.tensor(Float32Array.from(R), out.shape);
  out.backward(rT);
  const analytic: Float64Array[] = [];
  for (const i of wrt) {
    const g = leaves[i]!.grad;
    analytic.push(g ? Float64Array.from(await g.toArray()) : new Float64Array(inputs[i]!.size));
  }
  out.dispose();
  rT.dispose();
  for (const i of wrt) {
    leaves[i]!.grad?.dispose();
    leaves[i]!.dispose();
  }

  const evalL = async (subst: number, data: Float32Array): Promise<number> => {
    const o = tidy(() =>
      noGrad(() => {
        const xs = inputs.map((t, i) => (i === subst ? dev.tensor(data, t.shape) : t));
        return fn(...xs);
      }),
    );
    const v = await o.toArray();
    o.dispose();
    let L = 0;
    for (let k = 0; k < v.length; k++) L += v[k]! * R[k]!;
    return L;
  };

  const numeric: Float64Array[] = [];
  let maxAbs = 0;
  let maxRel = 0;
  let ok = true;
  let worst: GradcheckResult['worst'] = null;
  let worstExcess = -Infinity;
  for (let w = 0; w < wrt.length; w++) {
    const i = wrt[w]!;
    const base = values[i]!;
    const num = new Float64Array(base.length);
    for (let k = 0; k < base.length; k++) {
      const x = base.slice();
      const x0 = base[k]!;
      x[k] = x0 + eps;
      const hiStep = x[k]! - x0; // the step actually representable in f32
      const lp = await evalL(i, x);
      x[k] = x0 - eps;
      const loStep = x0 - x[k]!;
      const lm = await evalL(i, x);
      num[k] = (lp - lm) / (hiStep + loStep);
      const a = analytic[w]![k]!;
      const err = Math.abs(a - num[k]!);
      const rel = err / Math.max(Math.abs(num[k]!), 1e-12);
      maxAbs = Math.max(maxAbs, err);
      maxRel = Math.max(maxRel, rel);
      const excess = err - (atol + rtol * Math.abs(num[k]!));
      if (excess > 0) ok = false;
      if (excess > worstExcess) {
        worstExcess = excess;
        worst = { input: i, index: k, analytic: a, numeric: num[k]! };
      }
    }
    numeric.push(num);
  }
  return { ok, maxAbsError: maxAbs, maxRelError: maxRel, worst, analytic, numeric };
}
