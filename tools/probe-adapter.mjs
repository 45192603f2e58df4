// Exit 0 and print the adapter when Dawn finds one; exit 1 otherwise. Used by tools/setup.sh.
import { create, globals } from 'webgpu';
Object.assign(globalThis, globals);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) { console.error('no WebGPU adapter'); process.exit(1); }
const info = adapter.info;
console.log(`[setup] WebGPU adapter: ${info.vendor} ${info.architecture} ${info.device} ${info.description}`.trim());
process.exit(0);
