// winograd-bf16 on the shipped models' U-Net (SMALL_UNET, every weight non-zero): every Winograd convolution
// of the default pipeline becomes its bfloat16 F(2x2, 3x3) form, and the network's output stays within bfloat16's
// precision of the float32 pipeline's (and is not identical: the products are rounded). The kernel itself is
// checked against float64 in src/engine/nativeWinograd.test.ts.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine, nativeKernelNames } from '../../engine/native.js';
import { buildInferenceModel, inferenceTargetOf } from '../../sample/denoiser.js';
import { buildUNet, initParams, SMALL_UNET } from '../../nn/unet.js';
import { Rng } from '../../util/rng.js';
import { Graph } from '../graph.js';
import { nchwcBlockOf } from '../nchwc.js';
import { toOnnx } from '../onnx.js';
import { runPasses, selectPasses } from './index.js';

const engine = nativeEngine();
const skip = !engine
  ? 'the native binding is not built'
  : !nativeKernelNames().includes('WinogradBf16')
    ? 'this build has no AVX-512 BF16'
    : false;

describe('winograd-bf16', { skip }, () => {
  it('rewrites every Winograd convolution; the U-Net output within bfloat16 precision of float32', async () => {
    const cfg = SMALL_UNET;
    const params = initParams(cfg, 'fixture', 0);
    const batch = 2;
    const nchwcBlock = await nchwcBlockOf(engine!);
    const build = (bf16: boolean) => {
      const g = new Graph();
      g.fused = engine!.fusedKernels!;
      const x = g.input('x', [batch, 1, 32, 32]);
      const u = buildUNet(g, cfg, params, x, g.input('t', [batch]));
      const passes = bf16 ? [...selectPasses(), 'winograd-bf16'] : selectPasses();
      const report = runPasses(g, [u.out], 'all', { constantWeights: true, nchwcBlock, passes });
      const ops = g.liveNodes([u.out]).map((n) => n.op);
      return { report, ops, model: toOnnx(g, { outputs: { out: u.out }, params: 'initializer' }) };
    };
    const f32 = build(false);
    const bf = build(true);
    const winograd = f32.ops.filter((o) => o.startsWith('ConvWinograd')).length;
    assert.ok(winograd >= 20, `${winograd} Winograd convolutions in the float32 graph`);
    assert.equal(bf.report['winograd-bf16'], winograd, 'every one rewritten');
    assert.equal(bf.ops.filter((o) => o.startsWith('ConvWinograd') && !o.endsWith('Bf16')).length, 0);
    assert.ok(f32.ops.length === bf.ops.length, 'nothing else changed');
    const rng = new Rng(4);
    const feeds = {
      x: { data: rng.normalArray(batch * 32 * 32), shape: [batch, 1, 32, 32] },
      t: { data: Float32Array.of(10, 700), shape: [batch] },
    };
    const run = async (model: Uint8Array) => {
      const s = await engine!.createSession(model, { threads: 2 });
      try {
        return (await s.run(feeds)).out!.data;
      } finally {
        await s.release();
      }
    };
    const want = await run(f32.model);
    const got = await run(bf.model);
    let err = 0;
    let size = 0;
    for (let i = 0; i < want.length; i++) {
      err += (got[i]! - want[i]!) ** 2;
      size += want[i]! ** 2;
    }
    const rel = Math.sqrt(err / size);
    // 44 layers of 8-significant-bit products, F(2x2): measured 6.4e-3 (with F(4x4)'s transforms 4.0e-2)
    assert.ok(rel > 1e-4 && rel < 0.02, `relative rms difference ${rel}`);
  });

  it('needs only the blocked layout, not winograd-convs; without blocked-layout, --precision bf16 is an error', async () => {
    const params = initParams(SMALL_UNET, 'fixture', 0);
    const target = { ...(await inferenceTargetOf(engine!)), bf16: true };
    const ops = (passes: string) => {
      const g = new Graph();
      g.fused = target.fused ?? [];
      const x = g.input('x', [1, 1, 32, 32]);
      const u = buildUNet(g, SMALL_UNET, params, x, g.input('t', [1]));
      const report = runPasses(g, [u.out], 'all', {
        constantWeights: true,
        nchwcBlock: target.nchwcBlock,
        passes,
      });
      return { report, ops: g.liveNodes([u.out]).map((n) => n.op) };
    };
    const all = ops('+winograd-bf16');
    const alone = ops('-winograd-convs,+winograd-bf16');
    assert.ok(all.report['winograd-bf16']! >= 20);
    assert.equal(alone.report['winograd-bf16'], all.report['winograd-bf16']);
    assert.equal(all.report['winograd-convs'], 0, 'nothing left for winograd-convs');
    assert.deepEqual(alone.ops, all.ops);
    assert.throws(
      () => buildInferenceModel(SMALL_UNET, params, 1, { ...target, passes: '-blocked-layout' }),
      /no convolution took the bfloat16 kernel \(DDPM_PASSES leaves out blocked-layout/,
    );
  });
});
