// A U-Net behind the diffusion layer's Denoiser interface: builds the inference graph with the
// weights baked in (ONNX Runtime pre-packs them; on the native engine the native kernels' large filters are
// fed with every run instead, read in place), compiles one session per batch size, and splits
// or pads any batch to the compiled size. The diffusion code only ever sees denoise(x, t).

import type { Denoiser } from '../diffusion/types.js';
import type { Engine, EngineSession, FusedKernel, SessionOptions } from '../engine/engine.js';
import { FUSED_DOMAIN, Graph, type Value } from '../graph/graph.js';
import { nchwcBlockOf } from '../graph/nchwc.js';
import { type ModelWithFeeds, toOnnx, toOnnxWithFeeds } from '../graph/onnx.js';
import { type ConvRanges, runPasses, selectPasses } from '../graph/passes/index.js';
import { buildUNet, type ParamStore, type UNetConfig } from '../nn/unet.js';
import { sizeOf, type Tensor } from '../util/tensor.js';

/** What the target engine offers beyond standard ONNX (see Engine.fusedKernels, nchwcBlockOf). */
export interface InferenceTarget {
  readonly fused?: readonly FusedKernel[];
  /** With the fused GroupNorm: ORT's NCHWc block size, to keep activations blocked (blocked.ts); 0 = no. */
  readonly nchwcBlock?: number;
  /** The graph passes to run (graph/passes selectPasses): default DDPM_PASSES, else all. */
  readonly passes?: string | readonly string[];
  /** int8 convolutions with these ranges (calibrate.ts; the quantize-int8 pass added to the selection). */
  readonly calibration?: ConvRanges;
  /** The Winograd convolutions' products in bfloat16 (the winograd-bf16 pass added to the selection). */
  readonly bf16?: boolean;
  /**
   * The engine reads feeds in place (Engine.feedsInPlace): the large constants that only the native kernels
   * read (the Winograd filters) become graph inputs, fed with every run, instead of initializers.
   */
  readonly feedsInPlace?: boolean;
}

/** Constants of at least this many bytes that only the native kernels read are fed, not serialised. */
const FEED_BYTES = 1 << 16;

/**
 * The float32 constants of at least FEED_BYTES that only the "ai.ddpm" domain's kernels read: fed rather than
 * baked in, they lose nothing, since ONNX Runtime's optimisers never look into a custom op's inputs. As
 * initializers, L's Winograd filters (429 MB when every layer took F(4x4)) were parsed and copied by ONNX
 * Runtime while the caller still held the bytes: a peak of 1643 MB when setting up L's sampling at batch 64,
 * 1172 MB fed (bench/README.md, "Memory").
 */
function kernelOnlyConstants(g: Graph, roots: readonly Value[]): (v: Value) => boolean {
  const byKernels = new Set<number>();
  const byOthers = new Set<number>();
  for (const n of g.liveNodes(roots))
    for (const v of n.inputs) (n.domain === FUSED_DOMAIN ? byKernels : byOthers).add(v.id);
  return (v) => byKernels.has(v.id) && !byOthers.has(v.id) && sizeOf(v.shape) * 4 >= FEED_BYTES;
}

/**
 * The inference ONNX model for a fixed batch size: inputs x [B,C,H,W], t [B]; output out. The U-Net as
 * written, then the graph passes for constant weights and the target engine (graph/passes).
 */
export function buildInferenceModel(
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  target: InferenceTarget = {},
): ModelWithFeeds {
  const g = new Graph();
  g.fused = target.fused ?? [];
  const x = g.input('x', [batch, cfg.inChannels, cfg.resolution, cfg.resolution]);
  const t = g.input('t', [batch]);
  const u = buildUNet(g, cfg, params, x, t);
  const report = runPasses(g, [u.out], 'all', {
    constantWeights: true,
    nchwcBlock: target.nchwcBlock,
    passes: withOptIn(target.passes, [
      ...(target.calibration ? ['quantize-int8'] : []),
      ...(target.bf16 ? ['winograd-bf16'] : []),
    ]),
    ...(target.calibration ? { calibration: target.calibration } : {}),
  });
  if (target.bf16 && !report['winograd-bf16']) {
    throw new Error(
      "bf16: no convolution took the bfloat16 kernel (DDPM_PASSES leaves out blocked-layout, which puts an inference graph's convolutions in the blocked layout the kernel reads; or no 3x3 convolution has a multiple of 16 channels in and out); use float32",
    );
  }
  const opts = { outputs: { out: u.out }, params: 'initializer', name: 'ddpm-unet' } as const;
  return target.feedsInPlace
    ? toOnnxWithFeeds(g, opts, kernelOnlyConstants(g, [u.out]))
    : { model: toOnnx(g, opts), feeds: {} };
}

/** A pass selection plus the opt-in passes a precision asks for (none: the selection as given). */
function withOptIn(
  passes: string | readonly string[] | undefined,
  add: readonly string[],
): string | readonly string[] | undefined {
  return add.length ? [...new Set([...selectPasses(passes), ...add])] : passes;
}

