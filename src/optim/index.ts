// The optim namespace (`import { optim } from 'wgnn'`).
export { Optimizer } from './optimizer.js';
