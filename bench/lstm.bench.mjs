// LSTM language-model training step (embedding -> 2-layer LSTM, hidden 256 -> linear head, vocab 96,
// cross-entropy, SGD; seq 64, batch 32) in tokens/s: nn.LSTM (fused recurrence: one dispatch per
// time step and layer, forward and backward) vs the same model with the recurrence composed from
// matmul/sigmoid/tanh/slice/add/mul ops (what autodiff gives without the fused kernels).
// Also the forward pass alone, and the dispatches each variant records per training step.
import { nn, noGrad, ops, optim, tidy } from 'wgnn';
import { measure } from './lib.mjs';

const [T, B, H, V, L] = [64, 32, 256, 96, 2];
const E = H; // embedding width

/** the composite oracle (as test/composites/lstm_composite.ts), from public ops only */
function lstmComposite(x, layers, h0, c0) {
  let inp = x;
  const hN = [];
  const cN = [];
  layers.forEach((w, l) => {
    let h = ops.reshape(ops.slice(h0, 0, l, l + 1), [B, H]);
    let c = ops.reshape(ops.slice(c0, 0, l, l + 1), [B, H]);
    const wIhT = ops.transpose(w.wIh);
    const wHhT = ops.transpose(w.wHh);
    const bias = ops.add(w.bIh, w.bHh);
    const outs = [];
    for (let t = 0; t < T; t++) {
      const xt = ops.reshape(ops.slice(inp, 0, t, t + 1), [B, inp.shape[2]]);
      const gates = ops.add(ops.add(ops.matmul(xt, wIhT), ops.matmul(h, wHhT)), bias);
      const i = ops.sigmoid(ops.slice(gates, 1, 0, H));
      const f = ops.sigmoid(ops.slice(gates, 1, H, 2 * H));
      const g = ops.tanh(ops.slice(gates, 1, 2 * H, 3 * H));
      const o = ops.sigmoid(ops.slice(gates, 1, 3 * H, 4 * H));
      c = ops.add(ops.mul(f, c), ops.mul(i, g));
      h = ops.mul(o, ops.tanh(c));
      outs.push(h);
    }
    hN.push(h);
    cN.push(c);
    inp = ops.stack(outs, 0);
  });
  return [inp, [ops.stack(hN, 0), ops.stack(cN, 0)]];
}

/** one layer's recurrence from ops, given xg = x·W_ihᵀ of all steps [T, B, 4H] (the part the fused kernels replace) */
function recurrenceComposite(xg, w, h, c) {
  const wHhT = ops.transpose(w.wHh);
  const bias = ops.add(w.bIh, w.bHh);
  const outs = [];
  for (let t = 0; t < T; t++) {
    const xt = ops.reshape(ops.slice(xg, 0, t, t + 1), [B, 4 * H]);
    const gates = ops.add(ops.add(xt, ops.matmul(h, wHhT)), bias);
    const i = ops.sigmoid(ops.slice(gates, 1, 0, H));
    const f = ops.sigmoid(ops.slice(gates, 1, H, 2 * H));
    const g = ops.tanh(ops.slice(gates, 1, 2 * H, 3 * H));
    const o = ops.sigmoid(ops.slice(gates, 1, 3 * H, 4 * H));
    c = ops.add(ops.mul(f, c), ops.mul(i, g));
    h = ops.mul(o, ops.tanh(c));
    outs.push(h);
  }
  return ops.stack(outs, 0);
}

/** CPU milliseconds per call (all threads: robust to other processes sharing the cores) */
async function cpuMs(dev, step, n = 2) {
  tidy(() => { step(); });
  await dev.sync();
  const c0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    tidy(() => { step(); });
    await dev.sync();
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000 / n;
}

/** dispatches one call records */
async function dispatchesOf(dev, step) {
  const d0 = dev.exec.stats.dispatches;
  tidy(() => { step(); });
  await dev.sync();
  return dev.exec.stats.dispatches - d0;
}

