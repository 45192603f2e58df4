// The nn namespace (`import { nn } from 'wgnn'`).
export { Module, param, buffer } from './module.js';
export { Linear, type LinearOptions } from './linear.js';
export { LayerNorm, type LayerNormOptions } from './layernorm.js';
export { ReLU, GELU, Tanh, Sigmoid, Sequential } from './activation.js';
export { LSTM, RNN, type LSTMOptions, type RNNOptions } from './lstm.js';
export { Embedding, type EmbeddingOptions } from './embedding.js';
export { Dropout, type DropoutOptions } from './dropout.js';
export { Conv2d, MaxPool2d, type Conv2dOptions } from './conv.js';
export { MultiheadAttention, type MultiheadAttentionOptions, type MultiheadAttentionForwardOptions } from './attention.js';
export {
  TransformerEncoderLayer, TransformerDecoderLayer, TransformerEncoder, TransformerDecoder,
  type TransformerLayerOptions, type TransformerStackOptions, type TransformerEncoderLayerForwardOptions, type TransformerDecoderLayerForwardOptions,
} from './transformer.js';
