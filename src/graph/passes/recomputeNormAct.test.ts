// recompute-norm-act on a training graph with dropout (the ResNet blocks' y and y x mask), on the native
// engine: the step's loss and every gradient are bit for bit those of the graph without the pass; the
// forward norms' outputs are no longer read by any backward node; each recomputation waits for a gradient
// value that does not depend on its own readers. passes.test.ts checks it on and off on random models.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../../engine/native.js';
import { buildUNet, initParams, TINY_UNET, type UNetConfig } from '../../nn/unet.js';
import { passStepFixture } from '../../train/passStepFixture.js';
import { grad } from '../autodiff.js';
import { FUSED_DOMAIN, Graph } from '../graph.js';
import { runPasses } from './index.js';

const native = nativeEngine();
const cfg: UNetConfig = { ...TINY_UNET, dropout: 0.2 };

describe('recompute-norm-act', { skip: native ? false : 'the native binding is not built' }, () => {
  it('reroutes every backward read of a norm output (and of its dropout product) to a recomputation', () => {
    const g = new Graph();
    g.fused = native!.fusedKernels!;
    const params = initParams(cfg, 'fixture', 3);
    const u = buildUNet(g, cfg, params, g.input('x', [2, 1, 16, 16]), g.input('t', [2]), { training: true });
    runPasses(g, [u.out], 'forward', { training: true });
    const loss = g.reduceSum(g.mul(u.out, u.out), [0, 1, 2, 3], false);
    const grads = grad(g, loss, [...u.params.values()]);
    const norms = g.liveNodes(grads).filter((n) => n.op === 'GroupNormSilu' && n.domain === FUSED_DOMAIN);
    const report = runPasses(g, grads, 'layout', { training: true, passes: ['recompute-norm-act'] });
    const live = g.liveNodes(grads);
    const recomputed = live.filter((n) => n.op === 'GroupNormSiluRecompute');
    // One per norm: each ResNet block's two and the output norm; the second of each block through its mask.
    assert.equal(report['recompute-norm-act'], norms.length);
    assert.equal(recomputed.length, norms.length);
    assert.equal(u.dropoutMasks.length, norms.length / 2 - 0.5, 'one dropout product per ResNet block');
    for (const n of norms) {
      const kept = [n.outputs[0]!];
      for (const m of live)
        if (
          (m.op === 'Mul' || m.op === 'DropoutMul') &&
          m.inputs[0] === n.outputs[0] &&
          !g.gradientNodes.has(m)
        )
          kept.push(m.outputs[0]!);
      for (const v of kept) {
        const backReaders = live.filter((m) => g.gradientNodes.has(m) && m.inputs.some((w) => w.id === v.id));
        assert.deepEqual(backReaders, [], `${v.name} is read by the backward`);
      }
    }
    for (const r of recomputed) {
      const after = r.inputs[3]!;
      assert.ok(after.producer && g.gradientNodes.has(after.producer), 'waits for a gradient value');
      assert.ok(!g.liveNodes([after]).includes(r), 'no cycle');
    }
  });

  it('gives the same loss and gradients bit for bit (dropout 0.2, learned variance too)', async () => {
    for (const varType of ['fixedlarge', 'learned-range'] as const) {
      const step = passStepFixture(native!, cfg, varType);
      const off = await step('-recompute-norm-act');
      const on = await step('+recompute-norm-act');
      assert.equal(on.loss, off.loss, `${varType}: loss`);
      for (const [k, v] of off.grads) assert.deepEqual(on.grads.get(k), v, `${varType}: grad ${k}`);
    }
  });
});
