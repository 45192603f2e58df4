// Builds dist/: ESM bundles with every .wgsl embedded as text (the built package never reads
// kernels/ at run time, so it also works bundled in a browser), plus .d.ts from tsc.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { rmSync, copyFileSync, chmodSync, readFileSync } from 'node:fs';

rmSync('dist', { recursive: true, force: true });
const common = {
  bundle: true,
  format: 'esm',
  target: 'es2022',
  loader: { '.wgsl': 'text' },
  sourcemap: true,
  mainFields: ['module', 'main'],
  logLevel: 'warning',
};
// library: platform-neutral; 'webgpu' (Dawn) is only imported dynamically in Node
await build({ ...common, entryPoints: ['src/index.ts'], outfile: 'dist/index.js', platform: 'neutral', external: ['webgpu', 'node:*'] });
// CLI: Node only; it must import the library only through ../index.js (checked below), so both
// share one module instance
await build({
  ...common,
  entryPoints: ['src/cli/main.ts'],
  outfile: 'dist/cli.js',
  platform: 'node',
  packages: 'external',
  banner: { js: '#!/usr/bin/env node' },
  plugins: [{
    name: 'lib-external',
    setup(b) {
      b.onResolve({ filter: /^\.\.\/index\.js$/ }, () => ({ path: './index.js', external: true }));
    },
  }],
});
chmodSync('dist/cli.js', 0o755);
if (/class Tensor\b/.test(readFileSync('dist/cli.js', 'utf8'))) {
  throw new Error('dist/cli.js bundles library code: src/cli/* must import the library only from ../index.js');
}
execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
copyFileSync('src/wgsl.d.ts', 'dist/wgsl.d.ts');
console.log('built dist/');
