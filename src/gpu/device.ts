// The device: a GPUDevice with the adapter's real limits, a buffer pool, the pending graph and the
// compiled kernels. createDevice() finds WebGPU in the browser (navigator.gpu) or, in Node, in
// Dawn's bindings (the 'webgpu' package), or wraps a GPUDevice the caller brings.
import { DeviceLostError, KernelError, LimitError, ShapeError, WgnnError, fmtShape } from '../errors.js';
import { Executor, type BufferRange, type TracedDispatch } from '../graph/executor.js';
import { checkShape, numel, type Shape } from '../shape.js';
import { Storage, Tensor, tidy, type DType } from '../tensor.js';
import { mulberry32 } from '../random.js';
import { BufferPool } from './pool.js';
import { measureProfile, type DeviceProfile } from './profile.js';
import { CompiledKernel, packUniforms, type KernelSource, type UniformValue } from './kernel.js';

export interface CreateDeviceOptions {
  /** Use this GPUDevice (it stays yours: destroy() does not destroy it). */
  device?: GPUDevice;
  /** Use this adapter instead of requesting one. */
  adapter?: GPUAdapter;
  powerPreference?: GPUPowerPreference;
  /** use this profile instead of measuring one (tests force both kernel layouts this way) */
  profile?: DeviceProfile;
}

export interface AdapterDescription {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
}

/** What dev.stopTrace() returns: GPU time per dispatch and per kernel, from timestamp queries. */
export interface KernelTrace {
  /** every dispatch since startTrace, in submission order */
  dispatches: TracedDispatch[];
  /** per pipeline (file:entry {overrides}), most total time first */
  kernels: { kernel: string; calls: number; totalMs: number; meanMs: number; share: number }[];
  /** sum of the dispatches' GPU times */
  totalMs: number;
}

export interface MemoryInfo {
  /** tensors not yet disposed */
  liveTensors: number;
  /** bytes held by live tensors' storage */
  liveBytes: number;
  /** bytes of GPU buffers wgnn allocated (live + pooled) */
  allocatedBytes: number;
  /** bytes of free buffers waiting in the pool */
  pooledBytes: number;
  /** the most liveBytes seen since creation or the last resetPeak() */
  peakBytes: number;
}

export interface DispatchSpec {
  /** storage bindings by WGSL name */
  bindings: Record<string, Tensor | BufferRange>;
  /** uniform struct members by WGSL name */
  uniforms?: Record<string, UniformValue>;
  /** override constants by WGSL name */
  overrides?: Record<string, number>;
  workgroups: readonly [number, number?, number?];
}

const WANTED_FEATURES: GPUFeatureName[] = ['timestamp-query', 'subgroups', 'shader-f16'] as GPUFeatureName[];

type NestedNumbers = number | readonly NestedNumbers[];
type NestedBooleans = boolean | readonly NestedBooleans[];

/** Flattens nested arrays into out, inferring shape; returns true if the leaves were booleans. */
function flatten(data: NestedNumbers | NestedBooleans, shape: number[], out: number[], depth: number): boolean {
  if (typeof data === 'number' || typeof data === 'boolean') {
    if (depth !== shape.length) throw new ShapeError('tensor: ragged nested array');
    out.push(Number(data));
    return typeof data === 'boolean';
  }
  if (depth === shape.length) {
    if (out.length === 0) shape.push(data.length);
    else throw new ShapeError('tensor: ragged nested array');
  }
  if (data.length !== shape[depth]) throw new ShapeError(`tensor: ragged nested array (expected ${shape[depth]} items at depth ${depth}, got ${data.length})`);
  let isBool = false;
  for (const d of data) isBool = flatten(d, shape, out, depth + 1) || isBool;
  return isBool;
}


export class Device {
  readonly pool: BufferPool;
  readonly exec: Executor;
  readonly features: ReadonlySet<string>;
  readonly limits: GPUSupportedLimits;
  destroyed = false;
  /** set when the device is lost; every later call throws it */
  lostError: DeviceLostError | null = null;
  _liveTensors = 0;
  _liveBytes = 0;
  _peakBytes = 0;
  private kernels = new Map<KernelSource, CompiledKernel>();
  /** measured traits of the adapter that ops use to pick kernel layouts (see gpu/profile.ts) */
  profile: DeviceProfile = { barrierBound: false, treeMs: NaN, loopMs: NaN };
  private seedCounter = 0x5eed;

