// Matmul / linear throughput: GFLOP/s = 2·M·N·K per call / time. Cold = first call (pipeline
// creation and lavapipe's LLVM compile of the first dispatch), warm = Benchmark.js mean. The machine
// is shared (other jobs run tests), so each row also reports the best of a few timed calls
// (bestGflops), the least disturbed figure.
import { ops, tidy } from 'wgnn';
import { measure } from './lib.mjs';

async function best(dev, step, flops, reps = 5) {
  let t = Infinity;
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    tidy(() => { step(); });
    await dev.sync();
    t = Math.min(t, performance.now() - t0);
  }
  return { bestMs: t, bestGflops: flops / (t * 1e6) };
}

async function row(dev, name, step, flops) {
  const r = await measure(dev, name, step, { flops });
  return Object.assign(r, await best(dev, step, flops));
}

export default async function (dev) {
  const rows = [];
  for (const n of [256, 512, 1024]) {
    const a = dev.randn([n, n], { seed: 1 });
    const b = dev.randn([n, n], { seed: 2 });
    rows.push(await row(dev, `matmul ${n}x${n}x${n}`, () => ops.matmul(a, b), 2 * n ** 3));
  }
  {
    const a = dev.randn([8, 256, 64], { seed: 3 });
    const b = dev.randn([8, 64, 256], { seed: 4 });
    rows.push(await row(dev, 'batched 8x(256x64 · 64x256)', () => ops.matmul(a, b), 2 * 8 * 256 * 64 * 256));
  }
  {
    const x = dev.randn([4096, 256], { seed: 5 });
    const w = dev.randn([256, 256], { seed: 6, std: 0.06 });
    const bias = dev.randn([256], { seed: 7 });
    const flops = 2 * 4096 * 256 * 256;
    rows.push(await row(dev, 'linear [4096,256]·[256,256]ᵀ+b', () => ops.linear(x, w, bias), flops));
    // a training step of the same layer: forward + dx, dW, db (3 GEMMs and a column sum)
    const xg = dev.randn([4096, 256], { seed: 5, requiresGrad: true });
    const wg = dev.randn([256, 256], { seed: 6, std: 0.06, requiresGrad: true });
    const bg = dev.randn([256], { seed: 7, requiresGrad: true });
    rows.push(await row(dev, 'linear fwd+bwd (same shapes)', () => {
      const y = ops.linear(xg, wg, bg);
      y.backward(y);
      for (const t of [xg, wg, bg]) {
        t.grad.dispose();
        t.grad = null;
      }
    }, 3 * flops));
  }
  return { title: 'Matmul and linear (GFLOP/s)', rows };
}
