// The kernel layer: a .wgsl file is the only declaration of its kernels' interfaces. We reflect it
// with wgsl_reflect, build explicit bind-group layouts per entry point (never layout:'auto', which
// drops unused bindings), pack the uniform struct by member name, and check every dispatch's
// bindings against the WGSL before anything reaches the GPU.
import { WgslReflect, ResourceType } from 'wgsl_reflect';
import { KernelError } from '../errors.js';
import { gpuWait } from './wait.js';

export type ScalarType = 'u32' | 'i32' | 'f32';

export interface UniformMember {
  name: string;
  offset: number;
  type: ScalarType;
  /** 1 for scalars, 2..4 for vecN */
  count: number;
}

export interface BindingInfo {
  name: string;
  binding: number;
  kind: 'storage-read' | 'storage-rw' | 'uniform';
}

export interface EntryInfo {
  name: string;
  /** storage bindings, by WGSL name */
  storage: Map<string, BindingInfo>;
  /** the uniform params struct, if the entry uses one */
  uniform: { name: string; binding: number; size: number; members: Map<string, UniformMember> } | null;
  workgroupSize: [number, number, number];
}

/** A reflected WGSL source file; device-independent and shared by all devices. */
export class KernelSource {
  private reflected: Map<string, EntryInfo> | null = null;
  private overrideNames: Set<string> | null = null;

  constructor(readonly file: string, readonly code: string) {}

  private reflect(): void {
    if (this.reflected) return;
    let r: WgslReflect;
    try {
      r = new WgslReflect(this.code);
    } catch (e) {
      throw new KernelError(`${this.file}: wgsl_reflect could not parse the shader: ${(e as Error).message}`);
    }
    this.reflected = new Map();
    this.overrideNames = new Set(r.overrides.map((o) => o.name));
    for (const fn of r.entry.compute) {
      const storage = new Map<string, BindingInfo>();
      let uniform: EntryInfo['uniform'] = null;
      for (const v of fn.resources) {
        if (v.group !== 0) throw new KernelError(`${this.file}:${fn.name}: binding '${v.name}' must be in @group(0)`);
        if (v.resourceType === ResourceType.Uniform) {
          if (uniform) throw new KernelError(`${this.file}:${fn.name}: more than one uniform ('${uniform.name}', '${v.name}')`);
          const members = new Map<string, UniformMember>();
          for (const m of v.members ?? []) {
            const tn = m.type.getTypeName();
            const parsed = parseScalar(tn);
            if (!parsed) throw new KernelError(`${this.file}:${fn.name}: uniform member '${m.name}' has unsupported type ${tn}`);
            members.set(m.name, { name: m.name, offset: m.offset, type: parsed.type, count: parsed.count });
          }
          uniform = { name: v.name, binding: v.binding, size: v.size, members };
        } else if (v.resourceType === ResourceType.Storage) {
          storage.set(v.name, { name: v.name, binding: v.binding, kind: v.access === 'read' ? 'storage-read' : 'storage-rw' });
        } else {
          throw new KernelError(`${this.file}:${fn.name}: binding '${v.name}' is not a buffer (textures are not used by wgnn)`);
        }
      }
      const wg = fn.workgroupSize ?? [1, 1, 1];
      this.reflected.set(fn.name, { name: fn.name, storage, uniform, workgroupSize: [wg[0] || 1, wg[1] || 1, wg[2] || 1] });
    }
  }

  entry(name: string): EntryInfo {
    this.reflect();
    const e = this.reflected!.get(name);
    if (!e) {
      throw new KernelError(`${this.file}: no compute entry point '${name}' (has: ${[...this.reflected!.keys()].join(', ')})`);
    }
    return e;
  }

  hasOverride(name: string): boolean {
    this.reflect();
    return this.overrideNames!.has(name);
  }
}

function parseScalar(tn: string): { type: ScalarType; count: number } | null {
  const m = /^(?:vec([234])<(u32|i32|f32)>|vec([234])([uif])|(u32|i32|f32))$/.exec(tn);
  if (!m) return null;
  if (m[5]) return { type: m[5] as ScalarType, count: 1 };
  if (m[1]) return { type: m[2] as ScalarType, count: Number(m[1]) };
  const t = ({ u: 'u32', i: 'i32', f: 'f32' } as const)[m[4] as 'u' | 'i' | 'f'];
  return { type: t, count: Number(m[3]) };
}

/** Declares a kernel file. `code` is the WGSL text (embedded at build time). */
export function kernel(file: string, code: string): KernelSource {
  return new KernelSource(file, code);
}

export type UniformValue = number | readonly number[];

