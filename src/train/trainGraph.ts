// The training graph of Algorithm 1: the U-Net on x_t, a per-sample-weighted mean squared error
// against a target (eps, x_0, the posterior mean or v, chosen by the diffusion layer), and the
// gradient of that loss for every parameter, all in one ONNX model. Parameters and dropout masks
// are graph inputs, so the TypeScript optimiser owns the weights.
// Learned variances ('learned-range', Nichol & Dhariwal 2021 sec. 3.1): the U-Net outputs 2C channels,
// the mean output (first C) and the variance values (last C); the bound's term L_{t-1} with the learned
// log-variance (eq. 15) is built here from the terms of diffusion/trainingTerms.ts. With 'mse' the loss is
// L_hybrid = L_simple + lambda T L_{t-1} and the bound's term sees the mean output through a stop-gradient,
// so the mean channels learn from L_simple alone and the variance channels from the bound alone.

import type { DecoderTerms, LearnedVarianceTerms, TrainingTerms } from '../diffusion/trainingTerms.js';
import { type LossType, learnsVariance, type ModelVarType, unreachable } from '../diffusion/types.js';
import type { Engine, EngineSession, FusedKernel, MemArena, OptimKernels } from '../engine/engine.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import { nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { runPasses } from '../graph/passes/index.js';
import { DROPOUT_KEY_INPUT } from '../graph/passes/kernelDropout.js';
import { buildUNet, type ParamStore, type UNetConfig, unetParamSpecs } from '../nn/unet.js';
import type { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { drawDropoutKey, dropoutKeyFeed, fillDropoutMask } from './dropoutMask.js';

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
  /** 'learned-range' only: the bound's term with the learned variance. */
  readonly learned?: LearnedVarianceTerms | null;
}

/** The training graph's batch at x_t = qSample(x_0, t, eps), from the loss terms of diffusion/trainingTerms.ts. */
export function trainBatch(xt: Tensor, t: Int32Array, terms: TrainingTerms): TrainBatch {
  return {
    xt,
    t: Float32Array.from(t),
    target: terms.target,
    weight: terms.mseWeight,
    offset: terms.offset,
    decoder: terms.decoder,
    learned: terms.learned,
  };
}

export interface TrainStepOutput {
  readonly loss: number;
  /**
   * The per-sample losses [B] whose batch mean is `loss` ('kl' and learned variances; null for L_simple
   * with a fixed variance), in a buffer the session reuses: valid until its next step.
   */
  readonly losses: Float32Array | null;
  /** Gradients by parameter name, in buffers the session reuses: valid until its next step. */
  readonly grads: Map<string, Float32Array>;
}

export interface TrainSession {
  readonly batch: number;
  /** How each step's batch is run: in one piece (chunks 1) or micro-batches (TrainSessionOptions). */
  readonly microbatch: MicrobatchPlan;
  readonly dropoutSites: readonly { name: string; shape: readonly number[] }[];
  step(params: ParamStore, b: TrainBatch, rng: Rng): Promise<TrainStepOutput>;
  release(): Promise<void>;
  /** The engine's native optimiser passes, for adamStep and emaUpdate (absent: WebAssembly or plain loops). */
  readonly optim?: OptimKernels;
}

/**
 * Build the ONNX training model; returns its bytes, the dropout-mask inputs it expects (with each one's site
 * index, for fillDropoutMask) and whether it reads the step key instead (graph pass kernel-dropout). With
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
  varType: ModelVarType = 'fixedlarge',
) {
  const g = new Graph();
  g.fused = fused;
  const shape = [batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const xt = g.input('xt', shape);
  const t = g.input('t', [batch]);
  const learned = learnsVariance(varType);
  const wantOut = learned ? 2 * cfg.inChannels : cfg.inChannels;
  if (cfg.outChannels !== wantOut) {
    throw new Error(
      `training: the U-Net has ${cfg.outChannels} output channels for ${cfg.inChannels}-channel images; the variance type "${varType}" needs ${wantOut}${learned ? ' (the mean output, then the variance values)' : ''}`,
    );
  }
  const u = buildUNet(g, cfg, params, xt, t, { training: true });
  runPasses(g, [u.out], 'forward', { training: true }); // graph/passes: before the gradient
  const { loss, losses } = trainingLossGraph(g, u.out, shape, lossType, varType);
  const names = [...u.params.keys()];
  const grads = grad(
    g,
    loss,
    names.map((n) => u.params.get(n)!),
  );
  const outputs: Record<string, (typeof grads)[number]> = { loss, ...(losses ? { losses } : {}) };
  names.forEach((n, i) => {
    outputs[`grad.${n}`] = grads[i]!;
  });
  runPasses(g, Object.values(outputs), 'layout', { training: true, nchwcBlock });
  // The inputs the graph still reads: mask inputs unless kernel-dropout made them in-graph (then the key).
  const read = new Set(g.liveNodes(Object.values(outputs)).flatMap((n) => n.inputs.map((v) => v.id)));
  return {
    model: toOnnx(g, { outputs, params: 'input', name: 'ddpm-train' }),
    dropoutSites: u.dropoutMasks
      .map((m, site) => ({ name: m.name, shape: m.shape, site }))
      .filter((d) => read.has(u.dropoutMasks[d.site]!.id)),
    dropoutKey: g.leaves.some(
      (l) => l.kind === 'input' && l.value.name === DROPOUT_KEY_INPUT && read.has(l.value.id),
    ),
    paramNames: names,
  };
}

/**
 * The training loss of the network output `out` ([B, C, H, W], or [B, 2C, H, W] for a learned variance)
 * with the inputs its terms are fed through (diffusion/trainingTerms.ts): the batch mean `loss` and, except
 * for L_simple with a fixed variance, the per-sample losses [B].
 */
