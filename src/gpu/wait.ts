// Waiting on GPU promises without stealing a core from the GPU.
//
// Dawn's Node bindings resolve a pending promise (mapAsync, onSubmittedWorkDone, popErrorScope,
// createComputePipelineAsync) by re-queuing `instance.ProcessEvents()` with the global
// `setImmediate` until nothing is pending: a busy loop that keeps one core at 100%. On a GPU that
// only wastes power; on a CPU-backed adapter (lavapipe, SwiftShader) the shader threads share those
// cores, and a 1024³ matmul measured 10–15 GFLOP/s with the loop spinning against 16–18 with it
// backed off. The bindings look `setImmediate` up on every re-queue, so while one of our waits is
// in flight we route *native* callbacks (the bindings'; never JavaScript ones) through a short poll
// first and then 1 ms timers. Short waits keep their latency; long ones poll ~1000×/s.
// In a browser there is no setImmediate and this is a no-op.

/** How long a wait polls as fast as the bindings want before backing off to timers. */
const SPIN_MS = 1;

type Immediate = (fn: (...args: unknown[]) => void, ...args: unknown[]) => unknown;
const g = globalThis as { setImmediate?: Immediate };
let original: Immediate | undefined;
let active = 0;
let windowStart = 0;

const fnToString = Function.prototype.toString;
function isNative(fn: unknown): boolean {
  return typeof fn === 'function' && fnToString.call(fn).endsWith('{ [native code] }');
}

function gentleImmediate(fn: (...args: unknown[]) => void, ...args: unknown[]): unknown {
  const orig = original as Immediate;
  if (!isNative(fn) || performance.now() - windowStart < SPIN_MS) return orig(fn, ...args);
  return setTimeout(fn, 0, ...args);
}

/**
 * Starts a GPU operation and awaits its promise with the bindings' event polling backed off.
 * `start` must create the promise (the bindings queue their first poll as the call is made).
 */
export async function gpuWait<T>(start: () => Promise<T>): Promise<T> {
  if (typeof g.setImmediate !== 'function') return start();
  if (active++ === 0) {
    original = g.setImmediate;
    windowStart = performance.now();
    g.setImmediate = gentleImmediate;
  }
  try {
    return await start();
  } finally {
    if (--active === 0) {
      // Someone else may have replaced setImmediate meanwhile; only undo our own change.
      if (g.setImmediate === gentleImmediate) g.setImmediate = original;
      original = undefined;
    }
  }
}
