// One optimiser step of Algorithm 1 (Ho et al. 2020) with the paper's recipe (Appendix B), and what a
// checkpoint records about a run: shared by the Node trainer (trainer.ts, which adds the run folder, logs,
// sample grids and signals) and the browser page's trainer (web/train.ts), so both take the same steps
// from the same state: batch (loader), t and eps (rng), x_t (eq. 4), the loss and its gradient (the
// training graph), Adam with warmup and clipping, then the EMA. Free of Node's modules.

import type { BatchLoader, LoaderState } from '../data/loader.js';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { trainingTerms, weightedTerms } from '../diffusion/trainingTerms.js';
import type { LossType } from '../diffusion/types.js';
import type { ModelSpec } from '../model/spec.js';
import type { ParamStore } from '../nn/unet.js';
import type { Rng, RngState } from '../util/rng.js';
import { type AdamConfig, type AdamState, adamStep, emaDecayAt, emaUpdate } from './optim.js';
import type { LossHistoryState, TimestepSampler, TimestepSamplerKind } from './resample.js';
import { type TrainSession, trainBatch } from './trainGraph.js';

/** The options a run's identity is made of (trainer.ts TrainOptions has them all). */
export interface RunIdentityOptions {
  readonly data: string;
  readonly spec: ModelSpec;
  readonly batch: number;
  readonly adam: AdamConfig;
  readonly emaDecay: number;
  readonly emaWarmup: boolean;
  readonly flip: boolean;
  readonly seed: number;
  readonly loss: LossType;
  readonly timestepSampler?: TimestepSamplerKind;
  readonly init?: { readonly weightsHash: string };
}

/** The options that must not change when a run resumes (a checkpoint's meta.identity). */
export function runIdentity(o: RunIdentityOptions) {
  return {
    data: o.data,
    spec: o.spec,
    batch: o.batch,
    adam: o.adam,
    emaDecay: o.emaDecay,
    // Absent when on: runs checkpointed before the option existed resume with it (it only speeds up
    // how fast the average leaves the initialisation).
    emaWarmup: o.emaWarmup ? undefined : false,
    flip: o.flip,
    seed: o.seed,
    // Absent for 'mse', so runs checkpointed before the option existed still resume.
    loss: o.loss === 'mse' ? undefined : o.loss,
    // Absent for 'uniform', likewise.
    timestepSampler: (o.timestepSampler ?? 'uniform') === 'uniform' ? undefined : o.timestepSampler,
    // The starting weights by content, not by path (absent for a random initialisation).
    init: o.init?.weightsHash,
  };
}

/** A checkpoint's meta.state: where the run is and every random stream's state. */
export interface RunState {
  step: number;
  trainRng: RngState;
  loader: LoaderState;
  adamStep: number;
  /** 'loss-second-moment': the loss history its timesteps are drawn from. */
  timesteps?: LossHistoryState;
}

/** Everything one step reads and updates (params, ema and adam in place; loader, timesteps and rng advance). */
export interface StepContext {
  readonly o: Pick<RunIdentityOptions, 'batch' | 'adam' | 'emaDecay' | 'emaWarmup' | 'loss'>;
  readonly diffusion: GaussianDiffusion;
  readonly loader: BatchLoader;
  readonly timesteps: TimestepSampler;
  readonly session: TrainSession;
  readonly rng: Rng;
  readonly params: ParamStore;
  readonly ema: ParamStore;
  readonly adam: AdamState;
}

export interface StepResult {
  /** The step number after this update (1-based). */
  readonly step: number;
  readonly loss: number;
  readonly lr: number;
  /** The global gradient norm before clipping. */
  readonly gradNorm: number;
  /** The gradients by parameter name, in the session's buffers: valid until its next step. */
  readonly grads: ReadonlyMap<string, Float32Array>;
}

/** Optimiser step number `step` + 1: Algorithm 1's loss on the loader's next batch, Adam, then the EMA. */
export async function trainStep(c: StepContext, step: number): Promise<StepResult> {
  const { o, diffusion, rng } = c;
  const batch = c.loader.next(); // x_0 [B, C, H, W]
  const per = batch.x.data.length / o.batch;
  // t ~ Uniform({1..T}) (Algorithm 1), or importance-sampled with loss weights 1 / (T p_t) (resample.ts)
  const { t, weights } = c.timesteps.sample(o.batch, rng);
  const noise = { data: rng.normalArray(o.batch * per), shape: batch.x.shape }; // eps ~ N(0, I)
  const xt = diffusion.qSample(batch.x, t, noise); // eq. 4
  const unweighted = trainingTerms(diffusion, o.loss, batch.x, xt, t, noise); // eps target for L_simple (eq. 14)
  const terms = weights ? weightedTerms(unweighted, weights) : unweighted;
  const out = await c.session.step(c.params, trainBatch(xt, t, terms), rng);
  if (!Number.isFinite(out.loss)) {
    throw new Error(`train: loss is ${out.loss} at step ${step + 1}; lower --lr or check the data`);
  }
  if (weights) {
    const losses = Array.from(out.losses!, (l, n) => l / weights[n]!); // unweighted L_{t-1}
    c.timesteps.update(t, losses);
  }
  const upd = adamStep(o.adam, c.adam, c.params, out.grads, c.session.optim);
  const next = step + 1;
  emaUpdate(c.ema, c.params, emaDecayAt(o.emaDecay, next, o.emaWarmup), c.session.optim);
  return { step: next, loss: out.loss, lr: upd.lr, gradNorm: upd.gradNorm, grads: out.grads };
}
