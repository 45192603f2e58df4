// `wgnn eval`: evaluates a run directory written by `wgnn train` (config.json + checkpoint.safetensors)
// on the dataset's test split: loss, accuracy, per-class accuracy and the confusion matrix. The model
// is rebuilt the way train builds it and restored by ClassifierTrainer.loadCheckpoint; the numbers
// come from the library's evaluate(), the function train's per-epoch evaluation calls.
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createDevice, decodeSafetensors, evaluate, loadFashionMnist, ClassifierTrainer, type EpochInfo, type ImageDataset, type TrainConfig } from '../index.js';
import { MODELS } from './train.js';

export interface EvalCliOptions {
  out: string;
  dataDir?: string;
  limitTest: string;
  batchSize?: string;
  json?: boolean;
}

/** What `train` writes to config.json: the model and dataset names and the TrainConfig. */
type RunConfig = Partial<TrainConfig> & { model?: string; dataset?: string };

/** An error reported as one line; code 1: the run or dataset is missing or does not match, 2: bad options. */
class EvalError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

function int(v: string, name: string, min: number): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new EvalError(`--${name} must be an integer >= ${min}, got '${v}'`, 2);
  return n;
}

/** config.json, or (for a run whose config.json was lost) the model and dataset train records in the checkpoint. */
async function readRunConfig(dir: string, ckpt: string): Promise<{ config: RunConfig; source: string }> {
  const path = join(dir, 'config.json');
  if (existsSync(path)) {
    try {
      return { config: JSON.parse(await readFile(path, 'utf8')) as RunConfig, source: path };
    } catch (e) {
      throw new EvalError(`cannot read ${path}: ${(e as Error).message}`);
    }
  }
  let metadata: Record<string, string>;
  try {
    ({ metadata } = decodeSafetensors(new Uint8Array(await readFile(ckpt))));
  } catch (e) {
    throw new EvalError(`cannot read checkpoint ${ckpt}: ${(e as Error).message}`);
  }
  if (!metadata.model) throw new EvalError(`${dir} has no config.json, and ${ckpt} does not record which model it holds`);
  return { config: { model: metadata.model, dataset: metadata.dataset }, source: `${ckpt} metadata (no config.json)` };
}

const pct = (v: number | null): string => (v === null ? '-' : `${(100 * v).toFixed(2)}%`);

/** Returns the exit code: 0, 1 (the run directory or dataset is missing or does not match), 2 (bad options). */
export async function evalCli(o: EvalCliOptions): Promise<number> {
  try {
    return await run(o);
  } catch (e) {
    if (!(e instanceof EvalError)) throw e;
    console.error(`wgnn eval: ${e.message}`);
    return e.code;
  }
}

