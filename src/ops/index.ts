// The functional ops namespace (`import { ops } from 'wgnn'`).
export { add, sub, mul, div, maximum, neg, exp, log, sqrt, tanh, sigmoid, relu, gelu, square, reciprocal, abs, affine } from './elementwise.js';
export { sum, mean, max, sumTo } from './reduce.js';
export { reshape, view, permute, transpose, expand, slice, concat, stack, squeeze, unsqueeze } from './shape_ops.js';
export { matmul, linear } from './matmul.js';
export { softmax, logSoftmax } from './softmax.js';
export { layerNorm } from './layernorm.js';
export { windowAttention, relativePositionIndex } from './window_attention.js';
export { scaledDotProductAttention } from './attention.js';
export { lstmCell, rnnCell, lstm, rnn } from './lstm.js';
export { embedding, checkIndexErrors } from './embedding.js';
export { crossEntropy } from './cross_entropy.js';
export { dropout } from './dropout.js';
export { im2col, col2im, conv2d, type Size2, type Im2colOptions, type Conv2dOptions } from './conv.js';
export { patchify } from './patchify.js';
export { maxPool2d, type MaxPool2dOptions } from './pool.js';
export { maskToAdditive } from './mask.js';
export { matmulEx } from './matmul.js';
