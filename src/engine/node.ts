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
import { collectGarbage } from './gc.js';
import { nativeEngine } from './native.js';
import { ortEngine } from './ort.js';

let cachedOrt: Engine | undefined;
let cachedBest: Engine | undefined;

export function onnxruntimeNodeEngine(): Engine {
  if (!cachedOrt) {
    const base = ortEngine(ort, 'onnxruntime-node', 'cpu');
    cachedOrt = {
      name: base.name,
      collectGarbage,
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

/** The execution providers `--ep` chooses among in Node. */
export type NodeProvider = 'cpu' | 'cuda' | 'webgpu';
export const NODE_PROVIDERS: readonly NodeProvider[] = ['cpu', 'cuda', 'webgpu'];

/** What a provider needs, for the error when ONNX Runtime cannot start it. */
function providerNeeds(ep: Exclude<NodeProvider, 'cpu'>): string {
  switch (ep) {
    case 'cuda':
      return (
        "onnxruntime-node's CUDA provider (libonnxruntime_providers_cuda.so and libonnxruntime_providers_shared.so " +
        "beside its binding: ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node, as this project's .npmrc " +
        "skips them) and NVIDIA's CUDA 12 and cuDNN 9 " +
        'libraries on the library path, with a driver and a GPU'
      );
    case 'webgpu':
      return 'a WebGPU adapter: a GPU with Vulkan drivers (libvulkan.so.1) that Dawn, inside onnxruntime-node, can open';
    default:
      throw new Error(`unknown provider ${String(ep satisfies never)}`);
  }
}

/**
 * The engine for `--ep`: 'cpu' is nodeEngine() (the native binding with its fused kernels, else
 * onnxruntime-node); 'cuda' and 'webgpu' are onnxruntime-node with that provider only (standard ONNX, no
 * fused kernels), never a silent fall-back to the CPU: a provider that cannot start is an error naming it
 * and what it needs.
 */
export function engineForProvider(ep: NodeProvider): Engine {
  if (ep === 'cpu') return nodeEngine();
  const base = onnxruntimeNodeEngine();
  return {
    name: `onnxruntime-node (${ep})`,
    standardOnnxOnly: true,
    async createSession(model, opts = {}) {
      try {
        return await base.createSession(model, { ...opts, provider: ep, strictProvider: true });
      } catch (e) {
        throw new ProviderUnavailable(
          `--ep ${ep}: ONNX Runtime could not start its ${ep} execution provider; it needs ${providerNeeds(ep)}. ` +
            `Use --ep cpu to run on the CPU. (ONNX Runtime: ${((e as Error).message.split('\n')[0] ?? '').slice(0, 300)})`,
        );
      }
    },
  };
}

/** An execution provider that is not there (its message names what is missing). */
export class ProviderUnavailable extends Error {}