export function trainingLossGraph(
  g: Graph,
  out: Value,
  shape: readonly number[],
  lossType: LossType,
  varType: ModelVarType,
): { loss: Value; losses: Value | null } {
  const b = shape[0]!;
  const C = shape[1]!;
  const learned = learnsVariance(varType);
  const target = g.input('target', shape);
  const weight = g.input('weight', [b, 1, 1, 1]);
  const mean = learned ? g.slice(out, [1], [0], [C]) : out; // [B, C, H, W]
  const d = g.sub(mean, target); // [B, C, H, W]
  const all = [0, 1, 2, 3];
  const perSample = (v: Value) => ({ loss: g.reduceMean(v, all, false), losses: g.reshape(v, [b]) });
  if (learned) {
    const varValues = g.slice(out, [1], [C], [2 * C]); // [B, C, H, W]
    const mse = g.mul(g.reduceMean(g.mul(d, d), [1, 2, 3]), weight); // [B, 1, 1, 1] (0 for 'kl')
    // L_hybrid: the bound's term sees the mean output through a stop-gradient (sec. 3.1); 'kl': through it.
    const stop = ((): boolean => {
      switch (lossType) {
        case 'mse':
          return true;
        case 'kl':
          return false;
        default:
          return unreachable(lossType, 'loss type');
      }
    })();
    return perSample(g.add(mse, learnedVb(g, stop ? g.stopGradient(mean) : mean, varValues, shape)));
  }
  switch (lossType) {
    case 'mse': // mean over batch and pixels
      return { loss: g.reduceMean(g.mul(g.mul(d, d), weight), all, false), losses: null };
    case 'kl':
      return perSample(klLoss(g, d, weight, shape));
    default:
      return unreachable(lossType, 'loss type');
  }
}

/** Phi(v) ~ 0.5 (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))), the original code's approximation. */
function phi(g: Graph, v: Value): Value {
  return g.scale(
    g.add(
      g.scalar(1),
      g.tanh(g.scale(g.add(v, g.scale(g.mul(g.mul(v, v), v), 0.044715)), Math.sqrt(2 / Math.PI))),
    ),
    0.5,
  );
}

/**
 * The discretised decoder's NLL (eq. 13) in nats per pixel [B, C, H, W], given z = (x_0 - mu_theta) / sigma,
 * half a bin in the same units, and the open edge bins (1 where x_0 is -1 / +1).
 */
function decoderNll(g: Graph, z: Value, halfBin: Value, low: Value, high: Value): Value {
  const one = g.scalar(1);
  const hi = g.add(g.mul(phi(g, g.add(z, halfBin)), g.sub(one, high)), high); // CDF at the bin's top
  const lo = g.mul(phi(g, g.sub(z, halfBin)), g.sub(one, low)); // CDF at the bin's bottom
  return g.neg(g.log(g.add(g.sub(hi, lo), g.scalar(1e-12)))); // [B, C, H, W], nats
}

/** The 'kl' loss of trainingTerms.ts in the graph: per sample w mse + offset + decoder NLL [B, 1, 1, 1]. */
function klLoss(g: Graph, d: Value, weight: Value, shape: readonly number[]): Value {
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
  const z = g.mul(d, scale); // (x_0 - mu_theta) / sigma
  const nll = decoderNll(g, z, halfBin, low, high); // [B, C, H, W], nats
  const dec = g.mul(g.reduceMean(nll, pix), decWeight); // [B, 1, 1, 1], bits
  return g.add(g.add(mse, offset), dec);
}

