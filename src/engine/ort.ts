// Engine over ONNX Runtime's common JavaScript API, shared by onnxruntime-node and onnxruntime-web:
// the caller passes the `ort` module it loaded, so this file imports neither.

import type * as OrtCommon from 'onnxruntime-common';
import type { Tensor } from '../util/tensor.js';
import type { Engine, EngineSession, ExecutionProvider, MemArena, SessionOptions } from './engine.js';

type OrtModule = Pick<typeof OrtCommon, 'InferenceSession' | 'Tensor'>;

function providers(p: ExecutionProvider, strict: boolean): string[] {
  if (strict) return [p];
  switch (p) {
    case 'cpu':
      return ['cpu'];
    case 'cuda':
      return ['cuda', 'cpu'];
    case 'wasm':
      return ['wasm'];
    case 'webgpu':
      return ['webgpu', 'wasm'];
  }
}

/** The JavaScript API has only the session's own arena: 'shared' falls back to it. */
function arenaOn(a: MemArena): boolean {
  switch (a) {
    case 'shared':
    case 'session':
      return true;
    case 'off':
      return false;
  }
}

function level(o: NonNullable<SessionOptions['optimization']>): 'disabled' | 'basic' | 'extended' | 'all' {
  switch (o) {
    case 'none':
      return 'disabled';
    case 'basic':
    case 'extended':
    case 'all':
      return o;
  }
}

export function ortEngine(ort: OrtModule, name: string, defaultProvider: ExecutionProvider): Engine {
  // Pre-allocated outputs (the caller's buffers, filled by the runtime) work in onnxruntime-node only.
  const writesInPlace = defaultProvider === 'cpu' || defaultProvider === 'cuda';
  return {
    name,
    async createSession(model: Uint8Array, opts: SessionOptions = {}): Promise<EngineSession> {
      const session = await ort.InferenceSession.create(model, {
        executionProviders: providers(opts.provider ?? defaultProvider, opts.strictProvider ?? false),
        graphOptimizationLevel: level(opts.optimization ?? 'all'),
        intraOpNumThreads: opts.threads ?? 0,
        interOpNumThreads: 1,
        executionMode: 'sequential',
        // Errors only: ORT's warnings are about its graph rewrites (e.g. that an opaque constant,
        // Graph.opaqueConstant, is not folded), which no user can act on.
        logSeverityLevel: 3,
        ...(opts.profilePrefix ? { enableProfiling: true, profileFilePrefix: opts.profilePrefix } : {}),
        ...(opts.memArena !== undefined ? { enableCpuMemArena: arenaOn(opts.memArena) } : {}),
        ...(opts.memPattern !== undefined ? { enableMemPattern: opts.memPattern } : {}),
      });
      // A feed the model does not take is left out: the training graph is fed every parameter, and a few
      // never reach the loss (an attention key's bias: softmax ignores it, its gradient is 0), so the model
      // has no input for them. onnxruntime-node ignores such a feed; onnxruntime-web refuses the run.
      const takes = new Set(session.inputNames);
      return {
        inputNames: session.inputNames,
        outputNames: session.outputNames,
        async run(feeds, outputs) {
          const ortFeeds: Record<string, OrtCommon.Tensor> = {};
          for (const [k, t] of Object.entries(feeds)) {
            if (takes.has(k)) ortFeeds[k] = new ort.Tensor('float32', t.data, t.shape as number[]);
          }
          if (outputs && !Array.isArray(outputs)) {
            // Pre-allocated outputs: the runtime writes into the caller's buffers.
            const fetches: Record<string, OrtCommon.Tensor> = {};
            for (const [k, t] of Object.entries(outputs as Readonly<Record<string, Tensor>>)) {
              fetches[k] = new ort.Tensor('float32', t.data, t.shape as number[]);
            }
            if (writesInPlace) {
              await session.run(ortFeeds, fetches);
            } else {
              // onnxruntime-web returns the given CPU tensors unwritten: fetch by name and copy.
              const res = await session.run(ortFeeds, Object.keys(fetches));
              for (const [k, t] of Object.entries(outputs as Readonly<Record<string, Tensor>>)) {
                const v = res[k]!;
                t.data.set(
                  (v.location === 'cpu' || v.location === undefined
                    ? v.data
                    : await v.getData()) as Float32Array,
                );
              }
            }
            return { ...(outputs as Readonly<Record<string, Tensor>>) };
          }
          const res = outputs
            ? await session.run(ortFeeds, outputs as string[])
            : await session.run(ortFeeds);
          const out: Record<string, Tensor> = {};
          for (const [k, v] of Object.entries(res)) {
            const data = (
              v.location === 'cpu' || v.location === undefined ? v.data : await v.getData()
            ) as Float32Array;
            out[k] = { data, shape: [...v.dims] };
          }
          return out;
        },
        async endProfiling() {
          if (!opts.profilePrefix)
            throw new Error('endProfiling: the session was created without profilePrefix');
          // ORT's JS API does not return the file's name: the Node engine finds it (node.ts).
          session.endProfiling();
          return opts.profilePrefix;
        },
        release: () => session.release(),
      };
    },
  };
}
