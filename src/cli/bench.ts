// `wgnn bench [filter]`: runs the package's benchmark suite, bench/*.bench.mjs (the files
// `npm run bench` runs), through bench/run.mjs's runBenchmarks: one implementation of the suite.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export interface BenchCliOptions {
  json?: boolean;
  maxTime?: string;
}

interface BenchTable {
  file: string;
  title: string;
  rows: Record<string, unknown>[];
}

/** bench/run.mjs's exports (plain JavaScript, so its shape is restated here). */
interface BenchSuite {
  runBenchmarks(opts: {
    filter?: string;
    log?: (line: string) => void;
    onTable?: (t: BenchTable) => void;
    maxTime?: number;
  }): Promise<{ adapter: unknown; tables: BenchTable[]; skipped: { file: string; missing: string[] }[] }>;
}

/** Returns the exit code. */
export async function benchCli(filter: string | undefined, o: BenchCliOptions): Promise<number> {
  let maxTime: number | undefined;
  if (o.maxTime !== undefined) {
    maxTime = Number(o.maxTime);
    if (!Number.isFinite(maxTime) || maxTime <= 0) {
      console.error(`--max-time must be a positive number of seconds, got '${o.maxTime}'`);
      return 2;
    }
  }
  // this code runs bundled as <package>/dist/cli.js, and the package ships bench/ beside dist/
  const runUrl = new URL('../bench/run.mjs', import.meta.url);
  if (!existsSync(fileURLToPath(runUrl))) {
    console.error(`wgnn bench: the benchmark suite is not installed next to the CLI (expected ${fileURLToPath(runUrl)})`);
    return 1;
  }
  const suite = (await import(runUrl.href)) as BenchSuite;
  // --json: stdout carries only the JSON document; progress and notes go to stderr
  const log = o.json ? (line: string) => console.error(line) : (line: string) => console.log(line);
  let report;
  try {
    report = await suite.runBenchmarks({ filter, log, maxTime, ...(o.json ? { onTable: () => {} } : {}) });
  } catch (e) {
    const msg = (e as Error).message;
    console.error(`wgnn bench: ${msg}`);
    return msg.startsWith('no bench file matches') ? 2 : 1;
  }
  if (o.json) console.log(JSON.stringify(report, null, 2));
  return 0;
}