/**
 * L_{t-1} with the learned log-variance (trainingTerms.ts, LearnedVarianceTerms), weighted, per sample
 * [B, 1, 1, 1]: the Gaussian KL (eq. 5) where t > 0, the decoder NLL (eq. 13) where t = 0.
 */
function learnedVb(g: Graph, mean: Value, varValues: Value, shape: readonly number[]): Value {
  const perB = [shape[0]!, 1, 1, 1];
  const target = g.input('vb.target', shape);
  const a = g.input('vb.meanScale', perB);
  const minLog = g.input('vb.minLog', perB);
  const maxLog = g.input('vb.maxLog', perB);
  const lvq = g.input('vb.posteriorLogVariance', perB);
  const klWeight = g.input('vb.klWeight', perB);
  const decWeight = g.input('vb.decoderWeight', perB);
  const decMask = g.input('vb.decoderMask', perB);
  const low = g.input('vb.low', shape);
  const high = g.input('vb.high', shape);
  const pix = [1, 2, 3];
  const diff = g.mul(g.sub(mean, target), a); // mu_theta - mu~ [B, C, H, W]
  const frac = g.scale(g.add(varValues, g.scalar(1)), 0.5); // (v + 1) / 2
  const lvp = g.add(minLog, g.mul(frac, g.sub(maxLog, minLog))); // eq. 15: log sigma^2 [B, C, H, W]
  // KL(N(mu~, e^lvq) || N(mu_theta, e^lvp)) = 0.5 (-1 + lvp - lvq + e^(lvq - lvp) + diff^2 e^-lvp)
  const kl = g.scale(
    g.add(
      g.add(g.sub(g.sub(lvp, lvq), g.scalar(1)), g.exp(g.sub(lvq, lvp))),
      g.mul(g.mul(diff, diff), g.exp(g.neg(lvp))),
    ),
    0.5,
  ); // [B, C, H, W], nats
  const invStd = g.exp(g.scale(lvp, -0.5)); // 1 / sigma
  const z = g.neg(g.mul(g.mul(diff, decMask), invStd)); // (x_0 - mu_theta) / sigma at t = 0, else 0
  const nll = decoderNll(g, z, g.scale(invStd, 1 / 255), low, high); // [B, C, H, W], nats
  return g.add(g.mul(g.reduceMean(kl, pix), klWeight), g.mul(g.reduceMean(nll, pix), decWeight));
}

/** The feeds of trainingLossGraph's inputs for a batch (its terms from diffusion/trainingTerms.ts). */
export function lossFeeds(b: TrainBatch, lossType: LossType, varType: ModelVarType): Record<string, Tensor> {
  const batch = b.t.length;
  const perB = [batch, 1, 1, 1];
  const feeds: Record<string, Tensor> = {
    target: b.target,
    weight: { data: b.weight, shape: perB },
  };
  if (learnsVariance(varType)) {
    const l = b.learned;
    if (!l)
      throw new Error("training: a learned variance needs the batch's bound terms (TrainBatch.learned)");
    feeds['vb.target'] = l.target;
    feeds['vb.meanScale'] = { data: l.meanScale, shape: perB };
    feeds['vb.minLog'] = { data: l.minLog, shape: perB };
    feeds['vb.maxLog'] = { data: l.maxLog, shape: perB };
    feeds['vb.posteriorLogVariance'] = { data: l.posteriorLogVariance, shape: perB };
    feeds['vb.klWeight'] = { data: l.klWeight, shape: perB };
    feeds['vb.decoderWeight'] = { data: l.decoderWeight, shape: perB };
    feeds['vb.decoderMask'] = { data: l.decoderMask, shape: perB };
    feeds['vb.low'] = { data: l.low, shape: b.target.shape };
    feeds['vb.high'] = { data: l.high, shape: b.target.shape };
  } else if (lossType === 'kl') {
    const dec = b.decoder;
    if (!dec || !b.offset)
      throw new Error("training: the 'kl' loss needs the batch's offset and decoder terms");
    feeds.offset = { data: b.offset, shape: perB };
    feeds['decoder.weight'] = { data: dec.weight, shape: perB };
    feeds['decoder.scale'] = { data: dec.scale, shape: perB };
    feeds['decoder.halfBin'] = { data: dec.halfBin, shape: perB };
    feeds['decoder.low'] = { data: dec.low, shape: b.target.shape };
    feeds['decoder.high'] = { data: dec.high, shape: b.target.shape };
  }
  return feeds;
}

