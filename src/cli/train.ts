// `wgnn train <model>`: trains an image classifier on Fashion-MNIST with a progress bar, metrics
// (metrics.jsonl), a checkpoint after every epoch (checkpoint.safetensors, written atomically)
// and --resume.
import { mkdir, appendFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import cliProgress from 'cli-progress';
// the CLI imports only the package entry, so it shares one module instance with the library bundle
import { createDevice, loadFashionMnist, ClassifierTrainer, models, type Device, type Classifier, type TrainConfig } from '../index.js';

export interface TrainCliOptions {
  dataset: string;
  epochs: string;
  batchSize: string;
  lr: string;
  weightDecay: string;
  warmup: string;
  seed: string;
  out: string;
  resume?: boolean;
  limitTrain: string;
  limitTest: string;
  dataDir?: string;
}

/** Model builders by CLI name; each takes the dataset geometry (eval rebuilds a run's model with them). */
export const MODELS: Record<string, (dev: Device, g: { channels: number; rows: number; cols: number; classes: number }, seed: number) => Classifier> = {
  mlp: (dev, g, seed) => new models.MLP(dev, { inputSize: g.channels * g.rows * g.cols, hiddenSizes: [256, 128], numClasses: g.classes, seed }),
  cnn: (dev, g, seed) => new models.SimpleCNN(dev, { inChannels: g.channels, imageSize: [g.rows, g.cols], numClasses: g.classes, seed }),
};

function int(v: string, name: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got '${v}'`);
  return n;
}
function num(v: string, name: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got '${v}'`);
  return n;
}

export async function train(modelName: string, o: TrainCliOptions): Promise<number> {
  const build = MODELS[modelName];
  if (!build) {
    console.error(`unknown model '${modelName}' (available: ${Object.keys(MODELS).join(', ')})`);
    return 2;
  }
  if (o.dataset !== 'fashion-mnist') {
    console.error(`unknown dataset '${o.dataset}' (available: fashion-mnist)`);
    return 2;
  }
  const cfg: TrainConfig = {
    epochs: int(o.epochs, 'epochs', 1), batchSize: int(o.batchSize, 'batch-size', 1), lr: num(o.lr, 'lr'),
    weightDecay: num(o.weightDecay, 'weight-decay'), warmupSteps: int(o.warmup, 'warmup'), seed: int(o.seed, 'seed'),
    limitTrain: int(o.limitTrain, 'limit-train'), limitTest: int(o.limitTest, 'limit-test'),
  };
  const [trainSet, testSet] = await Promise.all([loadFashionMnist('train', o.dataDir), loadFashionMnist('test', o.dataDir)]);
  const dev = await createDevice();
  const a = dev.adapterInfo;
  console.log(`device: ${[a.vendor, a.device].filter(Boolean).join(' ')} | model: ${modelName} | dataset: ${o.dataset} (${trainSet.n} train, ${testSet.n} test)`);
  const model = build(dev, { channels: trainSet.channels, rows: trainSet.rows, cols: trainSet.cols, classes: trainSet.classes.length }, cfg.seed);
  console.log(`parameters: ${model.numParameters().toLocaleString('en-US')}`);
  const trainer = new ClassifierTrainer(dev, model, cfg);
  await mkdir(o.out, { recursive: true });
  const ckpt = join(o.out, 'checkpoint.safetensors');
  const metricsPath = join(o.out, 'metrics.jsonl');
  if (o.resume && existsSync(ckpt)) {
    await trainer.loadCheckpoint(ckpt);
    console.log(`resumed from ${ckpt} at epoch ${trainer.state.epoch}, step ${trainer.state.step}`);
  } else if (!o.resume) {
    await writeFile(metricsPath, '');
  }
  await writeFile(join(o.out, 'config.json'), JSON.stringify({ model: modelName, dataset: o.dataset, ...cfg }, null, 2));

  const tty = process.stdout.isTTY;
  const bar = tty
    ? new cliProgress.SingleBar({ format: 'epoch {epoch} |{bar}| {value}/{total} steps | loss {loss} | lr {lr} | {speed} img/s | eta {eta_formatted}', hideCursor: true }, cliProgress.Presets.shades_classic)
    : null;
  let barEpoch = -1;
  let lastLoss = '-';
  let lastPrint = 0;
  await trainer.fit(trainSet, testSet, {
    onStep: (s) => {
      if (s.loss !== null) lastLoss = s.loss.toFixed(4);
      const payload = { epoch: `${s.epoch + 1}/${cfg.epochs}`, loss: lastLoss, lr: s.lr.toExponential(2), speed: s.examplesPerSec.toFixed(0) };
      if (bar) {
        if (barEpoch !== s.epoch) {
          if (barEpoch >= 0) bar.stop();
          bar.start(s.stepsPerEpoch, 0, payload);
          barEpoch = s.epoch;
        }
        bar.update(s.step, payload);
      } else if (Date.now() - lastPrint > 10_000 || s.step === s.stepsPerEpoch) {
        lastPrint = Date.now();
        console.log(`epoch ${payload.epoch} step ${s.step}/${s.stepsPerEpoch} loss ${lastLoss} lr ${payload.lr} ${payload.speed} img/s`);
      }
    },
    onEpoch: async (e) => {
      bar?.stop();
      barEpoch = -1;
      console.log(`epoch ${e.epoch}: train loss ${e.trainLoss.toFixed(4)} | test loss ${e.testLoss.toFixed(4)} | test accuracy ${(100 * e.testAccuracy).toFixed(2)}% | ${e.seconds.toFixed(1)} s (${e.examplesPerSec.toFixed(0)} img/s)`);
      await appendFile(metricsPath, JSON.stringify(e) + '\n');
      await trainer.saveCheckpoint(ckpt, { model: modelName, dataset: o.dataset });
    },
  });
  console.log(`checkpoint: ${ckpt}\nmetrics: ${metricsPath}`);
  dev.destroy();
  return 0;
}
