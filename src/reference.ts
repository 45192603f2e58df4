// Float64 CPU arrays for the reference implementations every op is tested against.
import { numel, stridesOf, type Shape } from './shape.js';

export interface Arr {
  shape: number[];
  data: Float64Array;
}

export function arr(shape: Shape, data?: ArrayLike<number>): Arr {
  const n = numel(shape);
  const d = new Float64Array(n);
  if (data) {
    if (data.length !== n) throw new Error(`arr: ${data.length} values for shape [${shape.join(', ')}]`);
    d.set(data);
  }
  return { shape: [...shape], data: d };
}

export function mapArr(x: Arr, f: (v: number, i: number) => number): Arr {
  const out = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) out.data[i] = f(x.data[i]!, i);
  return out;
}

export function zipArr(x: Arr, y: Arr, f: (u: number, v: number) => number): Arr {
  if (x.data.length !== y.data.length) throw new Error('zipArr: size mismatch');
  const out = arr(x.shape);
  for (let i = 0; i < x.data.length; i++) out.data[i] = f(x.data[i]!, y.data[i]!);
  return out;
}

/** Multi-index of flat index i in shape. */
export function unravel(i: number, shape: Shape): number[] {
  const st = stridesOf(shape);
  return shape.map((d, k) => Math.floor(i / st[k]!) % d);
}

/** Flat index of a multi-index. */
export function ravel(idx: readonly number[], shape: Shape): number {
  let f = 0;
  for (let k = 0; k < shape.length; k++) f = f * shape[k]! + idx[k]!;
  return f;
}

/** Sums x down to `shape` (the inverse of broadcasting). */
export function sumToRef(x: Arr, shape: Shape): Arr {
  const out = arr(shape);
  const off = x.shape.length - shape.length;
  for (let i = 0; i < x.data.length; i++) {
    const idx = unravel(i, x.shape).slice(off).map((k, d) => (shape[d] === 1 ? 0 : k));
    out.data[ravel(idx, shape)]! += x.data[i]!;
  }
  return out;
}
