// kernel-dropout on a training graph (dropout 0.2), on the native engine: no mask input is read any more,
// the backward's dropout is the forward's kernel with the same key and site, and a training step gives the
// loss and every gradient of the graph with fed masks bit for bit: in one piece, in micro-batches (each
// chunk's rows take the whole batch's mask values), with a learned variance, and with recompute-norm-act
// off. passes.test.ts runs every pass on and off on random models.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../../engine/native.js';
import { TINY_UNET, type UNetConfig, initParams } from '../../nn/unet.js';
import { passStepFixture, withPasses } from '../../train/passStepFixture.js';
import { buildTrainModel } from '../../train/trainGraph.js';
import { DROPOUT_KEY_INPUT } from './kernelDropout.js';

const native = nativeEngine();
const cfg: UNetConfig = { ...TINY_UNET, dropout: 0.2 };

describe('kernel-dropout', { skip: native ? false : 'the native binding is not built' }, () => {
  it('replaces every mask input by the key, in the forward and the backward', async () => {
    const params = initParams(cfg, 'fixture', 3);
    const on = buildTrainModel(cfg, params, 2, 0, 'mse', native!.fusedKernels!);
    assert.deepEqual(on.dropoutSites, [], 'no mask is fed');
    assert.equal(on.dropoutKey, true);
    const text = Buffer.from(on.model).toString('latin1');
    assert.ok(text.includes(DROPOUT_KEY_INPUT));
    const count = (s: string) => text.split(s).length - 1;
    const off = await withPasses('-kernel-dropout', () =>
      buildTrainModel(cfg, params, 2, 0, 'mse', native!.fusedKernels!),
    );
    assert.equal(off.dropoutKey, false);
    assert.ok(off.dropoutSites.length > 0);
    assert.deepEqual(
      off.dropoutSites.map((d) => d.site),
      off.dropoutSites.map((_, i) => i),
      'sites numbered in model order',
    );
    // One forward and one backward kernel per ResNet block (the recomputation adds one more each).
    assert.ok(count('DropoutMul') >= 2 * off.dropoutSites.length, `${count('DropoutMul')} DropoutMul nodes`);
  });

  it('gives the fed masks’ loss and gradients bit for bit (micro-batches, learned variance, no recompute)', async () => {
    for (const [varType, microbatch, extra] of [
      ['fixedlarge', undefined, ''],
      ['fixedlarge', 2, ''],
      ['learned-range', undefined, ',-recompute-norm-act'],
    ] as const) {
      const step = passStepFixture(native!, cfg, varType, microbatch);
      const what = `${varType}, microbatch ${microbatch ?? 'none'}${extra}`;
      const fed = await step(`-kernel-dropout${extra}`);
      const kernel = await step(extra ? extra.slice(1) : undefined);
      assert.equal(kernel.loss, fed.loss, `${what}: loss`);
      assert.deepEqual(kernel.rng, fed.rng, `${what}: the same draws from the Rng`);
      for (const [k, v] of fed.grads) assert.deepEqual(kernel.grads.get(k), v, `${what}: grad ${k}`);
    }
  });
});
