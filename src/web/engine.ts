// The browser engines: onnxruntime-web behind the same ortEngine as Node. Two builds of it: the plain
// wasm build for the 'wasm' provider (half the binary of the other, about 3x faster to initialise) and
// the JSEP build for 'webgpu'. Each loads its .wasm only when its first session is created. The binaries
// are not bundled: scripts/build-web.mjs copies them to dist-web/ort/ and configureOrt points
// env.wasm.wasmPaths there, so nothing is fetched from a CDN. Only the worker (worker.ts) imports this file.

import * as ortJsep from 'onnxruntime-web';
import * as ortWasm from 'onnxruntime-web/wasm';
import type { Engine, ExecutionProvider } from '../engine/engine.js';
import { ortEngine } from '../engine/ort.js';
import type { WebGpuInfo } from './protocol.js';

export interface OrtWebSettings {
  /** URL of the folder holding ort-wasm-simd-threaded{,.jsep}.{mjs,wasm}. */
  readonly wasmPaths: string;
  /**
   * wasm threads (default: navigator.hardwareConcurrency, at most MAX_THREADS); forced to 1 unless the
   * page is cross-origin isolated (threads need SharedArrayBuffer).
   */
  readonly threads?: number;
}

/** The most wasm threads used: more rarely helps a model this size, and each is a worker with its own stack. */
export const MAX_THREADS = 16;

/** Set env of both builds, before the first session; returns the thread count in effect. */
export function configureOrt(s: OrtWebSettings): number {
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const hw = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  const want = s.threads ?? Math.min(MAX_THREADS, hw);
  const threads = isolated ? Math.max(1, Math.min(MAX_THREADS, Math.floor(want))) : 1;
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

/** Adapter names of WebGPU implementations that run on the CPU. */
const SOFTWARE_ADAPTER = /swiftshader|llvmpipe|lavapipe|softpipe|microsoft basic render|\bwarp\b/i;

/** Whether navigator.gpu gives an adapter here: its description (or why not), and whether it is software. */
export async function webGpuStatus(): Promise<WebGpuInfo> {
  const gpu = (navigator as Navigator & { gpu?: { requestAdapter(): Promise<unknown> } }).gpu;
  if (!gpu) {
    return {
      ok: false,
      software: false,
      info: isSecureContext
        ? 'navigator.gpu is missing (browser without WebGPU, or it is disabled)'
        : 'navigator.gpu is missing: not a secure context (serve over https or localhost)',
    };
  }
  let adapter: unknown;
  try {
    adapter = await gpu.requestAdapter();
  } catch (e) {
    return { ok: false, software: false, info: `requestAdapter() threw: ${(e as Error).message}` };
  }
  if (!adapter)
    return { ok: false, software: false, info: 'requestAdapter() returned null (no usable GPU or driver)' };
  type Info = { vendor?: string; architecture?: string; device?: string; description?: string };
  const a = adapter as { info?: Info & { isFallbackAdapter?: boolean }; isFallbackAdapter?: boolean };
  const i = a.info ?? {};
  const desc = [i.vendor, i.architecture].filter(Boolean).join(' ') || i.description || 'unknown adapter';
  const names = [i.vendor, i.architecture, i.device, i.description].filter(Boolean).join(' ');
  const software = Boolean(i.isFallbackAdapter ?? a.isFallbackAdapter) || SOFTWARE_ADAPTER.test(names);
  return { ok: true, software, info: software ? `${desc} (software adapter)` : desc };
}