/** Packs uniform values by WGSL member name; every member must be given, and nothing else. */
export function packUniforms(src: KernelSource, entry: EntryInfo, values: Record<string, UniformValue>): Uint8Array | null {
  const u = entry.uniform;
  const given = Object.keys(values);
  if (!u) {
    if (given.length) throw new KernelError(`${src.file}:${entry.name}: takes no uniforms but got ${given.join(', ')}`);
    return null;
  }
  const buf = new ArrayBuffer(Math.max(16, Math.ceil(u.size / 16) * 16));
  const dv = new DataView(buf);
  for (const k of given) {
    if (!u.members.has(k)) throw new KernelError(`${src.file}:${entry.name}: uniform '${u.name}' has no member '${k}' (has: ${[...u.members.keys()].join(', ')})`);
  }
  for (const m of u.members.values()) {
    const v = values[m.name];
    if (v === undefined) throw new KernelError(`${src.file}:${entry.name}: missing uniform '${u.name}.${m.name}'`);
    const arr = typeof v === 'number' ? [v] : v;
    if (arr.length !== m.count) throw new KernelError(`${src.file}:${entry.name}: uniform '${m.name}' wants ${m.count} values, got ${arr.length}`);
    for (let i = 0; i < m.count; i++) {
      const x = arr[i]!;
      const off = m.offset + 4 * i;
      if (m.type === 'f32') dv.setFloat32(off, x, true);
      else {
        if (!Number.isInteger(x)) throw new KernelError(`${src.file}:${entry.name}: uniform '${m.name}' is ${m.type} but got ${x}`);
        if (m.type === 'u32') {
          if (x < 0 || x > 0xffffffff) throw new KernelError(`${src.file}:${entry.name}: uniform '${m.name}' is u32 but got ${x}`);
          dv.setUint32(off, x, true);
        } else {
          if (x < -0x80000000 || x > 0x7fffffff) throw new KernelError(`${src.file}:${entry.name}: uniform '${m.name}' is i32 but got ${x}`);
          dv.setInt32(off, x, true);
        }
      }
    }
  }
  return new Uint8Array(buf);
}

/** Per-device compiled state of one KernelSource: shader module, layouts, pipelines. */
export class CompiledKernel {
  private module: GPUShaderModule | null = null;
  private layouts = new Map<string, { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout }>();
  readonly pipelines = new Map<string, PipelineHandle>();

  constructor(readonly gpu: GPUDevice, readonly src: KernelSource) {}

  private shaderModule(): GPUShaderModule {
    if (!this.module) this.module = this.gpu.createShaderModule({ label: this.src.file, code: this.src.code });
    return this.module;
  }

  layout(entry: EntryInfo): { bgl: GPUBindGroupLayout; pl: GPUPipelineLayout } {
    let l = this.layouts.get(entry.name);
    if (!l) {
      const entries: GPUBindGroupLayoutEntry[] = [];
      for (const b of entry.storage.values()) {
        entries.push({
          binding: b.binding,
          visibility: GPUShaderStage.COMPUTE,
          buffer: { type: b.kind === 'storage-read' ? 'read-only-storage' : 'storage' },
        });
      }
      if (entry.uniform) entries.push({ binding: entry.uniform.binding, visibility: GPUShaderStage.COMPUTE, buffer: { type: 'uniform' } });
      const bgl = this.gpu.createBindGroupLayout({ label: `${this.src.file}:${entry.name}`, entries });
      l = { bgl, pl: this.gpu.createPipelineLayout({ bindGroupLayouts: [bgl] }) };
      this.layouts.set(entry.name, l);
    }
    return l;
  }

  pipeline(entry: EntryInfo, overrides: Record<string, number>): PipelineHandle {
    const okeys = Object.keys(overrides).sort();
    for (const k of okeys) {
      if (!this.src.hasOverride(k)) throw new KernelError(`${this.src.file}:${entry.name}: no override constant '${k}'`);
    }
    const key = entry.name + '|' + okeys.map((k) => `${k}=${overrides[k]}`).join(',');
    let h = this.pipelines.get(key);
    if (!h) {
      const { bgl, pl } = this.layout(entry);
      const label = `${this.src.file}:${entry.name}${okeys.length ? ` {${okeys.map((k) => `${k}=${overrides[k]}`).join(', ')}}` : ''}`;
      h = new PipelineHandle(label, bgl);
      const handle = h;
      const module = this.shaderModule();
      handle.ready = gpuWait(() =>
        this.gpu.createComputePipelineAsync({ label, layout: pl, compute: { module, entryPoint: entry.name, constants: overrides } }),
      ).then(
          (p) => {
            handle.pipeline = p;
          },
          (e: unknown) => {
            handle.error = new KernelError(`${label}: pipeline creation failed: ${(e as Error).message ?? String(e)}`);
          },
        );
      this.pipelines.set(key, h);
    }
    return h;
  }
}

export class PipelineHandle {
  pipeline: GPUComputePipeline | null = null;
  error: KernelError | null = null;
  ready: Promise<void> = Promise.resolve();
  constructor(readonly label: string, readonly bindGroupLayout: GPUBindGroupLayout) {}
}
