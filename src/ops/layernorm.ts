// STUB: being written (layernorm helper). Signatures are the contract.
import { Tensor } from '../tensor.js';
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  throw new Error(`layerNorm: not implemented yet ${x.shape} ${normalizedShape} ${weight?.shape} ${bias?.shape} ${eps}`);
}
