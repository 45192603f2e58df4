// Optimizer updates over 1M parameters (memory-bound: GB/s of the bytes a step must move).
// AdamW reads p, g, exp_avg, exp_avg_sq and writes p, exp_avg, exp_avg_sq: 7 floats per parameter.
// The same 1M parameters as 1, 64 and 256 tensors show the per-dispatch cost (4 tensors per
// dispatch); the unfused row is the same AdamW update written with elementwise ops on one tensor.
import { ops, optim, keep, noGrad } from 'wgnn';
import { measure } from './lib.mjs';

const N = 1 << 20;

function params(dev, count) {
  const per = N / count;
  return Array.from({ length: count }, (_, i) => {
    const p = keep(dev.randn([per], { seed: i, requiresGrad: true }));
    p.grad = keep(dev.randn([per], { seed: 1000 + i }));
    return p;
  });
}

export default async function (dev) {
  const rows = [];
  for (const count of [1, 64, 256]) {
    const ps = params(dev, count);
    const opt = new optim.AdamW(ps, { lr: 1e-3, weightDecay: 0.01 });
    rows.push(await measure(dev, `AdamW 1M params as ${count} tensor${count > 1 ? 's' : ''} (${Math.ceil(count / 4)} dispatch${count > 4 ? 'es' : ''})`, () => opt.step(), { bytes: 7 * 4 * N }));
    opt.dispose();
    ps.forEach((p) => { p.grad.dispose(); p.dispose(); });
  }
  {
    // the unfused composite on one tensor: ~14 elementwise kernels and their temporaries
    const [p] = params(dev, 1);
    const m = keep(dev.zeros([N]));
    const v = keep(dev.zeros([N]));
    const [b1, b2, lr, eps, wd] = [0.9, 0.999, 1e-3, 1e-8, 0.01];
    let t = 0;
    const step = () => noGrad(() => {
      t++;
      const g = p.grad;
      m.copy_(ops.add(ops.affine(m, b1), ops.affine(g, 1 - b1)));
      v.copy_(ops.add(ops.affine(v, b2), ops.affine(ops.mul(g, g), 1 - b2)));
      const denom = ops.affine(ops.sqrt(v), 1 / Math.sqrt(1 - b2 ** t), eps);
      const upd = ops.div(m, denom);
      p.copy_(ops.sub(ops.affine(p, 1 - lr * wd), ops.affine(upd, lr / (1 - b1 ** t))));
    });
    rows.push(await measure(dev, 'AdamW 1M params, unfused elementwise ops (1 tensor)', step, { bytes: 7 * 4 * N }));
    [m, v, p.grad, p].forEach((x) => x.dispose());
  }
  {
    const ps = params(dev, 64);
    const opt = new optim.SGD(ps, { lr: 1e-2, momentum: 0.9, nesterov: true, weightDecay: 1e-4 });
    // reads p, g, buf; writes p, buf
    rows.push(await measure(dev, 'SGD nesterov 1M params as 64 tensors', () => opt.step(), { bytes: 5 * 4 * N }));
    // reads every gradient for the norm, then reads and writes it to scale: 3 floats per element
    rows.push(await measure(dev, 'clipGradNorm 1M grads as 64 tensors', () => { optim.clipGradNorm(ps, 1e-3); }, { bytes: 3 * 4 * N }));
    opt.dispose();
    ps.forEach((p) => { p.grad.dispose(); p.dispose(); });
  }
  return { title: 'Optimizers over 1M parameters (memory-bound: GB/s)', rows };
}