  constructor(
    readonly gpu: GPUDevice,
    readonly adapterInfo: AdapterDescription,
    private readonly ownsDevice: boolean,
  ) {
    this.limits = gpu.limits;
    this.features = new Set([...gpu.features] as string[]);
    this.pool = new BufferPool(gpu, gpu.limits.maxBufferSize);
    this.exec = new Executor(
      gpu,
      Math.max(256, gpu.limits.minUniformBufferOffsetAlignment),
      () => this.pool.takeErrors(),
      () => this.checkAlive(),
    );
    gpu.lost.then((info) => {
      if (!this.lostError) this.lostError = new DeviceLostError(info.reason ?? 'unknown', info.message || (this.destroyed ? 'destroy() was called' : 'no message'));
    });
  }

  checkAlive(): void {
    if (this.lostError) throw this.lostError;
    if (this.destroyed) throw new DeviceLostError('destroyed', 'destroy() was called');
  }

  // ---- kernels -------------------------------------------------------------------------------

  /** Records one dispatch of a WGSL entry point into the pending graph. */
  dispatch(src: KernelSource, entryName: string, spec: DispatchSpec): void {
    this.checkAlive();
    const entry = src.entry(entryName);
    let ck = this.kernels.get(src);
    if (!ck) this.kernels.set(src, (ck = new CompiledKernel(this.gpu, src)));
    const where = `${src.file}:${entryName}`;
    const names = Object.keys(spec.bindings);
    for (const n of names) {
      if (!entry.storage.has(n)) throw new KernelError(`${where}: no storage binding '${n}' (has: ${[...entry.storage.keys()].join(', ')})`);
    }
    const bindings: { binding: number; range: BufferRange }[] = [];
    const written = new Set<GPUBuffer>();
    for (const b of entry.storage.values()) {
      const v = spec.bindings[b.name];
      if (!v) throw new KernelError(`${where}: missing storage binding '${b.name}'`);
      let range: BufferRange;
      if (v instanceof Tensor) {
        if (v.device !== this) throw new ShapeError(`${where}: binding '${b.name}' is a tensor from another device`);
        range = v.range();
      } else range = v;
      if (range.size > this.limits.maxStorageBufferBindingSize) {
        throw new LimitError(`${where}: binding '${b.name}' is ${range.size} bytes, over the device limit maxStorageBufferBindingSize = ${this.limits.maxStorageBufferBindingSize}`);
      }
      if (b.kind === 'storage-rw') written.add(range.buffer);
      bindings.push({ binding: b.binding, range });
    }
    // WebGPU forbids a written buffer to be bound twice in one dispatch.
    for (const w of written) {
      if (bindings.filter((b) => b.range.buffer === w).length > 1) throw new KernelError(`${where}: a written buffer is bound twice`);
    }
    const uniform = packUniforms(src, entry, spec.uniforms ?? {});
    const pipeline = ck.pipeline(entry, spec.overrides ?? {});
    const [x, y = 1, z = 1] = spec.workgroups;
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    for (const w of [x, y, z]) {
      if (!Number.isInteger(w) || w < 0) throw new KernelError(`${where}: bad workgroup count ${w}`);
      if (w > maxWg) throw new LimitError(`${where}: ${w} workgroups in one dimension is over the device limit maxComputeWorkgroupsPerDimension = ${maxWg}`);
    }
    if (x * y * z === 0) return;
    this.exec.record({ kind: 'dispatch', pipeline, bindings, uniform, uniformBinding: entry.uniform?.binding ?? -1, workgroups: [x, y, z] });
  }

  /** Workgroup counts covering n invocations of size wg, folded into y when x would pass the limit. */
  grid1d(n: number, wg: number): [number, number, number] {
    const groups = Math.ceil(n / wg);
    const maxWg = this.limits.maxComputeWorkgroupsPerDimension;
    if (groups <= maxWg) return [groups, 1, 1];
    const y = Math.ceil(groups / maxWg);
    if (y > maxWg) throw new LimitError(`${n} elements need more than ${maxWg}² workgroups (maxComputeWorkgroupsPerDimension)`);
    return [Math.ceil(groups / y), y, 1];
  }

  /** The adapter's subgroup size range (0 when the implementation does not report it). */
  get subgroupSizes(): { min: number; max: number } {
    const info = (this.gpu as GPUDevice & { adapterInfo?: { subgroupMinSize?: number; subgroupMaxSize?: number } }).adapterInfo;
    return { min: info?.subgroupMinSize ?? 0, max: info?.subgroupMaxSize ?? 0 };
  }

