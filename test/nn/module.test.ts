// nn.Module: parameters found by walking fields, with PyTorch-style dotted names.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { nn, type Device } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

class Block extends nn.Module {
  fc1 = new nn.Linear(this.device, { inFeatures: 4, outFeatures: 8 });
  norm = new nn.LayerNorm(this.device, { normalizedShape: 8 });
  heads = [new nn.Linear(this.device, { inFeatures: 8, outFeatures: 2, bias: false }), new nn.Linear(this.device, { inFeatures: 8, outFeatures: 3 })];
}

describe('nn.Module', () => {
  it('names parameters like PyTorch', () => {
    const b = new Block(dev);
    expect(b.namedParameters().map(([n]) => n)).toEqual([
      'fc1.weight', 'fc1.bias', 'norm.weight', 'norm.bias', 'heads.0.weight', 'heads.1.weight', 'heads.1.bias',
    ]);
    expect(b.numParameters()).toBe(4 * 8 + 8 + 8 + 8 + 16 + 24 + 3);
    const seq = new nn.Sequential(dev, [new nn.Linear(dev, { inFeatures: 2, outFeatures: 2 }), new nn.ReLU(dev)]);
    expect(seq.namedParameters().map(([n]) => n)).toEqual(['0.weight', '0.bias']);
  });

  it('train()/eval() reach every submodule', () => {
    const b = new Block(dev);
    b.eval();
    expect(b.namedModules().every(([, m]) => !m.training)).toBe(true);
    b.train();
    expect(b.heads[1]!.training).toBe(true);
  });
});
