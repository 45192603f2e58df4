// Embedding lookup: out[..., :] = weight[indices[...], :] with a deterministic backward (a stable
// counting sort of positions by index, then a gather-sum per (v, d): no float atomics; see
// kernels/embedding.wgsl for the kernels and their complexity).
//
// Out-of-range indices:
//  - indices given as an Int32Array are validated on the CPU before any GPU work (ShapeError).
//  - an int32 Tensor lives on the GPU and cannot be seen without a readback, so the kernel checks
//    every index: an out-of-range one is never read; its output row is NaN and the call is recorded
//    in a per-device flag buffer. `await ops.checkIndexErrors(dev)` reads the flag and throws a
//    ShapeError naming the op, the shapes, and (if the indices tensor is still alive) the first bad
//    position and value. crossEntropy targets use the same flag.
import src from '../../kernels/embedding.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, ShapeError } from '../errors.js';
import { needsGrad, record } from '../autodiff.js';
import { numel, type Shape } from '../shape.js';
import { Tensor } from '../tensor.js';
import type { Device } from '../gpu/device.js';
import { checkSameDevice, checkTensor } from './elementwise.js';
import { type Arr, arr } from '../reference.js';

const K = kernel('embedding.wgsl', src);
const WG = 256;
/**
 * Shape of the row kernels: lanes over D (enough to cover it, in SIMD-8 steps) and rows per
 * workgroup so one workgroup handles ~1024+ elements (per-workgroup overhead dominates tiny rows).
 */
function rowShape(D: number, rows: number): { WG: number; ROWS: number; groups: number } {
  const WG = D >= 64 ? 64 : D > 16 ? 32 : D > 8 ? 16 : 8;
  const ROWS = D >= 1024 ? 1 : D >= 256 ? 4 : D >= 64 ? 16 : 64;
  return { WG, ROWS, groups: Math.ceil(rows / ROWS) };
}
/** workgroup size of the single-workgroup stable fill (O(N·WG) compares, O(N/WG) barriers) */
const WG_FILL = 128;

// ---- the out-of-range flag for GPU-resident indices ---------------------------------------------

interface CallInfo {
  op: string;
  /** "indices" / "targets" */
  arg: string;
  /** the argument's shape, the other operand, and the valid range, for the message */
  what: string;
  tensor: WeakRef<Tensor>;
  lo: number;
  hi: number;
  /** a value allowed besides [lo, hi) (crossEntropy's ignoreIndex) */
  allowed: number | null;
}

const FLAG_INIT = new Uint32Array([0, 0xffffffff, 0, 0]);
/** descriptions kept per check window: the first KEEP_FIRST calls and the last KEEP_LAST */
const KEEP_FIRST = 4096;
const KEEP_LAST = 256;

class IndexGuard {
  readonly buffer: GPUBuffer;
  seq = 0;
  calls = new Map<number, CallInfo>();

