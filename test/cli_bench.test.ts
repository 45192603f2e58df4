// `wgnn bench`: the built CLI runs bench/*.bench.mjs through bench/run.mjs; bench files whose
// packages are not installed (peer_tfjs's @tensorflow/* devDependencies) are skipped with a note.
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const exec = promisify(execFile);
const run = (args: string[]) => exec(process.execPath, ['dist/cli.js', ...args], { timeout: 120_000 });

describe('wgnn bench', () => {
  it('runs the matching bench file and prints JSON rows (progress on stderr)', async () => {
    // elementwise.bench.mjs: 4 measurements; --max-time keeps each to ~0.2 s of Benchmark.js sampling
    const { stdout, stderr } = await run(['bench', 'elementwise', '--json', '--max-time', '0.2']);
    const r = JSON.parse(stdout);
    expect(typeof r.adapter.vendor).toBe('string');
    expect(stderr).toMatch(/^adapter: /m);
    expect(r.skipped).toEqual([]);
    expect(r.tables).toHaveLength(1);
    const [t] = r.tables;
    expect(t.file).toBe('elementwise.bench.mjs');
    expect(t.title).toMatch(/Elementwise/);
    expect(t.rows.length).toBeGreaterThanOrEqual(3);
    for (const row of t.rows) {
      expect(row).toMatchObject({ name: expect.any(String), coldMs: expect.any(Number), warmMs: expect.any(Number), rme: expect.any(Number), samples: expect.any(Number) });
      expect(row.coldMs).toBeGreaterThan(0);
      expect(row.warmMs).toBeGreaterThan(0);
      expect(row.samples).toBeGreaterThanOrEqual(5); // lib.mjs's minSamples
      expect(row.gbps).toBeGreaterThan(0); // memory-bound rows report GB/s
    }
  });

  it('a filter that matches no file is an error listing the files', async () => {
    await expect(run(['bench', 'nope'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/no bench file matches 'nope' \(available: .*matmul\.bench\.mjs/) });
    await expect(run(['bench', 'matmul', '--max-time', '0'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--max-time must be a positive number/) });
  });

  it('skips a bench file whose packages are not installed, with a note', async () => {
    // a copy of the runner next to a bench file that imports a package nobody installs; wgnn and
    // benchmark resolve through node_modules links to this checkout
    const dir = mkdtempSync(join(tmpdir(), 'wgnn-bench-'));
    mkdirSync(join(dir, 'bench'));
    mkdirSync(join(dir, 'node_modules'));
    for (const f of ['run.mjs', 'lib.mjs']) copyFileSync(join('bench', f), join(dir, 'bench', f));
    writeFileSync(join(dir, 'bench', 'needs_peer.bench.mjs'), "export default async () => { await import('@wgnn-test/not-installed'); };\n");
    const links = [[resolve('.'), 'wgnn'], [resolve('node_modules/benchmark'), 'benchmark']].map(([target, name]) => {
      const link = join(dir, 'node_modules', name!);
      symlinkSync(target!, link, 'dir');
      return link;
    });
    try {
      const { stdout } = await exec(process.execPath, [join(dir, 'bench', 'run.mjs'), 'needs_peer'], { timeout: 60_000 });
      expect(stdout).toMatch(/^skipping needs_peer\.bench\.mjs: needs @wgnn-test\/not-installed \(not installed/m);
    } finally {
      links.forEach((l) => unlinkSync(l)); // the links first: the removal below must not reach this checkout
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
