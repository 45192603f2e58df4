// `wgnn gradcheck [ops...]`: the public gradcheck (analytic gradients vs f32 central differences)
// over every differentiable op, on the current adapter, on small seeded shapes. The cases are one
// plain array below: a CLI feature, not an op registry (ops and their tests never read it).
// Sizes are deliberately not multiples of workgroup, tile or vec4 widths, so edge handling runs.
import { createDevice, gradcheck, ops, type Device, type Tensor, type GradcheckResult } from '../index.js';
import { mulberry32 } from '../random.js';

/**
 * Tolerances: gradcheck's defaults, the ones every op test uses (test/helpers.ts checkOp,
 * test/ops/*.test.ts). Inputs are O(1) (uniform in [-1, 1) unless a case needs otherwise), outputs
 * O(1), and gradcheck projects on L = Σ out·R (|R| <= 1, summed in float64). Only the outputs that
 * depend on the perturbed element change between the two forwards (kernels are deterministic), so
 * the central difference carries rounding ≈ 2^-24·Σ|y_dependent|/eps ≈ 1e-4 for these shapes
 * (measured over seeds 1-20 on lavapipe: at most 5e-4) and truncation eps²·|f'''|/6 ≈ 2e-7: atol
 * 1e-3 holds the noise with a 2× margin. Cases whose noise would reach atol are rescaled (long sums)
 * or reshaped (losses over many classes: per-row, not one scalar) or left to the op tests (long
 * layerNorm rows), never given looser tolerances. rtol 1e-2 then fails any gradient wrong by more
 * than ~1% of its size (+ atol); a wrong rule (missing term, wrong scale or sign, a transposed or
 * mis-broadcast gradient) is off by O(|g|). test/cli_gradcheck.test.ts shows that a gradient scaled
 * by 1.05 fails on every case whose gradients exceed ~0.04 (all but long softmax rows).
 */
export const TOLERANCE = { eps: 1e-3, atol: 1e-3, rtol: 1e-2 } as const;

type Rnd = () => number;

/** Inputs for one case; every tensor made here is disposed after the case. */
export class CaseInputs {
  private readonly made: Tensor[] = [];
  constructor(readonly dev: Device, readonly rnd: Rnd) {}

  /** a float32 tensor from data; requiresGrad (checked by gradcheck) unless grad is false */
  tensor(data: Float32Array | Uint8Array, shape: number[], grad = true): Tensor {
    const t = this.dev.tensor(data, shape, { requiresGrad: grad && data instanceof Float32Array });
    this.made.push(t);
    return t;
  }
  /** uniform in [lo, hi) */
  u(shape: number[], lo = -1, hi = 1, grad = true): Tensor {
    return this.tensor(Float32Array.from({ length: size(shape) }, () => lo + (hi - lo) * this.rnd()), shape, grad);
  }
  /** |x| in [lo, hi) with a random sign: keeps x away from a kink or pole at 0 */
  signed(shape: number[], lo: number, hi: number): Tensor {
    return this.tensor(Float32Array.from({ length: size(shape) }, () => (this.rnd() < 0.5 ? -1 : 1) * (lo + (hi - lo) * this.rnd())), shape);
  }
  /** shuffled, evenly spaced values (spacing 0.05 > 2·eps): no ties, so a max never flips inside a difference */
  distinct(shapes: number[][]): Tensor[] {
    const n = shapes.reduce((a, s) => a + size(s), 0);
    const v = Array.from({ length: n }, (_, i) => (i - (n - 1) / 2) * 0.05);
    for (let i = n - 1; i > 0; i--) {
      const j = Math.floor(this.rnd() * (i + 1));
      [v[i], v[j]] = [v[j]!, v[i]!];
    }
    let at = 0;
    return shapes.map((s) => this.tensor(Float32Array.from(v.slice(at, (at += size(s)))), s));
  }
  /** a bool mask (true = keep) with probability p of true */
  mask(shape: number[], p: number): Tensor {
    return this.tensor(Uint8Array.from({ length: size(shape) }, () => (this.rnd() < p ? 1 : 0)), shape, false);
  }
  /** integers in [0, hi) */
  ints(n: number, hi: number): Int32Array {
    return Int32Array.from({ length: n }, () => Math.floor(this.rnd() * hi));
  }
  dispose(): void {
    for (const t of this.made) {
      t.grad?.dispose();
      t.dispose();
    }
    this.made.length = 0;
  }
}

