// dev.startTrace / dev.stopTrace: GPU time per dispatch from timestamp queries, aggregated per kernel.
// Timings are only checked for being finite and non-negative (tests never assert speed).
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { ops, tidy, WgnnError, type Device } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('kernel trace', () => {
  it('times every dispatch of a training-like step and aggregates them per kernel', async () => {
    if (!dev.features.has('timestamp-query')) {
      expect(() => dev.startTrace()).toThrow(/timestamp-query/);
      return;
    }
    const x = dev.randn([100, 64], { seed: 1, requiresGrad: true });
    const w = dev.randn([48, 64], { seed: 2, requiresGrad: true });
    await dev.sync();
    const before = dev.exec.stats.dispatches;
    dev.startTrace();
    tidy(() => {
      const y = ops.softmax(ops.linear(x, w), -1);
      ops.sum(ops.mul(y, y)).backward();
    });
    const trace = await dev.stopTrace();
    const n = dev.exec.stats.dispatches - before;
    expect(trace.dispatches.length).toBe(n);
    expect(n).toBeGreaterThan(3);
    for (const d of trace.dispatches) {
      expect(Number.isFinite(d.ms) && d.ms >= 0, `${d.kernel}: ${d.ms}`).toBe(true);
      expect(d.workgroups.every((g) => Number.isInteger(g) && g >= 1)).toBe(true);
    }
    const names = trace.kernels.map((k) => k.kernel);
    expect(names.some((k) => k.startsWith('matmul.wgsl:'))).toBe(true);
    expect(names.some((k) => k.startsWith('softmax.wgsl:'))).toBe(true);
    expect(trace.kernels.reduce((s, k) => s + k.calls, 0)).toBe(n);
    expect(trace.kernels.reduce((s, k) => s + k.totalMs, 0)).toBeCloseTo(trace.totalMs, 6);
    for (let i = 1; i < trace.kernels.length; i++) expect(trace.kernels[i - 1]!.totalMs).toBeGreaterThanOrEqual(trace.kernels[i]!.totalMs);
    // after stopTrace, dispatches share passes again and are not recorded
    tidy(() => { ops.exp(x); });
    await dev.sync();
    x.grad?.dispose();
    w.grad?.dispose();
  });

  it('spans several flushes and more dispatches than one query set holds', async () => {
    if (!dev.features.has('timestamp-query')) return;
    const a = dev.randn([256], { seed: 3 });
    dev.startTrace();
    for (const count of [2100, 100]) { // the first flush needs two query sets
      tidy(() => {
        let t = a;
        for (let i = 0; i < count; i++) t = ops.affine(t, 1.0001);
      });
      await dev.flush();
    }
    const trace = await dev.stopTrace();
    expect(trace.dispatches.length).toBe(2200);
    expect(trace.dispatches.every((d) => Number.isFinite(d.ms) && d.ms >= 0)).toBe(true);
    expect(trace.kernels[0]!.calls).toBe(2200);
  });

  it('rejects a second startTrace and a stopTrace without one', async () => {
    if (!dev.features.has('timestamp-query')) return;
    dev.startTrace();
    expect(() => dev.startTrace()).toThrow(WgnnError);
    expect(() => dev.startTrace()).toThrow(/already running/);
    await dev.stopTrace();
    await expect(dev.stopTrace()).rejects.toThrow(/no trace is running/);
  });
});
