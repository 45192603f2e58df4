// The models namespace (`import { models } from 'wgnn'`).
export { MLP, type MLPConfig } from './mlp.js';
export { SimpleCNN, type SimpleCNNConfig } from './cnn.js';