  constructor(readonly dev: Device) {
    this.buffer = dev.gpu.createBuffer({
      label: 'wgnn index flag',
      size: 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    dev.exec.upload(this.buffer, 0, FLAG_INIT);
  }

  get range(): { buffer: GPUBuffer; offset: number; size: number } {
    return { buffer: this.buffer, offset: 0, size: 16 };
  }

  /** Registers a kernel call that checks GPU-resident indices; returns its call id. */
  register(info: CallInfo): number {
    const id = this.seq++;
    if (id >= 0xfffffffe) throw new ShapeError(`${info.op}: more than 2^32 unchecked calls; call ops.checkIndexErrors(dev)`);
    this.calls.set(id, info);
    if (id >= KEEP_FIRST + KEEP_LAST) this.calls.delete(id - KEEP_LAST);
    return id;
  }
}

const guards = new WeakMap<Device, IndexGuard>();

/** @internal the index guard of dev (created on first use) */
export function indexGuard(dev: Device): IndexGuard {
  let g = guards.get(dev);
  if (!g) guards.set(dev, (g = new IndexGuard(dev)));
  return g;
}

/**
 * Reads the out-of-range flag that embedding/crossEntropy set for GPU-resident int32 indices or
 * targets since the last check, resets it, and throws a ShapeError describing the first offending
 * call if any index was out of range. Flushes pending work (one small readback).
 */
export async function checkIndexErrors(dev: Device): Promise<void> {
  const g = guards.get(dev);
  if (!g) return;
  // read, reset and swap the registry synchronously so calls made while we wait start a new window
  const reading = dev.exec.read(g.range);
  dev.exec.upload(g.buffer, 0, FLAG_INIT);
  const calls = g.calls;
  g.calls = new Map();
  g.seq = 0;
  const flag = new Uint32Array(await reading);
  const count = flag[0]!;
  if (count === 0) return;
  const first = flag[1]!;
  const last = flag[2]!;
  const info = calls.get(first) ?? calls.get(last);
  const nCalls = `${count} out-of-range value${count === 1 ? '' : 's'} since the last check`;
  if (!info) throw new ShapeError(`embedding/crossEntropy: GPU-resident indices were out of range (${nCalls}); the affected rows were NaN`);
  let where = '';
  const t = info.tensor.deref();
  if (t && !t.disposed && t.dtype === 'int32') {
    const vals = await t.toInt32Array();
    for (let i = 0; i < vals.length; i++) {
      const v = vals[i]!;
      if ((v < info.lo || v >= info.hi) && v !== info.allowed) {
        where = `; the first is ${info.arg}[${i}] (flat) = ${v}`;
        break;
      }
    }
  }
  throw new ShapeError(`${info.op}: ${info.arg} ${info.what} contained values outside [${info.lo}, ${info.hi})${where} (${nCalls}; the affected output rows were NaN)`);
}

// ---- embedding ----------------------------------------------------------------------------------

export interface EmbeddingOptions {
  /** row whose gradient is always zero (PyTorch padding_idx); negative counts from the end */
  paddingIdx?: number | null;
  /** shape of Int32Array indices (default [length]) */
  shape?: readonly number[];
}

/** Stable counting sort of positions by index: offsets[v]..offsets[v+1] are the positions of v. */
export function buildCsr(indices: Int32Array, vocab: number): { offsets: Int32Array; order: Int32Array } {
  const offsets = new Int32Array(vocab + 1);
  for (const v of indices) offsets[v + 1]!++;
  for (let v = 0; v < vocab; v++) offsets[v + 1]! += offsets[v]!;
  const cursor = offsets.slice(0, vocab);
  const order = new Int32Array(indices.length);
  for (let t = 0; t < indices.length; t++) order[cursor[indices[t]!]!++] = t;
  return { offsets, order };
}

function normPaddingIdx(p: number | null | undefined, vocab: number, op: string): number {
  if (p === undefined || p === null) return -1;
  check(Number.isInteger(p) && p >= -vocab && p < vocab, op, `paddingIdx must be an integer in [${-vocab}, ${vocab}), got ${p}`);
  return p < 0 ? p + vocab : p;
}

/**
 * Embedding lookup: indices (an int32 Tensor of any shape, or an Int32Array) into weight [V, D]
 * gives [...indices.shape, D]. Gradient flows to weight only (deterministic scatter-add).
 */
export function embedding(indices: Tensor | Int32Array, weight: Tensor, opts: EmbeddingOptions = {}): Tensor {
  const op = 'embedding';
  checkTensor(weight, op, 'weight');
  check(weight.rank === 2, op, `weight must be 2-D [numEmbeddings, embeddingDim], got ${fmtShape(weight.shape)}`);
  const [V, D] = weight.shape as [number, number];
  const dev = weight.device;
  const pad = normPaddingIdx(opts.paddingIdx, V, op);
  let idxT: Tensor;
  let cpu: Int32Array | null = null;
  if (indices instanceof Int32Array) {
    const shape = opts.shape ? [...opts.shape] : [indices.length];
    check(shape.every((d) => Number.isInteger(d) && d >= 0), op, `shape must be non-negative integers, got ${fmtShape(shape)}`);
    check(numel(shape) === indices.length, op, `indices has ${indices.length} values but shape is ${fmtShape(shape)}`);
    for (let i = 0; i < indices.length; i++) {
      const v = indices[i]!;
      if (v < 0 || v >= V) throw new ShapeError(`${op}: indices[${i}] = ${v} is out of range for weight ${fmtShape(weight.shape)} (valid [0, ${V}))`);
    }
    cpu = indices;
    idxT = dev.tensor(indices, shape, { dtype: 'int32' });
  } else {
    check(indices instanceof Tensor, op, `indices must be an int32 Tensor or an Int32Array, got ${indices === null ? 'null' : typeof indices}`);
    indices.storage; // throws DisposedError
    check(indices.dtype === 'int32', op, `indices must be int32, got ${indices.dtype} ${fmtShape(indices.shape)}`);
    checkSameDevice(op, { weight, indices });
    check(opts.shape === undefined, op, 'shape is only for Int32Array indices');
    idxT = indices;
  }
  const n = idxT.size;
  const out = dev.empty([...idxT.shape, D]);
  const guard = indexGuard(dev);
  const call = cpu
    ? 0 // validated on the CPU: the kernel's check can never fire
    : guard.register({
      op, arg: 'indices', what: `(int32 ${fmtShape(idxT.shape)}, weight ${fmtShape(weight.shape)})`,
      tensor: new WeakRef(idxT), lo: 0, hi: V, allowed: null,
    });
  const fs = rowShape(D, n);
  dev.dispatch(K, 'embedding_fwd', {
    bindings: { idx: idxT, weight, out, flag: guard.range },
    uniforms: { n, dim: D, vocab: V, call },
    overrides: { WG: fs.WG, ROWS: fs.ROWS },
    workgroups: D > 0 ? dev.grid1d(fs.groups, 1) : [0],
  });
  if (!needsGrad(weight)) {
    if (cpu) idxT.dispose();
    return out;
  }
  // Saved for backward: the CSR when the indices are on the CPU (built now, O(N + V)); the
  // indices tensor otherwise (the CSR is built on the GPU by the rule).
  let saved: { offsets: Tensor; order: Tensor } | null = null;
  // a view that keeps the indices' buffer alive even if the caller disposes their tensor
  const savedIdx = cpu ? null : idxT.detach();
  if (cpu) {
    const csr = buildCsr(cpu, V);
    saved = {
      offsets: dev.tensor(csr.offsets, [V + 1], { dtype: 'int32' }),
      order: dev.tensor(csr.order.length ? csr.order : new Int32Array(1), [Math.max(1, n)], { dtype: 'int32' }),
    };
    idxT.dispose();
  }
  return record(op, out, [weight], (g) => {
    let csr = saved;
    let temps: Tensor[] = [];
    if (!csr) {
      const built = gpuCsr(savedIdx!, V);
      csr = built;
      temps = [built.offsets, built.order];
    }
    const gw = dev.empty([V, D]);
    const bs = rowShape(D, V);
    dev.dispatch(K, 'embedding_bwd', {
      bindings: { gy: g, boffsets: csr.offsets, border: csr.order, gw },
      uniforms: { vocab: V, dim: D, padding_idx: pad },
      overrides: { WG: bs.WG, ROWS: bs.ROWS },
      workgroups: D > 0 ? dev.grid1d(bs.groups, 1) : [0],
    });
    temps.forEach((t) => t.dispose());
    return [gw];
  });
}

/** Builds the CSR (offsets [V+1], order [N]) of GPU-resident indices: 3 dispatches + 1 clear. */
function gpuCsr(idx: Tensor, vocab: number): { offsets: Tensor; order: Tensor } {
  const dev = idx.device;
  const n = idx.size;
  const counts = dev.zeros([vocab], { requiresGrad: false });
  dev.dispatch(K, 'embedding_count', {
    bindings: { cidx: idx, counts },
    uniforms: { n, vocab },
    overrides: { WG },
    workgroups: dev.grid1d(n, WG),
  });
  const offsets = dev.empty([vocab + 1], 'int32');
  const cursor = dev.empty([vocab], 'int32');
  dev.dispatch(K, 'embedding_scan', {
    bindings: { hist: counts, offsets, cursor },
    uniforms: { n, vocab },
    overrides: { WG },
    workgroups: [1],
  });
  counts.dispose();
  const order = dev.empty([Math.max(1, n)], 'int32');
  dev.dispatch(K, 'embedding_fill', {
    bindings: { fidx: idx, fcursor: cursor, order },
    uniforms: { n, vocab },
    overrides: { WG: WG_FILL },
    workgroups: [1],
  });
  cursor.dispose();
  return { offsets, order };
}

// ---- float64 references -------------------------------------------------------------------------

/** out[t, :] = weight[indices[t], :]; shape [...idxShape, D]. */
export function embeddingRef(indices: Int32Array, idxShape: Shape, weight: Arr): Arr {
  const D = weight.shape[1]!;
  const out = arr([...idxShape, D]);
  for (let t = 0; t < indices.length; t++) {
    for (let d = 0; d < D; d++) out.data[t * D + d] = weight.data[indices[t]! * D + d]!;
  }
  return out;
}

/** dW[v, :] = Σ_{t: indices[t] = v} g[t, :] (row paddingIdx stays 0). */
export function embeddingRefBackward(g: Arr, indices: Int32Array, weightShape: Shape, paddingIdx = -1): Arr {
  const [V, D] = weightShape as [number, number];
  const gw = arr([V, D]);
  for (let t = 0; t < indices.length; t++) {
    const v = indices[t]!;
    if (v === paddingIdx) continue;
    for (let d = 0; d < D; d++) gw.data[v * D + d]! += g.data[t * D + d]!;
  }
  return gw;
}
