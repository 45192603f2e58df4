import { createDevice } from '../index.js';

/** Prints the adapter, features and limits; returns the exit code. */
export async function info(opts: { json?: boolean }): Promise<number> {
  let dev;
  try {
    dev = await createDevice();
  } catch (e) {
    console.error(`wgnn info: ${(e as Error).message}`);
    console.error('Without a GPU, install a software adapter: `npm run setup` (Debian: Mesa lavapipe from bookworm-backports).');
    return 1;
  }
  const limits: Record<string, number> = {};
  for (const k in dev.limits) {
    const v = (dev.limits as unknown as Record<string, unknown>)[k];
    if (typeof v === 'number') limits[k] = v;
  }
  const report = { adapter: dev.adapterInfo, features: [...dev.features].sort(), limits };
  if (opts.json) console.log(JSON.stringify(report, null, 2));
  else {
    const a = dev.adapterInfo;
    console.log(`adapter:  ${[a.vendor, a.architecture, a.device].filter(Boolean).join(' / ')}`);
    if (a.description) console.log(`          ${a.description}`);
    console.log(`features: ${report.features.join(', ')}`);
    console.log('limits:');
    for (const [k, v] of Object.entries(limits)) console.log(`  ${k.padEnd(44)} ${v}`);
  }
  dev.destroy();
  return 0;
}
