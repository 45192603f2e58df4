// softmax and layerNorm on [4096, 256]: forward, and forward + backward, as GB/s of the minimum
// memory traffic of the fused kernels (each tensor read or written once per kernel).
import { ops } from 'wgnn';
import { measure } from './lib.mjs';

export default async function (dev) {
  const rows = [];
  const [N, C] = [4096, 256];
  const n = N * C;
  const x = dev.randn([N, C], { seed: 1 });
  const g = dev.randn([N, C], { seed: 2 });
  const xg = dev.randn([N, C], { seed: 3, requiresGrad: true });
  const w = dev.randn([C], { seed: 4, requiresGrad: true });
  const b = dev.randn([C], { seed: 5, requiresGrad: true });
  const clearGrads = () => {
    for (const t of [xg, w, b]) {
      t.grad?.dispose();
      t.grad = null;
    }
  };

  // forward: read x, write y
  rows.push(await measure(dev, `softmax fwd [${N},${C}]`, () => ops.softmax(x, -1), { bytes: 8 * n }));
  // + backward: read y and g, write gx (grads cleared each step, so no accumulation kernel runs)
  rows.push(await measure(dev, `softmax fwd+bwd [${N},${C}]`, () => {
    clearGrads();
    ops.softmax(xg, -1).backward(g);
  }, { bytes: 8 * n + 12 * n }));
  rows.push(await measure(dev, `softmax fwd [${N},${C}] dim 0`, () => ops.softmax(x, 0), { bytes: 8 * n }));
  // forward: read x, write y (+ mean/rstd, w, b: < 1%)
  rows.push(await measure(dev, `layerNorm fwd [${N},${C}] w,b`, () => ops.layerNorm(x, C, w, b), { bytes: 8 * n + 8 * N + 8 * C }));
  // + backward: dx reads x and g, writes gx; dw/db reads x and g again
  rows.push(await measure(dev, `layerNorm fwd+bwd [${N},${C}] w,b`, () => {
    clearGrads();
    ops.layerNorm(xg, C, w, b).backward(g);
  }, { bytes: 8 * n + 12 * n + 8 * n + 16 * N + 16 * C }));
  clearGrads();
  return { title: 'softmax / layerNorm (memory-bound: GB/s of the fused kernels\' minimum traffic)', rows };
}
