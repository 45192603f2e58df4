// The CLI as a user runs it (built dist/cli.js): info, train + resume, and eval of a trained run,
// on a small IDX dataset written here in the Fashion-MNIST file format.
import { describe, it, expect, beforeAll, afterAll, onTestFinished } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
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

describe('wgnn eval', () => {
  let data: string;
  let out: string;
  beforeAll(async () => {
    data = mkdtempSync(join(tmpdir(), 'wgnn-data-'));
    writeDataset(data, 320, 'train');
    writeDataset(data, 100, 't10k');
    out = mkdtempSync(join(tmpdir(), 'wgnn-run-'));
    await run(['train', 'mlp', '--data-dir', data, '--out', out, '--batch-size', '32', '--warmup', '5', '--lr', '3e-3', '--epochs', '2']);
  });
  afterAll(() => {
    for (const d of [data, out]) rmSync(d, { recursive: true, force: true });
  });

  it('reproduces the train run\'s final test metrics, with per-class accuracy and a confusion matrix', async () => {
    const last = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).at(-1);
    const { stdout } = await run(['eval', '--out', out, '--data-dir', data, '--json']);
    const r = JSON.parse(stdout);
    // the same checkpoint, data and batches (train evaluates in batches of max(batch size, 256))
    expect(r.loss).toBeCloseTo(last.testLoss, 6);
    expect(r.accuracy).toBe(last.testAccuracy);
    expect(r.trainRun).toMatchObject({ epoch: 2, testLoss: last.testLoss, testAccuracy: last.testAccuracy });
    expect(r).toMatchObject({ model: 'mlp', epoch: 2, step: 20, examples: 100 });
    expect(r.confusion).toHaveLength(10);
    const trace = r.confusion.reduce((a: number, row: number[], i: number) => a + row[i]!, 0);
    expect(trace / 100).toBe(r.accuracy);
    expect(r.perClass.map((p: { total: number }) => p.total)).toEqual(Array(10).fill(10)); // labels are i % 10
    expect(r.perClass[0]).toMatchObject({ class: 0, name: 'T-shirt/top' });
    for (const p of r.perClass) expect(p.accuracy).toBe(p.correct / p.total);

    const text = await run(['eval', '--out', out, '--data-dir', data, '--limit-test', '30', '--batch-size', '7']);
    expect(text.stdout).toMatch(/test: 30 examples \| loss [\d.]+ \| accuracy [\d.]+%/);
    expect(text.stdout).toMatch(/per-class accuracy:\n\s+0 T-shirt\/top\s+[\d.]+%\s+\(\d+\/3\)/);
    expect(text.stdout).toMatch(/confusion matrix \(rows: true class, columns: predicted class\):\n\s+0\s+1\s+2/);
    expect(text.stdout).toMatch(/^\s+9 Ankle boot(\s+\d+){10}$/m);
  });

  it('names the path and what is missing or mismatched', async () => {
    const empty = mkdtempSync(join(tmpdir(), 'wgnn-empty-'));
    onTestFinished(() => rmSync(empty, { recursive: true, force: true }));
    await expect(run(['eval', '--out', empty, '--data-dir', data])).rejects.toMatchObject({
      code: 1, stderr: expect.stringContaining(`${empty} has no checkpoint.safetensors`),
    });
    await expect(run(['eval', '--out', join(empty, 'nope'), '--data-dir', data])).rejects.toMatchObject({
      code: 1, stderr: expect.stringContaining(`no run directory at ${join(empty, 'nope')}`),
    });
    // a config naming another model than the checkpoint holds
    const cfg = readFileSync(join(out, 'config.json'), 'utf8');
    writeFileSync(join(out, 'config.json'), cfg.replace('"mlp"', '"cnn"'));
    try {
      await expect(run(['eval', '--out', out, '--data-dir', data])).rejects.toMatchObject({
        code: 1, stderr: expect.stringMatching(/checkpoint .*checkpoint\.safetensors does not match model 'cnn' \(from .*config\.json\).*missing keys \[conv1\.weight/),
      });
      // without config.json, the model name recorded in the checkpoint is used
      rmSync(join(out, 'config.json'));
      const { stdout } = await run(['eval', '--out', out, '--data-dir', data, '--json']);
      expect(JSON.parse(stdout).model).toBe('mlp');
    } finally {
      writeFileSync(join(out, 'config.json'), cfg);
    }
    await expect(run(['eval', '--out', out, '--data-dir', empty])).rejects.toMatchObject({ code: 1, stderr: expect.stringMatching(/Fashion-MNIST not found at /) });
    await expect(run(['eval', '--out', out, '--batch-size', '0'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/--batch-size must be an integer >= 1/) });
  });
});