export interface GradcheckCase {
  /** the ops.* function under test (what positional filters match) */
  op: string;
  /** what this case exercises */
  name: string;
  /** the shapes, as printed */
  shape: string;
  /** builds the function and its inputs (inputs with requiresGrad are checked) */
  setup: (c: CaseInputs) => { fn: (...xs: Tensor[]) => Tensor; inputs: Tensor[] };
}

const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
const unary = (op: string, name: string, f: (x: Tensor) => Tensor, make: (c: CaseInputs) => Tensor, shape = '[3, 7]'): GradcheckCase =>
  ({ op, name, shape, setup: (c) => ({ fn: f, inputs: [make(c)] }) });
const u37 = (c: CaseInputs): Tensor => c.u([3, 7]);
const pos37 = (c: CaseInputs): Tensor => c.u([3, 7], 0.2, 2);

/** Every differentiable op, on small shapes. */
export const CASES: GradcheckCase[] = [
  // ---- matmul family
  { op: 'matmul', name: '2-D', shape: '[3, 5] · [5, 4]', setup: (c) => ({ fn: ops.matmul, inputs: [c.u([3, 5]), c.u([5, 4])] }) },
  { op: 'matmul', name: 'several output tiles', shape: '[17, 9] · [9, 33]', setup: (c) => ({ fn: ops.matmul, inputs: [c.u([17, 9]), c.u([9, 33])] }) },
  { op: 'matmul', name: 'batched, b broadcast', shape: '[2, 3, 4] · [4, 5]', setup: (c) => ({ fn: ops.matmul, inputs: [c.u([2, 3, 4]), c.u([4, 5])] }) },
  { op: 'matmul', name: 'batch dims broadcast both ways', shape: '[2, 1, 3, 4] · [3, 4, 2]', setup: (c) => ({ fn: ops.matmul, inputs: [c.u([2, 1, 3, 4]), c.u([3, 4, 2])] }) },
  { op: 'matmul', name: '1-D · 2-D', shape: '[5] · [5, 3]', setup: (c) => ({ fn: ops.matmul, inputs: [c.u([5]), c.u([5, 3])] }) },
  { op: 'matmulEx', name: 'transA', shape: '[5, 3]ᵀ · [5, 4]', setup: (c) => ({ fn: (a, b) => ops.matmulEx(a!, b!, { transA: true }), inputs: [c.u([5, 3]), c.u([5, 4])] }) },
  { op: 'matmulEx', name: 'transB + bias, batched', shape: '[2, 3, 5] · [4, 5]ᵀ + [4]', setup: (c) => ({ fn: (a, b, bias) => ops.matmulEx(a!, b!, { transB: true, bias }), inputs: [c.u([2, 3, 5]), c.u([4, 5]), c.u([4])] }) },
  { op: 'matmulEx', name: 'transA + transB, batched', shape: '[2, 5, 3]ᵀ · [2, 4, 5]ᵀ', setup: (c) => ({ fn: (a, b) => ops.matmulEx(a!, b!, { transA: true, transB: true }), inputs: [c.u([2, 5, 3]), c.u([2, 4, 5])] }) },
  { op: 'linear', name: 'with bias', shape: 'x [2, 3, 6], W [5, 6], b [5]', setup: (c) => ({ fn: (x, w, b) => ops.linear(x!, w!, b), inputs: [c.u([2, 3, 6]), c.u([5, 6]), c.u([5])] }) },
  { op: 'linear', name: 'no bias', shape: 'x [4, 7], W [3, 7]', setup: (c) => ({ fn: (x, w) => ops.linear(x!, w!), inputs: [c.u([4, 7]), c.u([3, 7])] }) },

  // ---- elementwise, with broadcasting
  { op: 'add', name: 'broadcast', shape: '[2, 3, 4] + [3, 1]', setup: (c) => ({ fn: ops.add, inputs: [c.u([2, 3, 4]), c.u([3, 1])] }) },
  { op: 'sub', name: 'broadcast', shape: '[3, 4] - [4]', setup: (c) => ({ fn: ops.sub, inputs: [c.u([3, 4]), c.u([4])] }) },
  { op: 'mul', name: 'broadcast both', shape: '[2, 1, 5] * [3, 1]', setup: (c) => ({ fn: ops.mul, inputs: [c.u([2, 1, 5]), c.u([3, 1])] }) },
  { op: 'div', name: 'broadcast, |b| >= 0.5', shape: '[3, 5] / [1, 5]', setup: (c) => ({ fn: ops.div, inputs: [c.u([3, 5]), c.signed([1, 5], 0.5, 1.5)] }) },
  { op: 'maximum', name: 'broadcast, no ties', shape: 'max([3, 7], [7])', setup: (c) => ({ fn: ops.maximum, inputs: c.distinct([[3, 7], [7]]) }) },
  unary('neg', '', ops.neg, u37),
  unary('exp', '', ops.exp, u37),
  unary('log', 'x in [0.2, 2)', ops.log, pos37),
  unary('sqrt', 'x in [0.2, 2)', ops.sqrt, pos37),
  unary('tanh', '', ops.tanh, u37),
  unary('tanh', 'vec4 path (size % 4 == 0)', ops.tanh, (c) => c.u([4, 5]), '[4, 5]'),
  unary('sigmoid', '', ops.sigmoid, u37),
  unary('relu', '|x| >= 0.05 (no kink)', ops.relu, (c) => c.signed([3, 7], 0.05, 1)),
  unary('gelu', 'erf', (x) => ops.gelu(x), u37),
  unary('gelu', 'tanh approximation', (x) => ops.gelu(x, { approximate: 'tanh' }), u37),
  unary('square', '', ops.square, u37),
  unary('reciprocal', '|x| >= 0.3', ops.reciprocal, (c) => c.signed([3, 7], 0.3, 1.5)),
  unary('abs', '|x| >= 0.05 (no kink)', ops.abs, (c) => c.signed([3, 7], 0.05, 1)),
  unary('affine', '2.5·x - 0.5', (x) => ops.affine(x, 2.5, -0.5), u37),

  // ---- reductions
  { op: 'sum', name: 'dim 1', shape: '[3, 5, 4]', setup: (c) => ({ fn: (x) => ops.sum(x!, 1), inputs: [c.u([3, 5, 4])] }) },
  { op: 'sum', name: 'dims [0, 2], keepDim', shape: '[3, 5, 4]', setup: (c) => ({ fn: (x) => ops.sum(x!, [0, 2], true), inputs: [c.u([3, 5, 4])] }) },
  { op: 'sum', name: 'all', shape: '[5, 7]', setup: (c) => ({ fn: (x) => ops.sum(x!), inputs: [c.u([5, 7])] }) },
  // long sums: inputs scaled so the outputs stay O(1) (the difference's rounding noise is ~2^-24·|out|/eps)
  { op: 'sum', name: 'row of 1030 (workgroup tree), x in ±0.1', shape: '[2, 1030], dim -1', setup: (c) => ({ fn: (x) => ops.sum(x!, -1), inputs: [c.u([2, 1030], -0.1, 0.1)] }) },
  { op: 'sum', name: 'dim 0 of few columns (split over R), x in ±0.2', shape: '[300, 3], dim 0', setup: (c) => ({ fn: (x) => ops.sum(x!, 0), inputs: [c.u([300, 3], -0.2, 0.2)] }) },
  { op: 'mean', name: 'dim -1', shape: '[4, 7]', setup: (c) => ({ fn: (x) => ops.mean(x!, -1), inputs: [c.u([4, 7])] }) },
  { op: 'max', name: 'dim 1, no ties', shape: '[3, 6, 2]', setup: (c) => ({ fn: (x) => ops.max(x!, 1), inputs: c.distinct([[3, 6, 2]]) }) },
  { op: 'max', name: 'all, no ties', shape: '[4, 5]', setup: (c) => ({ fn: (x) => ops.max(x!), inputs: c.distinct([[4, 5]]) }) },
  { op: 'sumTo', name: 'broadcast reverse', shape: '[2, 3, 4] → [3, 1]', setup: (c) => ({ fn: (x) => ops.sumTo(x!, [3, 1]), inputs: [c.u([2, 3, 4])] }) },

  // ---- shape ops (copies and scatters)
  { op: 'reshape', name: '', shape: '[3, 4] → [2, 6]', setup: (c) => ({ fn: (x) => ops.reshape(x!, [2, 6]), inputs: [c.u([3, 4])] }) },
  { op: 'permute', name: '(2, 0, 1)', shape: '[2, 3, 4]', setup: (c) => ({ fn: (x) => ops.permute(x!, [2, 0, 1]), inputs: [c.u([2, 3, 4])] }) },
  { op: 'transpose', name: 'dims 0, 2', shape: '[2, 3, 5]', setup: (c) => ({ fn: (x) => ops.transpose(x!, 0, 2), inputs: [c.u([2, 3, 5])] }) },
  { op: 'expand', name: '', shape: '[3, 1] → [2, 3, 4]', setup: (c) => ({ fn: (x) => ops.expand(x!, [2, 3, 4]), inputs: [c.u([3, 1])] }) },
  { op: 'slice', name: 'dim 1, 1:6:2', shape: '[3, 7]', setup: (c) => ({ fn: (x) => ops.slice(x!, 1, 1, 6, 2), inputs: [c.u([3, 7])] }) },
  { op: 'concat', name: 'dim 1', shape: '[2, 3] ++ [2, 4]', setup: (c) => ({ fn: (a, b) => ops.concat([a!, b!], 1), inputs: [c.u([2, 3]), c.u([2, 4])] }) },
  { op: 'stack', name: 'dim 1', shape: '2 × [3, 2]', setup: (c) => ({ fn: (a, b) => ops.stack([a!, b!], 1), inputs: [c.u([3, 2]), c.u([3, 2])] }) },
  { op: 'view', name: '', shape: '[2, 6] → [3, 2, 2]', setup: (c) => ({ fn: (x) => ops.view(x!, [3, 2, 2]), inputs: [c.u([2, 6])] }) },
  { op: 'squeeze', name: 'dim 1', shape: '[3, 1, 4]', setup: (c) => ({ fn: (x) => ops.squeeze(x!, 1), inputs: [c.u([3, 1, 4])] }) },
  { op: 'unsqueeze', name: 'dim 1', shape: '[3, 4]', setup: (c) => ({ fn: (x) => ops.unsqueeze(x!, 1), inputs: [c.u([3, 4])] }) },

  // ---- softmax and normalisation
  { op: 'softmax', name: 'dim -1', shape: '[3, 7]', setup: (c) => ({ fn: (x) => ops.softmax(x!, -1), inputs: [c.u([3, 7])] }) },
  { op: 'softmax', name: 'dim 1 (strided rows)', shape: '[2, 5, 3]', setup: (c) => ({ fn: (x) => ops.softmax(x!, 1), inputs: [c.u([2, 5, 3])] }) },
  { op: 'softmax', name: 'dim 1, inner % 4 == 0', shape: '[2, 3, 4]', setup: (c) => ({ fn: (x) => ops.softmax(x!, 1), inputs: [c.u([2, 3, 4])] }) },
  { op: 'softmax', name: 'long rows (workgroup per row)', shape: '[2, 515]', setup: (c) => ({ fn: (x) => ops.softmax(x!, -1), inputs: [c.u([2, 515], -3, 3)] }) },
  { op: 'logSoftmax', name: 'dim -1', shape: '[3, 7]', setup: (c) => ({ fn: (x) => ops.logSoftmax(x!, -1), inputs: [c.u([3, 7])] }) },
  { op: 'logSoftmax', name: 'dim 0', shape: '[5, 3]', setup: (c) => ({ fn: (x) => ops.logSoftmax(x!, 0), inputs: [c.u([5, 3])] }) },
  // not long layerNorm rows: x_k moves all C outputs of its row, so the difference's rounding noise
  // grows like sqrt(C)·2^-24/eps (~8e-4 at C = 515, at atol); test/ops/layernorm.test.ts covers them
  // against the float64 reference instead
  { op: 'layerNorm', name: 'weight + bias', shape: '[3, 7], C = 7', setup: (c) => ({ fn: (x, w, b) => ops.layerNorm(x!, 7, w, b), inputs: [c.u([3, 7]), c.u([7]), c.u([7])] }) },
  { op: 'layerNorm', name: 'over 2 dims, vec4 rows, weight + bias', shape: '[3, 4, 5], [4, 5]', setup: (c) => ({ fn: (x, w, b) => ops.layerNorm(x!, [4, 5], w, b), inputs: [c.u([3, 4, 5]), c.u([4, 5]), c.u([4, 5])] }) },
  { op: 'layerNorm', name: 'no affine', shape: '[2, 3, 5], [3, 5]', setup: (c) => ({ fn: (x) => ops.layerNorm(x!, [3, 5]), inputs: [c.u([2, 3, 5])] }) },

  // ---- attention
  {
    op: 'scaledDotProductAttention', name: 'causal + bool mask', shape: 'B 1, H 2, N 5, D 4',
    setup: (c) => {
      const mask = c.mask([1, 2, 5, 5], 0.8);
      return { fn: (q, k, v) => ops.scaledDotProductAttention(q!, k!, v!, { isCausal: true, mask }), inputs: [c.u([1, 2, 5, 4]), c.u([1, 2, 5, 4]), c.u([1, 2, 5, 4])] };
    },
  },
  {
    op: 'scaledDotProductAttention', name: 'key padding (keyLengths) + float mask with grad', shape: 'B 2, H 1, Nq 5, Nk 7, D 16',
    setup: (c) => ({
      fn: (q, k, v, m) => ops.scaledDotProductAttention(q!, k!, v!, { mask: m, keyLengths: Int32Array.from([7, 4]) }),
      inputs: [c.u([2, 1, 5, 16]), c.u([2, 1, 7, 16]), c.u([2, 1, 7, 16]), c.u([5, 7])],
    }),
  },
  {
    op: 'scaledDotProductAttention', name: 'several query and key tiles, causal', shape: 'B 1, H 1, Nq 33, Nk 37, D 16',
    setup: (c) => ({ fn: (q, k, v) => ops.scaledDotProductAttention(q!, k!, v!, { isCausal: true }), inputs: [c.u([1, 1, 33, 16]), c.u([1, 1, 37, 16]), c.u([1, 1, 37, 16])] }),
  },
  {
    op: 'scaledDotProductAttention', name: 'dropout 0.3, fixed seed', shape: 'B 1, H 2, Nq 3, Nk 6, D 4',
    setup: (c) => ({ fn: (q, k, v) => ops.scaledDotProductAttention(q!, k!, v!, { dropoutP: 0.3, seed: 42 }), inputs: [c.u([1, 2, 3, 4]), c.u([1, 2, 6, 4]), c.u([1, 2, 6, 4])] }),
  },
  {
    op: 'windowAttention', name: 'shift 1 + relative position bias', shape: 'B 1, 4×4 grid, 2 heads, D 4, M 2',
    setup: (c) => ({
      fn: (q, k, v, t) => ops.windowAttention(q!, k!, v!, { windowSize: 2, shift: 1, relativePositionBias: t }),
      inputs: [c.u([1, 4, 4, 2, 4]), c.u([1, 4, 4, 2, 4]), c.u([1, 4, 4, 2, 4]), c.u([9, 2])],
    }),
  },
  {
    op: 'windowAttention', name: 'grid padded to windows, shift 1, no bias', shape: 'B 1, 5×3 grid, 1 head, D 3, M 2',
    setup: (c) => ({ fn: (q, k, v) => ops.windowAttention(q!, k!, v!, { windowSize: 2, shift: 1 }), inputs: [c.u([1, 5, 3, 1, 3]), c.u([1, 5, 3, 1, 3]), c.u([1, 5, 3, 1, 3])] }),
  },

  // ---- convolution and images
  {
    op: 'conv2d', name: 'stride [2, 1], padding [1, 2], dilation [1, 2], bias', shape: 'x [1, 2, 5, 4], w [2, 2, 3, 2]',
    setup: (c) => ({ fn: (x, w, b) => ops.conv2d(x!, w!, b, { stride: [2, 1], padding: [1, 2], dilation: [1, 2] }), inputs: [c.u([1, 2, 5, 4]), c.u([2, 2, 3, 2]), c.u([2])] }),
  },
  {
    op: 'conv2d', name: 'batch 2, dilation 2, no bias', shape: 'x [2, 1, 3, 5], w [3, 1, 2, 2]',
    setup: (c) => ({ fn: (x, w) => ops.conv2d(x!, w!, null, { dilation: 2 }), inputs: [c.u([2, 1, 3, 5]), c.u([3, 1, 2, 2])] }),
  },
  {
    op: 'maxPool2d', name: 'kernel [3, 2], stride [1, 2], padding 1, no ties', shape: '[1, 2, 5, 4]',
    setup: (c) => ({ fn: (x) => ops.maxPool2d(x!, { kernelSize: [3, 2], stride: [1, 2], padding: 1 }), inputs: c.distinct([[1, 2, 5, 4]]) }),
  },
  { op: 'patchify', name: 'p 2', shape: '[1, 2, 4, 6]', setup: (c) => ({ fn: (x) => ops.patchify(x!, 2), inputs: [c.u([1, 2, 4, 6])] }) },
  {
    op: 'im2col', name: 'kernel 3, padding 1, dilation [1, 2]', shape: '[1, 2, 4, 5]',
    setup: (c) => ({ fn: (x) => ops.im2col(x!, { kernelSize: 3, padding: 1, dilation: [1, 2] }), inputs: [c.u([1, 2, 4, 5])] }),
  },
  {
    op: 'col2im', name: 'kernel 2, stride 1 (overlapping sums)', shape: '[1, 8, 12] → [1, 2, 4, 5]',
    setup: (c) => ({ fn: (x) => ops.col2im(x!, [4, 5], { kernelSize: 2 }), inputs: [c.u([1, 8, 12])] }),
  },

  // ---- recurrent
  {
    op: 'lstmCell', name: 'with biases, [h1, c1]', shape: 'B 2, in 3, H 5',
    setup: (c) => ({
      fn: (x, h, cc, wi, wh, bi, bh) => ops.concat(ops.lstmCell(x!, h!, cc!, wi!, wh!, bi, bh), -1),
      inputs: [c.u([2, 3]), c.u([2, 5]), c.u([2, 5]), c.u([20, 3]), c.u([20, 5]), c.u([20]), c.u([20])],
    }),
  },
  {
    op: 'rnnCell', name: 'tanh, with biases', shape: 'B 2, in 3, H 4',
    setup: (c) => ({ fn: (x, h, wi, wh, bi, bh) => ops.rnnCell(x!, h!, wi!, wh!, bi, bh), inputs: [c.u([2, 3]), c.u([2, 4]), c.u([4, 3]), c.u([4, 4]), c.u([4]), c.u([4])] }),
  },
  {
    op: 'lstm', name: 'sequence, 1 layer, [output, cN]', shape: 'T 3, B 2, in 3, H 4',
    setup: (c) => ({
      fn: (x, h0, c0, wIh, wHh, bIh, bHh) => {
        const [out, [, cN]] = ops.lstm(x!, [{ wIh: wIh!, wHh: wHh!, bIh, bHh }], h0, c0);
        return ops.concat([out, cN], 0);
      },
      inputs: [c.u([3, 2, 3]), c.u([1, 2, 4]), c.u([1, 2, 4]), c.u([16, 3]), c.u([16, 4]), c.u([16]), c.u([16])],
    }),
  },
  {
    op: 'rnn', name: 'sequence, 2 layers, batchFirst', shape: 'B 2, T 3, in 3, H 3',
    setup: (c) => ({
      fn: (x, wi0, wh0, wi1, wh1) => ops.rnn(x!, [{ wIh: wi0!, wHh: wh0! }, { wIh: wi1!, wHh: wh1! }], null, { batchFirst: true })[0],
      inputs: [c.u([2, 3, 3]), c.u([3, 3]), c.u([3, 3]), c.u([3, 3]), c.u([3, 3])],
    }),
  },

  // ---- embedding, losses, dropout (not embedding's paddingIdx: PyTorch semantics zero that row's
  // gradient although the forward reads it, so it is deliberately not the derivative)
  {
    op: 'embedding', name: 'repeated indices', shape: 'indices [2, 4] into [5, 3]',
    setup: (c) => {
      const idx = Int32Array.from([0, 3, 3, 1, 4, 0, 3, 2]);
      return { fn: (w) => ops.embedding(idx, w!, { shape: [2, 4] }), inputs: [c.u([5, 3])] };
    },
  },
  {
    op: 'crossEntropy', name: 'mean', shape: '[7, 5]',
    setup: (c) => {
      const y = c.ints(7, 5);
      return { fn: (x) => ops.crossEntropy(x!, y), inputs: [c.u([7, 5], -2, 2)] };
    },
  },
  {
    op: 'crossEntropy', name: 'sum, ignoreIndex 2, labelSmoothing 0.1', shape: '[6, 4]',
    setup: (c) => {
      const y = Int32Array.from([0, 2, 3, 1, 2, 3]);
      return { fn: (x) => ops.crossEntropy(x!, y, { reduction: 'sum', ignoreIndex: 2, labelSmoothing: 0.1 }), inputs: [c.u([6, 4], -2, 2)] };
    },
  },
  {
    op: 'crossEntropy', name: 'spatial, reduction none', shape: '[2, 3, 2, 3]',
    setup: (c) => {
      const y = c.ints(12, 3);
      return { fn: (x) => ops.crossEntropy(x!, y, { reduction: 'none' }), inputs: [c.u([2, 3, 2, 3], -2, 2)] };
    },
  },
  {
    op: 'crossEntropy', name: 'row kernel, labelSmoothing 0.2', shape: '[3, 70]',
    setup: (c) => {
      const y = c.ints(3, 70);
      return { fn: (x) => ops.crossEntropy(x!, y, { labelSmoothing: 0.2 }), inputs: [c.u([3, 70], -2, 2)] };
    },
  },
  {
    op: 'crossEntropy', name: 'vec4 row kernel, reduction none', shape: '[3, 68]',
    setup: (c) => {
      const y = c.ints(3, 68);
      return { fn: (x) => ops.crossEntropy(x!, y, { reduction: 'none' }), inputs: [c.u([3, 68], -2, 2)] };
    },
  },
  { op: 'dropout', name: 'p 0.3, fixed seed', shape: '[3, 7]', setup: (c) => ({ fn: (x) => ops.dropout(x!, 0.3, { seed: 7 }), inputs: [c.u([3, 7])] }) },
];

