// `wgnn gradcheck`: the built CLI on a filtered subset, and proof that its tolerances fail wrong
// gradients (in process: the case list and runner from src/cli/gradcheck.ts).
import { describe, it, expect, beforeAll, afterAll, vi } from 'vitest';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gradcheck, noGrad, ops, type Device, type Tensor } from '../src/index.js';
import { record } from '../src/autodiff.js';
import { CASES, CaseInputs, TOLERANCE, gradcheckCli, runGradcheck, selectCases, type GradcheckCase } from '../src/cli/gradcheck.js';
import { makeDevice, rng } from './helpers.js';

const run = (args: string[]) => promisify(execFile)(process.execPath, ['dist/cli.js', ...args], { timeout: 120_000 });

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

/** y with a deliberately wrong backward: the true gradient times `scale`. */
function scaledGrad(y: Tensor, scale: number): Tensor {
  const z = noGrad(() => ops.affine(y, 1));
  return record('scaled_grad', z, [y], (g) => [ops.mul(g, scale)]);
}

/** exp with a backward of 2·g·exp(x) (as test/core/autodiff.test.ts) */
const WRONG_EXP: GradcheckCase = {
  op: 'exp', name: 'deliberately wrong backward (2·g·exp(x))', shape: '[3, 7]',
  setup: (c) => ({
    fn: (x) => {
      const y = noGrad(() => ops.exp(x!));
      return record('bad_exp', y, [x!], (g) => [ops.mul(ops.mul(g, y), 2)]);
    },
    inputs: [c.u([3, 7])],
  }),
};

describe('wgnn gradcheck (built CLI)', () => {
  it('a filtered run: every row ok, JSON fields, exit code 0', async () => {
    const { stdout } = await run(['gradcheck', 'matmul', 'softmax', 'crossEntropy', 'windowAttention', '--json', '--seed', '3']);
    const r = JSON.parse(stdout);
    expect(r.seed).toBe(3);
    expect(r.tolerance).toEqual(TOLERANCE);
    expect(r.failed).toBe(0);
    // 'matmul' is an exact op name, so it does not pull in matmulEx
    expect(new Set(r.rows.map((x: { op: string }) => x.op))).toEqual(new Set(['matmul', 'softmax', 'crossEntropy', 'windowAttention']));
    expect(r.rows.length).toBe(selectCases(['matmul', 'softmax', 'crossEntropy', 'windowAttention']).length);
    for (const row of r.rows) {
      expect(row, JSON.stringify(row)).toMatchObject({ ok: true, op: expect.any(String), case: expect.any(String), shape: expect.any(String) });
      expect(row.elements).toBeGreaterThan(0);
      expect(row.maxAbsError).toBeLessThan(TOLERANCE.atol + TOLERANCE.rtol);
    }
  });

  it('prints a table; an unknown op is an error naming the available ops', async () => {
    const { stdout } = await run(['gradcheck', 'attention']); // substring: both attentions
    expect(stdout).toMatch(/op\s+case\s+shape\s+max abs error\s+max rel error\s+ok/);
    expect(stdout).toMatch(/^scaledDotProductAttention\s+causal \+ bool mask .* ok$/m);
    expect(stdout).toMatch(/^windowAttention\s+.* ok$/m);
    expect(stdout).toMatch(/\d+\/\d+ cases ok/);
    await expect(run(['gradcheck', 'nope'])).rejects.toMatchObject({ code: 2, stderr: expect.stringMatching(/no gradcheck cases for 'nope' \(ops: matmul, /) });
  });
});

describe('gradcheck tolerances fail wrong gradients', () => {
  it('the runner reports a wrong backward and the command exits with 1', async () => {
    const [row] = await runGradcheck(dev, [WRONG_EXP]);
    expect(row!.ok).toBe(false);
    expect(row!.worst!.analytic / row!.worst!.numeric).toBeCloseTo(2, 2);
    const log = vi.spyOn(console, 'log').mockImplementation(() => {});
    try {
      expect(await gradcheckCli([], { seed: '1', json: true }, [CASES[0]!, WRONG_EXP])).toBe(1);
      const out = JSON.parse(String(log.mock.calls.at(-1)![0]));
      expect(out.rows.map((r: { ok: boolean }) => r.ok)).toEqual([true, false]);
    } finally {
      log.mockRestore();
    }
  });

  it('every case fails when its gradient is 5% off (unless all its gradients are below the atol floor)', async () => {
    // err = 0.05·|g| exceeds atol + rtol·|g| = 1e-3 + 0.01·|g| once |g| > 0.025
    const floor = TOLERANCE.atol / (0.05 - TOLERANCE.rtol);
    const missed: string[] = [];
    const exempt: string[] = [];
    for (const [i, k] of CASES.entries()) {
      const c = new CaseInputs(dev, rng(1000 + i));
      try {
        const { fn, inputs } = k.setup(c);
        const r = await gradcheck((...xs: Tensor[]) => scaledGrad(fn(...xs), 1.05), inputs, { ...TOLERANCE });
        const gmax = Math.max(...r.numeric.map((n) => n.reduce((a, v) => Math.max(a, Math.abs(v)), 0)));
        if (gmax <= 1.5 * floor) exempt.push(`${k.op} ${k.name}`);
        else if (r.ok) missed.push(`${k.op} ${k.name} (max |grad| ${gmax.toExponential(2)})`);
      } finally {
        c.dispose();
      }
    }
    expect(missed, 'cases whose tolerance let a 5% gradient error pass').toEqual([]);
    // the case list has O(1) gradients by design; softmax over rows of 515 has gradients ~1/515
    // (there the check catches errors above ~1e-3 absolute, about 10% of the largest gradient)
    expect(exempt.length, `exempt: ${exempt.join('; ')}`).toBeLessThanOrEqual(2);
  });
});
