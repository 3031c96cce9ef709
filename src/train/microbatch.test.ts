// Micro-batches (gradient accumulation, `ddpm train --microbatch N`):
// a batch cut into chunks (unequal ones too: the last padded with zero-weight rows)
// gives the whole batch's loss, per-sample losses and gradient to float rounding, for L_simple, the 'kl' loss
// and a learned variance, with each image's dropout masks and the same draws from the Rng; train() with
// --microbatch reaches the weights of the whole batch after K steps; a micro-batched run stopped and resumed
// ends bit for bit where an uninterrupted one does, and resuming with another micro-batch size is allowed.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { UsageError } from '../cli/args.js';
import { trainCommand } from '../cli/train.js';
import { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import { getBetaSchedule } from '../diffusion/schedules.js';
import { trainingTerms } from '../diffusion/trainingTerms.js';
import type { LossType, ModelVarType } from '../diffusion/types.js';
import { nodeEngine } from '../engine/node.js';
import { defaultSpec, type ModelSpec } from '../model/spec.js';
import { initParams, TINY_UNET, type UNetConfig } from '../nn/unet.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { loadCheckpoint } from './checkpoint.js';
import { PAPER_ADAM } from './optim.js';
import { DEFAULT_TRAIN, readLog, type TrainOptions, train } from './trainer.js';
import { createTrainSession, microbatchPlan, trainBatch } from './trainGraph.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-microbatch-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** Largest |x| of a tensor. */
const scale = (x: Float32Array) => x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

describe('micro-batches', () => {
  it('plans ceil(B/N) chunks of ceil(B/chunks) images and refuses a bad size', () => {
    assert.deepEqual(microbatchPlan(64), { chunks: 1, size: 64 });
    assert.deepEqual(microbatchPlan(128, 16), { chunks: 8, size: 16 });
    assert.deepEqual(microbatchPlan(128, 48), { chunks: 3, size: 43 }); // 43, 43, 42
    assert.deepEqual(microbatchPlan(5, 2), { chunks: 3, size: 2 }); // 2, 2, 1
    assert.deepEqual(microbatchPlan(7, 7), { chunks: 1, size: 7 });
    for (const bad of [0, 8, 2.5, -1]) assert.throws(() => microbatchPlan(7, bad), /microbatch/);
  });

  const cases: { loss: LossType; varType: ModelVarType }[] = [
    { loss: 'mse', varType: 'fixedlarge' },
    { loss: 'kl', varType: 'fixedlarge' },
    { loss: 'mse', varType: 'learned-range' },
  ];
  for (const c of cases) {
    it(`gives the whole batch's loss and gradient (${c.loss}, ${c.varType}; chunks 2, 2, 1 of 5)`, async () => {
      const learned = c.varType === 'learned-range';
      const cfg: UNetConfig = { ...TINY_UNET, dropout: 0.1, outChannels: learned ? 2 : 1 };
      // Fixture init: every weight non-zero, so every gradient is (the paper's zero output conv is not).
      const params = initParams(cfg, 'fixture', 3);
      const B = 5;
      const shape = [B, 1, 16, 16];
      const d = new GaussianDiffusion({
        betas: getBetaSchedule('linear', { T: 1000 }),
        modelMeanType: 'eps',
        modelVarType: c.varType,
        lossType: c.loss,
      });
      const rng = new Rng(5);
      const x0: Tensor = { data: Float32Array.from(rng.normalArray(B * 256), (v) => Math.tanh(v)), shape };
      const t = Int32Array.from([0, 3, 500, 999, 17]); // t = 0: the decoder term
      const noise: Tensor = { data: rng.normalArray(B * 256), shape };
      const xt = d.qSample(x0, t, noise);
      const terms = trainingTerms(d, c.loss, x0, xt, t, noise);
      const b = trainBatch(xt, t, terms);
      const engine = nodeEngine();
      const whole = await createTrainSession(engine, cfg, params, B, 1, c.loss, c.varType);
      const rw = new Rng(9);
      const w = await whole.step(params, b, rw);
      const wLoss = w.loss;
      const wLosses = w.losses?.slice() ?? null;
      const wGrads = new Map([...w.grads].map(([k, g]) => [k, g.slice()]));
      await whole.release();
      const micro = await createTrainSession(engine, cfg, params, B, 1, c.loss, c.varType, { microbatch: 2 });
      assert.deepEqual(micro.microbatch, { chunks: 3, size: 2 });
      const rm = new Rng(9);
      const m = await micro.step(params, b, rm);
      await micro.release();
      assert.deepEqual(rm.getState(), rw.getState(), 'the same draws from the Rng');
      allClose([m.loss], [wLoss], 1e-5, 0, 'loss');
      if (wLosses) allClose(m.losses!, wLosses, 1e-5, 1e-6, 'per-sample losses');
      else assert.equal(m.losses, null);
      // Float32 rounding of different summation orders, against the largest gradient entry of the model (a
      // tensor whose true gradient is 0, a bias before a GroupNorm, holds rounding noise only).
      const top = Math.max(...[...wGrads.values()].map(scale));
      for (const [k, g] of wGrads) allClose(m.grads.get(k)!, g, 1e-4, 1e-6 * top, `grad ${k}`);
    });
  }
});

describe('ddpm train --microbatch', () => {
  it('is validated with the flag and its value named, and described in --help', async () => {
    const base = ['--run', join(TMP, 'never'), '--batch', '8'];
    for (const [arg, msg] of [
      ['0', /--microbatch "0": must be at least 1/],
      ['2.5', /--microbatch "2.5": expected an integer/],
      ['9', /--microbatch 9 is larger than the batch \(--batch 8\)/],
    ] as const) {
      await assert.rejects(trainCommand([...base, '--microbatch', arg]), (e: Error) => {
        assert.ok(e instanceof UsageError && msg.test(e.message), e.message);
        return true;
      });
    }
    const logged: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => logged.push(a.join(' '));
    try {
      await trainCommand(['--help']);
    } finally {
      console.log = log;
    }
    assert.match(logged.join('\n'), /--microbatch.*gradient accumulation/s);
  });

  const spec: ModelSpec = {
    ...defaultSpec(),
    unet: { ...TINY_UNET, dropout: 0.1 },
    diffusion: { ...defaultSpec().diffusion, T: 50 },
  };
  const opts = (runDir: string, steps: number, microbatch?: number): TrainOptions => ({
    ...DEFAULT_TRAIN,
    runDir,
    spec,
    batch: 7,
    steps,
    adam: { ...PAPER_ADAM, warmup: 0 }, // clipping at norm 1 stays on: it must see the accumulated norm
    checkpointEvery: 2,
    sampleEvery: 0,
    logEvery: 1,
    threads: 1,
    ...(microbatch !== undefined ? { microbatch } : {}),
  });
  const K = 4;
  const tensorsOf = (run: string) => {
    const ck = loadCheckpoint(join(run, 'checkpoint.safetensors'));
    return { params: ck.params, ema: ck.ema, m: ck.adamM, v: ck.adamV };
  };

  it(`reaches the whole batch's weights after ${K} steps (batch 7 in chunks 3, 3, 1)`, async () => {
    const events: string[] = [];
    const a = await train(nodeEngine(), opts(join(TMP, 'whole'), K));
    const b = await train(nodeEngine(), opts(join(TMP, 'micro'), K, 3), { onEvent: (e) => events.push(e) });
    assert.ok(
      events.some((e) => /3 chunks of at most 3 images/.test(e)),
      events.join('\n'),
    );
    const la = readLog(join(TMP, 'whole', 'log.jsonl'));
    const lb = readLog(join(TMP, 'micro', 'log.jsonl'));
    assert.equal(lb.length, K);
    allClose(
      lb.map((r) => r.loss),
      la.map((r) => r.loss),
      1e-4,
      0,
      'logged losses',
    );
    // The clipped norm is the accumulated gradient's (the paper's clip at 1 acts on these steps).
    allClose(
      lb.map((r) => r.gradNorm),
      la.map((r) => r.gradNorm),
      1e-4,
      0,
      'gradient norms',
    );
    assert.ok(
      la.some((r) => r.gradNorm > 1),
      'clipping took part',
    );
    // Measured: weights and EMA within 1.8e-7. Adam divides by sqrt(v), so a chunk weighted wrongly moves
    // weights by about lr = 2e-4 per step; the tolerance, 1e-5 absolute, sits between the two.
    for (const [k, p] of a.params) allClose(b.params.get(k)!, p, 0, 1e-5, `weights ${k}`);
    for (const [k, p] of a.ema) allClose(b.ema.get(k)!, p, 0, 1e-5, `EMA ${k}`);
  });

  it('resumes bit for bit, and with another micro-batch size', async () => {
    const whole = join(TMP, 'micro'); // the previous test's uninterrupted micro-batched run of K steps
    const half = join(TMP, 'half');
    await train(nodeEngine(), opts(half, K / 2, 3));
    await train(nodeEngine(), opts(half, K, 3));
    const x = tensorsOf(whole);
    const y = tensorsOf(half);
    for (const part of ['params', 'ema', 'm', 'v'] as const) {
      for (const [k, v] of x[part]) assert.deepEqual(y[part].get(k), v, `${part} ${k}`);
    }
    // Another size (and none): not part of the run's identity; the result differs by float rounding only.
    const other = join(TMP, 'other');
    await train(nodeEngine(), opts(other, K / 2, 3));
    await train(nodeEngine(), opts(other, K - 1, 2));
    const r = await train(nodeEngine(), opts(other, K));
    assert.equal(r.resumedFrom, K - 1);
    for (const [k, v] of x.params) allClose(r.params.get(k)!, v, 0, 1e-5, `weights ${k}`);
  });
});
