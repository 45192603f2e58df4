// The kernel layer: dispatch by WGSL names, uniforms packed by member name, errors that name the
// file, entry point and binding, pipelines cached by (file, entry, overrides).
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { kernel, KernelError, type Device } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

const SRC = `
override WG: u32 = 64u;
override SCALE: f32 = 1.0;
struct Params { n: u32, alpha: f32, off: vec2<i32>, }
@group(0) @binding(0) var<storage, read> a: array<f32>;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<uniform> p: Params;
@compute @workgroup_size(WG)
fn axpb(@builtin(global_invocation_id) g: vec3<u32>) {
  if (g.x < p.n) { out[g.x] = a[g.x] * p.alpha * SCALE + f32(p.off.x + p.off.y); }
}
@compute @workgroup_size(1)
fn no_uniform(@builtin(global_invocation_id) g: vec3<u32>) { out[0] = a[0]; }
`;
const K = kernel('test_axpb.wgsl', SRC);

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('kernel layer', () => {
  it('dispatches by binding and member names, with overrides', async () => {
    const a = dev.tensor([1, 2, 3, 4, 5]);
    const out = dev.empty([5]);
    dev.dispatch(K, 'axpb', {
      bindings: { a, out },
      uniforms: { n: 5, alpha: 2, off: [10, -3] },
      overrides: { WG: 64, SCALE: 0.5 },
      workgroups: [1],
    });
    expect(Array.from(await out.toArray())).toEqual([8, 9, 10, 11, 12]);
  });

  it('caches pipelines by (file, entry, overrides)', async () => {
    const a = dev.tensor([1]);
    const out = dev.empty([1]);
    const before = (dev as unknown as { kernels: Map<unknown, { pipelines: Map<string, unknown> }> }).kernels.get(K)!.pipelines.size;
    for (let i = 0; i < 3; i++) dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, overrides: { WG: 64, SCALE: 0.5 }, workgroups: [1] });
    dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, overrides: { WG: 32, SCALE: 0.5 }, workgroups: [1] });
    const after = (dev as unknown as { kernels: Map<unknown, { pipelines: Map<string, unknown> }> }).kernels.get(K)!.pipelines.size;
    expect(after - before).toBe(1); // WG=64 was cached by the first test; WG=32 is new
    await dev.sync();
  });

  const base = () => ({ a: dev.tensor([1]), out: dev.empty([1]) });

  it('rejects a missing binding, naming file, entry and binding', () => {
    const { a } = base();
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, workgroups: [1] }))
      .toThrow(/test_axpb\.wgsl:axpb: missing storage binding 'out'/);
  });

  it('rejects an extra binding', () => {
    const { a, out } = base();
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out, b: a }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, workgroups: [1] }))
      .toThrow(/test_axpb\.wgsl:axpb: no storage binding 'b'/);
  });

  it('rejects a missing, extra or mistyped uniform member', () => {
    const { a, out } = base();
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1 }, workgroups: [1] }))
      .toThrow(/missing uniform 'p\.off'/);
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0, 0], beta: 2 }, workgroups: [1] }))
      .toThrow(/has no member 'beta'/);
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: -1, alpha: 1, off: [0, 0] }, workgroups: [1] }))
      .toThrow(/uniform 'n' is u32 but got -1/);
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0] }, workgroups: [1] }))
      .toThrow(/uniform 'off' wants 2 values, got 1/);
    expect(() => dev.dispatch(K, 'no_uniform', { bindings: { a, out }, uniforms: { n: 1 }, workgroups: [1] }))
      .toThrow(/takes no uniforms/);
  });

  it('rejects an unknown entry point or override', () => {
    const { a, out } = base();
    expect(() => dev.dispatch(K, 'nope', { bindings: { a, out }, workgroups: [1] })).toThrow(/test_axpb\.wgsl: no compute entry point 'nope'/);
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, overrides: { TILE: 4 }, workgroups: [1] }))
      .toThrow(KernelError);
  });

  it('rejects binding one written buffer twice', () => {
    const { out } = base();
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a: out, out }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, workgroups: [1] }))
      .toThrow(/written buffer is bound twice/);
  });

  it('rejects workgroup counts beyond maxComputeWorkgroupsPerDimension, naming the limit', () => {
    const { a, out } = base();
    expect(() => dev.dispatch(K, 'axpb', { bindings: { a, out }, uniforms: { n: 1, alpha: 1, off: [0, 0] }, workgroups: [dev.limits.maxComputeWorkgroupsPerDimension + 1] }))
      .toThrow(/maxComputeWorkgroupsPerDimension/);
  });

  it('surfaces a WGSL compile error as a KernelError naming the file and entry', async () => {
    const bad = kernel('broken.wgsl', `
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(1) fn oops() { out[0] = undefined_fn(1.0); }`);
    const out = dev.empty([1]);
    let err: unknown = null;
    try {
      dev.dispatch(bad, 'oops', { bindings: { out }, workgroups: [1] });
      await dev.sync();
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(KernelError);
    expect(String((err as Error).message)).toMatch(/broken\.wgsl:oops/);
  });
});
