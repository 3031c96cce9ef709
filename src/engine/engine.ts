// The execution-engine interface. Everything above this layer (U-Net, trainer, samplers, CLI,
// web demo) runs models through it and never touches ONNX Runtime directly.

import type { FusedKernel } from '../graph/graph.js';
import type { Tensor } from '../util/tensor.js';

export type { FusedKernel };

export type ExecutionProvider = 'cpu' | 'cuda' | 'wasm' | 'webgpu';

/** Where a session's CPU tensors come from (SessionOptions.memArena). */
export type MemArena = 'shared' | 'session' | 'off';
export const MEM_ARENAS: readonly MemArena[] = ['shared', 'session', 'off'];

export interface SessionOptions {
  /** Intra-op threads (0 = the runtime's default). */
  readonly threads?: number;
  readonly provider?: ExecutionProvider;
  /** Fail when `provider` cannot run instead of falling back to the CPU (wasm in the browser). */
  readonly strictProvider?: boolean;
  /** Graph optimisation level; 'all' unless debugging. */
  readonly optimization?: 'none' | 'basic' | 'extended' | 'all';
  /** Record ONNX Runtime's profile (per-kernel times) into a JSON file with this path prefix. */
  readonly profilePrefix?: string;
  /**
   * ONNX Runtime's CPU memory arena, its BFC allocator that keeps freed blocks for reuse (bench/README.md,
   * "Memory"): 'session' (the default) is ONNX Runtime's own, an arena per session whose regions double up to
   * 1 GB; 'shared' is the native engine's one arena for the whole process, its regions growing by at most 16 MB
   * each (the other engines have only the session's, so 'shared' means 'session' there): L training at batch
   * 64 peaks at 4519 MB against 5037, but S training at batch 64 at 1159 against 1072 and L sampling at batch
   * 64 at 1319 against 999; 'off' mallocs and frees every tensor, so memory returns to the system between
   * runs (S training 22% slower).
   */
  readonly memArena?: MemArena;
  /** ONNX Runtime's memory pattern (one planned block for a run's activations after the first run; default on). */
  readonly memPattern?: boolean;
}

export interface EngineSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  /**
   * Run with float32 feeds by input name; returns the requested outputs: all of them by default, the
   * named ones, or, given tensors by output name, exactly those, written into their buffers (allocated
   * once by the caller and reused across runs; the returned tensors share them).
   */
  run(
    feeds: Readonly<Record<string, Tensor>>,
    outputs?: readonly string[] | Readonly<Record<string, Tensor>>,
  ): Promise<Record<string, Tensor>>;
  /** With SessionOptions.profilePrefix: stop profiling; returns the profile file's path. */
  endProfiling(): Promise<string>;
  release(): Promise<void>;
}

export interface Engine {
  readonly name: string;
  /** The fused kernels this engine has; graphs built for it may use them (none when absent). */
  readonly fusedKernels?: readonly FusedKernel[];
  /**
   * Graphs for this engine must be standard ONNX: no fused kernels and none of ONNX Runtime's CPU-only
   * layouts (the NCHWc convolutions, nchwcBlockOf). Set for GPU providers, where ONNX Runtime would run
   * such nodes on the CPU, copying every activation to and from the GPU.
   */
  readonly standardOnnxOnly?: boolean;
  createSession(model: Uint8Array, opts?: SessionOptions): Promise<EngineSession>;
  /**
   * Sessions read float32 feeds in place, neither copied nor kept (the native engine): a model's large
   * constants can then be graph inputs fed with every run (onnx.ts toOnnxWithFeeds) at no cost per run.
   */
  readonly feedsInPlace?: boolean;
  /**
   * Collect the host's garbage now (Node: a full V8 collection; absent in the browser). Callers that built a
   * large model call it once the session exists and the model's bytes are dropped: V8 does not see ONNX
   * Runtime's memory, so the build-time buffers would otherwise stay resident (src/engine/gc.ts).
   */
  collectGarbage?(): void;
  /** The optimiser's passes over all of a model's tensors at once, where the engine has them natively. */
  readonly optimKernels?: OptimKernels;
}

/**
 * Adam, the EMA blend and the gradients' sums of squares over many tensors in one call (the native binding's
 * two threads). Each gives the results of src/train/optim.ts's loops bit for bit.
 */
export interface OptimKernels {
  /** Each tensor's sum of squares in float64, added in optim.ts sumOfSquares's order. */
  sumSquares(gs: readonly Float32Array[]): number[];
  /** Adam in place (optim.ts adamLoop): alpha = lr sqrt(1 - beta2^t) / (1 - beta1^t), g scaled by clip. */
  adam(
    ps: readonly Float32Array[],
    gs: readonly Float32Array[],
    ms: readonly Float32Array[],
    vs: readonly Float32Array[],
    c: { beta1: number; beta2: number; eps: number; alpha: number; clip: number },
  ): void;
  /** e <- decay e + (1 - decay) p for every pair, in place (optim.ts emaLoop). */
  ema(es: readonly Float32Array[], ps: readonly Float32Array[], decay: number): void;
}
