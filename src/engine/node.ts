// The Node.js engine: onnxruntime-node (CPU; CUDA when requested and available). threads = 0 means one
// intra-op thread per logical core (ONNX Runtime's own default counts physical cores: half of them here).

import { availableParallelism } from 'node:os';
import * as ort from 'onnxruntime-node';
import type { Engine } from './engine.js';
import { ortEngine } from './ort.js';

let cached: Engine | undefined;

export function nodeEngine(): Engine {
  if (!cached) {
    const base = ortEngine(ort, 'onnxruntime-node', 'cpu');
    cached = {
      name: base.name,
      createSession: (model, opts = {}) =>
        base.createSession(model, { ...opts, threads: opts.threads || availableParallelism() }),
    };
  }
  return cached;
}
