// Adam and AdamW with a fused, multi-tensor WGSL update (kernels/optim.wgsl), and FusedOptimizer,
// the machinery SGD shares:
//  - State (exp_avg, exp_avg_sq, momentum_buffer) lives in arenas owned by the optimizer: one
//    buffer per state kind, every parameter at a 256-byte aligned offset (a new arena starts when
//    maxStorageBufferBindingSize would be passed). Parameters and gradients stay in their own
//    buffers (modules and autodiff own those), so one dispatch updates up to 4 parameters (4 p + 4 g
//    + the state arenas ≤ 10 storage bindings). A step is ceil(#params / 4) dispatches, each reading
//    p, g and the state once and writing p and the state once, a vec4 per invocation (buffers are
//    bound rounded up to 16 bytes; the kernel never writes past a parameter's last element).
//    Why not one flat parameter arena (one dispatch per step)? Parameters and gradients are
//    allocated by modules and autodiff as separate buffers; gathering them into an arena and back
//    would move 2 extra floats per parameter per step, and 4 per dispatch already makes the
//    per-dispatch cost small next to the bandwidth (see bench/optim.bench.mjs).
//  - Hyper-parameters and bias corrections are per-dispatch uniforms computed in float64 on the CPU
//    (step counts are per parameter, as in PyTorch: a parameter without a gradient is skipped).
//  - stateDict() returns copies of each parameter's state as "<param index>.<name>" tensors
//    (PyTorch names), the global step and the per-parameter steps; loadStateDict() copies them back.
import src from '../../kernels/optim.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape, ShapeError } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { sameShape } from '../shape.js';
import { keep, Tensor } from '../tensor.js';
import { Optimizer } from './optimizer.js';

/** @internal the optimizer kernel family (shared by Adam, SGD and clipGradNorm) */
export const optimKernel = kernel('optim.wgsl', src);
export const OPT_WG = 256;
/** parameters per update dispatch */
export const SLOTS = 4;
const ALIGN = 64; // floats: 256 bytes

let arenaCapOverride: number | null = null;
/** @internal tests: cap arenas at n floats (null: the device's maxStorageBufferBindingSize) */
export function setArenaCapacityForTesting(n: number | null): void {
  arenaCapOverride = n;
}

interface Range {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

const dummyCache = new WeakMap<Device, GPUBuffer[]>();
/**
 * @internal k distinct tiny buffers per device for unused binding slots (a buffer written by a
 * dispatch may be bound only once, so every unused read_write slot needs its own).
 */
export function dummies(dev: Device, k: number): Range[] {
  let list = dummyCache.get(dev);
  if (!list) dummyCache.set(dev, (list = []));
  while (list.length < k) {
    list.push(dev.gpu.createBuffer({ label: 'wgnn optim dummy', size: 16, usage: GPUBufferUsage.STORAGE }));
  }
  return list.slice(0, k).map((buffer) => ({ buffer, offset: 0, size: 16 }));
}

/**
 * @internal t bound as a vec4 array: its buffer from byte 0, rounded up to 16 bytes (pool buffers
 * always have room). A caller-owned buffer (fromGPUBuffer) without room is replaced by a padded
 * copy; `post` gets the write-back (when `write`) and the disposal, to run after the dispatch.
 */
export function vec4Bind(t: Tensor, write: boolean, post: (() => void)[]): Range {
  const bytes = Math.ceil(Math.max(4, t.size * 4) / 16) * 16;
  const buf = t.storage.buffer;
  if (buf.size >= bytes) return { buffer: buf, offset: 0, size: bytes };
  const tmp = t.device.empty(t.shape);
  tmp.copy_(t);
  post.push(() => {
    if (write) t.copy_(tmp);
    tmp.dispose();
  });
  return { buffer: tmp.storage.buffer, offset: 0, size: Math.ceil(Math.max(16, t.size * 4) / 16) * 16 };
}

export function checkHyper(v: unknown, name: string, op: string, lo: number, hi: number, hiOpen: boolean): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= lo && (hiOpen ? v < hi : v <= hi);
  check(ok, op, `${name} must be a finite number in [${lo}, ${hi}${hiOpen ? ')' : ']'}, got ${String(v)}`);
  return v as number;
}

export interface OptimizerStateDict {
  step: number;
  tensors: Record<string, Tensor>;
  /** steps taken by each parameter (they differ when a parameter had no gradient at some step) */
  paramSteps?: number[];
}

interface Slot {
  arena: number;
  offset: number;
}

/** A parameter that takes part in this step. */
export interface WorkItem {
  index: number;
  p: Tensor;
  g: Tensor;
}

