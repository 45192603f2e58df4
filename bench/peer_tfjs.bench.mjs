// Peer comparison: TensorFlow.js's WebGPU backend (@tensorflow/tfjs-backend-webgpu) against wgnn on
// the same adapter, same shapes, same input values. Two rows per case; `speedup` (on the wgnn row) =
// tfjs warm ms / wgnn warm ms, and `maxDiff` = max |tfjs − wgnn| / max |wgnn| over the outputs
// (computed once after timing; a mismatch above 1e-3 aborts the bench).
//
// tfjs runs on its own Dawn instance and GPUDevice, created here the way a Node user would: the
// `webgpu` package's GPU object exposed as navigator.gpu before the backend module is loaded (it
// registers 'webgpu' only if navigator.gpu exists at import time).
//
// Timing: both sides go through lib.mjs's measure() (Benchmark.js; cold = first call incl. shader
// compile, warm = mean). A tfjs call ends with tfjsSync(): submit whatever tfjs has recorded (it
// batches up to 15 dispatches before submitting on its own) and await queue.onSubmittedWorkDone(),
// the same flush-and-wait that dev.sync() does for wgnn, so neither side pays for a readback.
import { create, globals } from 'webgpu';
import { ops, tidy } from 'wgnn';
import { measure } from './lib.mjs';

const OPTS = { maxTime: 2 }; // ~18 measurements; keeps the file to a couple of minutes on lavapipe

// Module scope keeps the Dawn instance reachable for the whole run: if it is collected, the
// process hangs or crashes on the next GPU call.
let gpu = null;
let tf = null;

async function setupTfjs() {
  if (tf) return tf;
  Object.assign(globalThis, globals);
  const nav = globalThis.navigator;
  if (nav?.gpu) gpu = nav.gpu;
  else {
    gpu = create([]);
    // Node 20 has no navigator; Node ≥ 21 has one without gpu.
    if (nav) Object.defineProperty(nav, 'gpu', { value: gpu, configurable: true });
    else Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  }
  tf = await import('@tensorflow/tfjs-core');
  // tfjs-core's Node bundle registers no gradients (the @tensorflow/tfjs umbrella adds them from
  // tfjs-core/dist/register_all_gradients, ESM that Node cannot load on its own). The linear step
  // needs only Reshape's (fused matMul brings its own through customGrad): this is
  // tfjs-core/src/gradients/Reshape_grad.ts.
  if (!tf.getGradient(tf.Reshape)) {
    tf.registerGradient({ kernelName: tf.Reshape, inputsToSave: ['x'], gradFunc: (dy, [x]) => ({ x: () => tf.reshape(dy, x.shape) }) });
  }
  await import('@tensorflow/tfjs-backend-webgpu');
  if (!(await tf.setBackend('webgpu'))) throw new Error('peer_tfjs: tf.setBackend("webgpu") failed');
  await tf.ready();
  await checkAgainstCpu();
  return tf;
}

// Dawn's Node bindings resolve a GPU promise by re-queuing ProcessEvents with setImmediate, a busy
// loop that takes one of the two cores away from lavapipe's shader threads. wgnn backs that loop off
// while it waits (src/gpu/wait.ts: native callbacks poll for 1 ms, then go through 0 ms timers); tfjs
// gets the same policy here so the comparison is of the libraries, not of the wait (with the spin,
// tfjs's matmul 1024³ ran 25–40% slower on this machine). Only native callbacks are rerouted.
const nativeFn = (fn) => typeof fn === 'function' && Function.prototype.toString.call(fn).endsWith('{ [native code] }');
async function gentleWait(start) {
  const orig = globalThis.setImmediate;
  const t0 = performance.now();
  const gentle = (fn, ...args) => (!nativeFn(fn) || performance.now() - t0 < 1 ? orig(fn, ...args) : setTimeout(fn, 0, ...args));
  globalThis.setImmediate = gentle;
  try {
    return await start();
  } finally {
    if (globalThis.setImmediate === gentle) globalThis.setImmediate = orig;
  }
}

async function tfjsSync() {
  const be = tf.backend();
  // public WebGPUBackend methods; submitting an empty encoder is harmless
  be.ensureCommandEncoderReady();
  be.endComputePassEncoder();
  be.submitQueue();
  await gentleWait(() => be.queue.onSubmittedWorkDone());
}

