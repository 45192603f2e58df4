// Shape helpers shared by ops: sizes, strides, broadcasting, dim normalisation.
import { check, fmtShape, ShapeError } from './errors.js';

export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function stridesOf(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function sameShape(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function checkShape(shape: Shape, op: string, arg: string): void {
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0) throw new ShapeError(`${op}: ${arg} has an invalid shape ${fmtShape(shape)} (dims must be non-negative integers)`);
  }
}

/** numpy/torch broadcasting of two shapes; throws naming the op and both shapes. */
export function broadcastShapes(a: Shape, b: Shape, op: string, names: [string, string] = ['a', 'b']): number[] {
  const n = Math.max(a.length, b.length);
  const out = new Array<number>(n);
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(`${op}: ${names[0]} ${fmtShape(a)} and ${names[1]} ${fmtShape(b)} are not broadcastable (dim ${i - n} is ${da} vs ${db})`);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Normalises a possibly negative dim against rank; throws naming op and shape. */
export function normDim(dim: number, rank: number, op: string, shape: Shape): number {
  check(Number.isInteger(dim), op, `dim must be an integer, got ${dim}`);
  const d = dim < 0 ? dim + rank : dim;
  if (d < 0 || d >= rank) throw new ShapeError(`${op}: dim ${dim} is out of range for a tensor of shape ${fmtShape(shape)} (rank ${rank})`);
  return d;
}
