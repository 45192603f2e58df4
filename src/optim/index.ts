// The optim namespace (`import { optim } from 'wgnn'`).
export { Optimizer } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { Adam, AdamW, FusedOptimizer, type AdamOptions, type OptimizerStateDict } from './adam.js';
export { clipGradNorm, type ClipGradNormOptions } from './clip.js';
export { LRScheduler, StepLR, WarmupCosineLR, LambdaLR } from './schedule.js';