/** Optimizer base with fused multi-tensor updates and state arenas (see the file comment). */
export abstract class FusedOptimizer<O extends { lr: number }> extends Optimizer<O> {
  /** steps taken by each parameter (0: its state is uninitialised) */
  paramSteps: number[];
  private slots: Slot[] | null = null;
  /** arenas[name][k] */
  private arenas = new Map<string, Tensor[]>();

  protected constructor(
    params: Iterable<Tensor>,
    options: O,
    /** PyTorch names of the per-parameter state tensors, e.g. ['exp_avg', 'exp_avg_sq'] */
    readonly stateNames: readonly string[],
  ) {
    super(params, options);
    const name = this.constructor.name;
    const seen = new Map<GPUBuffer, number>();
    this.params.forEach((p, i) => {
      check(p.dtype === 'float32', name, `params[${i}] ${fmtShape(p.shape)} must be float32, got ${p.dtype}`);
      const b = p.storage.buffer;
      const j = seen.get(b);
      check(j === undefined, name, `params[${i}] ${fmtShape(p.shape)} shares storage with params[${j}] (pass each parameter once)`);
      seen.set(b, i);
    });
    this.paramSteps = this.params.map(() => 0);
  }

  protected get device(): Device {
    return this.params[0]!.device;
  }

  /** Lays the state arenas out on first use (zero-filled). */
  private layout(): Slot[] {
    if (this.slots) return this.slots;
    const dev = this.device;
    const cap = arenaCapOverride ?? Math.floor(dev.limits.maxStorageBufferBindingSize / 4);
    const slots: Slot[] = [];
    const sizes: number[] = [];
    let used = 0;
    for (const p of this.params) {
      const need = Math.ceil(Math.max(1, p.size) / ALIGN) * ALIGN;
      if (sizes.length === 0 || used + need > cap) {
        sizes.push(0);
        used = 0;
      }
      slots.push({ arena: sizes.length - 1, offset: used });
      used += need;
      sizes[sizes.length - 1] = used;
    }
    for (const n of this.stateNames) this.arenas.set(n, sizes.map((s) => keep(dev.zeros([s]))));
    this.slots = slots;
    return slots;
  }

  /** Number of arenas per state kind (for tests and diagnostics). */
  get arenaCount(): number {
    return this.stateNames.length ? new Set(this.layout().map((s) => s.arena)).size : 0;
  }

  /** Arena tensor and element offset of state `name` of parameter i. */
  protected stateAt(i: number, name: string): { arena: Tensor; offset: number } {
    const s = this.layout()[i]!;
    return { arena: this.arenas.get(name)![s.arena]!, offset: s.offset };
  }

  /**
   * The parameters with a gradient (validated), their per-parameter steps advanced, grouped into
   * dispatch batches of up to SLOTS parameters sharing an arena.
   */
  protected collect(): WorkItem[][] {
    const name = this.constructor.name;
    const items: WorkItem[] = [];
    this.params.forEach((p, i) => {
      const g = p.grad;
      if (!g) return;
      check(!g.disposed, name, `params[${i}].grad was disposed`);
      check(g.dtype === 'float32' && sameShape(g.shape, p.shape), name, `params[${i}].grad ${fmtShape(g.shape)} ${g.dtype} must be float32 with the parameter's shape ${fmtShape(p.shape)}`);
      check(g.storage.buffer !== p.storage.buffer, name, `params[${i}].grad shares storage with the parameter`);
      items.push({ index: i, p, g });
    });
    this.stepCount++;
    for (const it of items) this.paramSteps[it.index]!++;
    const slots = this.stateNames.length ? this.layout() : null;
    const byArena = new Map<number, WorkItem[]>();
    for (const it of items) {
      if (it.p.size === 0) continue;
      const a = slots ? slots[it.index]!.arena : 0;
      let l = byArena.get(a);
      if (!l) byArena.set(a, (l = []));
      l.push(it);
    }
    const batches: WorkItem[][] = [];
    for (const l of byArena.values()) for (let k = 0; k < l.length; k += SLOTS) batches.push(l.slice(k, k + SLOTS));
    return batches;
  }

