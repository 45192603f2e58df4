// STUB: being written (softmax helper). Signatures are the contract.
import { Tensor } from '../tensor.js';
export function softmax(x: Tensor, dim = -1): Tensor {
  throw new Error(`softmax: not implemented yet ${x.shape} ${dim}`);
}
export function logSoftmax(x: Tensor, dim = -1): Tensor {
  throw new Error(`logSoftmax: not implemented yet ${x.shape} ${dim}`);
}
