// Reverse-mode autodiff: propagation of requiresGrad, accumulation when a tensor feeds several ops,
// noGrad, detach, leaf .grad accumulation across backward calls, and gradcheck itself.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { gradcheck, noGrad, ops, ShapeError, type Device, type Tensor } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5): void => {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Math.abs(a[i]! - b[i]!)).toBeLessThanOrEqual(tol * (1 + Math.abs(b[i]!)));
};

describe('autodiff', () => {
  it('propagates requiresGrad only from inputs that require it', () => {
    const a = dev.tensor([1, 2], undefined, { requiresGrad: true });
    const b = dev.tensor([3, 4]);
    expect(ops.add(a, b).requiresGrad).toBe(true);
    expect(ops.mul(b, b).requiresGrad).toBe(false);
    expect(noGrad(() => ops.add(a, b)).requiresGrad).toBe(false);
    expect(a.detach().requiresGrad).toBe(false);
  });

  it('sums the gradients of a tensor used by several ops (x as query, key and value)', async () => {
    const xv = [0.5, -1, 2];
    const x = dev.tensor(xv, undefined, { requiresGrad: true });
    // q = 2x, k = x*x, v = exp(x); L = sum(q + k + v)  =>  dL/dx = 2 + 2x + exp(x)
    const L = ops.sum(ops.add(ops.add(ops.mul(x, 2), ops.mul(x, x)), ops.exp(x)));
    L.backward();
    close(await x.grad!.toArray(), xv.map((v) => 2 + 2 * v + Math.exp(v)));
  });

  it('accumulates leaf gradients across backward calls until they are cleared', async () => {
    const x = dev.tensor([1, 2, 3], undefined, { requiresGrad: true });
    ops.sum(ops.mul(x, 3)).backward();
    ops.sum(ops.mul(x, 3)).backward();
    close(await x.grad!.toArray(), [6, 6, 6]);
  });

  it('stops gradients at detach()', async () => {
    const x = dev.tensor([1, 2], undefined, { requiresGrad: true });
    const y = ops.mul(x, x);
    const L = ops.sum(ops.add(y, ops.mul(y.detach(), x)));
    L.backward();
    // d/dx [x² + stop(x²)·x] = 2x + x²
    close(await x.grad!.toArray(), [3, 8]);
  });

  it('backward() without grad needs a one-element output; grad shape must match', () => {
    const x = dev.tensor([1, 2], undefined, { requiresGrad: true });
    const y = ops.mul(x, 2);
    expect(() => y.backward()).toThrow(/backward: grad can be omitted only for a one-element tensor, got \[2\]/);
    expect(() => y.backward(dev.tensor([1, 2, 3]))).toThrow(/backward: grad \[3\] must have the shape of the tensor \[2\]/);
    expect(() => dev.tensor([1]).backward()).toThrow(ShapeError);
  });

  it('handles deep graphs without recursion limits', async () => {
    const x = dev.tensor([1], undefined, { requiresGrad: true });
    let y: Tensor = x;
    for (let i = 0; i < 3000; i++) y = ops.add(y, 0.001);
    y.backward();
    close(await x.grad!.toArray(), [1]);
  });
});

describe('gradcheck', () => {
  it('passes for a correct gradient', async () => {
    const x = dev.tensor([0.3, -0.7, 1.1], undefined, { requiresGrad: true });
    const r = await gradcheck((t) => ops.tanh(ops.mul(t, t)), [x]);
    expect(r.ok).toBe(true);
    expect(r.maxAbsError).toBeLessThan(1e-3);
  });

  it('fails for a wrong gradient (the check can fail)', async () => {
    // exp(x) via a node whose backward is deliberately wrong (returns 2·g·exp(x))
    const wrong = (t: Tensor): Tensor => {
      const y = noGrad(() => ops.exp(t));
      y.requiresGrad = true;
      y._node = { op: 'bad_exp', inputs: [t], backward: (g) => [ops.mul(ops.mul(g, y), 2)] };
      return y;
    };
    const x = dev.tensor([0.1, 0.2], undefined, { requiresGrad: true });
    const r = await gradcheck(wrong, [x]);
    expect(r.ok).toBe(false);
    expect(r.worst).not.toBeNull();
    expect(Math.abs(r.worst!.analytic / r.worst!.numeric - 2)).toBeLessThan(0.01);
  });
});

describe('autodiff rules', () => {
  it('a rule may return one tensor as the gradient of several inputs that already have grads', async () => {
    const x = dev.tensor([1, 2], undefined, { requiresGrad: true });
    // z = f(x, x) + x where f's rule returns the same fresh tensor for both inputs
    const f = (a: Tensor, b: Tensor): Tensor => {
      const y = noGrad(() => ops.add(a, b));
      y.requiresGrad = true;
      y._node = { op: 'twin', inputs: [a, b], backward: (g) => { const t = ops.mul(g, 1); return [t, t]; } };
      return y;
    };
    ops.sum(ops.add(f(x, x), ops.mul(x, 3))).backward(); // x*3 is processed first, so x already has a grad
    close(await x.grad!.toArray(), [5, 5]);
  });
});
