// The training graph of Algorithm 1: the U-Net on x_t, a per-sample-weighted mean squared error
// against a target (eps, x_0 or the posterior mean, chosen by the diffusion layer), and the
// gradient of that loss for every parameter, all in one ONNX model. Parameters and dropout masks
// are graph inputs, so the TypeScript optimiser owns the weights.

import type { DecoderTerms } from '../diffusion/trainingTerms.js';
import type { LossType } from '../diffusion/types.js';
import type { Engine, EngineSession, FusedKernel } from '../engine/engine.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import { lowerConvsToNchwc, nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { buildUNet, type ParamStore, type UNetConfig, unetParamSpecs } from '../nn/unet.js';
import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';

export interface TrainBatch {
  /** x_t [B, C, H, W]. */
  readonly xt: Tensor;
  /** Timesteps as floats [B] (0-based, as the denoiser sees them). */
  readonly t: Float32Array;
  /** Regression target [B, C, H, W]. */
  readonly target: Tensor;
  /** Per-sample loss weights [B] (1 for L_simple). */
  readonly weight: Float32Array;
  /** 'kl' only (see diffusion/trainingTerms.ts): per-sample constants and the decoder term. */
  readonly offset?: Float32Array;
  readonly decoder?: DecoderTerms | null;
}

export interface TrainStepOutput {
  readonly loss: number;
  /** Gradients by parameter name, in buffers the session reuses: valid until its next step. */
  readonly grads: Map<string, Float32Array>;
}

export interface TrainSession {
  readonly batch: number;
  readonly dropoutSites: readonly { name: string; shape: readonly number[] }[];
  step(params: ParamStore, b: TrainBatch, rng: Rng): Promise<TrainStepOutput>;
  release(): Promise<void>;
}

/**
 * Build the ONNX training model; returns its bytes and the dropout-mask inputs it expects. With
 * `nchwcBlock` > 1 (the engine's, see nchwcBlockOf), convolutions run in ORT's blocked layout; `fused`
 * (the engine's fused kernels) may replace each GroupNorm + SiLU and its gradient by one kernel each.
 */
