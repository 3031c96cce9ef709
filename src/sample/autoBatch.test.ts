// --batch auto (autoBatch.ts): the candidate sizes, the probe's choice against its own measurements, and the
// same images whatever batch the network is compiled for.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ddimSample } from '../diffusion/ddim.js';
import { nodeEngine } from '../engine/node.js';
import { diffusionFromSpec, PAPER_DIFFUSION } from '../model/spec.js';
import { initParams, TINY_UNET } from '../nn/unet.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import {
  autoBatchDenoiser,
  batchCandidates,
  denoiserForJob,
  FALLBACK_BATCH,
  probeWorthIt,
} from './autoBatch.js';

const cfg = TINY_UNET;
const params = initParams(cfg, 'fixture', 3);
const engine = nodeEngine();

describe('autoBatch', () => {
  it('candidates double from the start up to the first size that covers the job, capped by the limit', () => {
    assert.deepEqual(batchCandidates(64), [8, 16, 32, 64]);
    assert.deepEqual(batchCandidates(50), [8, 16, 32, 64]);
    assert.deepEqual(batchCandidates(10_000), [8, 16, 32, 64, 128, 256]);
    assert.deepEqual(batchCandidates(10_000, 8, 64), [8, 16, 32, 64]);
    assert.deepEqual(batchCandidates(3, 3), [3]);
    assert.equal(probeWorthIt(64, 100), false); // the README's sample: 6,400 image-calls
    assert.equal(probeWorthIt(10_000, 50), true); // a 10k-sample DDIM-50 FID
  });

  it('keeps the session with the most images per second among those it measured, and stops on a flat gain', async () => {
    const lines: string[] = [];
    const r = await autoBatchDenoiser(
      engine,
      cfg,
      params,
      { threads: 1 },
      {
        maxImages: 64,
        minMs: 50,
        log: (l) => lines.push(l),
      },
    );
    try {
      assert.equal(lines.length, r.probes.length);
      const sizes = r.probes.map((p) => p.batch);
      assert.deepEqual(sizes, batchCandidates(64).slice(0, sizes.length));
      const best = Math.max(...r.probes.map((p) => p.imagesPerSecond));
      assert.equal(r.probes.find((p) => p.batch === r.batch)!.imagesPerSecond, best);
      // Every doubling before the last gained at least 3%; the loop stopped at the last size or on a flat one.
      for (let i = 1; i < r.probes.length - 1; i++)
        assert.ok(
          r.probes[i]!.imagesPerSecond >= 1.03 * r.probes[i - 1]!.imagesPerSecond,
          JSON.stringify(r.probes),
        );
      assert.equal(r.denoiser.batch, r.batch);
      assert.match(r.stoppedBecause, /batch \d+|reached 64/);
    } finally {
      await r.denoiser.release();
    }
  });

  it('gives the same images as a fixed batch (deterministic DDIM, 12 images, batch 5 against auto)', async () => {
    const diffusion = diffusionFromSpec({ ...PAPER_DIFFUSION, T: 50 });
    const shape = [12, cfg.inChannels, cfg.resolution, cfg.resolution];
    const run = async (batch: number | 'auto', images: number) => {
      const c = await denoiserForJob(
        engine,
        cfg,
        params,
        { threads: 1 },
        { images, callsPerImage: 5, batch },
      );
      try {
        const x = await ddimSample(diffusion, c.denoiser.denoise, shape, new Rng(7), { steps: 5 });
        return { x, c };
      } finally {
        await c.denoiser.release();
      }
    };
    const fixed = await run(5, 12);
    assert.equal(fixed.c.batch, 5);
    assert.equal(fixed.c.measured, false);
    const short = await run('auto', 12); // 60 image-calls: not worth measuring
    assert.equal(short.c.batch, Math.min(FALLBACK_BATCH, 12));
    assert.equal(short.c.measured, false);
    allClose(short.x.data, fixed.x.data, 1e-5, 1e-6, 'auto-batch samples'); // bit-identical on the native engine
  });
});
