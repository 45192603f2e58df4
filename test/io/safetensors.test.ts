// safetensors: the byte layout of the Python library, round trips through modules, atomic writes,
// and clear errors for corrupt files.
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeSafetensors, encodeSafetensors, loadSafetensors, nn, saveSafetensors, WgnnError, type Device } from '../../src/index.js';
import { makeDevice } from '../helpers.js';

let dev: Device;
beforeAll(async () => {
  dev = await makeDevice();
});
afterAll(() => dev.destroy());

describe('safetensors', () => {
  it('writes the exact bytes of the Python library', () => {
    // safetensors.numpy.save_file({"b": np.array([1, 2], np.float32), "a": np.zeros((1, 1), np.float32)})
    // header: compact JSON, tensors sorted by name, padded with spaces to a multiple of 8
    const bytes = encodeSafetensors({
      b: { dtype: 'F32', shape: [2], data: new Uint8Array(new Float32Array([1, 2]).buffer) },
      a: { dtype: 'F32', shape: [1, 1], data: new Uint8Array(4) },
    });
    const header = '{"a":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}';
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    expect(Number(new DataView(bytes.buffer).getBigUint64(0, true))).toBe(padded.length);
    expect(new TextDecoder().decode(bytes.subarray(8, 8 + padded.length))).toBe(padded);
    expect(Array.from(new Float32Array(bytes.slice(8 + padded.length).buffer))).toEqual([0, 1, 2]);
    expect((8 + padded.length) % 8).toBe(0);
  });

  it('round-trips a module state dict with PyTorch names, atomically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'wgnn-st-'));
    const a = new nn.Linear(dev, { inFeatures: 3, outFeatures: 2, seed: 1 });
    const path = join(dir, 'm.safetensors');
    await saveSafetensors(a, path, { note: 'hi' });
    expect(readdirSync(dir)).toEqual(['m.safetensors']); // no temp file left behind
    const loaded = await loadSafetensors(path);
    expect(Object.keys(loaded).sort()).toEqual(['bias', 'weight']);
    expect(loaded['weight']!.shape).toEqual([2, 3]);
    const b = new nn.Linear(dev, { inFeatures: 3, outFeatures: 2, seed: 2 });
    b.loadStateDict(loaded);
    expect(Array.from(await b.weight.toArray())).toEqual(Array.from(await a.weight.toArray()));
    expect(Array.from(await b.bias!.toArray())).toEqual(Array.from(await a.bias!.toArray()));
    const { metadata } = decodeSafetensors(new Uint8Array(readFileSync(path)));
    expect(metadata).toEqual({ note: 'hi' });
  });

  it('rejects truncated or inconsistent files with a clear error', () => {
    const good = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Uint8Array(16) } });
    expect(() => decodeSafetensors(good.subarray(0, good.length - 4))).toThrow(/data_offsets \[0, 16\] are out of the file/);
    expect(() => decodeSafetensors(new Uint8Array(4))).toThrow(WgnnError);
    const lying = encodeSafetensors({ w: { dtype: 'F32', shape: [4], data: new Uint8Array(16) } });
    const text = new TextDecoder().decode(lying.subarray(8)).replace('"shape":[4]', '"shape":[5]');
    const n = Number(new DataView(lying.buffer).getBigUint64(0, true));
    const bad = new Uint8Array(lying.length);
    bad.set(lying.subarray(0, 8));
    bad.set(new TextEncoder().encode(text), 8);
    expect(() => decodeSafetensors(bad)).toThrow(/'w' \[5\] F32 needs 20 bytes, has 16/);
    expect(n).toBeGreaterThan(0);
  });

  it('loadStateDict rejects missing keys and wrong shapes', async () => {
    const a = new nn.Linear(dev, { inFeatures: 3, outFeatures: 2 });
    expect(() => a.loadStateDict({ weight: a.weight })).toThrow(/missing keys \[bias\]/);
    expect(() => a.loadStateDict({ weight: dev.zeros([3, 2]), bias: a.bias! })).toThrow(/'weight' has shape \[3, 2\] in the state dict, the module expects \[2, 3\]/);
    const dir = mkdtempSync(join(tmpdir(), 'wgnn-st-'));
    writeFileSync(join(dir, 'x'), 'not a file');
    await expect(loadSafetensors(join(dir, 'x'))).rejects.toThrow(WgnnError);
  });
});
