// The --ep option shared by train, sample, bpd and eval (its stats and merge too): ONNX Runtime's
// execution provider. cpu is nodeEngine() (the native binding with its fused kernels, else
// onnxruntime-node); cuda and webgpu are onnxruntime-node with that provider alone and standard-ONNX
// graphs (engine/node.ts engineForProvider). The provider is started once, on a one-node model, when the
// option is opened: a missing one fails before any data is read, run folder written or image sampled,
// with an error naming the provider and what it needs. --ep is a property of the machine, not of the
// run: it is not part of a training run's identity, so a run resumes on another provider.

import type { Engine } from '../engine/engine.js';
import { engineForProvider, NODE_PROVIDERS, type NodeProvider } from '../engine/node.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { OptDef } from './args.js';

export const EP_OPTION: OptDef = {
  kind: 'string',
  help: "ONNX Runtime's execution provider: cpu (this project's fused kernels when built) | cuda | webgpu (onnxruntime-node, standard ONNX; an error names what is missing; not part of a run's identity)",
  default: 'cpu',
  choices: [...NODE_PROVIDERS],
};

/** A one-node model (Relu of a float [1]): starting a session on it starts the provider. */
function startupModel(): Uint8Array {
  const g = new Graph();
  const y = g.relu(g.input('x', [1]));
  return toOnnx(g, { outputs: { y }, params: 'initializer' });
}

const started = new Map<NodeProvider, Promise<Engine>>();

/**
 * The engine a parsed --ep value names, its provider started (once per process): a provider that cannot
 * start throws engine/node.ts's ProviderUnavailable, which names it and what it needs.
 */
export function openEpOption(value: unknown): Promise<Engine> {
  const ep = value as NodeProvider;
  let p = started.get(ep);
  if (!p) {
    p = startProvider(ep);
    started.set(ep, p);
    // A failed start is not cached: the next call tries again (and fails with the same message).
    p.catch(() => started.delete(ep));
  }
  return p;
}

async function startProvider(ep: NodeProvider): Promise<Engine> {
  const engine = engineForProvider(ep);
  switch (ep) {
    case 'cpu':
      return engine;
    case 'cuda':
    case 'webgpu': {
      const s = await engine.createSession(startupModel());
      await s.release();
      return engine;
    }
    default:
      throw new Error(`--ep: unknown provider ${String(ep satisfies never)}`);
  }
}