// measure() wraps step in wgnn's tidy (a no-op for tfjs tensors) and then awaits dev.sync().
const tfjsDev = { sync: tfjsSync };

/** One small matmul against a float64 CPU loop: the backend really computes on this adapter. */
async function checkAgainstCpu() {
  const [M, K, N] = [48, 80, 40]; // inputs above tfjs's 1000-element CPU-forwarding threshold
  const a = Float32Array.from({ length: M * K }, (_, i) => Math.sin(i));
  const b = Float32Array.from({ length: K * N }, (_, i) => Math.cos(0.7 * i));
  const ta = tf.tensor2d(a, [M, K]);
  const tb = tf.tensor2d(b, [K, N]);
  const ty = tf.matMul(ta, tb);
  const y = await ty.data();
  tf.dispose([ta, tb, ty]);
  let err = 0;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k] * b[k * N + j];
      err = Math.max(err, Math.abs(s - y[i * N + j]));
    }
  }
  if (!(err < 1e-4)) throw new Error(`peer_tfjs: tfjs-webgpu matmul ${M}x${K}x${N} differs from CPU by ${err}`);
}

/** A wgnn tensor and a tfjs tensor holding the same values, the tfjs one already on the GPU. */
async function pair(dev, shape, opts) {
  const w = dev.randn(shape, opts);
  const t = tf.tensor(await w.toArray(), shape);
  tf.backend().uploadToGPU(t.dataId); // tfjs uploads lazily; keep the upload out of the cold time
  return [w, t];
}

async function maxDiff(tfOut, wOut) {
  const ts = Array.isArray(tfOut) ? tfOut : [tfOut];
  const ws = Array.isArray(wOut) ? wOut : [wOut];
  let diff = 0;
  let scale = 0;
  for (let i = 0; i < ts.length; i++) {
    const [a, b] = [await ts[i].data(), await ws[i].toArray()];
    for (let j = 0; j < b.length; j++) {
      diff = Math.max(diff, Math.abs(a[j] - b[j]));
      scale = Math.max(scale, Math.abs(b[j]));
    }
  }
  tf.dispose(ts);
  for (const w of ws) w.dispose();
  return diff / (scale || 1);
}

/**
 * Measures one case on both libraries. tfStep/wStep record the work; tfOut/wOut (called once after
 * timing, each inside its library's tidy) return the outputs to compare. work: { flops } or { bytes } per call.
 */
async function both(dev, name, { tfStep, wStep, tfOut, wOut }, work) {
  const before = tf.memory().numTensors;
  const t = await measure(tfjsDev, `${name} · tfjs-webgpu`, () => tf.tidy(() => { tfStep(); }), work, OPTS);
  if (tf.memory().numTensors !== before) console.warn(`peer_tfjs: ${name}: tfjs leaked ${tf.memory().numTensors - before} tensors`);
  const w = await measure(dev, `${name} · wgnn`, wStep, work, OPTS);
  // after timing, so that cold still includes each library's first compile
  const diff = await maxDiff(tf.tidy(tfOut), tidy(wOut));
  if (!(diff < 1e-3)) throw new Error(`peer_tfjs: ${name}: tfjs and wgnn disagree (max rel diff ${diff})`);
  w.speedup = t.warmMs / w.warmMs;
  w.maxDiff = diff.toExponential(1);
  return [t, w];
}