async function run(o: EvalCliOptions): Promise<number> {
  const dir = o.out;
  const limit = int(o.limitTest, 'limit-test', 0);
  const batchArg = o.batchSize === undefined ? null : int(o.batchSize, 'batch-size', 1);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new EvalError(`no run directory at ${dir}: train one first (\`wgnn train mlp --out ${dir}\`) or pass --out <run directory>`);
  }
  const ckpt = join(dir, 'checkpoint.safetensors');
  if (!existsSync(ckpt)) {
    throw new EvalError(`${dir} has no checkpoint.safetensors (\`wgnn train --out ${dir}\` writes it after every epoch)`);
  }
  const { config, source } = await readRunConfig(dir, ckpt);
  const modelName = config.model ?? '';
  const build = MODELS[modelName];
  if (!build) throw new EvalError(`${source} names model '${modelName}', which wgnn eval cannot build (available: ${Object.keys(MODELS).join(', ')})`);
  const dataset = config.dataset ?? 'fashion-mnist';
  if (dataset !== 'fashion-mnist') throw new EvalError(`${source} names dataset '${dataset}' (available: fashion-mnist)`);

  let testSet: ImageDataset;
  try {
    testSet = await loadFashionMnist('test', o.dataDir);
  } catch (e) {
    throw new EvalError((e as Error).message);
  }
  // train evaluates in batches of max(batch size, 256): the same batches give the same f32 sums
  const batchSize = batchArg ?? Math.max(config.batchSize ?? 0, 256);
  const cfg: TrainConfig = {
    epochs: config.epochs ?? 1, batchSize, lr: config.lr ?? 1e-3, weightDecay: config.weightDecay ?? 0,
    warmupSteps: config.warmupSteps ?? 0, seed: config.seed ?? 1,
  };

  const dev = await createDevice();
  try {
    const model = build(dev, { channels: testSet.channels, rows: testSet.rows, cols: testSet.cols, classes: testSet.classes.length }, cfg.seed);
    const trainer = new ClassifierTrainer(dev, model, cfg);
    try {
      await trainer.loadCheckpoint(ckpt);
    } catch (e) {
      throw new EvalError(`checkpoint ${ckpt} does not match model '${modelName}' (from ${source}) on ${testSet.rows}x${testSet.cols} images with ${testSet.classes.length} classes: ${(e as Error).message}`);
    }
    const t0 = performance.now();
    const r = await evaluate(dev, model, testSet, batchSize, limit);
    const seconds = (performance.now() - t0) / 1000;
    const examples = limit > 0 ? Math.min(limit, testSet.n) : testSet.n;
    const names = testSet.classes;
    const perClass = r.confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      const correct = row[c] ?? 0;
      return { class: c, name: names[c] ?? String(c), correct, total, accuracy: total ? correct / total : null };
    });
    const last: EpochInfo | null = trainer.state.history.at(-1) ?? null;
    const report = {
      run: dir, model: modelName, dataset, checkpoint: ckpt, epoch: trainer.state.epoch, step: trainer.state.step,
      examples, batchSize, loss: r.loss, accuracy: r.accuracy, perClass, classes: names, confusion: r.confusion, seconds,
      // what train printed after its last epoch (on --limit-test trainRun.limitTest examples; 0 = all)
      trainRun: last ? { epoch: last.epoch, testLoss: last.testLoss, testAccuracy: last.testAccuracy, limitTest: config.limitTest ?? 0 } : null,
    };
    if (o.json) {
      console.log(JSON.stringify(report, null, 2));
      return 0;
    }
    const a = dev.adapterInfo;
    console.log(`run: ${dir} | model: ${modelName} (${model.numParameters().toLocaleString('en-US')} parameters) | epoch ${report.epoch}, step ${report.step} | device: ${[a.vendor, a.device].filter(Boolean).join(' ')}`);
    console.log(`test: ${examples} examples | loss ${r.loss.toFixed(4)} | accuracy ${pct(r.accuracy)} | ${seconds.toFixed(1)} s`);
    if (report.trainRun) {
      const t = report.trainRun;
      console.log(`train's last evaluation (epoch ${t.epoch}, ${t.limitTest ? `first ${t.limitTest}` : 'all'} test examples): loss ${t.testLoss.toFixed(4)} | accuracy ${pct(t.testAccuracy)}`);
    }
    const w = Math.max(5, ...perClass.map((p) => p.name.length));
    console.log('\nper-class accuracy:');
    for (const p of perClass) console.log(`  ${String(p.class).padStart(2)} ${p.name.padEnd(w)} ${pct(p.accuracy).padStart(7)}  (${p.correct}/${p.total})`);
    const cw = Math.max(4, ...r.confusion.flat().map((v) => String(v).length)) + 1;
    console.log('\nconfusion matrix (rows: true class, columns: predicted class):');
    console.log(`  ${''.padEnd(3 + w)}${perClass.map((p) => String(p.class).padStart(cw)).join('')}`);
    for (const p of perClass) console.log(`  ${String(p.class).padStart(2)} ${p.name.padEnd(w)}${r.confusion[p.class]!.map((v) => String(v).padStart(cw)).join('')}`);
    return 0;
  } finally {
    dev.destroy();
  }
}
