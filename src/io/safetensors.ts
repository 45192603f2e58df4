// safetensors, byte-compatible with the Python library: u64 little-endian header length, a compact
// JSON header ("__metadata__" first, then tensors sorted by name for one dtype) padded with spaces
// to 8 bytes, then the raw little-endian data. Writes are atomic (temp file + rename), so a crash
// never leaves a corrupt checkpoint.
import { ShapeError, WgnnError, fmtShape } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { Tensor } from '../tensor.js';
import { numel } from '../shape.js';

export type SafetensorsDType = 'F32' | 'F16' | 'BF16' | 'I32' | 'I64' | 'F64' | 'U8' | 'BOOL';

export interface RawTensor {
  dtype: SafetensorsDType;
  shape: number[];
  data: Uint8Array;
}

interface HeaderEntry {
  dtype: SafetensorsDType;
  shape: number[];
  data_offsets: [number, number];
}

/** Serialises raw tensors to safetensors bytes. */
export function encodeSafetensors(tensors: Record<string, RawTensor>, metadata?: Record<string, string>): Uint8Array {
  // the Python library orders by dtype alignment (descending) then by name; we store F32/I32 (4 bytes)
  const align: Record<SafetensorsDType, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, BOOL: 1 };
  const names = Object.keys(tensors).sort((a, b) => align[tensors[b]!.dtype] - align[tensors[a]!.dtype] || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header['__metadata__'] = metadata;
  let offset = 0;
  for (const n of names) {
    const t = tensors[n]!;
    header[n] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  const enc = new TextEncoder();
  let hbytes = enc.encode(json);
  const pad = (8 - (hbytes.byteLength % 8)) % 8;
  if (pad) {
    json += ' '.repeat(pad);
    hbytes = enc.encode(json);
  }
  const out = new Uint8Array(8 + hbytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(hbytes.byteLength), true);
  out.set(hbytes, 8);
  let p = 8 + hbytes.byteLength;
  for (const n of names) {
    out.set(tensors[n]!.data, p);
    p += tensors[n]!.data.byteLength;
  }
  return out;
}

/** Parses safetensors bytes (validating offsets and sizes). */
export function decodeSafetensors(bytes: Uint8Array): { tensors: Record<string, RawTensor>; metadata: Record<string, string> } {
  if (bytes.byteLength < 8) throw new WgnnError('safetensors: file is shorter than its 8-byte header length');
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(dv.getBigUint64(0, true));
  if (8 + n > bytes.byteLength) throw new WgnnError(`safetensors: header length ${n} runs past the end of the file (${bytes.byteLength} bytes)`);
  let header: Record<string, HeaderEntry | Record<string, string>>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n))) as typeof header;
  } catch (e) {
    throw new WgnnError(`safetensors: header is not valid JSON: ${(e as Error).message}`);
  }
  const size: Record<SafetensorsDType, number> = { F64: 8, I64: 8, F32: 4, I32: 4, F16: 2, BF16: 2, U8: 1, BOOL: 1 };
  const base = 8 + n;
  const tensors: Record<string, RawTensor> = {};
  let metadata: Record<string, string> = {};
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = e as Record<string, string>;
      continue;
    }
    const h = e as HeaderEntry;
    if (!(h.dtype in size)) throw new WgnnError(`safetensors: tensor '${name}' has unsupported dtype ${h.dtype}`);
    const [b, end] = h.data_offsets;
    if (!(end >= b && base + end <= bytes.byteLength)) throw new WgnnError(`safetensors: tensor '${name}' data_offsets [${b}, ${end}] are out of the file`);
    if (end - b !== numel(h.shape) * size[h.dtype]) {
      throw new WgnnError(`safetensors: tensor '${name}' ${fmtShape(h.shape)} ${h.dtype} needs ${numel(h.shape) * size[h.dtype]} bytes, has ${end - b}`);
    }
    tensors[name] = { dtype: h.dtype, shape: h.shape, data: bytes.slice(base + b, base + end) };
  }
  return { tensors, metadata };
}

