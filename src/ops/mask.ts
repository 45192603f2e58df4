// Attention-mask helpers: a bool mask (true = attend, or with `invert` true = masked out, as
// PyTorch's nn.MultiheadAttention) to an additive float mask (0 / -inf). Not differentiable.
import src from '../../kernels/mask.wgsl';
import { kernel } from '../gpu/kernel.js';
import { check, fmtShape } from '../errors.js';
import { Tensor } from '../tensor.js';
import { type Arr, mapArr } from '../reference.js';

const K = kernel('mask.wgsl', src);
const WG = 256;

export function maskToAdditive(mask: Tensor, opts: { invert?: boolean } = {}): Tensor {
  check(mask instanceof Tensor, 'maskToAdditive', 'mask must be a Tensor');
  mask.storage;
  check(mask.dtype === 'bool', 'maskToAdditive', `mask must be a bool tensor, got ${mask.dtype} ${fmtShape(mask.shape)}`);
  const out = mask.device.empty(mask.shape);
  mask.device.dispatch(K, 'bool_to_additive', {
    bindings: { m: mask, out },
    uniforms: { n: mask.size, invert: opts.invert ? 1 : 0, masked: -Infinity },
    overrides: { WG },
    workgroups: mask.device.grid1d(mask.size, WG),
  });
  return out;
}

export function maskToAdditiveRef(mask: Arr, invert = false): Arr {
  return mapArr(mask, (v) => ((v !== 0) !== invert ? 0 : -Infinity));
}
