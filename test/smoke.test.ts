import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { createDevice, type Device, ops } from '../src/index.js';

let dev: Device;
beforeAll(async () => { dev = await createDevice(); });
afterAll(() => dev.destroy());

describe('smoke', () => {
  it('add, exp, sum with backward', async () => {
    const a = dev.tensor([[1, 2, 3], [4, 5, 6]], undefined, { requiresGrad: true });
    const b = dev.tensor([10, 20, 30], undefined, { requiresGrad: true });
    const c = ops.add(a, b);
    expect(Array.from(await c.toArray())).toEqual([11, 22, 33, 14, 25, 36]);
    const s = ops.sum(ops.mul(c, c));
    s.backward();
    expect(Array.from(await a.grad!.toArray())).toEqual([22, 44, 66, 28, 50, 72]);
    expect(Array.from(await b.grad!.toArray())).toEqual([50, 94, 138]);
    const m = ops.max(a, 1);
    expect(Array.from(await m.toArray())).toEqual([3, 6]);
    const p = ops.permute(a, [1, 0]);
    expect(Array.from(await p.toArray())).toEqual([1, 4, 2, 5, 3, 6]);
  });
});