  /**
   * A 2-D grid: x covers `inner` invocations with wg-wide workgroups, y·z cover `outer` rows (one
   * workgroup row each; kernels take row = wid.y + wid.z·nwg.y and skip rows >= outer).
   */
  grid2d(inner: number, outer: number, wg: number, what = 'kernel'): [number, number, number] {
    const max = this.limits.maxComputeWorkgroupsPerDimension;
    const x = Math.ceil(inner / wg);
    if (x > max) throw new LimitError(`${what}: ${inner} invocations per row need ${x} workgroups, over maxComputeWorkgroupsPerDimension = ${max}`);
    if (outer <= max) return [x, outer, 1];
    const z = Math.ceil(outer / max);
    if (z > max) throw new LimitError(`${what}: ${outer} rows need more than ${max}² workgroups (maxComputeWorkgroupsPerDimension)`);
    return [x, Math.ceil(outer / z), z];
  }

  // ---- tensors -------------------------------------------------------------------------------

  /** A new uninitialised tensor (for op outputs). */
  empty(shape: Shape, dtype: DType = 'float32'): Tensor {
    this.checkAlive();
    checkShape(shape, 'empty', 'shape');
    const bytes = Math.max(16, numel(shape) * 4);
    if (bytes > this.limits.maxStorageBufferBindingSize) {
      throw new LimitError(`tensor ${fmtShape(shape)} needs ${bytes} bytes, over the device limit maxStorageBufferBindingSize = ${this.limits.maxStorageBufferBindingSize}`);
    }
    const buf = this.pool.acquire(bytes);
    return new Tensor(this, new Storage(this, buf, numel(shape) * 4, true), shape, dtype);
  }

  /**
   * A tensor from data: Float32Array (float32), Int32Array (int32), Uint8Array (bool), or nested
   * arrays of numbers/booleans (float32 unless opts.dtype says otherwise; booleans give bool).
   */
  tensor(
    data: Float32Array | Int32Array | Uint8Array | NestedNumbers | NestedBooleans,
    shape?: Shape,
    opts: { requiresGrad?: boolean; dtype?: DType } = {},
  ): Tensor {
    let flat: Float32Array | Int32Array | Uint32Array;
    let inferred: number[];
    let dtype: DType;
    if (data instanceof Float32Array || data instanceof Int32Array || data instanceof Uint8Array) {
      dtype = opts.dtype ?? (data instanceof Float32Array ? 'float32' : data instanceof Int32Array ? 'int32' : 'bool');
      flat = data instanceof Uint8Array ? Uint32Array.from(data) : data;
      inferred = [data.length];
    } else {
      const vals: number[] = [];
      inferred = [];
      const isBool = flatten(data as NestedNumbers, inferred, vals, 0);
      dtype = opts.dtype ?? (isBool ? 'bool' : 'float32');
      // int32 straight from the numbers: through float32, integers above 2^24 would round
      flat = opts.dtype === 'int32' ? Int32Array.from(vals) : Float32Array.from(vals);
    }
    if (dtype === 'int32' && !(flat instanceof Int32Array)) flat = Int32Array.from(flat);
    if (dtype === 'float32' && !(flat instanceof Float32Array)) flat = Float32Array.from(flat);
    if (dtype === 'bool') flat = Uint32Array.from(flat, (v) => (v ? 1 : 0));
    const sh = shape ?? inferred;
    checkShape(sh, 'tensor', 'shape');
    if (numel(sh) !== flat.length) {
      throw new ShapeError(`tensor: ${flat.length} values cannot have shape ${fmtShape(sh)} (${numel(sh)} elements)`);
    }
    const t = this.empty(sh, dtype);
    this.exec.upload(t.storage.buffer, 0, flat);
    if (opts.requiresGrad) {
      if (dtype !== 'float32') throw new ShapeError('tensor: only float32 tensors can require grad');
      t.requiresGrad = true;
    }
    return t;
  }

