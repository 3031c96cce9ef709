// quantize-int8: the uint8 and int8 parameters against their closed forms, and the pass on a tiny U-Net
// calibrated on its own sampling inputs: every parameter conv quantized, outputs near the float32 model's.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nodeEngine } from '../../engine/node.js';
import { diffusionFromSpec } from '../../model/spec.js';
import { loadModel } from '../../model/weights.js';
import { buildUNet } from '../../nn/unet.js';
import { calibrateConvs } from '../../sample/calibrate.js';
import { createDenoiser } from '../../sample/denoiser.js';
import { relErr } from '../../util/allclose.js';
import { Rng } from '../../util/rng.js';
import { Graph } from '../graph.js';
import { runPasses } from './index.js';
import { int8PerChannel, uint8Params } from './quantizeInt8.js';

describe('quantize-int8', () => {
  it('uint8 scale and zero point cover the range with 0 exact; int8 weights within half a step per channel', () => {
    for (const [lo, hi] of [
      [-0.28, 3.1],
      [0.5, 2],
      [-4, -1],
      [-1, 1],
    ] as const) {
      const { scale, zero } = uint8Params(lo, hi);
      const a = Math.min(lo, 0);
      const b = Math.max(hi, 0);
      assert.ok(Math.abs(scale - (b - a) / 255) < 1e-12);
      assert.ok(Number.isInteger(zero) && zero >= 0 && zero <= 255);
      // The ends are representable to half a step; 0 maps to the zero point exactly.
      assert.ok(Math.abs((0 - zero) * scale - a) <= scale / 2 + 1e-12, `${lo}..${hi}: low end`);
      assert.ok(Math.abs((255 - zero) * scale - b) <= scale / 2 + 1e-12, `${lo}..${hi}: high end`);
    }
    const rng = new Rng(4);
    const o = 5;
    const w = Float32Array.from(rng.normalArray(o * 18), (v, i) => v * (1 + (i % o)));
    const { q, scale } = int8PerChannel(w, o);
    for (let c = 0; c < o; c++) {
      let m = 0;
      for (let i = 0; i < 18; i++) m = Math.max(m, Math.abs(w[c * 18 + i]!));
      assert.ok(Math.abs(scale[c]! - m / 127) <= 1e-7 * m);
      for (let i = 0; i < 18; i++) {
        const k = c * 18 + i;
        assert.ok(Math.abs(q[k]! * scale[c]! - w[k]!) <= scale[c]! / 2 + 1e-7, `w[${k}]`);
      }
    }
  });

  it('the shipped MNIST model, calibrated on its own chain: every parameter conv quantized, output within a few percent', async () => {
    const m = loadModel('models/mnist');
    const cfg = m.spec.unet;
    const params = m.params;
    const engine = nodeEngine();
    const diffusion = diffusionFromSpec(m.spec.diffusion);
    const ranges = await calibrateConvs(
      engine,
      cfg,
      params,
      diffusion,
      { threads: 1 },
      { images: 4, steps: 10 },
    );
    // Every conv with a parameter weight got a finite range containing its values.
    const g = new Graph();
    const u = buildUNet(g, cfg, params, g.input('x', [2, 1, 32, 32]), g.input('t', [2]));
    const report = runPasses(g, [u.out], 'forward', {
      constantWeights: true,
      passes: '+quantize-int8',
      calibration: ranges,
    });
    assert.ok(ranges.size > 5);
    assert.equal(report['quantize-int8'], ranges.size, 'every calibrated conv quantized');
    for (const [name, r] of ranges)
      assert.ok(Number.isFinite(r.x[0]) && r.x[0] <= r.x[1] && r.y[0] <= r.y[1], name);
    // int8 against float32 on fresh inputs: close, not equal.
    const B = 4;
    const f = await createDenoiser(engine, cfg, params, B, { threads: 1 });
    const q = await createDenoiser(engine, cfg, params, B, { threads: 1, calibration: ranges });
    try {
      const rng = new Rng(9);
      const x = { data: Float32Array.from(rng.normalArray(B * 1024)), shape: [B, 1, 32, 32] };
      const t = Int32Array.of(50, 300, 600, 950);
      const a = (await f.denoise(x, t)).data;
      const b = (await q.denoise(x, t)).data;
      const e = relErr(b, a);
      assert.ok(e > 1e-5 && e < 0.1, `relative error of the int8 output ${e}`);
    } finally {
      await f.release();
      await q.release();
    }
  });
});