  /**
   * Bindings p0..p3, g0..g3 of a batch (vec4 views, see vec4Bind), the cumulative vec4 `ends`, the
   * element `sizes`, and the work to run after the dispatch (write-backs of padded copies).
   */
  protected slotBindings(batch: readonly WorkItem[]): { bindings: Record<string, Tensor | Range>; ends: number[]; sizes: number[]; post: (() => void)[] } {
    const dev = this.device;
    const pad = dummies(dev, SLOTS + 1);
    const bindings: Record<string, Tensor | Range> = {};
    const ends: number[] = [];
    const sizes: number[] = [];
    const post: (() => void)[] = [];
    let acc = 0;
    for (let k = 0; k < SLOTS; k++) {
      const it = batch[k];
      bindings[`p${k}`] = it ? vec4Bind(it.p, true, post) : pad[k]!;
      // unused gradient slots share one read-only dummy, distinct from every written binding
      bindings[`g${k}`] = it ? vec4Bind(it.g, false, post) : pad[SLOTS]!;
      acc += it ? Math.ceil(it.p.size / 4) : 0;
      ends.push(acc);
      sizes.push(it ? it.p.size : 0);
    }
    return { bindings, ends, sizes, post };
  }

  /** vec4 offsets of state `name` for the slots of a batch (0 for unused slots). */
  protected offsets(batch: readonly WorkItem[], name: string): number[] {
    return Array.from({ length: SLOTS }, (_, k) => (batch[k] ? this.stateAt(batch[k]!.index, name).offset / 4 : 0));
  }

  /** The arena of state `name` a batch lives in. */
  protected arenaOf(batch: readonly WorkItem[], name: string): Tensor {
    return this.stateAt(batch[0]!.index, name).arena;
  }

  /** Copies of every initialised parameter state, the step, and the per-parameter steps. */
  override stateDict(): OptimizerStateDict {
    const dev = this.device;
    const tensors: Record<string, Tensor> = {};
    this.params.forEach((p, i) => {
      if (!this.paramSteps[i] || !this.stateNames.length) return;
      for (const name of this.stateNames) {
        const { arena, offset } = this.stateAt(i, name);
        const t = dev.empty(p.shape);
        if (p.size) dev.exec.record({ kind: 'copy', src: arena.storage.buffer, srcOffset: offset * 4, dst: t.storage.buffer, dstOffset: 0, size: p.size * 4 });
        tensors[`${i}.${name}`] = t;
      }
    });
    return { step: this.stepCount, tensors, paramSteps: [...this.paramSteps] };
  }

  /** Restores a stateDict() (of an optimizer over parameters of the same shapes, in the same order). */
  override loadStateDict(sd: OptimizerStateDict): void {
    const name = `${this.constructor.name}.loadStateDict`;
    check(sd && typeof sd === 'object' && sd.tensors && typeof sd.tensors === 'object', name, 'expected { step, tensors }');
    check(Number.isInteger(sd.step) && sd.step >= 0, name, `step must be a non-negative integer, got ${sd.step}`);
    const n = this.params.length;
    if (sd.paramSteps !== undefined) {
      check(Array.isArray(sd.paramSteps) && sd.paramSteps.length === n && sd.paramSteps.every((s) => Number.isInteger(s) && s >= 0), name,
        `paramSteps must be ${n} non-negative integers, got ${JSON.stringify(sd.paramSteps)}`);
    }
    const has = this.params.map(() => new Set<string>());
    for (const [key, t] of Object.entries(sd.tensors)) {
      const dot = key.indexOf('.');
      const i = Number(key.slice(0, dot));
      const sname = key.slice(dot + 1);
      check(dot > 0 && Number.isInteger(i) && i >= 0 && i < n, name, `'${key}' does not name one of the ${n} parameters`);
      check(this.stateNames.includes(sname), name, `'${key}': unknown state '${sname}' (expected ${this.stateNames.join(', ') || 'none'})`);
      check(t instanceof Tensor && !t.disposed && t.dtype === 'float32', name, `'${key}' must be a live float32 Tensor`);
      check(sameShape(t.shape, this.params[i]!.shape), name, `'${key}' has shape ${fmtShape(t.shape)}, parameter ${i} has ${fmtShape(this.params[i]!.shape)}`);
      has[i]!.add(sname);
    }
    const steps = sd.paramSteps ?? has.map((s) => (s.size ? sd.step : 0));
    steps.forEach((s, i) => {
      if (s > 0 && this.stateNames.length && has[i]!.size !== this.stateNames.length) {
        throw new ShapeError(`${name}: parameter ${i} has taken ${s} steps but its state [${this.stateNames.filter((x) => !has[i]!.has(x)).join(', ')}] is missing`);
      }
    });
    const dev = this.device;
    this.stepCount = sd.step;
    this.paramSteps = [...steps];
    if (!this.stateNames.length) return;
    this.params.forEach((p, i) => {
      for (const sname of this.stateNames) {
        const { arena, offset } = this.stateAt(i, sname);
        const t = sd.tensors[`${i}.${sname}`];
        if (!p.size) continue;
        if (t && steps[i]! > 0) {
          dev.exec.record({ kind: 'copy', src: t.storage.buffer, srcOffset: 0, dst: arena.storage.buffer, dstOffset: offset * 4, size: p.size * 4 });
        } else {
          dev.exec.record({ kind: 'clear', buffer: arena.storage.buffer, offset: offset * 4, size: p.size * 4 });
        }
      }
    });
  }

