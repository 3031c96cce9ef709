// The inference model's fed constants (buildInferenceModel with feedsInPlace, onnx.ts toOnnxWithFeeds): on the
// native engine the Winograd filters leave the model's bytes and are fed with every run; the model's outputs are
// bit for bit those of the model with them baked in, and the denoiser feeds them itself.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../engine/native.js';
import { onnxruntimeNodeEngine } from '../engine/node.js';
import { initParams, SMALL_UNET } from '../nn/unet.js';
import { Rng } from '../util/rng.js';
import { buildInferenceModel, createDenoiser, inferenceTargetOf } from './denoiser.js';

const engine = nativeEngine();
const cfg = SMALL_UNET;
const params = initParams(cfg, 'fixture', 0);
const batch = 3;

describe('inference model with fed constants', {
  skip: engine ? false : 'the native binding is not built',
}, () => {
  it('feeds exactly the large Winograd filters; the outputs equal the baked-in model bit for bit', async () => {
    const target = await inferenceTargetOf(engine!);
    assert.equal(target.feedsInPlace, true);
    const fed = buildInferenceModel(cfg, params, batch, target);
    const baked = buildInferenceModel(cfg, params, batch, { ...target, feedsInPlace: false });
    assert.deepEqual(baked.feeds, {});
    const names = Object.keys(fed.feeds);
    assert.ok(names.length >= 20, `${names.length} fed constants`);
    let bytes = 0;
    for (const [name, t] of Object.entries(fed.feeds)) {
      assert.equal(
        t.data.length,
        t.shape.reduce((a, b) => a * b, 1),
        name,
      );
      assert.ok(t.data.byteLength >= 1 << 16, `${name}: ${t.data.byteLength} bytes`);
      assert.ok(
        t.shape.length === 3 && (t.shape[0] === 16 || t.shape[0] === 36),
        `${name}: [${t.shape}], U [P, C, K]`,
      );
      bytes += t.data.byteLength;
    }
    // the bytes left the model (protobuf framing aside)
    assert.ok(
      Math.abs(baked.model.length - fed.model.length - bytes) < 1e4,
      `${baked.model.length} - ${fed.model.length} vs ${bytes}`,
    );

    const rng = new Rng(5);
    const io = {
      x: { data: rng.normalArray(batch * 1024), shape: [batch, 1, 32, 32] },
      t: { data: Float32Array.of(0, 400, 999), shape: [batch] },
    };
    const run = async (model: Uint8Array, feeds: object) => {
      const s = await engine!.createSession(model, { threads: 1 });
      try {
        assert.deepEqual(
          [...s.inputNames].sort(),
          ['t', 'x', ...Object.keys(feeds)].sort(),
          'the fed constants are graph inputs',
        );
        return (await s.run({ ...feeds, ...io })).out!.data;
      } finally {
        await s.release();
      }
    };
    const want = await run(baked.model, {});
    const got = await run(fed.model, fed.feeds);
    assert.deepEqual(got, want);

    // the denoiser feeds them itself
    const den = await createDenoiser(engine!, cfg, params, batch, { threads: 1 });
    try {
      const out = await den.denoise(io.x, Int32Array.of(0, 400, 999));
      assert.deepEqual(out.data, want);
    } finally {
      await den.release();
    }
  });

  it('engines that copy their feeds get the weights baked in', async () => {
    const target = await inferenceTargetOf(onnxruntimeNodeEngine());
    assert.ok(!target.feedsInPlace);
    assert.deepEqual(buildInferenceModel(cfg, params, 1, target).feeds, {});
  });
});
