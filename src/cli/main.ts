// The wgnn command line. Subcommands live in their own files under src/cli/.
import { Command } from 'commander';
import { info } from './info.js';
import { train, type TrainCliOptions } from './train.js';
import { evalCli, type EvalCliOptions } from './eval.js';
import { benchCli, type BenchCliOptions } from './bench.js';
import { gradcheckCli, type GradcheckCliOptions } from './gradcheck.js';

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

program
  .command('eval')
  .description('evaluate a trained run directory on the test split: loss, accuracy, per-class accuracy, confusion matrix')
  .option('--out <dir>', 'run directory written by `wgnn train` (config.json, checkpoint.safetensors)', 'runs/latest')
  .option('--data-dir <dir>', 'dataset directory (default: /usr/share/datasets/fashion-mnist)')
  .option('--limit-test <n>', 'evaluate on the first n test examples (0 = all)', '0')
  .option('--batch-size <n>', 'evaluation batch size (default: as train evaluates, max(train batch size, 256))')
  .option('--json', 'machine-readable output')
  .addHelpText('after', '\nExamples:\n  wgnn eval --out runs/fashion-mlp\n  wgnn eval --out runs/fashion-mlp --json > eval.json')
  .action(async (opts: EvalCliOptions) => {
    process.exitCode = await evalCli(opts);
  });

program
  .command('gradcheck')
  .description('check every differentiable op\'s gradients against f32 central differences on this adapter (exit 1 if any case fails)')
  .argument('[ops...]', 'only these ops (exact ops.* name, or a substring: `attention` runs both attentions)')
  .option('--seed <n>', 'seed of the random inputs', '1')
  .option('--json', 'machine-readable output')
  .option('--list', 'list the cases without running them')
  .addHelpText('after', '\nExamples:\n  wgnn gradcheck                       every op (about 10 s on lavapipe, a software adapter)\n  wgnn gradcheck matmul softmax --json\n  wgnn gradcheck --list')
  .action(async (names: string[], opts: GradcheckCliOptions) => {
    process.exitCode = await gradcheckCli(names, opts);
  });

program
  .command('bench')
  .description('run the benchmark suite (bench/*.bench.mjs, Benchmark.js): cold and warm ms, GFLOP/s, GB/s')
  .argument('[filter]', 'only the bench files whose name contains this (matmul, attention, lstm, norm, peer, ...)')
  .option('--json', 'machine-readable output (progress goes to stderr)')
  .option('--max-time <s>', 'cap Benchmark.js\'s seconds per measurement (default: each bench\'s own, 3 s)')
  .addHelpText('after', '\nExamples:\n  wgnn bench matmul\n  wgnn bench elementwise --json --max-time 0.5')
  .action(async (filter: string | undefined, opts: BenchCliOptions) => {
    process.exitCode = await benchCli(filter, opts);
  });

await program.parseAsync(process.argv);
