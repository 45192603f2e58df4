import { ops } from 'wgnn';
import { measure } from './lib.mjs';

export default async function (dev) {
  const rows = [];
  const n = 1 << 22;
  const a = dev.randn([n]);
  const b = dev.randn([n]);
  rows.push(await measure(dev, `add [${n}]`, () => ops.add(a, b), { bytes: 3 * 4 * n }));
  rows.push(await measure(dev, `gelu [${n}]`, () => ops.gelu(a), { bytes: 2 * 4 * n }));
  const m = dev.randn([4096, 256]);
  rows.push(await measure(dev, 'sum [4096,256] dim -1', () => ops.sum(m, -1), { bytes: 4 * 4096 * 256 }));
  rows.push(await measure(dev, 'sum [4096,256] dim 0', () => ops.sum(m, 0), { bytes: 4 * 4096 * 256 }));
  return { title: 'Elementwise and reductions (memory-bound: GB/s)', rows };
}
