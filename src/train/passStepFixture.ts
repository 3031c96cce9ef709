// Test helper (Node only): one training step of a tiny U-Net built under a given DDPM_PASSES setting, for
// the tests that check a training-graph pass (kernel-dropout, recompute-norm-act) gives the same loss and
// gradients bit for bit on and off. The batch is fixed (3 images of 16x16 at t = 0, 400, 999, seed 4), the
// step's dropout draws come from Rng(9), so two builds differ only by their passes.

import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { trainingTerms } from '../diffusion/trainingTerms.js';
import type { Engine } from '../engine/engine.js';
import { initParams, type UNetConfig } from '../nn/unet.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { createTrainSession, trainBatch } from './trainGraph.js';

/** Run `fn` with DDPM_PASSES set to `passes` (undefined: the default list), restoring it after. */
export async function withPasses<T>(passes: string | undefined, fn: () => T | Promise<T>): Promise<T> {
  const saved = process.env.DDPM_PASSES;
  if (passes === undefined) delete process.env.DDPM_PASSES;
  else process.env.DDPM_PASSES = passes;
  try {
    return await fn();
  } finally {
    if (saved === undefined) delete process.env.DDPM_PASSES;
    else process.env.DDPM_PASSES = saved;
  }
}

export interface PassStep {
  loss: number;
  /** Every parameter's gradient (copies). */
  grads: Map<string, Float32Array>;
  /** The step Rng's state after the step: the same draws on and off. */
  rng: unknown;
}

/**
 * A step function for `cfg` (its output channels doubled for 'learned-range'): each call builds a training
 * session under `passes`, runs one MSE step on the fixed batch and releases the session.
 */
export function passStepFixture(
  engine: Engine,
  cfg: UNetConfig,
  varType: 'fixedlarge' | 'learned-range',
  microbatch?: number,
): (passes: string | undefined) => Promise<PassStep> {
  const c: UNetConfig = { ...cfg, outChannels: varType === 'learned-range' ? 2 : 1 };
  const params = initParams(c, 'fixture', 3);
  const B = 3;
  const shape = [B, 1, 16, 16];
  const d = new GaussianDiffusion({
    betas: getBetaSchedule('linear', { T: 1000 }),
    modelMeanType: 'eps',
    modelVarType: varType,
    lossType: 'mse',
  });
  const rng = new Rng(4);
  const x0: Tensor = { data: Float32Array.from(rng.normalArray(B * 256), Math.tanh), shape }; // [3, 1, 16, 16]
  const t = Int32Array.from([0, 400, 999]);
  const noise: Tensor = { data: rng.normalArray(B * 256), shape };
  const xt = d.qSample(x0, t, noise);
  const b = trainBatch(xt, t, trainingTerms(d, 'mse', x0, xt, t, noise));
  return async (passes) => {
    const s = await withPasses(passes, () =>
      createTrainSession(engine, c, params, B, 1, 'mse', varType, microbatch ? { microbatch } : {}),
    );
    try {
      const r = new Rng(9);
      const out = await s.step(params, b, r);
      return {
        loss: out.loss,
        grads: new Map([...out.grads].map(([k, v]) => [k, v.slice()])),
        rng: r.getState(),
      };
    } finally {
      await s.release();
    }
  };
}
