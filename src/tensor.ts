// Tensors: a shape over a ref-counted GPU buffer (Storage). Views (reshape) share storage;
// every other op writes a fresh, contiguous output. Lifetimes: tensors created inside tidy() are
// disposed when it returns (per-step activations); parameters, their .grad and optimizer state are
// kept (long-lived). A FinalizationRegistry returns the buffers of tensors that were dropped without
// dispose(), as a backstop.
import { DisposedError, ShapeError, fmtShape } from './errors.js';
import type { Device } from './gpu/device.js';
import type { BufferRange } from './graph/executor.js';
import { numel, type Shape } from './shape.js';
import type { GradNode } from './autodiff.js';
import * as A from './autodiff.js';
import * as ew from './ops/elementwise.js';
import * as mm from './ops/matmul.js';
import * as red from './ops/reduce.js';
import * as sm from './ops/softmax.js';
import * as sh from './ops/shape_ops.js';

/** float32 (default); int32 (indices, targets); bool (masks: stored as u32 0/1, 4 bytes each). */
export type DType = 'float32' | 'int32' | 'bool';

export class Storage {
  refs = 1;
  constructor(
    readonly device: Device,
    readonly buffer: GPUBuffer,
    readonly byteLength: number,
    /** false for fromGPUBuffer: the caller owns the buffer and we never release it */
    readonly owned: boolean,
  ) {
    device._liveBytes += byteLength;
    if (device._liveBytes > device._peakBytes) device._peakBytes = device._liveBytes;
  }
  retain(): void {
    this.refs++;
  }
  release(): void {
    if (--this.refs === 0) {
      this.device._liveBytes -= this.byteLength;
      if (this.owned && !this.device.destroyed) this.device.pool.release(this.buffer);
    }
  }
}

const finalizer = new FinalizationRegistry<{ storage: Storage; device: Device }>((h) => {
  h.device._liveTensors--;
  h.storage.release();
});

// tidy scopes: each is the set of tensors created while it is innermost.
const scopes: Set<Tensor>[] = [];

type Nested = Tensor | readonly Nested[] | { readonly [k: string]: Nested } | unknown;

function collect(x: Nested, out: Set<Tensor>): void {
  if (x instanceof Tensor) out.add(x);
  else if (Array.isArray(x)) for (const y of x) collect(y, out);
  else if (x && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype) {
    for (const y of Object.values(x as Record<string, unknown>)) collect(y, out);
  }
}

/**
 * Runs fn and disposes every tensor it created, except those it returns (in an array or plain
 * object too) and those marked with keep(). Use it around a training step so activations and
 * saved-for-backward tensors go back to the pool.
 */
export function tidy<T>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
    if (result instanceof Promise) throw new Error('tidy: fn must be synchronous (it returned a Promise)');
  } catch (e) {
    // nothing is returned: everything fn created goes, as it would on success
    scopes.pop();
    for (const t of scope) t.dispose();
    throw e;
  }
  scopes.pop();
  const keepSet = new Set<Tensor>();
  collect(result, keepSet);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (keepSet.has(t)) parent?.add(t);
    else t.dispose();
  }
  return result;
}

/** Exempts t from disposal by the enclosing tidy() scopes. */
export function keep<T extends Tensor>(t: T): T {
  for (const s of scopes) s.delete(t);
  return t;
}

