// Fused scaled-dot-product attention vs the composite a user would write with core ops
// (matmul(q, kᵀ) · scale + mask → softmax → matmul(·, v)), forward and forward+backward.
// FLOPs are the useful ones of the two forward matmuls, 4·B·H·Nq·Nk·D (halved when causal), and
// 2.5x that for backward (5 matmul-sized products), for both implementations, so GFLOP/s compare
// speed. Peak memory: dev.memory().peakBytes after dev.resetPeak() around one step (inputs, outputs
// and gradients included); the composite holds several B·H·N² buffers, the fused op none.
import { ops, noGrad, tidy } from 'wgnn';
import { measure } from './lib.mjs';

function composite(dev, q, k, v, addMask) {
  const s = ops.mul(ops.matmul(q, ops.transpose(k, -2, -1)), 1 / Math.sqrt(q.shape[3]));
  const p = ops.softmax(addMask ? ops.add(s, addMask) : s, -1);
  return ops.matmul(p, v);
}

function causalMask(dev, n) {
  const m = new Float32Array(n * n);
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) m[i * n + j] = -1e30;
  return dev.tensor(m, [n, n]);
}

async function peak(dev, step) {
  await dev.sync();
  dev.resetPeak();
  tidy(() => { step(); });
  await dev.sync();
  return dev.memory().peakBytes;
}

export default async function (dev) {
  const rows = [];
  const configs = [
    { B: 8, H: 4, N: 256, D: 32, causal: true },
    { B: 2, H: 4, N: 1024, D: 64, causal: false },
  ];
  for (const { B, H, N, D, causal } of configs) {
    const shape = [B, H, N, D];
    const q = dev.randn(shape, { seed: 1, requiresGrad: true });
    const k = dev.randn(shape, { seed: 2, requiresGrad: true });
    const v = dev.randn(shape, { seed: 3, requiresGrad: true });
    const g = dev.randn(shape, { seed: 4 });
    const mask = causal ? causalMask(dev, N) : null;
    const fwdFlops = 4 * B * H * N * N * D * (causal ? 0.5 : 1);
    const clearGrads = () => {
      for (const t of [q, k, v]) {
        t.grad?.dispose();
        t.grad = null;
      }
    };
    const impls = {
      fused: () => ops.scaledDotProductAttention(q, k, v, { isCausal: causal }),
      composite: () => composite(dev, q, k, v, mask),
    };
    const tag = `B=${B} H=${H} N=${N} D=${D}${causal ? ' causal' : ''}`;
    const got = {};
    for (const [impl, run] of Object.entries(impls)) {
      const fwd = () => noGrad(run); // inference: no autodiff graph, nothing saved for backward
      const both = () => {
        run().backward(g);
        clearGrads();
      };
      const fwdPeak = await peak(dev, fwd);
      const fwdRow = await measure(dev, `${impl} fwd ${tag}`, fwd, { flops: fwdFlops }, { extra: { peakMB: fwdPeak / 2 ** 20 } });
      const bothPeak = await peak(dev, both);
      const bothRow = await measure(dev, `${impl} fwd+bwd ${tag}`, both, { flops: 3.5 * fwdFlops }, { extra: { peakMB: bothPeak / 2 ** 20 } });
      got[impl] = [fwdRow, bothRow];
      rows.push(fwdRow, bothRow);
    }
    for (let i = 0; i < 2; i++) got.fused[i].speedup = got.composite[i].warmMs / got.fused[i].warmMs;
    for (const t of [q, k, v, g, mask]) t?.dispose();
  }
  return { title: 'Scaled-dot-product attention: fused (flash) vs composite (matmul/softmax); speedup = composite ms / fused ms', rows };
}
