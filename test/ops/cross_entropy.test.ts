import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { type Device, type Tensor } from '../../src/index.js';
import {
  crossEntropy, crossEntropyComposite, crossEntropyRef, crossEntropyRefBackward, type CrossEntropyOptions,
} from '../../src/ops/cross_entropy.js';
import { checkIndexErrors } from '../../src/ops/embedding.js';
import { checkOp, expectClose, makeDevice, randArr, randInt, rng, toArr, toTensor, type Arr } from '../helpers.js';

let dev: Device;
beforeAll(async () => { dev = await makeDevice(); });
afterAll(() => dev.destroy());

function f32Arr(shape: number[], rnd: () => number, lo = -3, hi = 3): Arr {
  const a = randArr(shape, rnd, lo, hi);
  a.data.forEach((v, i) => { a.data[i] = Math.fround(v); });
  return a;
}

/**
 * Tolerances. Logits in [-3, 3], so x - max is in [-6, 0]: WGSL exp is accurate to 3 + 2·6 = 15 ULP
 * (~1e-6 relative) per term; Σexp over C <= 1000 terms adds C·2^-24 relative; log turns the relative
 * error of its argument into an absolute one (~2e-6) plus 3 ULP of lse (|lse| < 10). So the row
 * loss is within ~3e-6 absolute, and means/sums of rows keep that (sums of R rows: R·3e-6 + R·2^-24·|sum|).
 * Backward: p = exp(x - lse) with x - lse in [-13, 0] is within (3 + 26) ULP + the lse error,
 * ~5e-6 relative of p <= 1, times |w| <= 1. We allow 1e-5 (2-3x margin) per row-sized quantity.
 */
const FWD = { atol: 1e-5, rtol: 1e-5 };
const BWD = { atol: 1e-5, rtol: 1e-5 };

function targetsFor(n: number, C: number, rnd: () => number, ignore?: number): Int32Array {
  return Int32Array.from({ length: n }, (_, i) => (ignore !== undefined && i % 3 === 1 ? ignore : randInt(rnd, 0, C - 1)));
}

