// A measured per-adapter profile that ops consult to choose between kernel layouts, instead of
// matching adapter names. Measured once per adapter per process when a device is created.
import src from '../../kernels/profile.wgsl';
import { kernel } from './kernel.js';
import type { Device } from './device.js';

export interface DeviceProfile {
  /**
   * true when workgroup cooperation (barriers, workgroup-memory trees and staging) costs more than
   * it saves: one invocation per row beat a 64-invocation tree on 2048 rows of 256. CPU adapters
   * (SIMD across invocations) measure true; GPUs false.
   */
  barrierBound: boolean;
  /** the two timings behind it, in ms (best of 3) */
  treeMs: number;
  loopMs: number;
}

const K = kernel('profile.wgsl', src);
const cache = new Map<string, DeviceProfile>();

export async function measureProfile(dev: Device): Promise<DeviceProfile> {
  const a = dev.adapterInfo;
  const key = `${a.vendor}|${a.architecture}|${a.device}|${a.description}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const rows = 2048;
  const cols = 256;
  const x = dev.zeros([rows, cols]);
  const y = dev.empty([rows]);
  const time = async (entry: 'rows_tree' | 'rows_loop'): Promise<number> => {
    const run = (): void =>
      dev.dispatch(K, entry, { bindings: { x, y }, uniforms: { rows, cols }, workgroups: entry === 'rows_tree' ? [rows] : [rows / 64] });
    run();
    await dev.sync(); // compile + warm
    let best = Infinity;
    for (let i = 0; i < 3; i++) {
      const t0 = performance.now();
      run();
      await dev.sync();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  };
  const treeMs = await time('rows_tree');
  const loopMs = await time('rows_loop');
  x.dispose();
  y.dispose();
  const p = { barrierBound: loopMs < treeMs, treeMs, loopMs };
  cache.set(key, p);
  return p;
}
