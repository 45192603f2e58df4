// Device creation, limits, bring-your-own device, device loss, destroy, and the executor's
// one-submit-per-flush behaviour.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { createDevice, DeviceLostError, DisposedError, LimitError, ShapeError, ops, type Device } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('device', () => {
  it('int32 tensors from nested arrays keep integers above 2^24 exactly', async () => {
    const t = dev.tensor([[16777217, -16777219], [2147483647, 0]], undefined, { dtype: 'int32' });
    const back = new Int32Array(await dev._read(t));
    expect(Array.from(back)).toEqual([16777217, -16777219, 2147483647, 0]);
  });

  it('reports the adapter and requests its real limits', () => {
    expect(typeof dev.adapterInfo.vendor).toBe('string');
    // the default limit is 8 storage buffers per stage and 16 KiB workgroup storage; lavapipe offers more
    expect(dev.limits.maxStorageBuffersPerShaderStage).toBeGreaterThanOrEqual(8);
    expect(dev.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
    expect(dev.limits.maxBufferSize).toBeGreaterThanOrEqual(268435456);
  });

  it('measures a profile once per adapter (ops pick layouts from it, not from adapter names)', async () => {
    expect(Number.isFinite(dev.profile.treeMs) && dev.profile.treeMs > 0).toBe(true);
    expect(Number.isFinite(dev.profile.loopMs) && dev.profile.loopMs > 0).toBe(true);
    expect(dev.profile.barrierBound).toBe(dev.profile.loopMs < dev.profile.treeMs);
    const again = await createDevice();
    expect(again.profile).toBe(dev.profile); // cached for this adapter
    again.destroy();
    const forced = await createDevice({ profile: { barrierBound: true, treeMs: 1, loopMs: 0 } });
    expect(forced.profile.barrierBound).toBe(true);
    forced.destroy();
  });

  it('wraps a caller-owned GPUDevice and leaves it alive on destroy()', async () => {
    const gpuDevice = dev.gpu;
    const d2 = await createDevice({ device: gpuDevice });
    const t = d2.tensor([1, 2, 3]);
    expect(Array.from(await ops.mul(t, 2).toArray())).toEqual([2, 4, 6]);
    d2.destroy();
    // the GPUDevice is still usable by its owner
    const t2 = dev.tensor([4]);
    expect(Array.from(await t2.toArray())).toEqual([4]);
  });

  it('zero-copy: fromGPUBuffer reads the caller buffer, gpuBuffer exposes ours', async () => {
    const buf = dev.gpu.createBuffer({ size: 16, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST });
    dev.gpu.queue.writeBuffer(buf, 0, new Float32Array([1, 2, 3, 4]));
    const t = dev.fromGPUBuffer(buf, [2, 2]);
    const y = ops.add(t, 1);
    expect(Array.from(await y.toArray())).toEqual([2, 3, 4, 5]);
    expect(y.gpuBuffer).toBeInstanceOf(GPUBuffer);
    t.dispose();
    // disposing the wrapper never destroys the caller's buffer
    expect(buf.size).toBe(16);
    const again = dev.fromGPUBuffer(buf, [4]);
    expect(Array.from(await again.toArray())).toEqual([1, 2, 3, 4]);
    expect(() => dev.fromGPUBuffer(buf, [5])).toThrow(/fromGPUBuffer: buffer has 16 bytes, shape \[5\] needs 20/);
    buf.destroy();
  });

  it('one flush encodes every recorded op into a single submit', async () => {
    const x = dev.tensor([1, 2, 3]);
    await dev.sync();
    const before = { ...dev.exec.stats };
    let y = x;
    for (let i = 0; i < 20; i++) y = ops.add(y, 1);
    await y.toArray();
    expect(dev.exec.stats.submits - before.submits).toBe(1);
    expect(dev.exec.stats.dispatches - before.dispatches).toBe(20);
  });

  it('uploads stay ordered after pending commands that read the same buffer', async () => {
    // a buffer freed while a pending dispatch still reads it is reused by the next upload: the
    // upload must not overtake the pending read (queue.writeBuffer would)
    const a = dev.tensor([1, 1, 1, 1]);
    const b = ops.add(a, 1); // pending: reads a
    const bufA = a.gpuBuffer;
    a.dispose();
    const c = dev.tensor([7, 7, 7, 7]);
    expect(c.gpuBuffer).toBe(bufA); // the hazard this test is about: c reuses a's buffer (LIFO pool)
    expect(Array.from(await b.toArray())).toEqual([2, 2, 2, 2]);
    expect(Array.from(await c.toArray())).toEqual([7, 7, 7, 7]);
  });

  it('rejects tensors larger than maxStorageBufferBindingSize, naming the limit', () => {
    const n = Math.floor(dev.limits.maxStorageBufferBindingSize / 4) + 1;
    expect(() => dev.empty([n])).toThrow(LimitError);
    expect(() => dev.empty([n])).toThrow(/maxStorageBufferBindingSize/);
  });

  it('throws DisposedError for a disposed tensor before any GPU work', () => {
    const t = dev.tensor([1, 2]);
    t.dispose();
    expect(() => ops.exp(t)).toThrow(DisposedError);
    expect(() => ops.exp(t)).toThrow(/used after dispose/);
  });

  it('rejects mixing tensors of two devices', async () => {
    const other = await createDevice();
    const a = dev.tensor([1, 2]);
    const b = other.tensor([1, 2]);
    expect(() => ops.add(a, b)).toThrow(ShapeError);
    expect(() => ops.add(a, b)).toThrow(/add: a \[2\] and b \[2\] live on different devices/);
    other.destroy();
  });

  it('every op with several tensor arguments names both when they come from two devices', async () => {
    const o = await createDevice();
    const z = (d: typeof dev, shape: number[]) => d.zeros(shape);
    const i32 = (d: typeof dev, v: number[]) => d.tensor(v, [v.length], { dtype: 'int32' });
    const q = z(dev, [1, 1, 3, 4]);
    const wq = z(dev, [1, 7, 7, 1, 4]);
    const x2 = z(dev, [2, 3]);
    const h = z(dev, [2, 5]);
    const w4 = z(dev, [20, 3]);
    const w4h = z(dev, [20, 5]);
    const cases: [string, () => unknown, string[]][] = [
      ['scaledDotProductAttention', () => ops.scaledDotProductAttention(q, z(o, [1, 1, 3, 4]), q), ['q [1, 1, 3, 4]', 'k [1, 1, 3, 4]']],
      ['scaledDotProductAttention', () => ops.scaledDotProductAttention(q, q, q, { mask: o.ones([3, 3]) }), ['mask [3, 3]']],
      ['scaledDotProductAttention', () => ops.scaledDotProductAttention(q, q, q, { keyLengths: i32(o, [2]) }), ['keyLengths [1]']],
      ['windowAttention', () => ops.windowAttention(wq, wq, z(o, [1, 7, 7, 1, 4]), { windowSize: 7 }), ['v [1, 7, 7, 1, 4]']],
      ['windowAttention', () => ops.windowAttention(wq, wq, wq, { windowSize: 7, relativePositionBias: z(o, [169, 1]) }), ['relativePositionBias [169, 1]']],
      ['conv2d', () => ops.conv2d(z(dev, [1, 1, 4, 4]), z(o, [2, 1, 3, 3])), ['x [1, 1, 4, 4]', 'weight [2, 1, 3, 3]']],
      ['conv2d', () => ops.conv2d(z(dev, [1, 1, 4, 4]), z(dev, [2, 1, 3, 3]), z(o, [2])), ['bias [2]']],
      ['layerNorm', () => ops.layerNorm(x2, 3, z(o, [3])), ['x [2, 3]', 'weight [3]']],
      ['linear', () => ops.linear(x2, z(o, [4, 3])), ['x [2, 3]', 'weight [4, 3]']],
      ['lstmCell', () => ops.lstmCell(x2, h, z(o, [2, 5]), w4, w4h), ['c [2, 5]']],
      ['embedding', () => ops.embedding(i32(o, [0, 1]), z(dev, [4, 3])), ['weight [4, 3]', 'indices [2]']],
      ['crossEntropy', () => ops.crossEntropy(x2, i32(o, [0, 1])), ['logits [2, 3]', 'targets [2]']],
    ];
    for (const [op, call, parts] of cases) {
      let err: unknown = null;
      try {
        call();
      } catch (e) {
        err = e;
      }
      expect(err, `${op} ${parts.join(', ')}`).toBeInstanceOf(ShapeError);
      for (const part of [`${op}:`, ...parts, 'different devices']) expect((err as Error).message).toContain(part);
    }
    o.destroy();
  });

  it('device loss becomes a DeviceLostError on the next call, never a hang', async () => {
    const d = await createDevice();
    const t = d.tensor([1, 2, 3]);
    const pending = ops.exp(t).toArray();
    d.gpu.destroy(); // what a driver reset looks like to us
    await d.gpu.lost;
    await expect(pending).rejects.toBeInstanceOf(DeviceLostError);
    expect(() => d.tensor([1])).toThrow(DeviceLostError);
    expect(() => ops.exp(t)).toThrow(DeviceLostError);
    d.destroy();
  });

  it('after destroy(), Node exits on its own', async () => {
    // runs the built package: npm test builds dist/ first
    expect(existsSync('dist/index.js'), 'dist/index.js is missing: run `npm run build`').toBe(true);
    const script = `
      import { createDevice, ops } from 'wgnn';
      const dev = await createDevice();
      const y = ops.exp(dev.tensor([0, 1]));
      console.log(Array.from(await y.toArray()).map((v) => v.toFixed(3)).join(','));
      dev.destroy();`;
    const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', script], { timeout: 30_000 });
    expect(stdout.trim()).toBe('1.000,2.718');
  });
});
