// Reverse-mode autodiff, micrograd-shaped: an op that has inputs requiring grad attaches a GradNode
// (its inputs and a closure mapping the output gradient to input gradients) to its output.
// backward() sorts the graph topologically and runs the closures in reverse, recording the
// backward kernels into the same pending graph as the forward ones. Kernels never see gradients.
import { ShapeError, fmtShape } from './errors.js';
import { sameShape } from './shape.js';
import { keep, Tensor } from './tensor.js';
import { add } from './ops/elementwise.js';

export interface GradNode {
  op: string;
  inputs: readonly Tensor[];
  /** output gradient -> one gradient (or null) per input, each shaped like its input */
  backward: (g: Tensor) => readonly (Tensor | null | undefined)[];
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording autodiff nodes. */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op on these inputs must record a node. */
export function needsGrad(...inputs: readonly (Tensor | null | undefined)[]): boolean {
  return gradEnabled && inputs.some((t) => t?.requiresGrad);
}

/** Attaches the backward rule of an op to its output (when any input requires grad). */
export function record(op: string, out: Tensor, inputs: readonly Tensor[], backward: GradNode['backward']): Tensor {
  if (needsGrad(...inputs)) {
    out.requiresGrad = true;
    out._node = { op, inputs, backward };
  }
  return out;
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  // iterative DFS (deep LSTM/transformer graphs overflow a recursive one)
  const stack: [Tensor, number][] = [[root, 0]];
  seen.add(root);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t._node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const c = inputs[i]!;
      if (c.requiresGrad && !seen.has(c)) {
        seen.add(c);
        stack.push([c, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return order;
}

export function backward(root: Tensor, grad: Tensor | undefined, opts: { retainGraph?: boolean } = {}): void {
  if (!root.requiresGrad) {
    throw new ShapeError(`backward: tensor ${fmtShape(root.shape)} does not require grad (no input of the computation has requiresGrad)`);
  }
  let g0: Tensor;
  if (grad) {
    if (!sameShape(grad.shape, root.shape)) {
      throw new ShapeError(`backward: grad ${fmtShape(grad.shape)} must have the shape of the tensor ${fmtShape(root.shape)}`);
    }
    g0 = grad.detach();
  } else {
    if (root.size !== 1) {
      throw new ShapeError(`backward: grad can be omitted only for a one-element tensor, got ${fmtShape(root.shape)}`);
    }
    g0 = root.device.ones(root.shape);
  }
  const order = topoOrder(root);
  const grads = new Map<Tensor, Tensor>([[root, g0]]);
  const owned = new Set<Tensor>([g0]); // every grad tensor here is a distinct object we may dispose
  // every tensor stored in `grads` is a distinct object that is disposed once consumed; a rule that
  // passes a grad through (add returns g) gets a new object sharing the storage
  const own = (t: Tensor): Tensor => {
    const mine = owned.has(t) ? t.detach() : t;
    owned.add(mine);
    return mine;
  };
  noGrad(() => {
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const g = grads.get(t);
      if (!g) continue;
      grads.delete(t);
      const node = t._node;
      if (!node) {
        // a leaf: accumulate into .grad, which is long-lived (kept out of tidy scopes)
        const prev = t.grad;
        t.grad = keep(prev ? add(prev, g) : g.detach());
        prev?.dispose();
        g.dispose();
        continue;
      }
      const gins = node.backward(g);
      const consumed: Tensor[] = []; // disposed after this node: a rule may return one tensor for several inputs
      node.inputs.forEach((inp, i) => {
        const gi = gins[i];
        if (!gi || !inp.requiresGrad) {
          if (gi && gi !== g && !owned.has(gi)) gi.dispose();
          return;
        }
        if (!sameShape(gi.shape, inp.shape)) {
          throw new Error(`wgnn internal: backward of ${node.op} gave a grad ${fmtShape(gi.shape)} for input ${i} of shape ${fmtShape(inp.shape)}`);
        }
        const mine = own(gi);
        const prev = grads.get(inp);
        if (prev) {
          grads.set(inp, own(add(prev, mine)));
          prev.dispose();
          consumed.push(mine);
        } else grads.set(inp, mine);
      });
      for (const c of consumed) c.dispose();
      g.dispose();
      if (!opts.retainGraph) t._node = null;
    }
  });
}
