// Memory: the pool reuses buffers, dispose() returns them, tidy() frees a step's activations, and a
// 300-step training loop keeps live tensors and bytes flat after its first steps.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { nn, noGrad, ops, tidy, type Device, type Tensor } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('memory', () => {
  it('tidy disposes what fn created when fn throws, and rethrows', () => {
    const before = dev.memory().liveTensors;
    const kept = dev.zeros([3]);
    expect(() => tidy(() => {
      ops.add(kept, 1);
      ops.exp(kept);
      throw new Error('boom');
    })).toThrow('boom');
    expect(dev.memory().liveTensors).toBe(before + 1);
    expect(kept.disposed).toBe(false);
    kept.dispose();
  });

  it('dispose() returns buffers to the pool and the pool reuses them', () => {
    const before = dev.memory();
    const a = dev.zeros([1000]);
    expect(dev.memory().liveTensors).toBe(before.liveTensors + 1);
    expect(dev.memory().liveBytes).toBe(before.liveBytes + 4000);
    a.dispose();
    expect(dev.memory().liveTensors).toBe(before.liveTensors);
    const allocated = dev.memory().allocatedBytes;
    const b = dev.zeros([1000]);
    expect(dev.memory().allocatedBytes).toBe(allocated); // same size class: reused
    b.dispose();
  });

  it('tidy() disposes what the step created except what it returns', () => {
    const x = dev.tensor([1, 2, 3]);
    const before = dev.memory().liveTensors;
    const kept = tidy(() => {
      const a = ops.exp(x);
      const b = ops.mul(a, 2);
      return ops.add(b, 1);
    });
    expect(dev.memory().liveTensors).toBe(before + 1);
    expect(kept.disposed).toBe(false);
    // dispose explicitly: tensors left to the garbage collector would be finalized at a random
    // later time and change the counts the next test compares
    kept.dispose();
    x.dispose();
  });

  it('a 300-step MLP training loop does not leak', async () => {
    const l1 = new nn.Linear(dev, { inFeatures: 8, outFeatures: 16, seed: 1 });
    const l2 = new nn.Linear(dev, { inFeatures: 16, outFeatures: 4, seed: 2 });
    const params = [...l1.parameters(), ...l2.parameters()];
    const x = dev.randn([32, 8], { seed: 3 });
    const y = dev.randn([32, 4], { seed: 4 });
    const lr = 0.05;
    const losses: number[] = [];
    let snapshot: ReturnType<Device['memory']> | null = null;
    for (let step = 0; step < 300; step++) {
      const loss: Tensor = tidy(() => {
        const h = ops.relu(l1.forward(x));
        const d = ops.sub(l2.forward(h), y);
        const l = ops.mean(ops.mul(d, d));
        l.backward();
        noGrad(() => {
          for (const p of params) {
            p.copy_(ops.sub(p, ops.mul(p.grad!, lr)));
            p.grad!.dispose();
            p.grad = null;
          }
        });
        return l;
      });
      if (step % 50 === 0 || step === 299) losses.push(await loss.item());
      loss.dispose();
      if (step === 10) {
        await dev.sync();
        snapshot = dev.memory();
      }
    }
    await dev.sync();
    const end = dev.memory();
    expect(end.liveTensors).toBe(snapshot!.liveTensors);
    expect(end.liveBytes).toBe(snapshot!.liveBytes);
    expect(end.allocatedBytes).toBe(snapshot!.allocatedBytes);
    // and it trained: the loss went down
    expect(losses[losses.length - 1]!).toBeLessThan(losses[0]! * 0.8);
  });
});
