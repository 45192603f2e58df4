// Training loop for image classifiers: shuffled mini-batches, AdamW with warmup + cosine decay,
// per-epoch evaluation, metrics as JSON lines, atomic checkpoints (model + optimizer + progress in
// one safetensors file) and resume. The CLI adds the progress bar; this file stays UI-free.
import type { Device } from '../gpu/device.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../autodiff.js';
import { tidy, type Tensor } from '../tensor.js';
import { crossEntropy } from '../ops/cross_entropy.js';
import { AdamW } from '../optim/adam.js';
import { WarmupCosineLR } from '../optim/schedule.js';
import { mulberry32 } from '../random.js';
import type { ImageDataset } from '../data/fashion_mnist.js';
import { encodeSafetensors, decodeSafetensors, rawToTyped, tensorsToRaw, writeFileAtomic, type RawTensor } from '../io/safetensors.js';

export interface Classifier extends Module {
  forward(x: Tensor): Tensor;
}

export interface TrainConfig {
  epochs: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  /** linear warmup steps before cosine decay to 0 */
  warmupSteps: number;
  seed: number;
  /** use only the first n training / test examples (0 = all) */
  limitTrain?: number;
  limitTest?: number;
  /** read the loss back every n steps (a readback waits for the GPU) */
  logEvery?: number;
}

export interface StepInfo {
  epoch: number;
  step: number;
  stepsPerEpoch: number;
  totalSteps: number;
  loss: number | null;
  lr: number;
  examplesPerSec: number;
}

export interface EpochInfo {
  epoch: number;
  step: number;
  trainLoss: number;
  testLoss: number;
  testAccuracy: number;
  seconds: number;
  examplesPerSec: number;
}

export interface TrainState {
  epoch: number;
  step: number;
  history: EpochInfo[];
}

export interface TrainHooks {
  onStep?: (s: StepInfo) => void;
  onEpoch?: (e: EpochInfo) => void | Promise<void>;
}

function batchTensors(dev: Device, ds: ImageDataset, idx: ArrayLike<number>, from: number, to: number): { x: Tensor; y: Tensor } {
  const per = ds.channels * ds.rows * ds.cols;
  const n = to - from;
  const xs = new Float32Array(n * per);
  const ys = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const k = idx[from + i]!;
    xs.set(ds.images.subarray(k * per, (k + 1) * per), i * per);
    ys[i] = ds.labels[k]!;
  }
  return { x: dev.tensor(xs, [n, ds.channels, ds.rows, ds.cols]), y: dev.tensor(ys, [n]) };
}

export interface EvalResult {
  loss: number;
  accuracy: number;
  /** confusion[t][p]: test examples of true class t predicted as class p */
  confusion: number[][];
}

export async function evaluate(dev: Device, model: Classifier, ds: ImageDataset, batchSize: number, limit = 0): Promise<EvalResult> {
  const n = limit > 0 ? Math.min(limit, ds.n) : ds.n;
  const order = Int32Array.from({ length: n }, (_, i) => i);
  let lossSum = 0;
  let correct = 0;
  let confusion: number[][] = [];
  model.eval();
  try {
    for (let b = 0; b < n; b += batchSize) {
      const e = Math.min(n, b + batchSize);
      const [loss, logits] = noGrad(() =>
        tidy(() => {
          const { x, y } = batchTensors(dev, ds, order, b, e);
          const lg = model.forward(x);
          return [crossEntropy(lg, y, { reduction: 'sum' }), lg] as const;
        }),
      );
      const [lossV, lv] = await Promise.all([loss.item(), logits.toArray()]); // one wait for both readbacks
      lossSum += lossV;
      const C = logits.shape[1]!;
      if (!confusion.length) confusion = Array.from({ length: C }, () => new Array<number>(C).fill(0));
      for (let i = 0; i < e - b; i++) {
        let best = 0;
        for (let c = 1; c < C; c++) if (lv[i * C + c]! > lv[i * C + best]!) best = c;
        const label = ds.labels[b + i]!;
        if (best === label) correct++;
        const row = confusion[label];
        if (row) row[best]!++;
      }
      loss.dispose();
      logits.dispose();
    }
  } finally {
    model.train(); // also when a batch fails: later training keeps dropout on
  }
  return { loss: lossSum / n, accuracy: correct / n, confusion };
}

export class ClassifierTrainer {
  readonly opt: AdamW;
  state: TrainState = { epoch: 0, step: 0, history: [] };

  constructor(
    readonly dev: Device,
    readonly model: Classifier,
    readonly cfg: TrainConfig,
  ) {
    this.opt = new AdamW(model.parameters(), { lr: cfg.lr, betas: [0.9, 0.999], eps: 1e-8, weightDecay: cfg.weightDecay });
  }