/** How a batch of B images is cut into micro-batches (gradient accumulation; see microbatchPlan). */
export interface MicrobatchPlan {
  /** Chunks per step: ceil(B / N) for --microbatch N. */
  readonly chunks: number;
  /** Images per chunk, the session's batch: ceil(B / chunks) <= N (the last chunk may hold fewer). */
  readonly size: number;
}

/**
 * The chunks of a batch of `batch` images with at most `microbatch` each: ceil(B / N) chunks of
 * ceil(B / chunks) consecutive images, the last one shorter when they do not divide B (so one session of
 * one batch size runs them all; the last chunk is padded with zero-weight rows). microbatch undefined or
 * >= batch: one chunk, the whole batch.
 */
export function microbatchPlan(batch: number, microbatch?: number): MicrobatchPlan {
  if (!Number.isSafeInteger(batch) || batch < 1)
    throw new Error(`training: batch ${batch} is not a positive integer`);
  if (microbatch === undefined) return { chunks: 1, size: batch };
  if (!Number.isSafeInteger(microbatch) || microbatch < 1 || microbatch > batch) {
    throw new Error(
      `training: microbatch ${microbatch} must be a positive integer no larger than the batch (${batch})`,
    );
  }
  const chunks = Math.ceil(batch / microbatch);
  return { chunks, size: Math.ceil(batch / chunks) };
}

export interface TrainSessionOptions {
  /**
   * Gradient accumulation: run the batch in chunks of at most this many images (microbatchPlan) and return
   * the gradient of the whole batch's mean loss (each chunk's weighted by its share), the same as one run
   * of the whole batch to float rounding; activations then take the memory of a chunk. Timesteps and noise
   * are the caller's (drawn for the whole batch); each image's dropout masks are the ones the whole batch
   * would draw for it. Undefined: the whole batch in one run.
   */
  readonly microbatch?: number;
  /**
   * ONNX Runtime's CPU arena for the session (SessionOptions.memArena; default 'session'). 'shared' lowers the
   * peak of large batches (L batch 64: 4519 against 5037 MB) and raises it for small ones (S batch 64: 1159
   * against 1072 MB): bench/README.md, "Memory".
   */
  readonly memArena?: MemArena;
}

