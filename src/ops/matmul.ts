// STUB: being written (matmul helper). Signatures are the contract.
import { Tensor } from '../tensor.js';
export function matmul(a: Tensor, b: Tensor): Tensor {
  throw new Error(`matmul: not implemented yet ${a.shape} ${b.shape}`);
}
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  throw new Error(`linear: not implemented yet ${x.shape} ${weight.shape} ${bias?.shape}`);
}
