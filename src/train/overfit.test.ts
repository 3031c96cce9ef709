// A few hundred optimiser steps of a tiny U-Net on one fixed batch must drive the L_simple loss well
// down (the training graph, its gradients and Adam work together), and two runs with the same seed
// must produce bit-identical weights (determinism, which exact resume depends on).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { loadMnist } from '../data/mnist.js';
import { nodeEngine } from '../engine/node.js';
import { diffusionFromSpec, PAPER_DIFFUSION } from '../model/spec.js';
import { initParams, TINY_UNET, type UNetConfig } from '../nn/unet.js';
import { Rng } from '../util/rng.js';
import { adamStep, newAdamState, PAPER_ADAM } from './optim.js';
import { createTrainSession } from './trainGraph.js';

const TINY: UNetConfig = { ...TINY_UNET, dropout: 0.1 };

async function overfit(steps: number, seed: number) {
  const B = 4;
  const diffusion = diffusionFromSpec({ ...PAPER_DIFFUSION, T: 100 });
  // A fixed batch: four digits cropped to 16x16 from the centre of the 32x32 padded images.
  const ds = loadMnist({ pad: 2 });
  const full = new Float32Array(32 * 32);
  const x0 = new Float32Array(B * 256);
  for (let b = 0; b < B; b++) {
    ds.get(b, full, 0);
    for (let i = 0; i < 16; i++)
      for (let j = 0; j < 16; j++) x0[b * 256 + i * 16 + j] = full[(8 + i) * 32 + 8 + j]!;
  }
  const shape = [B, 1, 16, 16];
  const rng = new Rng(seed);
  const params = initParams(TINY, 'paper', seed);
  const adam = newAdamState(params);
  const session = await createTrainSession(nodeEngine(), TINY, params, B, 1);
  // Fixed t and noise: the loss is then a deterministic function of the weights.
  const t = Int32Array.from([5, 30, 60, 90]);
  const noise = { data: rng.normalArray(B * 256), shape };
  const xt = diffusion.qSample({ data: x0, shape }, t, noise);
  const losses: number[] = [];
  for (let s = 0; s < steps; s++) {
    const out = await session.step(
      params,
      { xt, t: Float32Array.from(t), target: noise, weight: new Float32Array(B).fill(1) },
      rng,
    );
    losses.push(out.loss);
    adamStep({ ...PAPER_ADAM, lr: 2e-3, warmup: 10 }, adam, params, out.grads);
  }
  await session.release();
  return { losses, params };
}

describe('training on a fixed batch', () => {
  it('lowers the loss by more than 5x in 200 steps, deterministically', async () => {
    const a = await overfit(200, 7);
    const first = a.losses.slice(0, 5).reduce((p, c) => p + c, 0) / 5;
    const last = a.losses.slice(-5).reduce((p, c) => p + c, 0) / 5;
    assert.ok(
      first > 0.5,
      `initial loss ${first} should be near 1 (zero-initialised output predicts eps = 0)`,
    );
    assert.ok(last < first / 5, `loss went from ${first.toFixed(4)} to ${last.toFixed(4)}`);
    const b = await overfit(20, 7);
    const c = await overfit(20, 7);
    assert.deepEqual(b.losses, c.losses);
    for (const [k, v] of b.params)
      assert.deepEqual(v, c.params.get(k), `weights ${k} differ between identical runs`);
    assert.deepEqual(b.losses, a.losses.slice(0, 20));
  });
});
