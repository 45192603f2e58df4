// float64 references for the nn modules' tests, written from PyTorch's definitions.
import { arr, type Arr } from '../helpers.js';

/** float64 MHA for batch-first inputs; mask[b][l][s] true = not allowed (PyTorch bool semantics). */
export function mhaRef(q: Arr, k: Arr, v: Arr, W: Arr, bIn: Arr, Wo: Arr, bo: Arr, H: number, masked: (b: number, l: number, s: number) => boolean): { out: Arr; weights: Arr } {
  const [B, L, E] = q.shape as [number, number, number];
  const S = k.shape[1]!;
  const D = E / H;
  const proj = (x: Arr, len: number, part: number): Float64Array => {
    const o = new Float64Array(B * len * E);
    for (let b = 0; b < B; b++) for (let t = 0; t < len; t++) for (let e = 0; e < E; e++) {
      let s = bIn.data[part * E + e]!;
      for (let f = 0; f < E; f++) s += x.data[(b * len + t) * E + f]! * W.data[(part * E + e) * E + f]!;
      o[(b * len + t) * E + e] = s;
    }
    return o;
  };
  const Q = proj(q, L, 0);
  const K = proj(k, S, 1);
  const V = proj(v, S, 2);
  const merged = new Float64Array(B * L * E);
  const weights = arr([B, L, S]);
  for (let b = 0; b < B; b++) for (let h = 0; h < H; h++) for (let l = 0; l < L; l++) {
    const sc = new Float64Array(S);
    let m = -Infinity;
    for (let s = 0; s < S; s++) {
      let d = 0;
      for (let j = 0; j < D; j++) d += Q[(b * L + l) * E + h * D + j]! * K[(b * S + s) * E + h * D + j]!;
      sc[s] = masked(b, l, s) ? -Infinity : d / Math.sqrt(D);
      m = Math.max(m, sc[s]!);
    }
    let z = 0;
    for (let s = 0; s < S; s++) z += Math.exp(sc[s]! - m);
    for (let s = 0; s < S; s++) {
      const p = Math.exp(sc[s]! - m) / z;
      weights.data[(b * L + l) * S + s]! += p / H;
      for (let j = 0; j < D; j++) merged[(b * L + l) * E + h * D + j]! += p * V[(b * S + s) * E + h * D + j]!;
    }
  }
  const out = arr([B, L, E]);
  for (let r = 0; r < B * L; r++) for (let e = 0; e < E; e++) {
    let s = bo.data[e]!;
    for (let f = 0; f < E; f++) s += merged[r * E + f]! * Wo.data[e * E + f]!;
    out.data[r * E + e] = s;
  }
  return { out, weights };
}

