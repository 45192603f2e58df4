// Composite LSTM / RNN built only from matmul, sigmoid, tanh, add, mul and shape ops: the slow
// oracle the fused recurrence is tested against (every fused op keeps its composite version).
// No backward rule of its own: autodiff differentiates the composite op by op.
import { ops, type Tensor } from '../../src/index.js';
import type { RecurrentLayerWeights } from '../../src/ops/lstm.js';

/** x [B, in], h/c [B, H] -> [h1, c1] (gate order i, f, g, o) */
export function lstmCellComposite(x: Tensor, h: Tensor, c: Tensor, w: RecurrentLayerWeights): [Tensor, Tensor] {
  const H = h.shape[1]!;
  let gates = ops.add(ops.matmul(x, ops.transpose(w.wIh)), ops.matmul(h, ops.transpose(w.wHh)));
  if (w.bIh) gates = ops.add(gates, w.bIh);
  if (w.bHh) gates = ops.add(gates, w.bHh);
  const i = ops.sigmoid(ops.slice(gates, 1, 0, H));
  const f = ops.sigmoid(ops.slice(gates, 1, H, 2 * H));
  const g = ops.tanh(ops.slice(gates, 1, 2 * H, 3 * H));
  const o = ops.sigmoid(ops.slice(gates, 1, 3 * H, 4 * H));
  const c1 = ops.add(ops.mul(f, c), ops.mul(i, g));
  const h1 = ops.mul(o, ops.tanh(c1));
  return [h1, c1];
}

/** x [B, in], h [B, H] -> h1 = tanh(x·W_ihᵀ + b_ih + h·W_hhᵀ + b_hh) (or relu) */
export function rnnCellComposite(x: Tensor, h: Tensor, w: RecurrentLayerWeights, nonlinearity: 'tanh' | 'relu' = 'tanh'): Tensor {
  let pre = ops.add(ops.matmul(x, ops.transpose(w.wIh)), ops.matmul(h, ops.transpose(w.wHh)));
  if (w.bIh) pre = ops.add(pre, w.bIh);
  if (w.bHh) pre = ops.add(pre, w.bHh);
  return nonlinearity === 'relu' ? ops.relu(pre) : ops.tanh(pre);
}

function step(x: Tensor, t: number): Tensor {
  return ops.reshape(ops.slice(x, 0, t, t + 1), x.shape.slice(1));
}

/** multi-layer LSTM, x [T, B, in], h0/c0 [L, B, H] -> [output [T, B, H], [hN, cN]] */
export function lstmComposite(x: Tensor, layers: readonly RecurrentLayerWeights[], h0: Tensor, c0: Tensor): [Tensor, [Tensor, Tensor]] {
  const T = x.shape[0]!;
  let inp = x;
  const hN: Tensor[] = [];
  const cN: Tensor[] = [];
  layers.forEach((w, l) => {
    let h = step(h0, l);
    let c = step(c0, l);
    const outs: Tensor[] = [];
    for (let t = 0; t < T; t++) {
      [h, c] = lstmCellComposite(step(inp, t), h, c, w);
      outs.push(h);
    }
    hN.push(h);
    cN.push(c);
    inp = ops.stack(outs, 0);
  });
  return [inp, [ops.stack(hN, 0), ops.stack(cN, 0)]];
}

/** multi-layer Elman RNN, x [T, B, in], h0 [L, B, H] -> [output [T, B, H], hN] */
export function rnnComposite(x: Tensor, layers: readonly RecurrentLayerWeights[], h0: Tensor, nonlinearity: 'tanh' | 'relu' = 'tanh'): [Tensor, Tensor] {
  const T = x.shape[0]!;
  let inp = x;
  const hN: Tensor[] = [];
  layers.forEach((w, l) => {
    let h = step(h0, l);
    const outs: Tensor[] = [];
    for (let t = 0; t < T; t++) {
      h = rnnCellComposite(step(inp, t), h, w, nonlinearity);
      outs.push(h);
    }
    hN.push(h);
    inp = ops.stack(outs, 0);
  });
  return [inp, ops.stack(hN, 0)];
}
