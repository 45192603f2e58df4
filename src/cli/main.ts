// wgnn command line (placeholder entry while the CLI is built; `info` works).
import { createDevice } from '../index.js';

async function info(): Promise<void> {
  const dev = await createDevice();
  console.log(JSON.stringify({ adapter: dev.adapterInfo, features: [...dev.features].sort() }, null, 2));
  dev.destroy();
}

const cmd = process.argv[2];
if (cmd === 'info') await info();
else {
  console.error('usage: wgnn info');
  process.exit(2);
}