  full(shape: Shape, value: number, opts: { requiresGrad?: boolean } = {}): Tensor {
    checkShape(shape, 'full', 'shape');
    return this.tensor(new Float32Array(numel(shape)).fill(value), shape, opts);
  }
  zeros(shape: Shape, opts: { requiresGrad?: boolean } = {}): Tensor {
    const t = this.empty(shape);
    if (t.size) this.exec.record({ kind: 'clear', buffer: t.storage.buffer, offset: 0, size: t.size * 4 });
    t.requiresGrad = !!opts.requiresGrad;
    return t;
  }
  ones(shape: Shape, opts: { requiresGrad?: boolean } = {}): Tensor {
    return this.full(shape, 1, opts);
  }
  /** Standard normal samples (seeded; reproducible for a given seed). */
  randn(shape: Shape, opts: { seed?: number; std?: number; mean?: number; requiresGrad?: boolean } = {}): Tensor {
    checkShape(shape, 'randn', 'shape');
    const rnd = mulberry32(opts.seed ?? this.seedCounter++);
    const n = numel(shape);
    const out = new Float32Array(n);
    const std = opts.std ?? 1;
    const mean = opts.mean ?? 0;
    for (let i = 0; i < n; i += 2) {
      const u1 = Math.max(rnd(), 1e-12);
      const u2 = rnd();
      const r = Math.sqrt(-2 * Math.log(u1));
      out[i] = mean + std * r * Math.cos(2 * Math.PI * u2);
      if (i + 1 < n) out[i + 1] = mean + std * r * Math.sin(2 * Math.PI * u2);
    }
    return this.tensor(out, shape, { requiresGrad: opts.requiresGrad });
  }
  /** Uniform samples in [low, high). */
  rand(shape: Shape, opts: { seed?: number; low?: number; high?: number; requiresGrad?: boolean } = {}): Tensor {
    checkShape(shape, 'rand', 'shape');
    const rnd = mulberry32(opts.seed ?? this.seedCounter++);
    const lo = opts.low ?? 0;
    const hi = opts.high ?? 1;
    const out = new Float32Array(numel(shape));
    for (let i = 0; i < out.length; i++) out[i] = lo + (hi - lo) * rnd();
    return this.tensor(out, shape, { requiresGrad: opts.requiresGrad });
  }
  arange(n: number): Tensor {
    if (!Number.isInteger(n) || n < 0) throw new ShapeError(`arange: n must be a non-negative integer, got ${n}`);
    return this.tensor(Float32Array.from({ length: n }, (_, i) => i), [n]);
  }

  /**
   * Zero-copy in: wraps the caller's GPUBuffer (usage must include STORAGE; COPY_SRC for toArray).
   * The buffer stays the caller's; disposing the tensor never destroys it.
   */
  fromGPUBuffer(buffer: GPUBuffer, shape: Shape, opts: { dtype?: DType; requiresGrad?: boolean } = {}): Tensor {
    this.checkAlive();
    checkShape(shape, 'fromGPUBuffer', 'shape');
    const bytes = numel(shape) * 4;
    if (buffer.size < bytes) {
      throw new ShapeError(`fromGPUBuffer: buffer has ${buffer.size} bytes, shape ${fmtShape(shape)} needs ${bytes}`);
    }
    if (!(buffer.usage & GPUBufferUsage.STORAGE)) {
      throw new ShapeError('fromGPUBuffer: buffer usage must include GPUBufferUsage.STORAGE');
    }
    const t = new Tensor(this, new Storage(this, buffer, bytes, false), shape, opts.dtype ?? 'float32');
    t.requiresGrad = !!opts.requiresGrad;
    return t;
  }

  /** @internal readback of a tensor's bytes */
  async _read(t: Tensor): Promise<ArrayBuffer> {
    this.checkAlive();
    try {
      return await this.exec.read({ buffer: t.storage.buffer, offset: 0, size: t.size * 4 });
    } catch (e) {
      if (this.lostError) throw this.lostError;
      throw e;
    }
  }

  /** Submits all recorded work. */
  flush(): Promise<void> {
    return this.exec.flush();
  }
  /** Submits all recorded work and waits for the GPU to finish it. */
  async sync(): Promise<void> {
    await this.exec.sync();
  }

  tidy<T>(fn: () => T): T {
    return tidy(fn);
  }

  /**
   * Starts timing every dispatch on the GPU (each runs in its own timestamped compute pass, so a
   * traced step is a little slower than an untraced one). Needs the 'timestamp-query' feature.
   */
  startTrace(): void {
    this.checkAlive();
    if (!this.features.has('timestamp-query')) {
      throw new LimitError(`startTrace: this device has no 'timestamp-query' feature (adapter: ${this.adapterInfo.description || this.adapterInfo.vendor || 'unknown'})`);
    }
    if (this.exec.tracing) throw new WgnnError('startTrace: a trace is already running (call stopTrace first)');
    this.exec.startTrace();
  }

