// The benchmark suite: every bench/*.bench.mjs against the built package. Each bench module
// default-exports async (dev) => ({ title, rows }).
//   node bench/run.mjs [name-filter]   (npm run bench [-- filter])
//   wgnn bench [filter] [--json]       (dist/cli.js imports runBenchmarks from here)
import { readdirSync, readFileSync, realpathSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { fileURLToPath } from 'node:url';
import { createDevice } from 'wgnn';
import { printTable, setMaxTime } from './lib.mjs';

/** The bench files whose name contains `filter` (all without one), sorted. */
export function benchFiles(filter) {
  return readdirSync(new URL('.', import.meta.url)).filter((f) => f.endsWith('.bench.mjs') && (!filter || f.includes(filter))).sort();
}

/**
 * Packages a bench module imports (statically or with import()) that do not resolve from here,
 * e.g. peer_tfjs.bench.mjs's @tensorflow/* devDependencies in an installed wgnn.
 */
export function missingPackages(source) {
  if (typeof import.meta.resolve !== 'function') return []; // Node < 20.6: let the import itself fail
  const specs = new Set();
  for (const re of [/\bfrom\s*['"]([^'"]+)['"]/g, /\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g, /\bimport\s+['"]([^'"]+)['"]/g]) {
    for (const m of source.matchAll(re)) specs.add(m[1]);
  }
  return [...specs].filter((s) => {
    if (s.startsWith('.') || s.startsWith('/') || s.startsWith('node:') || isBuiltin(s)) return false;
    try {
      import.meta.resolve(s);
      return false;
    } catch {
      return true;
    }
  });
}

/**
 * Runs the bench files matching `filter` on a fresh device. `log` gets progress lines and skip
 * notes; `onTable` each finished table (default: printed as markdown). `maxTime` caps
 * Benchmark.js's seconds per measurement. Returns { adapter, tables: [{ file, title, rows }],
 * skipped: [{ file, missing }] }.
 */
export async function runBenchmarks({ filter, log = console.log, onTable = (t) => printTable(t.title, t.rows), maxTime } = {}) {
  const files = benchFiles(filter);
  if (!files.length) throw new Error(`no bench file matches '${filter}' (available: ${benchFiles().join(', ')})`);
  setMaxTime(maxTime);
  const dev = await createDevice();
  const a = dev.adapterInfo;
  log(`adapter: ${a.vendor} ${a.device} ${a.description}`.trim());
  const tables = [];
  const skipped = [];
  try {
    for (const file of files) {
      const url = new URL(file, import.meta.url);
      const missing = missingPackages(readFileSync(url, 'utf8'));
      if (missing.length) {
        log(`skipping ${file}: needs ${missing.join(', ')} (not installed; they are wgnn's devDependencies)`);
        skipped.push({ file, missing });
        continue;
      }
      const mod = await import(url.href);
      const { title, rows } = await mod.default(dev);
      const table = { file, title, rows };
      tables.push(table);
      onTable(table);
    }
  } finally {
    setMaxTime(undefined);
    dev.destroy();
  }
  return { adapter: a, tables, skipped };
}

const isMain = process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url));
if (isMain) {
  try {
    await runBenchmarks({ filter: process.argv[2] });
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    process.exitCode = 1;
  }
}
