// V8's garbage collection on demand, for the Node engines' `collectGarbage` (engine.ts). Building a session
// leaves large garbage that V8 does not count as pressure: the model's ONNX bytes and the weights reordered
// at build time, hundreds of MB for a big model, while ONNX Runtime's own allocations are invisible to V8.
// With a small JavaScript heap no collection comes, so without one here that garbage stays resident for the
// life of the process (L sampling at batch 64: peak 1193 MB, 897 MB with this; bench/README.md "Memory").
// `node --expose-gc` is not needed: the flag is set at run time and `gc` taken from a fresh context.

import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | undefined;

/** A full collection now; the freed array buffers go back to the system right after it. */
export function collectGarbage(): void {
  if (!gc) {
    const exposed = (globalThis as { gc?: () => void }).gc;
    if (exposed) gc = exposed;
    else {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
    }
  }
  gc();
}