  /** Trains until cfg.epochs (continuing from this.state after a resume). */
  async fit(train: ImageDataset, test: ImageDataset, hooks: TrainHooks = {}): Promise<EpochInfo[]> {
    const { dev, model, cfg } = this;
    const n = cfg.limitTrain ? Math.min(cfg.limitTrain, train.n) : train.n;
    const stepsPerEpoch = Math.ceil(n / cfg.batchSize);
    const totalSteps = stepsPerEpoch * cfg.epochs;
    const logEvery = cfg.logEvery ?? 10;
    this.opt.lr = cfg.lr; // the schedule's peak; it is a pure function of the step, so resume needs no state
    const schedule = new WarmupCosineLR(this.opt, { warmupSteps: Math.min(cfg.warmupSteps, totalSteps), totalSteps });
    model.train();
    for (let epoch = this.state.epoch; epoch < cfg.epochs; epoch++) {
      // a per-epoch seeded shuffle makes a resumed run see the same batches
      const rnd = mulberry32(cfg.seed * 1000 + epoch);
      const order = Int32Array.from({ length: n }, (_, i) => i);
      for (let i = n - 1; i > 0; i--) {
        const j = Math.floor(rnd() * (i + 1));
        [order[i], order[j]] = [order[j]!, order[i]!];
      }
      const t0 = performance.now();
      let lossSum = 0;
      let lossCount = 0;
      for (let s = 0; s < stepsPerEpoch; s++) {
        // lr of step s is the schedule after s + 1 steps, so the first step does not run at lr 0
        const lr = schedule.lrAt(this.state.step + 1);
        this.opt.lr = lr;
        const b = s * cfg.batchSize;
        const e = Math.min(n, b + cfg.batchSize);
        const loss = tidy(() => {
          const { x, y } = batchTensors(dev, train, order, b, e);
          const l = crossEntropy(model.forward(x), y);
          l.backward();
          this.opt.step();
          this.opt.zeroGrad();
          return l;
        });
        this.state.step++;
        let lv: number | null = null;
        if (s % logEvery === logEvery - 1 || s === stepsPerEpoch - 1) {
          const v = await loss.item();
          lv = v;
          lossSum += v;
          lossCount++;
        }
        loss.dispose();
        const elapsed = (performance.now() - t0) / 1000;
        hooks.onStep?.({ epoch, step: s + 1, stepsPerEpoch, totalSteps, loss: lv, lr, examplesPerSec: e / Math.max(elapsed, 1e-9) });
      }
      await dev.sync();
      const seconds = (performance.now() - t0) / 1000;
      const ev = await evaluate(dev, model, test, Math.max(cfg.batchSize, 256), cfg.limitTest ?? 0);
      const info: EpochInfo = {
        epoch: epoch + 1, step: this.state.step, trainLoss: lossSum / Math.max(1, lossCount),
        testLoss: ev.loss, testAccuracy: ev.accuracy, seconds, examplesPerSec: n / seconds,
      };
      this.state.epoch = epoch + 1;
      this.state.history.push(info);
      await hooks.onEpoch?.(info);
    }
    return this.state.history;
  }

  /** One file: model tensors, optimizer state under "optimizer.*", progress in the metadata. */
  async saveCheckpoint(path: string, extra: Record<string, string> = {}): Promise<void> {
    const raw: Record<string, RawTensor> = await tensorsToRaw(this.model.stateDict());
    const osd = this.opt.stateDict(); // copies: ours to dispose
    for (const [k, v] of Object.entries(await tensorsToRaw(osd.tensors))) raw[`optimizer.${k}`] = v;
    for (const t of Object.values(osd.tensors)) t.dispose();
    const meta = {
      ...extra,
      'wgnn.train_state': JSON.stringify(this.state),
      'wgnn.optimizer_step': String(osd.step),
      'wgnn.optimizer_param_steps': JSON.stringify(osd.paramSteps ?? []),
    };
    await writeFileAtomic(path, encodeSafetensors(raw, meta));
  }

  async loadCheckpoint(path: string): Promise<void> {
    const { readFile } = await import('node:fs/promises');
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(await readFile(path)));
    const modelPart: Record<string, Tensor> = {};
    const optPart: Record<string, Tensor> = {};
    for (const [k, raw] of Object.entries(tensors)) {
      const t = this.dev.tensor(rawToTyped(k, raw), raw.shape);
      if (k.startsWith('optimizer.')) optPart[k.slice('optimizer.'.length)] = t;
      else modelPart[k] = t;
    }
    this.model.loadStateDict(modelPart);
    const paramSteps = JSON.parse(metadata['wgnn.optimizer_param_steps'] ?? '[]') as number[];
    this.opt.loadStateDict({ step: Number(metadata['wgnn.optimizer_step'] ?? 0), tensors: optPart, ...(paramSteps.length ? { paramSteps } : {}) });
    this.state = JSON.parse(metadata['wgnn.train_state'] ?? '{"epoch":0,"step":0,"history":[]}') as TrainState;
    await this.dev.sync();
    for (const t of [...Object.values(modelPart), ...Object.values(optPart)]) t.dispose();
  }
}
