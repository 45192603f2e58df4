// The functional ops namespace (`import { ops } from 'wgnn'`).
export { add, sub, mul, div, maximum, neg, exp, log, sqrt, tanh, sigmoid, relu, gelu, square, reciprocal, abs, affine } from './elementwise.js';
export { sum, mean, max, sumTo } from './reduce.js';
export { reshape, view, permute, transpose, expand, slice, concat, stack, squeeze, unsqueeze } from './shape_ops.js';
export { matmul, linear } from './matmul.js';
export { softmax, logSoftmax } from './softmax.js';
export { layerNorm } from './layernorm.js';
