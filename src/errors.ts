/** Base class of every error wgnn throws on purpose. */
export class WgnnError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** Bad arguments to an op: names the op, the argument, the shapes and what was expected. */
export class ShapeError extends WgnnError {}

/** A request beyond what the device allows (names the limit). */
export class LimitError extends WgnnError {}

/** The GPU device was lost (driver reset, destroy()); every later call throws this. */
export class DeviceLostError extends WgnnError {
  constructor(readonly reason: string, message: string) {
    super(`wgnn: the GPU device was lost (${reason}): ${message}`);
  }
}

/** A GPU buffer could not be allocated. */
export class AllocationError extends WgnnError {}

/** A WGSL kernel failed to compile or its interface does not match the dispatch. */
export class KernelError extends WgnnError {}

/** Use of a tensor after dispose(): a bad argument, so a kind of ShapeError. */
export class DisposedError extends ShapeError {}

export function fmtShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Throws a ShapeError "op: message" when cond is false. */
export function check(cond: unknown, op: string, message: string): asserts cond {
  if (!cond) throw new ShapeError(`${op}: ${message}`);
}
