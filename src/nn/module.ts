// nn.Module: plain classes whose parameters are found by walking their fields. A Tensor field marked
// as a parameter (param()) or buffer (buffer()) is registered under its field name; Module fields
// recurse with "name."; arrays of modules or tensors use "name.<i>.". Field names follow PyTorch
// (weight, bias, in_proj_weight, weight_ih_l0 ...) so state dicts move between wgnn and PyTorch.
import { ShapeError, fmtShape } from '../errors.js';
import type { Device } from '../gpu/device.js';
import { keep, Tensor } from '../tensor.js';
import { sameShape } from '../shape.js';
import type { HostTensor } from '../io/safetensors.js';

/** Marks t as a trainable parameter (requires grad, long-lived) and returns it. */
export function param(t: Tensor): Tensor {
  t.requiresGrad = true;
  t.isParameter = true;
  return keep(t);
}

/** Marks t as a persistent non-trainable buffer (saved in stateDict) and returns it. */
export function buffer(t: Tensor): Tensor {
  t.isBuffer = true;
  return keep(t);
}

export abstract class Module {
  training = true;

  constructor(readonly device: Device) {}

  private *walk(prefix: string): Generator<[string, Tensor | Module]> {
    for (const [k, v] of Object.entries(this)) {
      if (k === 'device' || k === 'training') continue;
      yield* walkValue(prefix + k, v);
    }
  }

  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, v] of this.walk('')) if (v instanceof Tensor && v.isParameter) out.push([n, v]);
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [n, v] of this.walk('')) if (v instanceof Tensor && v.isBuffer) out.push([n, v]);
    return out;
  }

  namedModules(): [string, Module][] {
    const out: [string, Module][] = [['', this]];
    for (const [n, v] of this.walk('')) if (v instanceof Module) out.push([n, v]);
    return out;
  }

  /** Parameters and buffers by PyTorch-style dotted name. */
  stateDict(): Record<string, Tensor> {
    return Object.fromEntries([...this.namedParameters(), ...this.namedBuffers()]);
  }

  /** Copies values from a state dict (GPU tensors or host tensors from loadSafetensors) into this module's tensors, in place. */
  loadStateDict(dict: Record<string, Tensor | HostTensor>, opts: { strict?: boolean } = {}): { missing: string[]; unexpected: string[] } {
    const own = this.stateDict();
    const missing = Object.keys(own).filter((k) => !(k in dict));
    const unexpected = Object.keys(dict).filter((k) => !(k in own));
    if ((opts.strict ?? true) && (missing.length || unexpected.length)) {
      throw new ShapeError(`loadStateDict: missing keys [${missing.join(', ')}], unexpected keys [${unexpected.join(', ')}]`);
    }
    for (const [k, t] of Object.entries(own)) {
      const src = dict[k];
      if (!src) continue;
      if (!sameShape(src.shape, t.shape)) {
        throw new ShapeError(`loadStateDict: '${k}' has shape ${fmtShape(src.shape)} in the state dict, the module expects ${fmtShape(t.shape)}`);
      }
      if (src instanceof Tensor) t.copy_(src);
      else {
        if (src.data.length !== t.size) throw new ShapeError(`loadStateDict: '${k}' has ${src.data.length} values for shape ${fmtShape(t.shape)}`);
        t.device.exec.upload(t.storage.buffer, 0, t.dtype === 'int32' ? Int32Array.from(src.data) : Float32Array.from(src.data));
      }
    }
    return { missing, unexpected };
  }

  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Drops every parameter's gradient. */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((a, p) => a + p.size, 0);
  }

  /** Disposes every parameter and buffer. */
  dispose(): void {
    for (const t of Object.values(this.stateDict())) {
      t.grad?.dispose();
      t.dispose();
    }
  }
}

function* walkValue(name: string, v: unknown): Generator<[string, Tensor | Module]> {
  if (v instanceof Tensor) yield [name, v];
  else if (v instanceof Module) {
    yield [name, v];
    for (const [k, c] of Object.entries(v)) {
      if (k === 'device' || k === 'training') continue;
      yield* walkValue(`${name}.${k}`, c);
    }
  } else if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      if (v[i] instanceof Module || v[i] instanceof Tensor) yield* walkValue(`${name}.${i}`, v[i]);
    }
  }
}