  /** Frees the state arenas (the optimizer cannot step afterwards). */
  dispose(): void {
    for (const l of this.arenas.values()) l.forEach((t) => t.dispose());
    this.arenas.clear();
    this.slots = null;
    this.paramSteps = this.params.map(() => 0);
  }
}

// ---- Adam / AdamW -------------------------------------------------------------------------------

export interface AdamOptions {
  /** default 1e-3 */
  lr?: number;
  /** default [0.9, 0.999] */
  betas?: readonly [number, number];
  /** default 1e-8 */
  eps?: number;
  /** Adam: L2 penalty added to the gradient (default 0); AdamW: decoupled decay (default 0.01) */
  weightDecay?: number;
}

interface AdamResolved {
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
}

function resolveAdam(o: AdamOptions, op: string, defaultWd: number): AdamResolved {
  check(o && typeof o === 'object', op, 'options must be an object');
  const lr = checkHyper(o.lr ?? 1e-3, 'lr', op, 0, Infinity, true);
  const betas = o.betas ?? [0.9, 0.999];
  check(Array.isArray(betas) && betas.length === 2, op, `betas must be [beta1, beta2], got ${JSON.stringify(betas)}`);
  const b1 = checkHyper(betas[0], 'betas[0]', op, 0, 1, true);
  const b2 = checkHyper(betas[1], 'betas[1]', op, 0, 1, true);
  const eps = checkHyper(o.eps ?? 1e-8, 'eps', op, 0, Infinity, true);
  const weightDecay = checkHyper(o.weightDecay ?? defaultWd, 'weightDecay', op, 0, Infinity, true);
  return { lr, betas: [b1, b2], eps, weightDecay };
}

abstract class AdamBase extends FusedOptimizer<AdamResolved> {
  protected abstract readonly decoupled: boolean;

  protected constructor(params: Iterable<Tensor>, opts: AdamResolved) {
    super(params, opts, ['exp_avg', 'exp_avg_sq']);
  }

  step(): void {
    const batches = this.collect();
    const { lr, betas: [b1, b2], eps, weightDecay: wd } = this.options;
    const dev = this.device;
    for (const batch of batches) {
      const { bindings, ends, sizes, post } = this.slotBindings(batch);
      const t = (k: number): number => this.paramSteps[batch[k]?.index ?? 0] || 1;
      dev.dispatch(optimKernel, 'adam_step', {
        bindings: { ...bindings, exp_avg: this.arenaOf(batch, 'exp_avg'), exp_avg_sq: this.arenaOf(batch, 'exp_avg_sq') },
        uniforms: {
          ends,
          sizes,
          m_off: this.offsets(batch, 'exp_avg'),
          v_off: this.offsets(batch, 'exp_avg_sq'),
          step_size: [0, 1, 2, 3].map((k) => lr / (1 - b1 ** t(k))),
          inv_sqrt_bc2: [0, 1, 2, 3].map((k) => 1 / Math.sqrt(1 - b2 ** t(k))),
          beta1: b1,
          beta2: b2,
          eps,
          decay_mul: this.decoupled ? 1 - lr * wd : 1,
          coupled_wd: this.decoupled ? 0 : wd,
        },
        overrides: { WG: OPT_WG },
        workgroups: dev.grid1d(ends[SLOTS - 1]!, OPT_WG),
      });
      post.forEach((f) => f());
    }
  }
}

/** Adam (Kingma & Ba) with PyTorch semantics; weightDecay is an L2 term added to the gradient. */
export class Adam extends AdamBase {
  protected readonly decoupled = false;
  constructor(params: Iterable<Tensor>, opts: AdamOptions = {}) {
    super(params, resolveAdam(opts, 'Adam', 0));
  }
}

/** AdamW (Loshchilov & Hutter): decoupled weight decay p ← p·(1 − lr·wd), then the Adam update. */
export class AdamW extends AdamBase {
  protected readonly decoupled = true;
  constructor(params: Iterable<Tensor>, opts: AdamOptions = {}) {
    super(params, resolveAdam(opts, 'AdamW', 0.01));
  }
}
