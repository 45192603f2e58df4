// Benchmark helpers shared by bench/*.bench.mjs. Cold = the first call, including pipeline
// compilation; warm = Benchmark.js statistics over repeated calls once pipelines are cached.
// Every timed call ends with dev.sync() so the GPU work is inside the measurement.
import Benchmark from 'benchmark';

let maxTimeCap = Infinity;
/** Caps Benchmark.js's seconds per measurement (undefined: no cap); `wgnn bench --max-time`. */
export function setMaxTime(seconds) {
  maxTimeCap = seconds ?? Infinity;
}

/**
 * Times `step` (which records GPU work; we flush and wait) and returns a result row.
 * work: { flops } for GFLOP/s and/or { bytes } for GB/s (per call).
 */
export async function measure(dev, name, step, work = {}, opts = {}) {
  const t0 = performance.now();
  await runOnce(dev, step);
  const cold = performance.now() - t0;
  const bench = new Benchmark(name, {
    defer: true,
    minSamples: opts.minSamples ?? 5,
    maxTime: Math.min(opts.maxTime ?? 3, maxTimeCap),
    fn(deferred) {
      runOnce(dev, step).then(() => deferred.resolve(), (e) => { console.error(e); deferred.resolve(); });
    },
  });
  await new Promise((resolve) => {
    bench.on('complete', resolve);
    bench.run({ async: true });
  });
  const warm = bench.stats.mean * 1000;
  const row = { name, coldMs: cold, warmMs: warm, rme: bench.stats.rme, samples: bench.stats.sample.length };
  if (work.flops) row.gflops = work.flops / (warm * 1e6);
  if (work.bytes) row.gbps = work.bytes / (warm * 1e6);
  if (opts.extra) Object.assign(row, opts.extra);
  return row;
}

async function runOnce(dev, step) {
  const { tidy } = await import('wgnn');
  tidy(() => { step(); });
  await dev.sync();
}

export function printTable(title, rows) {
  console.log(`\n${title}`);
  const cols = ['name', 'coldMs', 'warmMs', 'gflops', 'gbps', 'rme'];
  const extra = [...new Set(rows.flatMap((r) => Object.keys(r)))].filter((k) => !cols.includes(k) && k !== 'samples');
  const all = [...cols.filter((c) => rows.some((r) => r[c] !== undefined)), ...extra];
  const fmt = (v) => (typeof v === 'number' ? (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2)) : String(v ?? ''));
  const header = '| ' + all.join(' | ') + ' |';
  console.log(header);
  console.log('|' + all.map(() => '---').join('|') + '|');
  for (const r of rows) console.log('| ' + all.map((c) => (c === 'rme' && r[c] !== undefined ? `±${r[c].toFixed(1)}%` : fmt(r[c]))).join(' | ') + ' |');
}
