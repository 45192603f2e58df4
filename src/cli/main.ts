// The wgnn command line. Subcommands live in their own files under src/cli/.
import { Command } from 'commander';
import { info } from './info.js';
import { train, type TrainCliOptions } from './train.js';

const program = new Command();
program.name('wgnn').description('WebGPU neural networks: train, evaluate and benchmark on WebGPU (Dawn in Node)');

program
  .command('info')
  .description('print the WebGPU adapter, its features and limits')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    process.exitCode = await info(opts);
  });

program
  .command('train')
  .description('train a model on a real dataset (progress, metrics.jsonl, checkpoints, --resume)')
  .argument('<model>', 'model: mlp | cnn')
  .option('--dataset <name>', 'dataset', 'fashion-mnist')
  .option('--epochs <n>', 'epochs', '3')
  .option('--batch-size <n>', 'batch size', '128')
  .option('--lr <x>', 'peak learning rate (AdamW)', '2e-3')
  .option('--weight-decay <x>', 'AdamW decoupled weight decay', '0.01')
  .option('--warmup <n>', 'linear warmup steps before cosine decay', '100')
  .option('--seed <n>', 'seed for initialisation and shuffling', '1')
  .option('--out <dir>', 'output directory (checkpoint.safetensors, metrics.jsonl, config.json)', 'runs/latest')
  .option('--resume', 'continue from <out>/checkpoint.safetensors')
  .option('--limit-train <n>', 'use only the first n training examples (0 = all)', '0')
  .option('--limit-test <n>', 'evaluate on the first n test examples (0 = all)', '0')
  .option('--data-dir <dir>', 'dataset directory (default: /usr/share/datasets/fashion-mnist)')
  .action(async (model: string, opts: TrainCliOptions) => {
    process.exitCode = await train(model, opts);
  });

await program.parseAsync(process.argv);