let nextId = 1;

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  requiresGrad = false;
  /** the accumulated gradient of a leaf after backward() */
  grad: Tensor | null = null;
  /** autodiff: how this tensor was computed (null for leaves and under noGrad) */
  _node: GradNode | null = null;
  /** a module parameter (found by nn.Module's field walk) */
  isParameter = false;
  /** a module buffer: persistent state that is not trained (saved in stateDict) */
  isBuffer = false;
  private _storage: Storage | null;
  private readonly handle: { storage: Storage; device: Device };

  constructor(
    readonly device: Device,
    storage: Storage,
    shape: Shape,
    readonly dtype: DType = 'float32',
  ) {
    this.shape = Object.freeze([...shape]);
    this._storage = storage;
    this.handle = { storage, device };
    device._liveTensors++;
    finalizer.register(this, this.handle, this);
    scopes[scopes.length - 1]?.add(this);
  }

  get size(): number {
    return numel(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }
  get disposed(): boolean {
    return this._storage === null;
  }
  get storage(): Storage {
    if (!this._storage) throw new DisposedError(`tensor #${this.id} ${fmtShape(this.shape)} was used after dispose()`);
    return this._storage;
  }
  /** Zero-copy out: the GPU buffer holding this tensor (row-major, from byte 0); valid until disposed. */
  get gpuBuffer(): GPUBuffer {
    return this.storage.buffer;
  }
  /** The bound range for a kernel (never empty: WebGPU rejects zero-size bindings). */
  range(): BufferRange {
    return { buffer: this.storage.buffer, offset: 0, size: Math.max(4, this.size * 4) };
  }

  dispose(): void {
    if (!this._storage) return;
    finalizer.unregister(this);
    this.device._liveTensors--;
    this._storage.release();
    this._storage = null;
    this._node = null;
    for (const s of scopes) s.delete(this);
  }

  async toArray(): Promise<Float32Array> {
    if (this.dtype !== 'float32') throw new ShapeError(`toArray: tensor is ${this.dtype}; use toInt32Array()`);
    return new Float32Array(await this.device._read(this));
  }
  async toInt32Array(): Promise<Int32Array> {
    if (this.dtype !== 'int32') throw new ShapeError(`toInt32Array: tensor is ${this.dtype}`);
    return new Int32Array(await this.device._read(this));
  }
  async toBoolArray(): Promise<Uint8Array> {
    if (this.dtype !== 'bool') throw new ShapeError(`toBoolArray: tensor is ${this.dtype}`);
    return Uint8Array.from(new Uint32Array(await this.device._read(this)), (v) => (v ? 1 : 0));
  }
  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new ShapeError(`item: tensor of shape ${fmtShape(this.shape)} has ${this.size} elements, expected 1`);
    return (await this.toArray())[0]!;
  }

  /** Reverse-mode autodiff from this tensor; grad defaults to 1 for a one-element tensor. */
  backward(grad?: Tensor, opts: { retainGraph?: boolean } = {}): void {
    A.backward(this, grad, opts);
  }
  /** A tensor sharing this storage, cut from the autodiff graph. */
  detach(): Tensor {
    this.storage.retain();
    return new Tensor(this.device, this.storage, this.shape, this.dtype);
  }
  /** Copies src's values into this tensor's storage in place (same shape; not recorded by autodiff). */
  copy_(src: Tensor): this {
    if (src.device !== this.device) throw new ShapeError('copy_: src lives on another device');
    if (src.size !== this.size || src.shape.length !== this.shape.length || src.shape.some((d, i) => d !== this.shape[i])) {
      throw new ShapeError(`copy_: src ${fmtShape(src.shape)} must have this tensor's shape ${fmtShape(this.shape)}`);
    }
    if (src.storage !== this.storage && this.size > 0) {
      this.device.exec.record({ kind: 'copy', src: src.storage.buffer, srcOffset: 0, dst: this.storage.buffer, dstOffset: 0, size: this.size * 4 });
    }
    return this;
  }

  /** Marks this leaf as requiring grad (in place) and returns it. */
  requiresGrad_(flag = true): this {
    if (this._node) throw new ShapeError('requiresGrad_: only leaf tensors can change requiresGrad');
    this.requiresGrad = flag;
    return this;
  }

  // Tensor methods for the common ops.
  add(b: Tensor | number): Tensor {
    return ew.add(this, b);
  }
  sub(b: Tensor | number): Tensor {
    return ew.sub(this, b);
  }
  mul(b: Tensor | number): Tensor {
    return ew.mul(this, b);
  }
  div(b: Tensor | number): Tensor {
    return ew.div(this, b);
  }
  neg(): Tensor {
    return ew.neg(this);
  }
  exp(): Tensor {
    return ew.exp(this);
  }
  log(): Tensor {
    return ew.log(this);
  }
  sqrt(): Tensor {
    return ew.sqrt(this);
  }
  tanh(): Tensor {
    return ew.tanh(this);
  }
  sigmoid(): Tensor {
    return ew.sigmoid(this);
  }
  relu(): Tensor {
    return ew.relu(this);
  }
  gelu(opts?: { approximate?: 'none' | 'tanh' }): Tensor {
    return ew.gelu(this, opts);
  }
  matmul(b: Tensor): Tensor {
    return mm.matmul(this, b);
  }
  sum(dim?: number | number[], keepDim = false): Tensor {
    return red.sum(this, dim, keepDim);
  }
  mean(dim?: number | number[], keepDim = false): Tensor {
    return red.mean(this, dim, keepDim);
  }
  max(dim?: number, keepDim = false): Tensor {
    return red.max(this, dim, keepDim);
  }
  softmax(dim = -1): Tensor {
    return sm.softmax(this, dim);
  }
  logSoftmax(dim = -1): Tensor {
    return sm.logSoftmax(this, dim);
  }
  reshape(shape: readonly number[]): Tensor {
    return sh.reshape(this, shape);
  }
  view(shape: readonly number[]): Tensor {
    return sh.view(this, shape);
  }
  permute(dims: readonly number[]): Tensor {
    return sh.permute(this, dims);
  }
  transpose(dim0 = -2, dim1 = -1): Tensor {
    return sh.transpose(this, dim0, dim1);
  }
  slice(dim: number, start: number, end?: number): Tensor {
    return sh.slice(this, dim, start, end);
  }
}