/** Converts a raw tensor to float32 (F16/BF16/F64 widened or narrowed) or int32 (I64 narrowed, checked). */
export function rawToTyped(name: string, t: RawTensor): Float32Array | Int32Array {
  const dv = new DataView(t.data.buffer, t.data.byteOffset, t.data.byteLength);
  const n = numel(t.shape);
  switch (t.dtype) {
    case 'F32':
      return new Float32Array(t.data.slice().buffer);
    case 'I32':
      return new Int32Array(t.data.slice().buffer);
    case 'F64':
      return Float32Array.from({ length: n }, (_, i) => dv.getFloat64(8 * i, true));
    case 'BF16':
      return Float32Array.from({ length: n }, (_, i) => new Float32Array(new Uint32Array([dv.getUint16(2 * i, true) << 16]).buffer)[0]!);
    case 'F16':
      return Float32Array.from({ length: n }, (_, i) => halfToFloat(dv.getUint16(2 * i, true)));
    case 'I64':
      return Int32Array.from({ length: n }, (_, i) => {
        const v = dv.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) throw new WgnnError(`safetensors: '${name}' has an I64 value ${v} outside int32`);
        return Number(v);
      });
    case 'U8':
    case 'BOOL':
      return Int32Array.from(t.data);
  }
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

/** Reads GPU tensors to raw F32/I32 tensors. */
export async function tensorsToRaw(tensors: Record<string, Tensor>): Promise<Record<string, RawTensor>> {
  const out: Record<string, RawTensor> = {};
  for (const [name, t] of Object.entries(tensors)) {
    if (!(t instanceof Tensor)) throw new ShapeError(`saveSafetensors: '${name}' is not a Tensor`);
    const data = t.dtype === 'float32' ? await t.toArray() : t.dtype === 'int32' ? await t.toInt32Array() : Int32Array.from(await t.toBoolArray());
    out[name] = { dtype: t.dtype === 'float32' ? 'F32' : 'I32', shape: [...t.shape], data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) };
  }
  return out;
}

interface HasStateDict {
  stateDict(): Record<string, Tensor>;
}

/** Writes a module's state dict (or a record of tensors) to `path` atomically. Node only. */
export async function saveSafetensors(src: HasStateDict | Record<string, Tensor>, path: string, metadata?: Record<string, string>): Promise<void> {
  const tensors = typeof (src as HasStateDict).stateDict === 'function' ? (src as HasStateDict).stateDict() : (src as Record<string, Tensor>);
  const bytes = encodeSafetensors(await tensorsToRaw(tensors), metadata);
  await writeFileAtomic(path, bytes);
}

/** A tensor's values on the CPU (what loadSafetensors returns; accepted by loadStateDict). */
export interface HostTensor {
  dtype: 'float32' | 'int32';
  shape: number[];
  data: Float32Array | Int32Array;
}

/** Reads a safetensors file into host tensors (F16/BF16/F64 become float32, I64 int32). Node only. */
export async function loadSafetensors(path: string): Promise<Record<string, HostTensor>> {
  return (await loadSafetensorsWithMetadata(path)).tensors;
}

export async function loadSafetensorsWithMetadata(path: string): Promise<{ tensors: Record<string, HostTensor>; metadata: Record<string, string> }> {
  const { readFile } = await import('node:fs/promises');
  const { tensors, metadata } = decodeSafetensors(new Uint8Array(await readFile(path)));
  const out: Record<string, HostTensor> = {};
  for (const [name, raw] of Object.entries(tensors)) {
    const data = rawToTyped(name, raw);
    out[name] = { dtype: data instanceof Float32Array ? 'float32' : 'int32', shape: raw.shape, data };
  }
  return { tensors: out, metadata };
}

/** Uploads host tensors to the device. */
export function toDevice(dev: Device, host: Record<string, HostTensor>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(host).map(([k, h]) => [k, dev.tensor(h.data, h.shape)]));
}

/** Writes to a temp file in the same directory, fsyncs, then renames over the target. */
export async function writeFileAtomic(path: string, bytes: Uint8Array): Promise<void> {
  const fs = await import('node:fs/promises');
  const tmp = `${path}.tmp-${process.pid}-${Date.now()}`;
  const fh = await fs.open(tmp, 'w');
  try {
    try {
      await fh.writeFile(bytes);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fs.rename(tmp, path);
  } catch (e) {
    // a failed write (e.g. a full disk) or rename leaves the target as it was and no temp file
    await fs.rm(tmp, { force: true });
    throw e;
  }
}
