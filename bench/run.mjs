// npm run bench [-- name-filter]: runs every bench/*.bench.mjs against the built package.
// Each bench module default-exports async (dev) => ({ title, rows }).
import { readdirSync } from 'node:fs';
import { createDevice } from 'wgnn';
import { printTable } from './lib.mjs';

const filter = process.argv[2];
const dev = await createDevice();
console.log(`adapter: ${dev.adapterInfo.vendor} ${dev.adapterInfo.device} ${dev.adapterInfo.description}`.trim());
const files = readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.bench.mjs') && (!filter || f.includes(filter))).sort();
for (const f of files) {
  const mod = await import(new URL(f, import.meta.url).href);
  const { title, rows } = await mod.default(dev);
  printTable(title, rows);
}
dev.destroy();