export function buildTrainModel(
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  nchwcBlock = 0,
  lossType: LossType = 'mse',
  fused: readonly FusedKernel[] = [],
) {
  const g = new Graph();
  g.fused = fused;
  const shape = [batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const xt = g.input('xt', shape);
  const t = g.input('t', [batch]);
  if (cfg.outChannels !== cfg.inChannels) {
    throw new Error(
      `training: outChannels ${cfg.outChannels} must equal inChannels ${cfg.inChannels} (fixed variances)`,
    );
  }
  const target = g.input('target', shape);
  const weight = g.input('weight', [batch, 1, 1, 1]);
  const u = buildUNet(g, cfg, params, xt, t, { training: true });
  const d = g.sub(u.out, target); // [B, C, H, W]
  let loss: Value;
  switch (lossType) {
    case 'mse':
      loss = g.reduceMean(g.mul(g.mul(d, d), weight), [0, 1, 2, 3], false); // mean over batch and pixels
      break;
    case 'kl':
      loss = klLoss(g, d, weight, shape);
      break;
    default:
      throw new Error(`training: unknown loss type ${lossType as string}`);
  }
  const names = [...u.params.keys()];
  const grads = grad(
    g,
    loss,
    names.map((n) => u.params.get(n)!),
  );
  const outputs: Record<string, (typeof grads)[number]> = { loss };
  names.forEach((n, i) => {
    outputs[`grad.${n}`] = grads[i]!;
  });
  if (nchwcBlock > 1) lowerConvsToNchwc(g, nchwcBlock, Object.values(outputs));
  return {
    model: toOnnx(g, { outputs, params: 'input', name: 'ddpm-train' }),
    dropoutSites: u.dropoutMasks.map((m) => ({ name: m.name, shape: m.shape })),
    paramNames: names,
  };
}

/** The 'kl' loss of trainingTerms.ts in the graph: per sample w mse + offset + decoder NLL, batch mean. */
function klLoss(g: Graph, d: Value, weight: Value, shape: number[]): Value {
  const b = shape[0]!;
  const perB = [b, 1, 1, 1];
  const offset = g.input('offset', perB);
  const decWeight = g.input('decoder.weight', perB);
  const scale = g.input('decoder.scale', perB);
  const halfBin = g.input('decoder.halfBin', perB);
  const low = g.input('decoder.low', shape);
  const high = g.input('decoder.high', shape);
  const pix = [1, 2, 3];
  const mse = g.mul(g.reduceMean(g.mul(d, d), pix), weight); // [B, 1, 1, 1]
  // Phi(v) ~ 0.5 (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), the original code's approximation.
  const phi = (v: Value) =>
    g.scale(
      g.add(
        g.scalar(1),
        g.tanh(g.scale(g.add(v, g.scale(g.mul(g.mul(v, v), v), 0.044715)), Math.sqrt(2 / Math.PI))),
      ),
      0.5,
    );
  const z = g.mul(d, scale); // (x_0 - mu_theta) / sigma, up to sign
  const one = g.scalar(1);
  const hi = g.add(g.mul(phi(g.add(z, halfBin)), g.sub(one, high)), high); // CDF at the bin's top
  const lo = g.mul(phi(g.sub(z, halfBin)), g.sub(one, low)); // CDF at the bin's bottom
  const nll = g.neg(g.log(g.add(g.sub(hi, lo), g.scalar(1e-12)))); // [B, C, H, W], nats
  const dec = g.mul(g.reduceMean(nll, pix), decWeight); // [B, 1, 1, 1], bits
  return g.reduceMean(g.add(g.add(mse, offset), dec), [0, 1, 2, 3], false);
}

/**
 * Fill a dropout mask: 0 with probability p (rounded to a multiple of 2^-16), else 1/(1-p). Tens of
 * millions of values per step, so a local xorshift128 stream seeded by four draws of `rng` (whose
 * state the checkpoint saves) supplies two 16-bit uniforms per word, and each value is written as the
 * float's bits without a branch, through an Int32Array view (no uint32 conversions) and no per-value
 * helper: 2.9-3.4 against 4.4-5.3 ns a value through a Uint32Array and a helper (S-train draws 17.5M
 * values a step), and ~40x faster than rng.nextU32() per value.
 */
export function dropoutMask(out: Float32Array, p: number, rng: Rng): void {
  const thresh = Math.round(p * 65536);
  const keepBits = new Int32Array(Float32Array.of(65536 / (65536 - thresh)).buffer)[0]!;
  const bits = new Int32Array(out.buffer, out.byteOffset, out.length);
  let a = rng.nextU32() | 1;
  let b = rng.nextU32() | 0;
  let c = rng.nextU32() | 0;
  let d = rng.nextU32() | 0;
  const n = out.length;
  // (u - thresh) >> 31 is all ones exactly when u < thresh (u, thresh < 2^16): those values are dropped.
  for (let i = 0; i < n; i += 2) {
    const t = a ^ (a << 11);
    a = b;
    b = c;
    c = d;
    d = d ^ (d >>> 19) ^ (t ^ (t >>> 8));
    bits[i] = keepBits & ~(((d & 0xffff) - thresh) >> 31);
    if (i + 1 < n) bits[i + 1] = keepBits & ~(((d >>> 16) - thresh) >> 31);
  }
}

export async function createTrainSession(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  threads = 0,
  lossType: LossType = 'mse',
): Promise<TrainSession> {
  const block = await nchwcBlockOf(engine);
  const built = buildTrainModel(cfg, params, batch, block, lossType, engine.fusedKernels);
  const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));
  // Mask buffers are reused: a step's masks are written only after the previous run has finished.
  const masks = built.dropoutSites.map((d) => new Float32Array(d.shape.reduce((a, c) => a * c, 1)));
  // Loss and gradients are written into buffers allocated once (the runtime fills them in place).
  const outs: Record<string, Tensor> = { loss: { data: new Float32Array(1), shape: [] } };
  const grads = new Map<string, Float32Array>();
  for (const name of built.paramNames) {
    const shape = shapes.get(name)!;
    const t = { data: new Float32Array(shape.reduce((a, c) => a * c, 1)), shape };
    outs[`grad.${name}`] = t;
    grads.set(name, t.data);
  }
  const session: EngineSession = await engine.createSession(built.model, { threads });
  return {
    batch,
    dropoutSites: built.dropoutSites,
    async step(p, b, rng) {
      const feeds: Record<string, Tensor> = {
        xt: b.xt,
        t: { data: b.t, shape: [batch] },
        target: b.target,
        weight: { data: b.weight, shape: [batch, 1, 1, 1] },
      };
      if (lossType === 'kl') {
        const dec = b.decoder;
        if (!dec || !b.offset)
          throw new Error("training: the 'kl' loss needs the batch's offset and decoder terms");
        const perB = [batch, 1, 1, 1];
        feeds.offset = { data: b.offset, shape: perB };
        feeds['decoder.weight'] = { data: dec.weight, shape: perB };
        feeds['decoder.scale'] = { data: dec.scale, shape: perB };
        feeds['decoder.halfBin'] = { data: dec.halfBin, shape: perB };
        feeds['decoder.low'] = { data: dec.low, shape: b.xt.shape };
        feeds['decoder.high'] = { data: dec.high, shape: b.xt.shape };
      }
      built.dropoutSites.forEach((site, i) => {
        dropoutMask(masks[i]!, cfg.dropout, rng);
        feeds[site.name] = { data: masks[i]!, shape: site.shape };
      });
      for (const name of built.paramNames) feeds[name] = { data: p.get(name)!, shape: shapes.get(name)! };
      await session.run(feeds, outs);
      return { loss: outs.loss!.data[0]!, grads };
    },
    release: () => session.release(),
  };
}
