// The graph executor. Ops append commands (plain data: pipeline, buffer ranges, uniform bytes,
// workgroup counts) to the pending graph; flush() encodes all of them into one command encoder
// with a single compute pass per run of dispatches, writes every dispatch's uniforms into one
// buffer, and submits once. Readback flushes. Because commands are data, a recorded step can later
// be captured and replayed without re-running the JS that produced it.
import { KernelError } from '../errors.js';
import type { PipelineHandle } from '../gpu/kernel.js';
import { gpuWait } from '../gpu/wait.js';

export interface BufferRange {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export interface DispatchCommand {
  kind: 'dispatch';
  pipeline: PipelineHandle;
  bindings: { binding: number; range: BufferRange }[];
  uniform: Uint8Array | null;
  uniformBinding: number;
  workgroups: [number, number, number];
}

export interface CopyCommand {
  kind: 'copy';
  src: GPUBuffer;
  srcOffset: number;
  dst: GPUBuffer;
  dstOffset: number;
  size: number;
}

export interface ClearCommand {
  kind: 'clear';
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

export type Command = DispatchCommand | CopyCommand | ClearCommand;

/** One traced dispatch: the pipeline's label (file:entry {overrides}), its grid and its GPU time. */
export interface TracedDispatch {
  kernel: string;
  workgroups: [number, number, number];
  /** GPU time between the start and the end of its compute pass, from timestamp queries */
  ms: number;
}

/** WebGPU allows at most 4096 queries per set: two timestamps per dispatch. */
const TRACE_CHUNK = 2048;

export interface GraphStats {
  flushes: number;
  dispatches: number;
  submits: number;
}

export class Executor {
  private pending: Command[] = [];
  /** buffers written or read by pending commands (a direct queue.writeBuffer must not overtake them) */
  private touched = new Set<GPUBuffer>();
  /** staging buffers to destroy once the flush that reads them is submitted */
  private staging: GPUBuffer[] = [];
  private chain: Promise<void> = Promise.resolve();
  private inFlight = 0;
  private uniformBuffer: GPUBuffer | null = null;
  readonly stats: GraphStats = { flushes: 0, dispatches: 0, submits: 0 };
  /** while tracing: every dispatch's record, and the readbacks that fill in their times */
  private trace: { records: TracedDispatch[]; readbacks: Promise<void>[] } | null = null;

  constructor(
    private gpu: GPUDevice,
    private uniformAlign: number,
    private beforeFlush: () => Promise<Error | null>,
    private checkAlive: () => void,
  ) {}

  get pendingCount(): number {
    return this.pending.length;
  }

  record(cmd: Command): void {
    this.checkAlive();
    this.pending.push(cmd);
    if (cmd.kind === 'dispatch') for (const b of cmd.bindings) this.touched.add(b.range.buffer);
    else if (cmd.kind === 'clear') this.touched.add(cmd.buffer);
    else {
      this.touched.add(cmd.src);
      this.touched.add(cmd.dst);
    }
  }