/** The inference target of an engine: its fused kernels and, for those, its NCHWc block size. */
export async function inferenceTargetOf(engine: Engine): Promise<InferenceTarget> {
  const fused = engine.fusedKernels ?? [];
  return {
    fused,
    nchwcBlock: fused.includes('GroupNormSilu') ? await nchwcBlockOf(engine) : 0,
    feedsInPlace: engine.feedsInPlace ?? false,
  };
}

/** Session options, plus int8 convolutions with these ranges (calibrate.ts) or bfloat16 Winograd products. */
export type DenoiserOptions = SessionOptions & { readonly calibration?: ConvRanges; readonly bf16?: boolean };

export interface UNetDenoiser {
  readonly denoise: Denoiser;
  /** The compiled batch size (calls with other sizes are split or padded). */
  readonly batch: number;
  release(): Promise<void>;
}

export async function createDenoiser(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  options: DenoiserOptions = {},
): Promise<UNetDenoiser> {
  const { calibration, bf16, ...opts } = options;
  // ONNX Runtime's memory pattern off unless asked for (as the training session): peak resident memory of
  // sampling S batch 64 441 -> 316 MB, L batch 64 2190 -> 1611 MB, the same speed in paired A/B runs
  // (bench/README.md, "Memory").
  const built = buildInferenceModel(cfg, params, batch, {
    ...(await inferenceTargetOf(engine)),
    ...(calibration ? { calibration } : {}),
    ...(bf16 ? { bf16 } : {}),
  });
  const session: EngineSession = await engine.createSession(built.model, { memPattern: false, ...opts });
  const constants = built.feeds; // the model's fed constants: the only copy of them
  // The model's bytes and reordered weights are garbage now; collected, they leave the peak (L batch 64:
  // 1193 -> 897 MB).
  engine.collectGarbage?.();
  const per = cfg.inChannels * cfg.resolution * cfg.resolution;
  const perOut = cfg.outChannels * cfg.resolution * cfg.resolution;
  const xbuf = new Float32Array(batch * per);
  const tbuf = new Float32Array(batch);
  const denoise: Denoiser = async (x: Tensor, t: Int32Array): Promise<Tensor> => {
    const n = x.shape[0]!;
    if (sizeOf(x.shape) !== n * per) {
      throw new Error(
        `denoise: input [${x.shape}] does not match the model (${cfg.inChannels}x${cfg.resolution}x${cfg.resolution})`,
      );
    }
    if (t.length !== n) throw new Error(`denoise: ${t.length} timesteps for a batch of ${n}`);
    const out = new Float32Array(n * perOut);
    for (let s = 0; s < n; s += batch) {
      const m = Math.min(batch, n - s);
      xbuf.fill(0);
      xbuf.set(x.data.subarray(s * per, (s + m) * per));
      tbuf.fill(0);
      for (let i = 0; i < m; i++) tbuf[i] = t[s + i]!;
      const res = await session.run({
        ...constants,
        x: { data: xbuf, shape: [batch, cfg.inChannels, cfg.resolution, cfg.resolution] },
        t: { data: tbuf, shape: [batch] },
      });
      out.set(res.out!.data.subarray(0, m * perOut), s * perOut);
    }
    return { data: out, shape: [n, cfg.outChannels, cfg.resolution, cfg.resolution] };
  };
  return { denoise, batch, release: () => session.release() };
}

/** The inputs and outputs of buildStandaloneModel, as its doc_string and `ddpm export --help` state them. */
export const STANDALONE_IO = [
  'inputs:  x  float32 [batch, C, H, W]  the noisy images x_t (the scale the model was trained on, [-1, 1] data)',
  "         t  float32 [batch]           the timestep of each image, 0-based: 0 .. T-1 (diffusers' timesteps)",
  "output:  out float32 [batch, C', H, W] the model's prediction (eps, x_0 or v: the scheduler's prediction_type);",
  "                                       C' = 2C for variance_type learned_range: then the variance values in [-1, 1]",
].join('\n');

/**
 * The denoiser as a standalone ONNX model any ONNX Runtime runs: standard opset-17 ops only (no fused
 * kernels, no blocked layout), the batch dimension symbolic ("batch"), every parameter an initializer under
 * its diffusers name (unfolded, so the weights read back bit-identically), `metadata` as metadata_props.
 */
export function buildStandaloneModel(
  cfg: UNetConfig,
  params: ParamStore,
  metadata: Readonly<Record<string, string>> = {},
): Uint8Array {
  const g = new Graph();
  g.keepLeadingDim = true;
  const batch = 3; // any: every reshape keeps the leading dimension symbolic
  const x = g.input('x', [batch, cfg.inChannels, cfg.resolution, cfg.resolution]);
  const t = g.input('t', [batch]);
  const u = buildUNet(g, cfg, params, x, t);
  runPasses(g, [u.out], 'all'); // the passes that keep the weights as they are (not folded)
  return toOnnx(g, {
    outputs: { out: u.out },
    params: 'initializer',
    name: 'ddpm-unet',
    dynamicBatch: true,
    allParams: true,
    metadata,
    doc: `DDPM U-Net (diffusers UNet2DModel parameter names), written by ddpm-ts.\n${STANDALONE_IO}`,
  });
}
