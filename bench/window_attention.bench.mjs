// Swin stage window attention: fused ops.windowAttention vs the composite oracle from core ops
// (test/composites/window_composite.ts: roll -> partition -> matmul/bias/mask/softmax/matmul ->
// merge -> roll back), forward and forward+backward, W-MSA (shift 0) and SW-MSA (shift 3).
// Shape: Swin-T stage 2 at 224px: B=8, 28x28 tokens, C=96 as 3 heads x D=32, M=7 (16 windows/image).
// GFLOP/s counts the attention matmuls only: forward 4*N^2*D per (image, window, head) (QK^T and PV),
// backward 8*N^2*D (dV, dP, dQ, dK), so forward+backward is 3x forward; the fused backward's logit
// recomputation is not counted. peakMB: dev.memory().peakBytes after dev.resetPeak(), over the timed
// runs, including what is live throughout (two sets of q, k, v, table and the upstream grad: 16.9 MB);
// stepMB: the same peak minus those bytes, i.e. what one step allocates at most (activations, saved
// tensors, temporaries, the gradients it returns).
import { ops } from 'wgnn';
import { transform } from 'esbuild';
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { measure } from './lib.mjs';

/** The composite is TypeScript with type-only imports: strip the types and load it. */
async function loadComposite() {
  const src = readFileSync(new URL('../test/composites/window_composite.ts', import.meta.url), 'utf8');
  const { code } = await transform(src, { loader: 'ts', format: 'esm' });
  const dir = mkdtempSync(join(tmpdir(), 'wgnn-bench-'));
  const file = join(dir, 'window_composite.mjs');
  writeFileSync(file, code);
  try {
    return await import(pathToFileURL(file).href);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export default async function (dev) {
  const { windowAttentionComposite } = await loadComposite();
  const B = 8, H = 28, W = 28, heads = 3, D = 32, M = 7;
  const N = M * M;
  const nWin = (H / M) * (W / M);
  const fwdFlops = B * nWin * heads * 4 * N * N * D;
  const shape = [B, H, W, heads, D];
  const mk = (seed, requiresGrad) => dev.randn(shape, { seed, requiresGrad });
  const mkTable = (requiresGrad) => dev.randn([(2 * M - 1) ** 2, heads], { seed: 9, std: 0.02, requiresGrad });
  const inputs = { q: mk(1, false), k: mk(2, false), v: mk(3, false), t: mkTable(false) };
  const leaves = { q: mk(1, true), k: mk(2, true), v: mk(3, true), t: mkTable(true) };
  const G = dev.randn(shape, { seed: 4 });
  const impls = {
    fused: (q, k, v, o) => ops.windowAttention(q, k, v, o),
    composite: (q, k, v, o) => windowAttentionComposite(ops, q, k, v, o),
  };
  const rows = [];
  for (const shift of [0, 3]) {
    const warm = {};
    for (const pass of ['fwd', 'fwd+bwd']) {
      for (const [impl, fn] of Object.entries(impls)) {
        const x = pass === 'fwd' ? inputs : leaves;
        const opts = { windowSize: M, shift, relativePositionBias: x.t };
        const step = pass === 'fwd'
          ? () => fn(x.q, x.k, x.v, opts)
          : () => {
            for (const l of Object.values(leaves)) { l.grad?.dispose(); l.grad = null; }
            fn(x.q, x.k, x.v, opts).backward(G);
          };
        for (const l of Object.values(leaves)) { l.grad?.dispose(); l.grad = null; }
        await dev.sync();
        dev.resetPeak();
        const baseBytes = dev.memory().liveBytes;
        const row = await measure(dev, `${impl} ${pass} shift ${shift}`, step, { flops: pass === 'fwd' ? fwdFlops : 3 * fwdFlops });
        row.peakMB = dev.memory().peakBytes / 1e6;
        row.stepMB = (dev.memory().peakBytes - baseBytes) / 1e6;
        warm[`${impl} ${pass}`] = row.warmMs;
        if (impl === 'composite') row.fusedSpeedup = `${(row.warmMs / warm[`fused ${pass}`]).toFixed(2)}x`;
        rows.push(row);
      }
    }
  }
  for (const l of Object.values(leaves)) { l.grad?.dispose(); l.dispose(); }
  for (const t of Object.values(inputs)) t.dispose();
  G.dispose();
  return { title: `Swin window attention, B=${B}, ${H}x${W} tokens, ${heads} heads x D=${D}, M=${M} (fused vs composite)`, rows };
}