export default async function (dev) {
  const rows = [];
  if (typeof nn.LSTM !== 'function') {
    // until src/nn/index.ts exports LSTM: do not take the other benches down with this one
    return { title: 'LSTM: skipped (nn.LSTM is not exported from the package)', rows };
  }
  const lstm = new nn.LSTM(dev, { inputSize: E, hiddenSize: H, numLayers: L, seed: 1 });
  const head = new nn.Linear(dev, { inFeatures: H, outFeatures: V, seed: 2 });
  const params = [...lstm.parameters(), ...head.parameters()];
  // embedding: nn.Embedding / ops.embedding when available, else one-hot · W (same math)
  const rnd = (() => { let s = 7; return () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32); })();
  const tokens = Int32Array.from({ length: (T + 1) * B }, () => Math.floor(rnd() * V));
  const inputIdx = tokens.subarray(0, T * B);
  const targetIdx = tokens.subarray(B);
  const emb = dev.randn([V, E], { seed: 3, std: 1, requiresGrad: true });
  emb.isParameter = true;
  params.push(emb);
  const useEmbedding = typeof ops.embedding === 'function';
  const oneHot = (idx) => {
    const a = new Float32Array(idx.length * V);
    idx.forEach((v, i) => (a[i * V + v] = 1));
    return dev.tensor(a, [idx.length, V]);
  };
  const inputs = useEmbedding ? dev.tensor(Int32Array.from(inputIdx), [T, B]) : oneHot(inputIdx);
  const targets = dev.tensor(Int32Array.from(targetIdx), [T * B]);
  const targetOneHot = oneHot(targetIdx);
  const embed = () => (useEmbedding ? ops.embedding(inputs, emb) : ops.reshape(ops.matmul(inputs, emb), [T, B, E]));
  const loss = (logits) => {
    if (typeof ops.crossEntropy === 'function') return ops.crossEntropy(logits, targets);
    return ops.mul(ops.sum(ops.mul(ops.logSoftmax(logits, -1), targetOneHot)), -1 / (T * B));
  };
  const opt = typeof optim.SGD === 'function' ? new optim.SGD(params, { lr: 0.1 }) : null;
  const sgd = () => {
    if (opt) return opt.step();
    noGrad(() => { for (const p of params) p.copy_(ops.sub(p, ops.mul(p.grad, 0.1))); });
  };
  const zero = dev.zeros([L, B, H]);
  const layers = Array.from({ length: L }, (_, l) => lstm.layer(l));
  const recurrences = {
    fused: (x) => lstm.forward(x, [zero, zero])[0],
    composite: (x) => lstmComposite(x, layers, zero, zero)[0],
  };
  const forward = (rec) => {
    const out = rec(embed());
    return head.forward(ops.reshape(out, [T * B, H]));
  };
  const trainStep = (rec) => {
    for (const p of params) { p.grad?.dispose(); p.grad = null; }
    const l = loss(forward(rec));
    l.backward();
    sgd();
  };
  // FLOPs of the recurrence and the matmuls per training step (forward ×3 for backward)
  const mm = 2 * T * B * (E * 4 * H + H * 4 * H + H * 4 * H + H * 4 * H) + 2 * T * B * H * V;
  const note = `${useEmbedding ? 'embedding' : 'one-hot·W'}, ${typeof ops.crossEntropy === 'function' ? 'crossEntropy' : 'logSoftmax loss'}, ${opt ? 'optim.SGD' : 'manual SGD'}`;
  const add = async (name, step, flops, tokens, opts) => {
    const dispatches = await dispatchesOf(dev, step);
    const row = await measure(dev, name, step, { flops }, opts);
    row.cpuMs = await cpuMs(dev, step);
    row.tokensPerS = tokens / (row.warmMs / 1000);
    row.dispatches = dispatches;
    rows.push(row);
    return row;
  };
  const speedup = (fused, comp) => {
    fused.speedup = comp.warmMs / fused.warmMs;
    fused.cpuSpeedup = comp.cpuMs / fused.cpuMs;
  };
  const tr = {};
  for (const [name, rec] of Object.entries(recurrences)) {
    tr[name] = await add(`LSTM LM train step, ${name} (2×${H}, T=${T}, B=${B}, V=${V}; ${note})`, () => trainStep(rec), 3 * mm, T * B, { minSamples: 3, maxTime: 4 });
  }
  speedup(tr.fused, tr.composite);
  const fw = {};
  for (const [name, rec] of Object.entries(recurrences)) {
    fw[name] = await add(`LSTM LM forward, ${name}`, () => forward(rec), mm, T * B, { minSamples: 3, maxTime: 3 });
  }
  speedup(fw.fused, fw.composite);
  // the recurrence alone: a 1-layer LSTM with inputSize 1, so the up-front x·W_ihᵀ (same for both)
  // is a negligible [T·B, 1]·[1, 4H] matmul; what remains is what the fused kernels replace
  const lstm1 = new nn.LSTM(dev, { inputSize: 1, hiddenSize: H, seed: 6 });
  const w1 = lstm1.layer(0);
  const x1 = dev.randn([T, B, 1], { seed: 5, requiresGrad: true });
  const z = dev.zeros([B, H]);
  const recFlops = 3 * 2 * T * B * 4 * H * H;
  const back = (out) => {
    out.backward(dev.ones(out.shape));
    for (const p of [x1, ...lstm1.parameters()]) { p.grad?.dispose(); p.grad = null; }
  };
  const xg1 = () => ops.reshape(ops.linear(ops.reshape(x1, [T * B, 1]), w1.wIh), [T, B, 4 * H]);
  const rc = {
    fused: await add(`1-layer recurrence fwd+bwd, fused (T=${T}, B=${B}, H=${H})`, () => back(lstm1.forward(x1)[0]), recFlops, T * B, { minSamples: 3, maxTime: 3 }),
    composite: await add('1-layer recurrence fwd+bwd, composite', () => back(recurrenceComposite(xg1(), w1, z, z)), recFlops, T * B, { minSamples: 3, maxTime: 3 }),
  };
  speedup(rc.fused, rc.composite);
  for (const r of rows) r.dispatchesPerStep = r.dispatches / T;
  return { title: 'LSTM: fused recurrence vs composite from ops (speedup = composite / fused, wall and CPU time; dispatches per call and per time step)', rows };
}
