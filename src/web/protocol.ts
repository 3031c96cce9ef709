// The page <-> worker protocol of the browser demo. The page (main.ts) never runs a network: it sends
// calls to the module worker (worker.ts), which owns onnxruntime-web, the loaded models and their
// compiled sessions. A call is { type: 'call', id, op, args }; the worker answers with any number of
// { type: 'event', id, event } (progress) and then one { type: 'result', id, value } or
// { type: 'error', id, name, message }. { type: 'cancel', id } asks a running call to stop; it then ends
// with an error named 'AbortError'. New operations (training: 'train' with loss/sample events, and
// pause/resume as calls of their own) are added to WorkerOps without changing the envelope.

import type { ExecutionProvider } from '../engine/engine.js';
import type { UNetConfig } from '../nn/unet.js';
import type { WebSampler } from './core.js';
import type { PageTrainConfig } from './trainConfig.js';

/** What the worker runs on, as the page shows it. */
export interface WorkerEnv {
  /** wasm threads in effect (1 unless cross-origin isolated). */
  readonly threads: number;
  readonly crossOriginIsolated: boolean;
  readonly hardwareConcurrency: number;
  /** Whether WebGPU gives an adapter here, its description or why not, and whether it is a software one. */
  readonly webgpu: WebGpuInfo;
}

export interface WebGpuInfo {
  readonly ok: boolean;
  readonly info: string;
  /** A software adapter (SwiftShader, llvmpipe, a fallback adapter): WebGPU on the CPU, far slower than wasm. */
  readonly software: boolean;
}

/** A model folder: by URL (config.json and model.safetensors under it), or files the user picked. */
export type ModelSource =
  | { readonly kind: 'url'; readonly url: string }
  | { readonly kind: 'files'; readonly files: readonly PickedFile[] };

export interface PickedFile {
  /** Path relative to the picked folder ('config.json', 'unet/config.json', ...), or just the file name. */
  readonly path: string;
  readonly data: ArrayBuffer;
}

/** What the page shows about a loaded model. */
export interface ModelInfo {
  /** Handle for later calls; dropped with 'drop' when the page no longer needs the model. */
  readonly model: number;
  readonly source: string;
  readonly params: number;
  readonly channels: number;
  readonly resolution: number;
  readonly T: number;
  readonly data?: string;
  readonly loadMs: number;
}

export interface SampleArgs {
  readonly model: number;
  readonly provider: ExecutionProvider;
  readonly sampler: WebSampler;
  readonly steps: number;
  readonly n: number;
  readonly seed: number;
  /** Send x_t with every step (the "show x_t" view) besides the predicted x_0. */
  readonly withXt: boolean;
}

/** One tensor across the boundary: data transferred, not copied. */
export interface WireTensor {
  readonly data: Float32Array;
  readonly shape: number[];
}

export type SampleEvent =
  | { readonly kind: 'compiling'; readonly provider: ExecutionProvider; readonly batch: number }
  | {
      readonly kind: 'step';
      readonly step: number;
      readonly total: number;
      /** Network calls so far. */
      readonly calls: number;
      readonly stepMs: number;
      /** Timestep the network saw (0-based). */
      readonly modelT: number;
      readonly predX0: WireTensor;
      readonly xt?: WireTensor;
    };

export interface SampleDone {
  readonly sample: WireTensor;
  /** 0 when a compiled session was reused. */
  readonly compileMs: number;
  readonly sampleMs: number;
  readonly calls: number;
  readonly threads: number;
}

export interface InterpolateArgs {
  readonly model: number;
  readonly provider: ExecutionProvider;
  /** The two images, each [1, C, H, W] in [-1, 1]. */
  readonly a: WireTensor;
  readonly b: WireTensor;
  /** Interpolation weights: this many, evenly spaced from 0 to 1. */
  readonly lambdas: number;
  /** The reverse chain respaced to this many steps (T: the paper's full chain); encoded to its middle. */
  readonly chain: number;
  readonly seed: number;
}

export type InterpolateEvent =
  | { readonly kind: 'compiling'; readonly provider: ExecutionProvider; readonly batch: number }
  | { readonly kind: 'progress'; readonly step: number; readonly total: number };

export interface InterpolateDone {
  /** [lambdas, C, H, W]: the decoded mixes, lambda 0 first. */
  readonly images: WireTensor;
  readonly lambdas: number[];
  /** The paper's 1-based t the images were noised to (500 of 1000 in Fig. 8). */
  readonly t: number;
  readonly compileMs: number;
  readonly ms: number;
  readonly calls: number;
}

export interface ForwardArgs {
  readonly cfg: UNetConfig;
  readonly batch: number;
  readonly provider: ExecutionProvider;
  readonly repeats?: number;
}

export interface ForwardDone {
  readonly out: WireTensor;
  readonly setupMs: number;
  readonly firstMs: number;
  readonly forwardMs: number[];
}

/** Where a training run starts: a new run, a checkpoint file (ours or ddpm train's), or the run in the worker. */
export type TrainFrom =
  | { readonly kind: 'new'; readonly config: PageTrainConfig }
  | { readonly kind: 'checkpoint'; readonly name: string; readonly data: ArrayBuffer }
  | { readonly kind: 'current' };

/** The training data: the embedded digits, or the images of a folder the user picked or dropped. */
export type TrainData =
  | { readonly kind: 'digits' }
  | { readonly kind: 'images'; readonly name: string; readonly files: readonly PickedFile[] };