  /** Writes data into buffer in stream order with the recorded commands. */
  upload(buffer: GPUBuffer, offset: number, data: ArrayBufferView): void {
    this.checkAlive();
    const bytes = new Uint8Array(data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    if (bytes.byteLength === 0) return;
    if (this.inFlight === 0 && !this.touched.has(buffer) && bytes.byteLength % 4 === 0) {
      this.gpu.queue.writeBuffer(buffer, offset, bytes);
      return;
    }
    // A pending command uses this buffer: stage the data and copy it in order.
    const size = Math.ceil(bytes.byteLength / 4) * 4;
    const st = this.gpu.createBuffer({ size, usage: GPUBufferUsage.COPY_SRC, mappedAtCreation: true });
    new Uint8Array(st.getMappedRange()).set(bytes);
    st.unmap();
    this.staging.push(st);
    this.record({ kind: 'copy', src: st, srcOffset: 0, dst: buffer, dstOffset: offset, size });
  }

  /** Submits everything recorded so far; resolves once submitted (not once finished on the GPU). */
  flush(): Promise<void> {
    const cmds = this.pending;
    const staging = this.staging;
    this.pending = [];
    this.staging = [];
    this.touched = new Set();
    this.inFlight++;
    const run = this.chain.then(() => this.encodeAndSubmit(cmds, staging));
    this.chain = run.catch(() => undefined).finally(() => {
      this.inFlight--;
    });
    return run;
  }

  private async encodeAndSubmit(cmds: Command[], staging: GPUBuffer[]): Promise<void> {
    try {
      await this.encode(cmds);
    } finally {
      // after the submit on success; also when encoding failed, so staging buffers never leak
      for (const s of staging) s.destroy();
    }
  }

  private async encode(cmds: Command[]): Promise<void> {
    this.checkAlive();
    const allocErr = await this.beforeFlush();
    if (allocErr) throw allocErr;
    if (cmds.length === 0) return;
    const pipelines = new Set<PipelineHandle>();
    for (const c of cmds) if (c.kind === 'dispatch') pipelines.add(c.pipeline);
    await Promise.all([...pipelines].map((p) => p.ready));
    for (const p of pipelines) if (p.error) throw p.error;
    this.checkAlive();

    // One uniform buffer for the whole flush, each dispatch at an aligned offset.
    let uniformBytes = 0;
    const offsets: number[] = [];
    for (const c of cmds) {
      if (c.kind === 'dispatch' && c.uniform) {
        offsets.push(uniformBytes);
        uniformBytes += Math.ceil(c.uniform.byteLength / this.uniformAlign) * this.uniformAlign;
      } else offsets.push(-1);
    }
    let ubuf: GPUBuffer | null = null;
    if (uniformBytes > 0) {
      if (!this.uniformBuffer || this.uniformBuffer.size < uniformBytes) {
        this.uniformBuffer?.destroy();
        this.uniformBuffer = this.gpu.createBuffer({
          label: 'wgnn uniforms',
          size: Math.max(uniformBytes, 64 * 1024),
          usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
        });
      }
      ubuf = this.uniformBuffer;
      const all = new Uint8Array(uniformBytes);
      cmds.forEach((c, i) => {
        if (c.kind === 'dispatch' && c.uniform) all.set(c.uniform, offsets[i]!);
      });
      this.gpu.queue.writeBuffer(ubuf, 0, all);
    }

    let dispatches = 0;
    this.gpu.pushErrorScope('validation');
    try {
      const enc = this.gpu.createCommandEncoder({ label: 'wgnn flush' });
      let pass: GPUComputePassEncoder | null = null;
      // Tracing: one pass per dispatch, timestamped at its start and end (pass-level timestamps are
      // what core WebGPU offers), resolved into a buffer read back after the submit.
      const traced: TracedDispatch[] = [];
      const querySets: GPUQuerySet[] = [];
      cmds.forEach((c, i) => {
        if (c.kind !== 'dispatch') {
          if (pass) {
            (pass as GPUComputePassEncoder).end();
            pass = null;
          }
          if (c.kind === 'copy') enc.copyBufferToBuffer(c.src, c.srcOffset, c.dst, c.dstOffset, c.size);
          else enc.clearBuffer(c.buffer, c.offset, c.size);
          return;
        }
        if (this.trace) {
          const q = traced.length % TRACE_CHUNK;
          if (q === 0) querySets.push(this.gpu.createQuerySet({ type: 'timestamp', count: 2 * TRACE_CHUNK }));
          const querySet = querySets[querySets.length - 1]!;
          pass = enc.beginComputePass({ timestampWrites: { querySet, beginningOfPassWriteIndex: 2 * q, endOfPassWriteIndex: 2 * q + 1 } });
          traced.push({ kernel: c.pipeline.label, workgroups: [...c.workgroups], ms: NaN });
        } else if (!pass) pass = enc.beginComputePass();
        const entries: GPUBindGroupEntry[] = c.bindings.map((b) => ({
          binding: b.binding,
          resource: { buffer: b.range.buffer, offset: b.range.offset, size: b.range.size },
        }));
        if (c.uniform) {
          entries.push({ binding: c.uniformBinding, resource: { buffer: ubuf!, offset: offsets[i]!, size: c.uniform.byteLength } });
        }
        const bg = this.gpu.createBindGroup({ layout: c.pipeline.bindGroupLayout, entries });
        pass.setPipeline(c.pipeline.pipeline!);
        pass.setBindGroup(0, bg);
        pass.dispatchWorkgroups(c.workgroups[0], c.workgroups[1], c.workgroups[2]);
        dispatches++;
        if (this.trace) {
          pass.end();
          pass = null;
        }
      });
      if (pass) (pass as GPUComputePassEncoder).end();
      const readback = traced.length ? this.resolveTimestamps(enc, querySets, traced) : null;
      this.gpu.queue.submit([enc.finish()]);
      if (readback) {
        this.trace!.records.push(...traced);
        this.trace!.readbacks.push(readback());
      }
    } catch (e) {
      // keep push/pop balanced: a later flush must not pop this scope
      this.gpu.popErrorScope().catch(() => null);
      throw e;
    }
    this.stats.flushes++;
    this.stats.submits++;
    this.stats.dispatches += dispatches;
    const err = await gpuWait(() => this.gpu.popErrorScope());
    if (err) throw new KernelError(`wgnn: GPU validation error while encoding ${cmds.length} commands: ${err.message}`);
  }

  /** Encodes the copy of this flush's timestamps; the returned function starts their readback. */
  private resolveTimestamps(enc: GPUCommandEncoder, querySets: GPUQuerySet[], traced: TracedDispatch[]): () => Promise<void> {
    const bytes = 16 * traced.length;
    const resolved = this.gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
    const out = this.gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    querySets.forEach((qs, k) => {
      const n = Math.min(TRACE_CHUNK, traced.length - k * TRACE_CHUNK);
      enc.resolveQuerySet(qs, 0, 2 * n, resolved, 16 * k * TRACE_CHUNK);
    });
    enc.copyBufferToBuffer(resolved, 0, out, 0, bytes);
    return async () => {
      try {
        await gpuWait(() => out.mapAsync(GPUMapMode.READ));
        const t = new BigInt64Array(out.getMappedRange());
        traced.forEach((r, i) => {
          r.ms = Number(t[2 * i + 1]! - t[2 * i]!) / 1e6;
        });
      } finally {
        out.destroy();
        resolved.destroy();
        for (const qs of querySets) qs.destroy();
      }
    };
  }

  /** Starts timing every dispatch (needs the 'timestamp-query' feature; checked by the device). */
  startTrace(): void {
    this.trace = { records: [], readbacks: [] };
  }

  get tracing(): boolean {
    return this.trace !== null;
  }

  /** Flushes, stops tracing and returns every dispatch traced since startTrace, in order. */
  async stopTrace(): Promise<TracedDispatch[]> {
    const t = this.trace!;
    try {
      await this.flush();
    } finally {
      this.trace = null; // also when the flush failed: tracing must not stay on
    }
    await Promise.all(t.readbacks);
    return t.records;
  }

  /** Copies a range to the CPU, flushing everything recorded before it. */
  async read(range: BufferRange): Promise<ArrayBuffer> {
    const size = Math.ceil(range.size / 4) * 4;
    if (size === 0) return new ArrayBuffer(0);
    const dst = this.gpu.createBuffer({ size, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
    this.record({ kind: 'copy', src: range.buffer, srcOffset: range.offset, dst, dstOffset: 0, size });
    try {
      await this.flush();
      await gpuWait(() => dst.mapAsync(GPUMapMode.READ));
      this.checkAlive();
      return dst.getMappedRange().slice(0, range.size);
    } finally {
      dst.destroy();
    }
  }

  /** Waits until everything submitted so far has finished on the GPU. */
  async sync(): Promise<void> {
    await this.flush();
    await gpuWait(() => this.gpu.queue.onSubmittedWorkDone());
  }

  destroy(): void {
    this.uniformBuffer?.destroy();
    this.uniformBuffer = null;
    for (const s of this.staging) s.destroy();
    this.pending = [];
  }
}
