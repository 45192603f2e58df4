// The built package, imported by name from a plain Node script (no vitest transforms, no TS),
// runs matmul, softmax and layerNorm forward and backward and matches float64 references.
import { describe, it, expect } from 'vitest';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

describe('built package', () => {
  it('matches float64 references from a plain Node script', async () => {
    expect(existsSync('dist/index.js'), 'dist/index.js is missing: run `npm run build`').toBe(true);
    const { stdout } = await promisify(execFile)(process.execPath, ['test/fixtures/package-smoke.mjs'], { timeout: 120_000 });
    const r = JSON.parse(stdout.trim().split('\n').pop()!);
    // matmul with K = 1024: f32 accumulation error grows like sqrt(K)·2^-24 relative to Σ|a||b|,
    // well under the 1e-4 the issue sets
    for (const k of ['fwd', 'dA', 'dB']) expect(r.matmul[k], `matmul ${k}`).toBeLessThanOrEqual(1e-4);
    // softmax / layerNorm: a few f32 roundings and exp (≈3 ULP) per element: 1e-5 relative to the max
    for (const k of ['fwd', 'dX']) expect(r.softmax[k], `softmax ${k}`).toBeLessThanOrEqual(1e-5);
    for (const k of ['fwd', 'dX', 'dW', 'dB']) expect(r.layerNorm[k], `layerNorm ${k}`).toBeLessThanOrEqual(1e-5);
  });
});
