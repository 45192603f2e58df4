// wgnn: WebGPU neural networks.
export { createDevice, Device } from './gpu/device.js';
export type { CreateDeviceOptions, MemoryInfo, AdapterDescription, DispatchSpec } from './gpu/device.js';
export { Tensor, tidy, keep } from './tensor.js';
export type { DType } from './tensor.js';
export { noGrad, isGradEnabled } from './autodiff.js';
export { gradcheck } from './gradcheck.js';
export type { GradcheckOptions, GradcheckResult } from './gradcheck.js';
export { kernel, KernelSource } from './gpu/kernel.js';
export * from './errors.js';
export * as ops from './ops/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export { saveSafetensors, loadSafetensors, loadSafetensorsWithMetadata, encodeSafetensors, decodeSafetensors, toDevice, writeFileAtomic } from './io/safetensors.js';
export type { HostTensor, RawTensor, SafetensorsDType } from './io/safetensors.js';
export * as models from './models/index.js';
export type { DeviceProfile } from './gpu/profile.js';
export { clipGradNorm } from './optim/clip.js';