export default async function (dev) {
  await setupTfjs();
  const rows = [];
  const keepTf = [];
  const track = (p) => (keepTf.push(p[1]), p);

  for (const n of [256, 512, 1024]) {
    const [a, ta] = track(await pair(dev, [n, n], { seed: 1 }));
    const [b, tb] = track(await pair(dev, [n, n], { seed: 2 }));
    rows.push(...await both(dev, `matmul ${n}³`, {
      tfStep: () => tf.matMul(ta, tb), wStep: () => ops.matmul(a, b),
      tfOut: () => tf.matMul(ta, tb), wOut: () => ops.matmul(a, b),
    }, { flops: 2 * n ** 3 }));
  }
  {
    const [a, ta] = track(await pair(dev, [8, 256, 64], { seed: 3 }));
    const [b, tb] = track(await pair(dev, [8, 64, 256], { seed: 4 }));
    rows.push(...await both(dev, 'batched 8×(256×64 · 64×256)', {
      tfStep: () => tf.matMul(ta, tb), wStep: () => ops.matmul(a, b),
      tfOut: () => tf.matMul(ta, tb), wOut: () => ops.matmul(a, b),
    }, { flops: 2 * 8 * 256 * 64 * 256 }));
  }

  const [N, C] = [4096, 256];
  const [x, tx] = track(await pair(dev, [N, C], { seed: 5 }));
  // read x, write y
  rows.push(...await both(dev, `softmax [${N},${C}] dim -1`, {
    tfStep: () => tf.softmax(tx), wStep: () => ops.softmax(x, -1),
    tfOut: () => tf.softmax(tx), wOut: () => ops.softmax(x, -1),
  }, { bytes: 2 * 4 * N * C }));
  {
    const [w, tw] = track(await pair(dev, [C], { seed: 6 }));
    const [b, tb] = track(await pair(dev, [C], { seed: 7 }));
    const eps = 1e-5;
    // tfjs has no fused layer norm op: moments over the last axis (biased variance), then
    // normalise, scale and shift with broadcasting. (tfjs-layers' LayerNormalization tiles mean,
    // variance, gamma and beta to the full shape before tf.batchNorm: more traffic, not less.)
    // Functional calls, since tfjs-core alone does not register the chained tensor methods.
    const tfLn = () => {
      const { mean, variance } = tf.moments(tx, -1, true);
      return tf.add(tf.mul(tf.mul(tf.sub(tx, mean), tf.rsqrt(tf.add(variance, eps))), tw), tb);
    };
    // GB/s of the fused kernel's minimum traffic, as in norm.bench.mjs
    rows.push(...await both(dev, `layerNorm [${N},${C}] w,b`, {
      tfStep: tfLn, wStep: () => ops.layerNorm(x, C, w, b, eps),
      tfOut: tfLn, wOut: () => ops.layerNorm(x, C, w, b, eps),
    }, { bytes: 8 * N * C + 8 * N + 8 * C }));
  }
  {
    const n = 1 << 22;
    const [a, ta] = track(await pair(dev, [n], { seed: 8 }));
    const [b, tb] = track(await pair(dev, [n], { seed: 9 }));
    rows.push(...await both(dev, `add [${n}]`, {
      tfStep: () => tf.add(ta, tb), wStep: () => ops.add(a, b),
      tfOut: () => tf.add(ta, tb), wOut: () => ops.add(a, b),
    }, { bytes: 3 * 4 * n }));
  }
  {
    // y = x·Wᵀ + b and its backward for a fixed upstream gradient g: dx, dW, db (3 GEMMs and a
    // column sum) on both sides. tfjs uses fused matMul with bias, as tfjs-layers' Dense does.
    const [wt, twt] = track(await pair(dev, [C, C], { seed: 10, std: 0.06 }));
    const [bias, tbias] = track(await pair(dev, [C], { seed: 11 }));
    const [g, tg] = track(await pair(dev, [N, C], { seed: 12 }));
    const xg = x.detach().requiresGrad_();
    const wg = wt.detach().requiresGrad_();
    const bg = bias.detach().requiresGrad_();
    const params = [xg, wg, bg];
    const tfGrads = tf.grads((xx, ww, bb) => tf.fused.matMul({ a: xx, b: ww, transposeB: true, bias: bb }));
    const wgnnStep = () => {
      ops.linear(xg, wg, bg).backward(g);
      const grads = params.map((t) => t.grad);
      for (const t of params) t.grad = null; // fresh grads each step: no accumulation kernel
      return grads;
    };
    rows.push(...await both(dev, `linear fwd+bwd [${N},${C}]·[${C},${C}]ᵀ+b`, {
      tfStep: () => tfGrads([tx, twt, tbias], tg), wStep: () => { for (const t of wgnnStep()) t.dispose(); },
      tfOut: () => tfGrads([tx, twt, tbias], tg), wOut: wgnnStep,
    }, { flops: 3 * 2 * N * C * C }));
  }
  tf.dispose(keepTf);
  return { title: 'Peer: TensorFlow.js WebGPU backend vs wgnn, same adapter (speedup = tfjs ms / wgnn ms)', rows };
}
