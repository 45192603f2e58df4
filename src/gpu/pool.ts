// Size-class buffer pool. Freed tensors return their buffer here; a later allocation of the same
// class reuses it. Reuse within one unsubmitted command buffer is safe: WebGPU orders the earlier
// readers of a buffer before a later dispatch that writes it.
import { AllocationError, LimitError } from '../errors.js';
import { gpuWait } from './wait.js';

const USAGE_STORAGE = 0x0080 | 0x0004 | 0x0008; // STORAGE | COPY_SRC | COPY_DST

/** Rounds a byte size up to its class: powers of two below 4 KiB, then 1/8-octave steps (≤12.5% waste). */
export function sizeClass(bytes: number): number {
  const b = Math.max(16, Math.ceil(bytes / 16) * 16);
  if (b <= 4096) return 2 ** Math.ceil(Math.log2(b));
  const octave = 2 ** Math.floor(Math.log2(b));
  const step = octave / 8;
  return Math.ceil(b / step) * step;
}

export class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  allocatedBytes = 0;
  pooledBytes = 0;
  allocations = 0;
  /** errors raised by allocation error scopes, reported at the next flush */
  pendingErrors: Promise<GPUError | null>[] = [];

  constructor(private gpu: GPUDevice, private maxBufferSize: number) {}

  acquire(bytes: number, label?: string): GPUBuffer {
    const size = sizeClass(bytes);
    if (size > this.maxBufferSize) {
      throw new LimitError(`allocation of ${bytes} bytes exceeds the device limit maxBufferSize = ${this.maxBufferSize}`);
    }
    const list = this.free.get(size);
    const b = list?.pop();
    if (b) {
      this.pooledBytes -= size;
      return b;
    }
    this.gpu.pushErrorScope('out-of-memory');
    let buf: GPUBuffer;
    try {
      buf = this.gpu.createBuffer({ size, usage: USAGE_STORAGE, label });
    } catch (e) {
      this.gpu.popErrorScope().catch(() => null);
      throw new AllocationError(`could not allocate a GPU buffer of ${size} bytes: ${(e as Error).message}`);
    }
    this.pendingErrors.push(this.gpu.popErrorScope());
    this.allocatedBytes += size;
    this.allocations++;
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, (list = []));
    list.push(buf);
    this.pooledBytes += size;
  }

  /** Destroys every pooled (unused) buffer. */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.allocatedBytes -= b.size;
        b.destroy();
      }
    }
    this.free.clear();
    this.pooledBytes = 0;
  }

  async takeErrors(): Promise<AllocationError | null> {
    const errs = this.pendingErrors;
    if (!errs.length) return null;
    this.pendingErrors = [];
    for (const e of await gpuWait(() => Promise.all(errs))) {
      if (e) return new AllocationError(`GPU out of memory: ${e.message}`);
    }
    return null;
  }
}