export interface GradcheckRow {
  op: string;
  case: string;
  shape: string;
  /** elements checked (gradcheck runs two forwards per element) */
  elements: number;
  maxAbsError: number;
  /** max |analytic - numeric| / |numeric| over elements with |numeric| >= 10·atol (smaller ones are within rounding noise of atol) */
  maxRelError: number;
  ok: boolean;
  seconds: number;
  worst?: GradcheckResult['worst'];
  error?: string;
}


/**
 * Selects cases: a filter equal to an op name (case-insensitive) selects that op; otherwise it
 * selects every op whose name contains it ('attention' → both attentions). Unknown filters throw.
 */
export function selectCases(filters: readonly string[], cases: readonly GradcheckCase[] = CASES): GradcheckCase[] {
  if (!filters.length) return [...cases];
  const names = [...new Set(cases.map((c) => c.op))];
  const chosen = new Set<string>();
  for (const f of filters) {
    const lf = f.toLowerCase();
    const exact = names.filter((n) => n.toLowerCase() === lf);
    const hits = exact.length ? exact : names.filter((n) => n.toLowerCase().includes(lf));
    if (!hits.length) throw new Error(`no gradcheck cases for '${f}' (ops: ${names.join(', ')})`);
    hits.forEach((h) => chosen.add(h));
  }
  return cases.filter((c) => chosen.has(c.op));
}

