// The blocked-layout pass on a training graph with dropout (the tiny U-Net, dropout 0.2, the native engine's
// NCHWc block): a training step gives the NCHW graph's loss and gradients to float rounding (the same dropout
// masks: a different mask would move them by far more), the reorders drop, and the kernels that read blocked
// values are the blocked forms. passes.test.ts runs the pass on and off on random models without dropout.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine, nativeKernelNames } from '../engine/native.js';
import { TINY_UNET, type UNetConfig, initParams } from '../nn/unet.js';
import { passStepFixture, withPasses } from '../train/passStepFixture.js';
import { buildTrainModel } from '../train/trainGraph.js';
import { allClose } from '../util/allclose.js';
import { nchwcBlockOf } from './nchwc.js';

const native = nativeEngine();
const cfg: UNetConfig = { ...TINY_UNET, dropout: 0.2 };
const skip = !native
  ? 'the native binding is not built'
  : !nativeKernelNames().includes('BlockedTraining')
    ? 'this build has no blocked training kernels'
    : !native.fusedKernels?.includes('BlockedTraining')
      ? 'the graphs use the blocked training kernels with ConvWeightGrad only (AVX2: DDPM_CONV_WEIGHT_GRAD=1)'
      : false;

describe('blocked-layout on a training graph', { skip }, () => {
  it('gives the NCHW graph’s loss and gradients to rounding, with far fewer reorders', async (t) => {
    const block = await nchwcBlockOf(native!);
    if (block < 2) return t.skip('this runtime has no NCHWc kernels');
    const params = initParams(cfg, 'fixture', 3);
    const count = (model: Uint8Array, op: string) =>
      Buffer.from(model).toString('latin1').split(op).length - 1;
    const on = buildTrainModel(cfg, params, 3, block, 'mse', native!.fusedKernels!);
    const off = await withPasses('-blocked-layout', () =>
      buildTrainModel(cfg, params, 3, block, 'mse', native!.fusedKernels!),
    );
    const reorders = (m: Uint8Array) => count(m, 'ReorderInput') + count(m, 'ReorderOutput');
    assert.ok(
      reorders(on.model) * 3 < reorders(off.model),
      `reorders ${reorders(on.model)} vs ${reorders(off.model)}`,
    );

    const step = passStepFixture(native!, cfg, 'fixedlarge');
    const nchw = await step('-blocked-layout');
    const blocked = await step(undefined);
    assert.ok(
      Math.abs(blocked.loss - nchw.loss) <= 1e-5 * Math.abs(nchw.loss),
      `loss ${blocked.loss} vs ${nchw.loss}`,
    );
    assert.deepEqual(blocked.rng, nchw.rng, 'the same draws');
    // Absolute tolerance against the largest gradient of all: some (a bias before a norm) are rounding noise.
    const scale = Math.max(...[...nchw.grads.values()].map((v) => Math.max(...v.map(Math.abs))));
    for (const [k, v] of nchw.grads) allClose(blocked.grads.get(k)!, v, 1e-3, 1e-5 * scale, `grad ${k}`);
  });
});
