// fold-constant-reorders: the TypeScript Transpose and Pad against per-element index formulas, and the pass
// on an inference U-Net lowered to the blocked NCHWc layout: weight reorders folded, outputs identical.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../../engine/native.js';
import { initParams, TINY_UNET, buildUNet } from '../../nn/unet.js';
import { inferenceTargetOf } from '../../sample/denoiser.js';
import { Rng } from '../../util/rng.js';
import { Graph } from '../graph.js';
import { toOnnx } from '../onnx.js';
import { padData, transposeData } from './foldConstantReorders.js';
import { PASS_NAMES, runPasses } from './index.js';

const strides = (shape: readonly number[]) =>
  shape.map((_, i) => shape.slice(i + 1).reduce((a, b) => a * b, 1));
const unravel = (i: number, shape: readonly number[]) => {
  const st = strides(shape);
  return shape.map((d, a) => Math.floor(i / st[a]!) % d);
};

describe('fold-constant-reorders', () => {
  it('transposeData and padData match the index formulas (ranks 1-5, random shapes, perms and pads)', () => {
    const rng = new Rng(5);
    for (let trial = 0; trial < 60; trial++) {
      const r = 1 + (trial % 5);
      const shape = Array.from({ length: r }, () => 1 + rng.int(4));
      const size = shape.reduce((a, b) => a * b, 1);
      const x = Float32Array.from(rng.normalArray(size));
      // Transpose: out[j] = x[i] where out index k = in index permuted: k[a] = i[perm[a]].
      const perm = Array.from({ length: r }, (_, i) => i);
      for (let i = r - 1; i > 0; i--) {
        const j = rng.int(i + 1);
        [perm[i], perm[j]] = [perm[j]!, perm[i]!];
      }
      const outShape = perm.map((p) => shape[p]!);
      const t = transposeData(x, shape, perm);
      const st = strides(shape);
      for (let o = 0; o < size; o++) {
        const k = unravel(o, outShape);
        let src = 0;
        k.forEach((v, a) => {
          src += v * st[perm[a]!]!;
        });
        assert.equal(t[o], x[src], `transpose [${shape}] by [${perm}] at ${o}`);
      }
      // Pad with zeros: out[k] = x[k - begin] inside, 0 outside.
      const pads = Array.from({ length: 2 * r }, () => rng.int(3));
      const padded = shape.map((d, a) => d + pads[a]! + pads[a + r]!);
      const p = padData(x, shape, pads);
      assert.equal(
        p.length,
        padded.reduce((a, b) => a * b, 1),
      );
      for (let o = 0; o < p.length; o++) {
        const k = unravel(o, padded);
        const inside = k.every((v, a) => v >= pads[a]! && v < pads[a]! + shape[a]!);
        const want = inside ? x[k.reduce((s, v, a) => s + (v - pads[a]!) * st[a]!, 0)]! : 0;
        assert.equal(p[o], want, `pad [${shape}] by [${pads}] at ${o}`);
      }
    }
  });

  const native = nativeEngine();
  it('folds the NCHWc weight reorders of an inference U-Net; outputs bit-identical to ORT folding them', {
    skip: native ? false : 'the native binding is not built',
  }, async () => {
    const engine = native!;
    const target = await inferenceTargetOf(engine);
    const cfg = { ...TINY_UNET, outChannels: 3 }; // a conv_out padded to a whole block: the Pad folds too
    const params = initParams(cfg, 'fixture', 1);
    const build = (passes: readonly string[]) => {
      const g = new Graph();
      g.fused = target.fused ?? [];
      const x = g.input('x', [2, cfg.inChannels, cfg.resolution, cfg.resolution]);
      const t = g.input('t', [2]);
      const u = buildUNet(g, cfg, params, x, t);
      const report = runPasses(g, [u.out], 'all', {
        constantWeights: true,
        nchwcBlock: target.nchwcBlock,
        passes,
      });
      const model = toOnnx(g, { outputs: { out: u.out }, params: 'initializer' });
      const ops = g.liveNodes([u.out]).map((n) => n.op);
      return { report, model, ops };
    };
    const withFold = build(PASS_NAMES);
    const without = build(PASS_NAMES.filter((n) => n !== 'fold-constant-reorders'));
    assert.ok((withFold.report['fold-constant-reorders'] ?? 0) > 0, JSON.stringify(withFold.report));
    const transposes = (ops: string[]) => ops.filter((o) => o === 'Transpose' || o === 'Pad').length;
    assert.ok(transposes(withFold.ops) < transposes(without.ops), 'weight reorders left in the graph');
    const rng = new Rng(2);
    const feeds = {
      x: {
        data: Float32Array.from(rng.normalArray(2 * cfg.inChannels * cfg.resolution ** 2)),
        shape: [2, cfg.inChannels, cfg.resolution, cfg.resolution],
      },
      t: { data: Float32Array.from([3, 700]), shape: [2] },
    };
    const run = async (model: Uint8Array) => {
      const s = await engine.createSession(model, { threads: 1 });
      try {
        return (await s.run(feeds)).out!.data;
      } finally {
        await s.release();
      }
    };
    assert.deepEqual(await run(withFold.model), await run(without.model));
  });
});
