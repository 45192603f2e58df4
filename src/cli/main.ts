// The wgnn command line. Subcommands live in their own files under src/cli/.
import { Command } from 'commander';
import { info } from './info.js';

const program = new Command();
program.name('wgnn').description('WebGPU neural networks: train, evaluate and benchmark on WebGPU (Dawn in Node)');

program
  .command('info')
  .description('print the WebGPU adapter, its features and limits')
  .option('--json', 'machine-readable output')
  .action(async (opts: { json?: boolean }) => {
    process.exitCode = await info(opts);
  });

await program.parseAsync(process.argv);