export interface TrainArgs {
  readonly from: TrainFrom;
  /** The run's data when it is a folder of images (the digits are read by the worker itself). */
  readonly images?: { readonly name: string; readonly files: readonly PickedFile[] };
  readonly provider: ExecutionProvider;
  /** Train until this step (a resumed run may be further already: then nothing is trained). */
  readonly until: number;
  /** Draw samples of the EMA weights every N steps and at the end (0 = never). */
  readonly sampleEvery: number;
  readonly sampleCount: number;
  /** Start paused (the run is built and waits for 'trainControl' resume). */
  readonly paused?: boolean;
  /** Test only: the step event of this step carries every gradient. */
  readonly gradsAtStep?: number;
}

/** What the page shows about the run once it is built. */
export interface TrainInfo {
  readonly step: number;
  readonly params: number;
  readonly data: string;
  readonly images: number;
  readonly channels: number;
  readonly resolution: number;
  readonly batch: number;
  readonly lr: number;
  readonly warmup: number;
  readonly emaDecay: number;
  readonly seed: number;
  /** `ddpm train` options that resume a checkpoint of this run (with --run DIR --steps N), or why none do. */
  readonly resume:
    | { readonly ok: true; readonly args: string[] }
    | { readonly ok: false; readonly why: string };
  readonly threads: number;
  readonly compileMs: number;
}

export type TrainEvent =
  | { readonly kind: 'compiling'; readonly provider: ExecutionProvider }
  | ({ readonly kind: 'ready' } & TrainInfo)
  | {
      readonly kind: 'step';
      readonly step: number;
      readonly loss: number;
      readonly lr: number;
      readonly gradNorm: number;
      readonly epoch: number;
      /** This step's time (ms), and steps per second over the steps since the run (re)started. */
      readonly stepMs: number;
      readonly stepsPerSec: number;
      /** gradsAtStep only: every parameter's gradient, in parameter order, and the names. */
      readonly grads?: { readonly names: string[]; readonly data: Float32Array[] };
    }
  | { readonly kind: 'sampling'; readonly step: number }
  | { readonly kind: 'samples'; readonly step: number; readonly images: WireTensor; readonly ms: number }
  | { readonly kind: 'paused'; readonly step: number }
  | { readonly kind: 'resumed'; readonly step: number };

export interface TrainDone {
  readonly step: number;
  /** Ended by a cancel before `until`. */
  readonly stopped: boolean;
}

/** Every operation: its arguments, its result and its events. */
export interface WorkerOps {
  /** Configure onnxruntime-web (once, first) and report the environment. */
  env: { args: { wasmPaths: string; threads?: number }; result: WorkerEnv; event: never };
  load: { args: { source: ModelSource }; result: ModelInfo; event: never };
  /** Forget a model; its sessions are released once no running call uses them. */
  drop: { args: { model: number }; result: null; event: never };
  /** Compile the model for (provider, batch) ahead of the first run (it is kept for the run that matches). */
  prepare: {
    args: { model: number; provider: ExecutionProvider; batch: number };
    result: { compileMs: number };
    event: never;
  };
  sample: { args: SampleArgs; result: SampleDone; event: SampleEvent };
  /** Paper Fig. 8: noise two images to the middle of the chain, mix them, denoise each mix. */
  interpolate: { args: InterpolateArgs; result: InterpolateDone; event: InterpolateEvent };
  /** The web test's U-Net forward of the hash-initialised model (core.fixtureForward). */
  forward: { args: ForwardArgs; result: ForwardDone; event: never };
  /**
   * Train in the worker (web/train.ts) until a step, a cancel or an error; each step runs in the worker's
   * queue, so sampling calls interleave between steps. The run stays in the worker afterwards (download,
   * continue with from 'current').
   */
  train: { args: TrainArgs; result: TrainDone; event: TrainEvent };
  /** Pause or resume the running training (between two steps). */
  trainControl: {
    args: { action: 'pause' | 'resume' };
    result: { step: number; paused: boolean };
    event: never;
  };
  /** The run's checkpoint at its current step, in ddpm train's format (checkpoint.safetensors). */
  trainCheckpoint: { args: Record<string, never>; result: { data: ArrayBuffer; step: number }; event: never };
  /** The run's EMA weights as a loaded model (for Generate and Blend), at its current step. */
  trainModel: { args: Record<string, never>; result: ModelInfo; event: never };
}
export type OpName = keyof WorkerOps;

export type ToWorker =
  | { [K in OpName]: { type: 'call'; id: number; op: K; args: WorkerOps[K]['args'] } }[OpName]
  | { type: 'cancel'; id: number };

export type FromWorker =
  | { type: 'result'; id: number; value: unknown }
  | { type: 'event'; id: number; event: unknown }
  | { type: 'error'; id: number; name: string; message: string };

/** The ArrayBuffers of a value's tensors, to transfer instead of copy. */
export function transferables(v: unknown, out: ArrayBuffer[] = []): ArrayBuffer[] {
  if (v instanceof Float32Array) {
    if (v.buffer instanceof ArrayBuffer && !out.includes(v.buffer)) out.push(v.buffer);
  } else if (v instanceof ArrayBuffer) {
    if (!out.includes(v)) out.push(v);
  } else if (Array.isArray(v)) {
    for (const x of v) transferables(x, out);
  } else if (v && typeof v === 'object') {
    for (const x of Object.values(v)) transferables(x, out);
  }
  return out;
}
