// The Node.js engine: onnxruntime-node (CPU; CUDA when requested and available).

import * as ort from 'onnxruntime-node';
import type { Engine } from './engine.js';
import { ortEngine } from './ort.js';

let cached: Engine | undefined;

export function nodeEngine(): Engine {
  cached ??= ortEngine(ort, 'onnxruntime-node', 'cpu');
  return cached;
}