  /** Flushes, stops the trace and reports GPU time per dispatch and per kernel. */
  async stopTrace(): Promise<KernelTrace> {
    this.checkAlive();
    if (!this.exec.tracing) throw new WgnnError('stopTrace: no trace is running (call startTrace first)');
    const dispatches = await this.exec.stopTrace();
    const by = new Map<string, { calls: number; totalMs: number }>();
    let totalMs = 0;
    for (const d of dispatches) {
      const k = by.get(d.kernel) ?? { calls: 0, totalMs: 0 };
      k.calls++;
      k.totalMs += d.ms;
      by.set(d.kernel, k);
      totalMs += d.ms;
    }
    const kernels = [...by.entries()]
      .map(([kernel, k]) => ({ kernel, calls: k.calls, totalMs: k.totalMs, meanMs: k.totalMs / k.calls, share: totalMs > 0 ? k.totalMs / totalMs : 0 }))
      .sort((a, b) => b.totalMs - a.totalMs);
    return { dispatches, kernels, totalMs };
  }

  memory(): MemoryInfo {
    return {
      liveTensors: this._liveTensors,
      liveBytes: this._liveBytes,
      allocatedBytes: this.pool.allocatedBytes,
      pooledBytes: this.pool.pooledBytes,
      peakBytes: this._peakBytes,
    };
  }

  /** Restarts peak tracking at the current live bytes. */
  resetPeak(): void {
    this._peakBytes = this._liveBytes;
  }

  /** Releases every GPU resource; a device we created is destroyed (so Node can exit). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.exec.destroy();
    this.pool.trim();
    if (this.ownsDevice) this.gpu.destroy();
  }
}

let nodeGpu: GPU | null = null;

async function findGPU(): Promise<GPU> {
  const nav = (globalThis as { navigator?: { gpu?: GPU } }).navigator;
  if (nav?.gpu) return nav.gpu;
  if (nodeGpu) return nodeGpu;
  let mod: { create: (flags: string[]) => GPU; globals: Record<string, unknown> };
  try {
    const name = 'webgpu'; // kept out of static imports so browser bundles never pull Dawn in
    mod = (await import(/* @vite-ignore */ name)) as typeof mod;
  } catch (e) {
    throw new WgnnError(`createDevice: WebGPU is not available: no navigator.gpu and the 'webgpu' package (Dawn) could not be loaded: ${(e as Error).message}`);
  }
  Object.assign(globalThis, mod.globals);
  nodeGpu = mod.create([]);
  return nodeGpu;
}

/** Creates a wgnn device; see CreateDeviceOptions. */
export async function createDevice(opts: CreateDeviceOptions = {}): Promise<Device> {
  if (opts.device) {
    const d = opts.device;
    const info = (d as GPUDevice & { adapterInfo?: GPUAdapterInfo }).adapterInfo;
    return withProfile(new Device(d, describe(info), false), opts);
  }
  const gpu = opts.adapter ? null : await findGPU();
  const adapter = opts.adapter ?? (await gpu!.requestAdapter({ powerPreference: opts.powerPreference }));
  if (!adapter) {
    throw new WgnnError(
      'createDevice: no WebGPU adapter found. On Debian/Ubuntu without a GPU run `npm run setup` ' +
        '(installs Mesa lavapipe, a software Vulkan driver, from bookworm-backports); in a browser, enable WebGPU.',
    );
  }
  const requiredLimits: Record<string, number> = {};
  const al = adapter.limits as unknown as Record<string, number>;
  for (const k in adapter.limits) {
    const v = al[k];
    if (typeof v === 'number') requiredLimits[k] = v;
  }
  const requiredFeatures = WANTED_FEATURES.filter((f) => adapter.features.has(f));
  let gdev: GPUDevice;
  try {
    gdev = await adapter.requestDevice({ requiredLimits, requiredFeatures, label: 'wgnn' });
  } catch {
    // some implementations refuse limits they report; fall back to the defaults
    gdev = await adapter.requestDevice({ requiredFeatures, label: 'wgnn' });
  }
  return withProfile(new Device(gdev, describe(adapter.info), true), opts);
}

async function withProfile(dev: Device, opts: CreateDeviceOptions): Promise<Device> {
  dev.profile = opts.profile ?? (await measureProfile(dev));
  return dev;
}

function describe(info: GPUAdapterInfo | undefined): AdapterDescription {
  return {
    vendor: info?.vendor ?? '',
    architecture: info?.architecture ?? '',
    device: info?.device ?? '',
    description: info?.description ?? '',
  };
}