/** Runs the cases; each case's data comes from its own seed (seed, position in `cases`) so filtering does not change it. */
export async function runGradcheck(
  dev: Device, cases: readonly GradcheckCase[], opts: { seed?: number; onRow?: (r: GradcheckRow) => void } = {},
): Promise<GradcheckRow[]> {
  const rows: GradcheckRow[] = [];
  for (const [i, k] of cases.entries()) {
    const inputs = new CaseInputs(dev, mulberry32((opts.seed ?? 1) * 7919 + i * 104729));
    const base = { op: k.op, case: k.name, shape: k.shape };
    const t0 = performance.now();
    let row: GradcheckRow;
    try {
      const { fn, inputs: xs } = k.setup(inputs);
      const r = await gradcheck(fn, xs, { ...TOLERANCE, seed: (opts.seed ?? 1) + i });
      let rel = 0;
      r.analytic.forEach((a, w) => a.forEach((v, j) => {
        const n = r.numeric[w]![j]!;
        if (Math.abs(n) >= 10 * TOLERANCE.atol) rel = Math.max(rel, Math.abs(v - n) / Math.abs(n));
      }));
      row = {
        ...base, elements: r.numeric.reduce((a, n) => a + n.length, 0), maxAbsError: r.maxAbsError, maxRelError: rel,
        ok: r.ok, seconds: (performance.now() - t0) / 1000, ...(r.ok ? {} : { worst: r.worst }),
      };
    } catch (e) {
      row = { ...base, elements: 0, maxAbsError: NaN, maxRelError: NaN, ok: false, seconds: (performance.now() - t0) / 1000, error: (e as Error).message };
    } finally {
      inputs.dispose();
    }
    rows.push(row);
    opts.onRow?.(row);
  }
  return rows;
}