describe('crossEntropy', () => {
  const cases: { name: string; shape: number[]; opts: CrossEntropyOptions; gpuTargets: boolean; ignore?: boolean; gradcheck: boolean }[] = [
    { name: '[7, 5] mean', shape: [7, 5], opts: {}, gpuTargets: true, gradcheck: true },
    { name: '[7, 5] sum, smoothing 0.1, CPU targets', shape: [7, 5], opts: { reduction: 'sum', labelSmoothing: 0.1 }, gpuTargets: false, gradcheck: true },
    { name: '[6, 4] none, ignoreIndex -100', shape: [6, 4], opts: { reduction: 'none' }, gpuTargets: true, ignore: true, gradcheck: true },
    { name: '[6, 4] mean, ignoreIndex 2 + smoothing 0.3', shape: [6, 4], opts: { ignoreIndex: 2, labelSmoothing: 0.3 }, gpuTargets: true, gradcheck: true },
    // C > 64: one workgroup per row
    { name: '[5, 70] mean, smoothing 0.2 (row kernel)', shape: [5, 70], opts: { labelSmoothing: 0.2 }, gpuTargets: true, ignore: true, gradcheck: false },
    // C % 4 == 0: the vec4 row kernels
    { name: '[3, 1000] sum (vec4 row kernel, C not a multiple of 128)', shape: [3, 1000], opts: { reduction: 'sum' }, gpuTargets: false, gradcheck: false },
    { name: '[7, 132] mean, ignoreIndex + smoothing 0.1 (vec4 row kernel)', shape: [7, 132], opts: { labelSmoothing: 0.1 }, gpuTargets: true, ignore: true, gradcheck: false },
    // spatial [N, C, d1, d2]: rows are strided by S = d1·d2
    { name: '[2, 3, 2, 3] none (spatial)', shape: [2, 3, 2, 3], opts: { reduction: 'none' }, gpuTargets: true, ignore: true, gradcheck: true },
    { name: '[3, 4, 5] mean, smoothing 0.1 (spatial)', shape: [3, 4, 5], opts: { labelSmoothing: 0.1 }, gpuTargets: false, gradcheck: false },
    { name: '[C = 6] with a scalar target', shape: [6], opts: {}, gpuTargets: true, gradcheck: true },
    { name: '[300, 3] mean (rows > workgroup size)', shape: [300, 3], opts: {}, gpuTargets: true, ignore: true, gradcheck: false },
  ];
  for (const c of cases) {
    it(`forward and backward vs float64 reference: ${c.name}`, async () => {
      const rnd = rng(c.shape.reduce((a, b) => a * 7 + b, 3));
      const C = c.shape.length === 1 ? c.shape[0]! : c.shape[1]!;
      const tShape = c.shape.length === 1 ? [] : [c.shape[0]!, ...c.shape.slice(2)];
      const nT = tShape.reduce((a, b) => a * b, 1);
      const ignore = c.ignore ? (c.opts.ignoreIndex ?? -100) : undefined;
      const targets = targetsFor(nT, C, rnd, ignore);
      const logits = f32Arr(c.shape, rnd);
      await checkOp({
        name: `crossEntropy ${c.name}`,
        dev,
        inputs: [logits],
        gpu: (x) => crossEntropy(x, c.gpuTargets ? dev.tensor(targets, tShape, { dtype: 'int32' }) : targets, c.opts),
        ref: (x) => crossEntropyRef(x, targets, c.opts),
        refBackward: (g, x) => [crossEntropyRefBackward(g, x, targets, c.opts)],
        fwdTol: FWD,
        bwdTol: BWD,
        // default gradcheck tolerances (atol 1e-3, rtol 1e-2) for f32 central differences with
        // step 1e-3 of a smooth loss of magnitude ~log C; larger cases are left to the reference
        // checks (each element costs two forward passes)
        gradcheck: c.gradcheck ? {} : false,
      });
    });
  }

  it('matches the unfused composite (max/exp/sum/log) forward and backward', async () => {
    const rnd = rng(77);
    const N = 6;
    const C = 9;
    const targets = targetsFor(N, C, rnd, 4);
    const la = f32Arr([N, C], rnd);
    for (const opts of [{ ignoreIndex: 4, labelSmoothing: 0.15 }, { ignoreIndex: 4, reduction: 'sum' as const }, { ignoreIndex: 4, reduction: 'none' as const }]) {
      const a = toTensor(dev, la, true);
      const b = toTensor(dev, la, true);
      const fused = crossEntropy(a, targets, opts);
      const comp = crossEntropyComposite(b, targets, opts);
      // both are f32 GPU computations of the same quantity: each within FWD of the float64 value
      expectClose(await toArr(fused), await toArr(comp), { atol: 2 * FWD.atol, rtol: 2 * FWD.rtol }, `fused vs composite ${JSON.stringify(opts)}`);
      const R = toTensor(dev, randArr(fused.shape, rnd));
      fused.backward(R);
      comp.backward(R);
      expectClose(await toArr(a.grad!), await toArr(b.grad!), { atol: 2 * BWD.atol, rtol: 2 * BWD.rtol }, `fused vs composite grad ${JSON.stringify(opts)}`);
    }
  });

  it('all targets ignored: mean is NaN (0/0, as PyTorch), sum is 0, gradients are 0', async () => {
    const targets = Int32Array.from([-100, -100]);
    const x = dev.randn([2, 3], { requiresGrad: true, seed: 3 });
    const m = crossEntropy(x, targets);
    expect(Number.isNaN(await m.item())).toBe(true);
    const s = crossEntropy(x, targets, { reduction: 'sum' });
    expect(await s.item()).toBe(0);
    s.backward();
    expect(Array.from(await x.grad!.toArray())).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it('is deterministic (bit-identical loss and gradient across runs)', async () => {
    const rnd = rng(12);
    const la = f32Arr([257, 130], rnd);
    const targets = targetsFor(257, 130, rnd, -100);
    const runs: [number, Float32Array][] = [];
    for (let k = 0; k < 2; k++) {
      const x = toTensor(dev, la, true);
      const l = crossEntropy(x, dev.tensor(targets, [257], { dtype: 'int32' }), { labelSmoothing: 0.1 });
      l.backward();
      runs.push([await l.item(), await x.grad!.toArray()]);
    }
    expect(runs[1]![0]).toBe(runs[0]![0]);
    expect(Array.from(runs[1]![1])).toEqual(Array.from(runs[0]![1]));
  });

  it('extreme logits stay finite (online logsumexp)', async () => {
    const x = dev.tensor([[1000, -1000, 0], [-80, -80.5, -200]], undefined, { requiresGrad: true });
    const l = crossEntropy(x, Int32Array.from([0, 1]), { reduction: 'none' });
    const ref = crossEntropyRef({ shape: [2, 3], data: Float64Array.from([1000, -1000, 0, -80, -80.5, -200]) }, Int32Array.from([0, 1]), { reduction: 'none' });
    expectClose(await toArr(l), ref, FWD, 'extreme logits');
  });

  it('CPU targets out of range: ShapeError before any GPU work', () => {
    const x = dev.randn([3, 4], { seed: 5 });
    const before = dev.exec.pendingCount;
    expect(() => crossEntropy(x, Int32Array.from([0, 4, 1]))).toThrow(/crossEntropy: targets\[1\] = 4 is out of range for logits \[3, 4\] with 4 classes/);
    expect(() => crossEntropy(x, Int32Array.from([0, -1, 1]))).toThrow(/crossEntropy: targets\[1\] = -1 is out of range/);
    // ignoreIndex is allowed even though it is out of range
    expect(() => crossEntropy(x, Int32Array.from([0, -100, 1]))).not.toThrow();
    expect(dev.exec.pendingCount).toBeGreaterThan(before);
  });

  it('GPU targets out of range in the vec4 row kernels: NaN loss and NaN gradient row, flagged', async () => {
    await checkIndexErrors(dev);
    const x = dev.randn([2, 68], { requiresGrad: true, seed: 16 });
    const l = crossEntropy(x, dev.tensor(Int32Array.from([68, 3]), [2], { dtype: 'int32' }), { reduction: 'none' });
    const v = await l.toArray();
    expect(Number.isNaN(v[0]!) && Number.isFinite(v[1]!)).toBe(true);
    l.backward(dev.ones([2]));
    const g = await x.grad!.toArray();
    expect(g.slice(0, 68).every((e) => Number.isNaN(e))).toBe(true);
    expect(g.slice(68).every((e) => Number.isFinite(e))).toBe(true);
    await expect(checkIndexErrors(dev)).rejects.toThrow(/crossEntropy: targets \(int32 \[2\], logits \[2, 68\]\) contained values outside \[0, 68\); the first is targets\[0\] \(flat\) = 68/);
  });

  it('GPU targets out of range: NaN loss, flagged, never read', async () => {
    await checkIndexErrors(dev);
    const x = dev.randn([3, 4], { requiresGrad: true, seed: 6 });
    const t = dev.tensor(Int32Array.from([1, 9, 2]), [3], { dtype: 'int32' });
    const l = crossEntropy(x, t, { reduction: 'none' });
    const v = await l.toArray();
    expect(Number.isFinite(v[0]!) && Number.isNaN(v[1]!) && Number.isFinite(v[2]!)).toBe(true);
    await expect(checkIndexErrors(dev)).rejects.toThrow(/crossEntropy: targets \(int32 \[3\], logits \[3, 4\]\) contained values outside \[0, 4\); the first is targets\[1\] \(flat\) = 9/);
    await expect(checkIndexErrors(dev)).resolves.toBeUndefined();
  });

  it('bad inputs name the op and the argument', () => {
    const x = dev.randn([4, 3], { seed: 7 });
    const t = dev.tensor(Int32Array.from([0, 1, 2]), [3], { dtype: 'int32' });
    expect(() => crossEntropy(x, dev.tensor([0, 1, 2, 0]))).toThrow(/crossEntropy: targets must be int32, got float32 \[4\]/);
    expect(() => crossEntropy(x, t)).toThrow(/crossEntropy: targets \[3\] must have shape \[4\] for logits \[4, 3\] \(batch 4\)/);
    expect(() => crossEntropy(x, Int32Array.from([0, 1]))).toThrow(/crossEntropy: targets has 2 values but logits \[4, 3\] needs targets of shape \[4\]/);
    expect(() => crossEntropy(x, Int32Array.from([0, 1, 2, 0]), { labelSmoothing: 1.5 })).toThrow(/crossEntropy: labelSmoothing must be in \[0, 1\], got 1.5/);
    expect(() => crossEntropy(x, Int32Array.from([0, 1, 2, 0]), { reduction: 'avg' as 'mean' })).toThrow(/crossEntropy: reduction must be 'mean', 'sum' or 'none', got 'avg'/);
    expect(() => crossEntropy(x, Int32Array.from([0, 1, 2, 0]), { ignoreIndex: 0.5 })).toThrow(/crossEntropy: ignoreIndex must be a 32-bit integer/);
    expect(() => crossEntropy(t, Int32Array.from([0, 1, 2]))).toThrow(/crossEntropy: logits.* must be float32, got int32/);
    expect(() => crossEntropy(dev.zeros([2, 0]), Int32Array.from([0, 0]))).toThrow(/crossEntropy: logits \[2, 0\] has no classes/);
    expect(() => crossEntropy(x, null as unknown as Tensor)).toThrow(/crossEntropy: targets must be an int32 Tensor or an Int32Array/);
    expect(() => crossEntropy(dev.randn([2, 3, 4], { seed: 1 }), dev.tensor(Int32Array.from([0, 1]), [2], { dtype: 'int32' }))).toThrow(/crossEntropy: targets \[2\] must have shape \[2, 4\]/);
  });
});
