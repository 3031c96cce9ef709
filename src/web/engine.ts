// The browser engines: onnxruntime-web behind the same ortEngine as Node. Two builds of it: the plain
// wasm build for the 'wasm' provider (half the binary of the other, about 3x faster to initialise) and
// the JSEP build for 'webgpu'. Each loads its .wasm only when its first session is created. The binaries
// are not bundled: scripts/build-web.mjs copies them to dist-web/ort/ and configureOrt points
// env.wasm.wasmPaths there, so nothing is fetched from a CDN.

import * as ortJsep from 'onnxruntime-web';
import * as ortWasm from 'onnxruntime-web/wasm';
import type { Engine, ExecutionProvider } from '../engine/engine.js';
import { ortEngine } from '../engine/ort.js';

export interface OrtWebSettings {
  /** URL of the folder holding ort-wasm-simd-threaded{,.jsep}.{mjs,wasm}. */
  readonly wasmPaths: string;
  /** wasm threads; forced to 1 unless the page is cross-origin isolated (SharedArrayBuffer). */
  readonly threads?: number;
}

/** Set env of both builds, before the first session; returns the thread count in effect. */
export function configureOrt(s: OrtWebSettings): number {
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const hw = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  const threads = isolated ? Math.max(1, Math.floor(s.threads ?? Math.min(4, Math.ceil(hw / 2)))) : 1;
  for (const env of [ortWasm.env, ortJsep.env]) {
    env.wasm.wasmPaths = s.wasmPaths;
    env.wasm.numThreads = threads;
    env.wasm.proxy = false;
    env.logLevel = 'warning';
  }
  return threads;
}

// ortEngine asks for ['webgpu', 'wasm'], and onnxruntime-web quietly drops an execution provider that
// fails to initialise: a "WebGPU" run could really be wasm. Here 'webgpu' means WebGPU or an error
// (nodes the WebGPU EP lacks still fall back to the CPU kernels inside the same session, as usual).
const strictJsep: Parameters<typeof ortEngine>[0] = {
  Tensor: ortJsep.Tensor,
  InferenceSession: {
    create: ((model: Uint8Array, options?: ortJsep.InferenceSession.SessionOptions) =>
      ortJsep.InferenceSession.create(model, {
        ...options,
        executionProviders: ['webgpu'],
      })) as typeof ortJsep.InferenceSession.create,
  } as typeof ortJsep.InferenceSession,
};

const engines = new Map<ExecutionProvider, Engine>();

/** The engine that runs `provider` ('wasm' or 'webgpu'). */
export function webEngine(provider: ExecutionProvider): Engine {
  let e = engines.get(provider);
  if (!e) {
    switch (provider) {
      case 'wasm':
        e = ortEngine(ortWasm, 'onnxruntime-web (wasm)', 'wasm');
        break;
      case 'webgpu':
        e = ortEngine(strictJsep, 'onnxruntime-web (webgpu)', 'webgpu');
        break;
      default:
        throw new Error(`the browser runs 'wasm' or 'webgpu', not '${provider}'`);
    }
    engines.set(provider, e);
  }
  return e;
}

/** Whether navigator.gpu gives an adapter here: its description, or why not. */
export async function webGpuStatus(): Promise<{ ok: boolean; info: string }> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) {
    return {
      ok: false,
      info: isSecureContext
        ? 'navigator.gpu is missing (browser without WebGPU, or it is disabled)'
        : 'navigator.gpu is missing: not a secure context (serve over https or localhost)',
    };
  }
  let adapter: unknown;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { ok: false, info: `requestAdapter() threw: ${(e as Error).message}` };
  }
  if (!adapter) return { ok: false, info: 'requestAdapter() returned null (no usable GPU or driver)' };
  const a = adapter as { info?: { vendor?: string; architecture?: string; isFallbackAdapter?: boolean } };
  const i = a.info ?? {};
  const desc = [i.vendor, i.architecture].filter(Boolean).join(' ') || 'unknown adapter';
  return { ok: true, info: i.isFallbackAdapter ? `${desc} (software fallback adapter)` : desc };
}