export interface GradcheckCliOptions {
  json?: boolean;
  seed: string;
  list?: boolean;
}

const COLS = ['op', 'case', 'shape', 'max abs error', 'max rel error', 'ok'] as const;
/** Column widths for these cases (text columns as wide as their longest entry). */
function table(cases: readonly GradcheckCase[]): (cells: readonly string[]) => string {
  const w = [
    Math.max(COLS[0].length, ...cases.map((k) => k.op.length)), Math.max(COLS[1].length, ...cases.map((k) => k.name.length)),
    Math.max(COLS[2].length, ...cases.map((k) => k.shape.length)), COLS[3].length, COLS[4].length, 4,
  ];
  return (cells) => cells.map((c, i) => (i >= 3 ? c.padStart(w[i]!) : c.padEnd(w[i]!))).join('  ').trimEnd();
}
const fmtErr = (v: number): string => (Number.isNaN(v) ? '-' : v.toExponential(2));

/** The command; returns the exit code (1 when any case fails). `cases` is for tests. */
export async function gradcheckCli(filters: readonly string[], o: GradcheckCliOptions, cases: readonly GradcheckCase[] = CASES): Promise<number> {
  const seed = Number(o.seed);
  if (!Number.isInteger(seed) || seed < 0) {
    console.error(`--seed must be a non-negative integer, got '${o.seed}'`);
    return 2;
  }
  let selected: GradcheckCase[];
  try {
    selected = selectCases(filters, cases);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  const fmtRow = table(selected);
  if (o.list) {
    for (const k of selected) console.log(fmtRow([k.op, k.name, k.shape]));
    return 0;
  }
  const dev = await createDevice();
  const t0 = performance.now();
  try {
    if (!o.json) {
      const a = dev.adapterInfo;
      console.log(`device: ${[a.vendor, a.device].filter(Boolean).join(' ')} | ${selected.length} cases | eps ${TOLERANCE.eps}, atol ${TOLERANCE.atol}, rtol ${TOLERANCE.rtol} (rel error: over |grad| >= ${10 * TOLERANCE.atol}) | seed ${seed}`);
      console.log(fmtRow([...COLS]));
    }
    const rows = await runGradcheck(dev, selected, {
      seed,
      onRow: o.json ? undefined : (r) => {
        console.log(fmtRow([r.op, r.case, r.shape, fmtErr(r.maxAbsError), fmtErr(r.maxRelError), r.ok ? 'ok' : 'FAIL']));
        if (r.error) console.log(`    error: ${r.error}`);
        else if (r.worst) console.log(`    worst: input ${r.worst.input} element ${r.worst.index}: analytic ${r.worst.analytic.toPrecision(6)}, numeric ${r.worst.numeric.toPrecision(6)}`);
      },
    });
    const failed = rows.filter((r) => !r.ok).length;
    const seconds = (performance.now() - t0) / 1000;
    if (o.json) {
      console.log(JSON.stringify({ adapter: dev.adapterInfo, seed, tolerance: TOLERANCE, seconds, failed, rows }, null, 2));
    } else {
      console.log(`${rows.length - failed}/${rows.length} cases ok${failed ? `, ${failed} FAILED` : ''} (${seconds.toFixed(1)} s)`);
    }
    return failed ? 1 : 0;
  } finally {
    dev.destroy();
  }
}
