import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { ops, ShapeError, type Device } from '../../src/index.js';
import { maskToAdditiveRef } from '../../src/ops/mask.js';
import { makeDevice, arr } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('maskToAdditive', () => {
  it('maps bool masks to 0 / -inf, optionally inverted (PyTorch MHA semantics), over 1000+ elements', async () => {
    const n = 1031;
    const bits = Uint8Array.from({ length: n }, (_, i) => (i * 7919) % 3 === 0 ? 1 : 0);
    for (const invert of [false, true]) {
      const got = await ops.maskToAdditive(dev.tensor(bits, [n]), { invert }).toArray();
      const want = maskToAdditiveRef(arr([n], bits), invert);
      expect(Array.from(got)).toEqual(Array.from(want.data)); // exact: only 0 and -inf
    }
  });
  it('rejects non-bool masks', () => {
    expect(() => ops.maskToAdditive(dev.zeros([2]))).toThrow(ShapeError);
    expect(() => ops.maskToAdditive(dev.zeros([2]))).toThrow(/maskToAdditive: mask must be a bool tensor, got float32 \[2\]/);
  });
});
