// The CLI as a user runs it (built dist/cli.js): info, and train + resume on a small IDX dataset
// written here in the Fashion-MNIST file format.
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';

const run = (args: string[]) => promisify(execFile)(process.execPath, ['dist/cli.js', ...args], { timeout: 300_000 });

function idx(dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head[2] = 0x08;
  head[3] = dims.length;
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return gzipSync(Buffer.concat([head, Buffer.from(data)]));
}

/** 10 classes, each a bright horizontal band at its own rows: learnable in a few steps. */
function writeDataset(dir: string, n: number, prefix: string): void {
  const img = new Uint8Array(n * 28 * 28);
  const lab = new Uint8Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 10;
    lab[i] = c;
    for (let r = c * 2; r < c * 2 + 3; r++) for (let q = 0; q < 28; q++) img[i * 784 + r * 28 + q] = 200 + ((i * 7 + q) % 50);
  }
  writeFileSync(join(dir, `${prefix}-images-idx3-ubyte.gz`), idx([n, 28, 28], img));
  writeFileSync(join(dir, `${prefix}-labels-idx1-ubyte.gz`), idx([n], lab));
}

describe('wgnn CLI', () => {
  it('info prints the adapter', async () => {
    expect(existsSync('dist/cli.js'), 'run `npm run build`').toBe(true);
    const { stdout } = await run(['info', '--json']);
    const r = JSON.parse(stdout);
    expect(typeof r.adapter.vendor).toBe('string');
    expect(r.limits.maxStorageBufferBindingSize).toBeGreaterThan(0);
  });

  it('train writes metrics and a checkpoint, and --resume continues from it', async () => {
    const data = mkdtempSync(join(tmpdir(), 'wgnn-data-'));
    writeDataset(data, 320, 'train');
    writeDataset(data, 100, 't10k');
    const out = mkdtempSync(join(tmpdir(), 'wgnn-run-'));
    const common = ['train', 'mlp', '--data-dir', data, '--out', out, '--batch-size', '32', '--warmup', '5', '--lr', '3e-3'];
    const first = await run([...common, '--epochs', '2']);
    expect(first.stdout).toMatch(/epoch 2: train loss [\d.]+ \| test loss [\d.]+ \| test accuracy [\d.]+%/);
    const lines = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch)).toEqual([1, 2]);
    expect(lines[1].testAccuracy).toBeGreaterThan(0.5); // 10 separable classes: far above chance (0.1)
    expect(existsSync(join(out, 'checkpoint.safetensors'))).toBe(true);
    const second = await run([...common, '--epochs', '3', '--resume']);
    expect(second.stdout).toMatch(/resumed from .* at epoch 2, step 20/);
    const all = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    expect(all.map((l) => l.epoch)).toEqual([1, 2, 3]);
    expect(all[2].step).toBe(30);
  });

  it('train rejects an unknown model with a clear message', async () => {
    await expect(run(['train', 'nope'])).rejects.toMatchObject({ stderr: expect.stringMatching(/unknown model 'nope' \(available: mlp/) });
  });
});
