// gpuWait: while a GPU promise is pending, Dawn's native re-polls go through timers after a short
// spin (so a CPU adapter keeps its cores), JavaScript callbacks are untouched, and the global
// setImmediate is restored once no wait is pending.
import { describe, expect, it } from 'vitest';
import { gpuWait } from '../../src/gpu/wait.js';
import { ops } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

type Handle = { constructor: { name: string } };
const immediate = (fn: () => void): Handle => (globalThis.setImmediate as unknown as (f: () => void) => Handle)(fn);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

describe('gpuWait', () => {
  it('defers native re-polls to timers only during a pending wait, and restores setImmediate', async () => {
    const original = globalThis.setImmediate;
    let release!: () => void;
    let inner!: () => void;
    const outer = gpuWait(() => new Promise<void>((r) => (release = r)));
    const nested = gpuWait(() => new Promise<void>((r) => (inner = r)));
    expect(globalThis.setImmediate).not.toBe(original);
    await sleep(5); // past the initial spin
    // a bound function stringifies as native code, like the bindings' poll callback
    const native = (() => undefined).bind(null);
    let ran = 0;
    const h1 = immediate(() => { ran++; });
    const h2 = immediate(native);
    expect(h1.constructor.name).toBe('Immediate');
    expect(h2.constructor.name).toBe('Timeout');
    inner();
    await nested;
    expect(globalThis.setImmediate).not.toBe(original); // the outer wait is still pending
    release();
    await outer;
    expect(globalThis.setImmediate).toBe(original);
    expect(immediate(native).constructor.name).toBe('Immediate');
    await sleep(2);
    expect(ran).toBe(1);
  });

  it('a rejected GPU promise still restores setImmediate and passes the error on', async () => {
    const original = globalThis.setImmediate;
    await expect(gpuWait(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(globalThis.setImmediate).toBe(original);
  });

  it('device syncs and reads leave the global untouched afterwards', async () => {
    const original = globalThis.setImmediate;
    const dev = await makeDevice();
    const x = dev.randn([256, 256], { seed: 1 });
    await dev.sync();
    expect((await ops.add(x, x).toArray()).length).toBe(256 * 256);
    expect(globalThis.setImmediate).toBe(original);
    dev.destroy();
  });
});