export async function createTrainSession(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  threads = 0,
  lossType: LossType = 'mse',
  varType: ModelVarType = 'fixedlarge',
  opts: TrainSessionOptions = {},
): Promise<TrainSession> {
  const plan = microbatchPlan(batch, opts.microbatch);
  const S = plan.size; // the session's batch
  const block = await nchwcBlockOf(engine);
  const built = buildTrainModel(cfg, params, S, block, lossType, engine.fusedKernels, varType);
  const learned = learnsVariance(varType);
  const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));
  // Mask buffers are reused: a step's masks are written only after the previous run has finished.
  const masks = built.dropoutSites.map((d) => new Float32Array(d.shape.reduce((a, c) => a * c, 1)));
  // Loss and gradients are written into buffers allocated once (the runtime fills them in place).
  const outs: Record<string, Tensor> = { loss: { data: new Float32Array(1), shape: [] } };
  const chunkLosses = learned || lossType !== 'mse' ? new Float32Array(S) : null;
  if (chunkLosses) outs.losses = { data: chunkLosses, shape: [S] };
  const grads = new Map<string, Float32Array>();
  for (const name of built.paramNames) {
    const shape = shapes.get(name)!;
    const t = { data: new Float32Array(shape.reduce((a, c) => a * c, 1)), shape };
    outs[`grad.${name}`] = t;
    grads.set(name, t.data);
  }
  // ONNX Runtime's memory pattern off: with it, the second run allocates one planned block for all activations
  // beside the arena's chunks from the first run (kept by the arena), about twice the activations' memory.
  // Off, peak resident memory of a training process fell 44% (S, batch 64: 2045 to 1147 MB) and 35% (L, batch
  // 16: 2722 to 1765 MB) at the same step time within measurement (bench/README.md, "Memory").
  const session: EngineSession = await engine.createSession(built.model, {
    threads,
    memPattern: false,
    ...(opts.memArena ? { memArena: opts.memArena } : {}),
  });
  // Dropout: one key per step (drawn whatever the engine, so every engine's run draws the same stream);
  // the native engine makes the masks in-graph from it, other engines are fed them (dropoutMask.ts).
  const hasDropout = built.dropoutKey || built.dropoutSites.length > 0;
  const dropoutFeeds = (feeds: Record<string, Tensor>, stepKey: number, first: number, n: number) => {
    if (built.dropoutKey) feeds[DROPOUT_KEY_INPUT] = { data: dropoutKeyFeed(stepKey, first), shape: [3] };
    built.dropoutSites.forEach((site, i) => {
      const m = masks[i]!;
      const perImage = m.length / S;
      fillDropoutMask(m.subarray(0, perImage * n), cfg.dropout, stepKey, site.site, first * perImage);
      feeds[site.name] = { data: m, shape: site.shape };
    });
  };
  const batchFeeds = (b: TrainBatch): Record<string, Tensor> => ({
    xt: b.xt,
    t: { data: b.t, shape: [batch] },
    ...lossFeeds(b, lossType, varType),
  });
  const paramFeeds = (p: ParamStore, feeds: Record<string, Tensor>) => {
    for (const name of built.paramNames) feeds[name] = { data: p.get(name)!, shape: shapes.get(name)! };
  };
  const optim = engine.optimKernels ? { optim: engine.optimKernels } : {};
  if (plan.chunks === 1) {
    return {
      batch,
      microbatch: plan,
      dropoutSites: built.dropoutSites,
      ...optim,
      async step(p, b, rng) {
        const feeds = batchFeeds(b);
        dropoutFeeds(feeds, hasDropout ? drawDropoutKey(rng) : 0, 0, S);
        paramFeeds(p, feeds);
        await session.run(feeds, outs);
        return { loss: outs.loss!.data[0]!, losses: chunkLosses, grads };
      },
      release: () => session.release(),
    };
  }

  // Micro-batches: the sum over chunks of (S / B) x the chunk's gradient. A chunk's loss is the mean over its
  // S rows, and padding rows (the last chunk's, when the chunks do not divide B) have every input 0, loss
  // weights included, so they add exactly 0: (S / B) x chunk mean = the chunk's share of the batch mean.
  const acc = new Map([...grads].map(([k, g]) => [k, new Float32Array(g.length)]));
  const losses = chunkLosses ? new Float32Array(batch) : null;
  const chunkFeeds = new Map<string, Tensor>(); // per batch input, its [S, ...] buffer, allocated once
  const share = S / batch;
  return {
    batch,
    microbatch: plan,
    dropoutSites: built.dropoutSites,
    ...optim,
    async step(p, b, rng) {
      const whole = batchFeeds(b);
      const stepKey = hasDropout ? drawDropoutKey(rng) : 0; // each chunk's rows: the whole batch's values
      let loss = 0;
      for (let c = 0; c < plan.chunks; c++) {
        const from = c * S;
        const n = Math.min(S, batch - from);
        const feeds: Record<string, Tensor> = {};
        for (const [name, full] of Object.entries(whole))
          feeds[name] = chunkOf(chunkFeeds, name, full, batch, S, from, n);
        dropoutFeeds(feeds, stepKey, from, n); // padding rows keep old masks: weight 0
        paramFeeds(p, feeds);
        await session.run(feeds, outs);
        loss += share * outs.loss!.data[0]!;
        if (losses) losses.set(chunkLosses!.subarray(0, n), from);
        for (const [k, g] of grads) {
          const a = acc.get(k)!;
          if (c === 0) for (let i = 0; i < g.length; i++) a[i] = share * g[i]!;
          else for (let i = 0; i < g.length; i++) a[i] = a[i]! + share * g[i]!;
        }
      }
      return { loss, losses, grads: acc };
    },
    release: () => session.release(),
  };
}

/** Rows [from, from + n) of a batch input [B, ...] in its [S, ...] chunk buffer, zero past row n. */
function chunkOf(
  buffers: Map<string, Tensor>,
  name: string,
  full: Tensor,
  batch: number,
  S: number,
  from: number,
  n: number,
): Tensor {
  if (full.shape[0] !== batch || full.data.length % batch !== 0) {
    throw new Error(`training: input ${name} has shape [${full.shape}], not a batch of ${batch}`);
  }
  const row = full.data.length / batch;
  let buf = buffers.get(name);
  if (!buf) {
    buf = { data: new Float32Array(S * row), shape: [S, ...full.shape.slice(1)] };
    buffers.set(name, buf);
  }
  buf.data.set(full.data.subarray(from * row, (from + n) * row));
  buf.data.fill(0, n * row);
  return buf;
}
