// The training graph of Algorithm 1: the U-Net on x_t, a per-sample-weighted mean squared error
// against a target (eps, x_0 or the posterior mean, chosen by the diffusion layer), and the
// gradient of that loss for every parameter, all in one ONNX model. Parameters and dropout masks
// are graph inputs, so the TypeScript optimiser owns the weights.

import type { Engine, EngineSession } from '../engine/engine.js';
import { grad } from '../graph/autodiff.js';
import { Graph } from '../graph/graph.js';
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
}

export interface TrainStepOutput {
  readonly loss: number;
  readonly grads: Map<string, Float32Array>;
}

export interface TrainSession {
  readonly batch: number;
  readonly dropoutSites: readonly { name: string; shape: readonly number[] }[];
  step(params: ParamStore, b: TrainBatch, rng: Rng): Promise<TrainStepOutput>;
  release(): Promise<void>;
}

/** Build the ONNX training model; returns its bytes and the dropout-mask inputs it expects. */
export function buildTrainModel(cfg: UNetConfig, params: ParamStore, batch: number) {
  const g = new Graph();
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
  const d = g.sub(u.out, target);
  const perElem = g.mul(g.mul(d, d), weight); // [B, C, H, W]
  const loss = g.reduceMean(perElem, [0, 1, 2, 3], false); // mean over batch and pixels
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
  return {
    model: toOnnx(g, { outputs, params: 'input', name: 'ddpm-train' }),
    dropoutSites: u.dropoutMasks.map((m) => ({ name: m.name, shape: m.shape })),
    paramNames: names,
  };
}

/** Fill a dropout mask: 0 with probability p, else 1/(1-p). */
function dropoutMask(n: number, p: number, rng: Rng): Float32Array {
  const out = new Float32Array(n);
  const keep = 1 / (1 - p);
  const thresh = p * 4294967296;
  for (let i = 0; i < n; i++) out[i] = rng.nextU32() < thresh ? 0 : keep;
  return out;
}

export async function createTrainSession(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  threads = 0,
): Promise<TrainSession> {
  const built = buildTrainModel(cfg, params, batch);
  const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));
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
      for (const site of built.dropoutSites) {
        const n = site.shape.reduce((a, c) => a * c, 1);
        feeds[site.name] = { data: dropoutMask(n, cfg.dropout, rng), shape: site.shape };
      }
      for (const name of built.paramNames) feeds[name] = { data: p.get(name)!, shape: shapes.get(name)! };
      const res = await session.run(feeds);
      const grads = new Map<string, Float32Array>();
      for (const name of built.paramNames) grads.set(name, res[`grad.${name}`]!.data);
      return { loss: res.loss!.data[0]!, grads };
    },
    release: () => session.release(),
  };
}
