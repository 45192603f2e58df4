// IDX files (MNIST / Fashion-MNIST), optionally gzip-compressed. Node only.
import { WgnnError } from '../errors.js';

export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses an IDX buffer of unsigned bytes (type code 0x08). */
export function parseIdx(buf: Uint8Array, what: string): IdxArray {
  if (buf.byteLength < 4 || buf[0] !== 0 || buf[1] !== 0) throw new WgnnError(`${what}: not an IDX file (bad magic)`);
  if (buf[2] !== 0x08) throw new WgnnError(`${what}: IDX type 0x${buf[2]!.toString(16)} is not unsigned byte`);
  const rank = buf[3]!;
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const dims: number[] = [];
  for (let i = 0; i < rank; i++) dims.push(dv.getUint32(4 + 4 * i, false));
  const start = 4 + 4 * rank;
  const n = dims.reduce((a, b) => a * b, 1);
  if (buf.byteLength - start !== n) throw new WgnnError(`${what}: IDX dims [${dims.join(', ')}] need ${n} bytes, file has ${buf.byteLength - start}`);
  return { dims, data: buf.subarray(start) };
}

export async function readIdxFile(path: string): Promise<IdxArray> {
  const { readFile } = await import('node:fs/promises');
  const { gunzipSync } = await import('node:zlib');
  let buf: Uint8Array = new Uint8Array(await readFile(path));
  if (buf[0] === 0x1f && buf[1] === 0x8b) buf = new Uint8Array(gunzipSync(buf));
  return parseIdx(buf, path);
}
