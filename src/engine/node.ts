// The Node.js engines. `nodeEngine()` is the fastest one built here: the native binding with the fused
// kernels (native.ts) when `npm ci` could compile it, else onnxruntime-node; DDPM_ENGINE=onnxruntime-node
// forces the latter. `onnxruntimeNodeEngine()` is onnxruntime-node itself (CPU; CUDA when requested and
// available). threads = 0 means one intra-op thread per logical core (ONNX Runtime's own default counts
// physical cores: half of them here).

import { readdirSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import * as ort from 'onnxruntime-node';
import type { Engine } from './engine.js';
import { nativeEngine } from './native.js';
import { ortEngine } from './ort.js';

let cachedOrt: Engine | undefined;
let cachedBest: Engine | undefined;

export function onnxruntimeNodeEngine(): Engine {
  if (!cachedOrt) {
    const base = ortEngine(ort, 'onnxruntime-node', 'cpu');
    cachedOrt = {
      name: base.name,
      async createSession(model, opts = {}) {
        const s = await base.createSession(model, {
          ...opts,
          threads: opts.threads || availableParallelism(),
        });
        return { ...s, endProfiling: async () => newestProfile(await s.endProfiling()) };
      },
    };
  }
  return cachedOrt;
}

/** The profile ONNX Runtime wrote last with this path prefix (its name adds a timestamp). */
function newestProfile(prefix: string): string {
  const dir = dirname(prefix);
  const files = readdirSync(dir)
    .filter((f) => f.startsWith(basename(prefix)) && f.endsWith('.json'))
    .map((f) => join(dir, f))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs);
  if (!files[0]) throw new Error(`endProfiling: ONNX Runtime wrote no profile with prefix ${prefix}`);
  return files[0];
}

export function nodeEngine(): Engine {
  cachedBest ??= nativeEngine() ?? onnxruntimeNodeEngine();
  return cachedBest;
}
