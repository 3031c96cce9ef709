// The evaluation pipeline: sharding and merging give the result of one run, a model's images do not depend
// on the batch they are drawn in, and the streamed statistics equal a float64 recomputation from the rows.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { diffusionFromSpec, PAPER_DIFFUSION } from '../model/spec.js';
import { gaussianOracle } from '../diffusion/testing.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import {
  computeMetrics,
  extractFeatures,
  type FeatureSet,
  mergeFeatureSets,
  type Reference,
  shardRanges,
} from './evaluate.js';
import type { FeatureNet } from './featureNet.js';
import { type ImageSource, modelImages } from './imageSource.js';

/** A feature network that is a fixed random linear map of the pixels (dims 6) with 4 "class" logits. */
function linearNet(per: number): FeatureNet {
  const dims = 6;
  const classes = 4;
  const w = new Rng(5).normalArray(per * (dims + classes));
  return {
    name: 'linear-test',
    weightsHash: '00000000',
    dims,
    classes,
    preprocess: 'none',
    channels: 1,
    async extract(x: Tensor) {
      const n = x.shape[0]!;
      const features = new Float32Array(n * dims);
      const logits = new Float32Array(n * classes);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < dims + classes; j++) {
          let s = 0;
          for (let k = 0; k < per; k++) s += x.data[i * per + k]! * w[j * per + k]!;
          if (j < dims) features[i * dims + j] = s;
          else logits[i * classes + j - dims] = s;
        }
      return { features, logits };
    },
    async release() {},
  };
}

/** Images whose pixels are a hash of their index: the same image whatever range asks for it. */
function indexedSource(n: number, per: number): ImageSource {
  return {
    description: 'indexed',
    n,
    imageShape: [1, 1, per],
    async images(start, count) {
      const data = new Float32Array(count * per);
      for (let i = 0; i < count; i++) data.set(new Rng(1000 + start + i).normalArray(per), i * per);
      return { data, shape: [count, 1, 1, per] };
    },
  };
}

function refOf(set: FeatureSet): Reference {
  return {
    source: 'test',
    hash: 'x',
    n: set.indices.length,
    mu: set.stats.mean(),
    sigma: set.stats.covariance(),
    ...(set.features ? { features: set.features } : {}),
  };
}

describe('evaluation pipeline', () => {
  it('shardRanges: every batch in exactly one shard, in batch order', () => {
    const all = shardRanges(103, 10);
    assert.equal(all.length, 11);
    assert.deepEqual(all.at(-1), { start: 100, count: 3 });
    const shards = [1, 2, 3].map((k) => shardRanges(103, 10, { k, of: 3 }));
    assert.deepEqual(
      shards[0]!.map((r) => r.start),
      [0, 30, 60, 90],
    );
    const starts = shards
      .flat()
      .map((r) => r.start)
      .sort((a, b) => a - b);
    assert.deepEqual(
      starts,
      all.map((r) => r.start),
    );
    assert.throws(() => shardRanges(10, 2, { k: 4, of: 3 }), /1 <= K <= N/);
  });

  it('three shards merged give the statistics, features, logits and metrics of one run', async () => {
    const per = 12;
    const src = indexedSource(97, per);
    const net = linearNet(per);
    const opts = { keepFeatures: true, keepLogits: true };
    const one = await extractFeatures(src, net, { ranges: shardRanges(97, 8), ...opts });
    const parts = await Promise.all(
      [3, 1, 2].map((k) => extractFeatures(src, net, { ranges: shardRanges(97, 8, { k, of: 3 }), ...opts })),
    );
    const merged = mergeFeatureSets(parts);
    assert.deepEqual(merged.indices, one.indices);
    assert.deepEqual(merged.features, one.features);
    assert.deepEqual(merged.logits, one.logits);
    allClose(merged.stats.covariance(), one.stats.covariance(), 1e-12, 1e-12, 'merged covariance');
    const ref = refOf(
      await extractFeatures(indexedSource(60, per), net, { ranges: shardRanges(60, 16), ...opts }),
    );
    const metrics = ['fid', 'is', 'kid', 'pr'] as const;
    const mo = { isSplits: 5, kidSubsets: 10, kidSubsetSize: 50, prK: 3, seed: 1 };
    const a = computeMetrics(one, ref, metrics, mo);
    const b = computeMetrics(merged, ref, metrics, mo);
    allClose([b.fid!], [a.fid!], 1e-10, 0, 'FID');
    assert.deepEqual([b.is, b.kid, b.precision, b.recall], [a.is, a.kid, a.precision, a.recall]);
    assert.throws(() => mergeFeatureSets([parts[0]!, parts[1]!]), /image \d+ is in no partial result/);
    assert.throws(() => mergeFeatureSets([parts[0]!, parts[0]!, parts[1]!, parts[2]!]), /appears in two/);
  });

  it('the batch size changes no statistic (features of the same images in batches of 1, 7, 97)', async () => {
    const per = 12;
    const src = indexedSource(97, per);
    const net = linearNet(per);
    const sets = await Promise.all(
      [1, 7, 97].map((b) =>
        extractFeatures(src, net, { ranges: shardRanges(97, b), keepFeatures: false, keepLogits: false }),
      ),
    );
    for (const s of sets.slice(1)) {
      allClose(s.stats.mean(), sets[0]!.stats.mean(), 1e-12, 1e-12, 'mean');
      allClose(s.stats.covariance(), sets[0]!.stats.covariance(), 1e-12, 1e-12, 'covariance');
    }
    // And the streamed covariance is np.cov of the rows, recomputed here in float64.
    const all = await extractFeatures(src, net, {
      ranges: shardRanges(97, 97),
      keepFeatures: true,
      keepLogits: false,
    });
    const d = net.dims;
    const f = all.features!;
    const mu = new Float64Array(d);
    for (let i = 0; i < 97; i++) for (let j = 0; j < d; j++) mu[j]! += f[i * d + j]! / 97;
    const cov = new Float64Array(d * d);
    for (let i = 0; i < 97; i++)
      for (let j = 0; j < d; j++)
        for (let k = 0; k < d; k++)
          cov[j * d + k]! += ((f[i * d + j]! - mu[j]!) * (f[i * d + k]! - mu[k]!)) / 96;
    allClose(all.stats.covariance(), cov, 1e-9, 1e-9, 'covariance vs two-pass float64');
  });

  it("a model's image i is the same whatever batch or shard draws it (per-image noise)", async () => {
    const diffusion = diffusionFromSpec({ ...PAPER_DIFFUSION, T: 50 });
    const denoise = gaussianOracle(diffusion.betas, 0.1, 0.5);
    for (const sampler of ['ddpm', 'ddim'] as const) {
      const choice = { sampler, steps: 10, eta: sampler === 'ddim' ? 0.5 : 0, seed: 3 };
      const src = modelImages(diffusion, denoise, [1, 2, 2], 9, choice, 'oracle');
      const whole = await src.images(0, 9);
      const a = await src.images(2, 3);
      const b = await src.images(5, 4);
      assert.deepEqual(a.data, whole.data.subarray(2 * 4, 5 * 4), `${sampler}: images 2..4`);
      assert.deepEqual(b.data, whole.data.subarray(5 * 4, 9 * 4), `${sampler}: images 5..8`);
      const other = modelImages(diffusion, denoise, [1, 2, 2], 9, { ...choice, seed: 4 }, 'oracle');
      assert.notDeepEqual((await other.images(0, 9)).data, whole.data, 'another seed, other images');
    }
  });

  it('a stopped run returns the batches done; with the rest (disjoint merge) it is the whole run', async () => {
    const per = 5;
    const net = linearNet(per);
    const src = indexedSource(23, per);
    const ranges = shardRanges(23, 4);
    const opts = { keepFeatures: true, keepLogits: true };
    const whole = await extractFeatures(src, net, { ranges, ...opts });
    let seen = 0;
    const head = await extractFeatures(src, net, {
      ranges,
      ...opts,
      onRangeDone: (soFar) => {
        seen = soFar.indices.length;
      },
      shouldStop: () => seen >= 8,
    });
    assert.deepEqual([...head.indices], [0, 1, 2, 3, 4, 5, 6, 7], 'two whole batches, then stopped');
    assert.equal(head.stats.count, 8);
    assert.equal(head.features!.length, 8 * net.dims);
    const rest = await extractFeatures(src, net, { ranges: ranges.slice(2), ...opts });
    const gap = await extractFeatures(src, net, { ranges: ranges.slice(3), ...opts });
    assert.throws(() => mergeFeatureSets([head, gap]), /image 8 is in no partial result/);
    assert.equal(mergeFeatureSets([head, gap], 'disjoint').indices.length, 23 - 4);
    const merged = mergeFeatureSets([rest, head], 'disjoint');
    assert.deepEqual([...merged.indices], [...whole.indices]);
    allClose(merged.features!, whole.features!, 0, 0, 'features');
    allClose(merged.logits!, whole.logits!, 0, 0, 'logits');
    allClose(merged.stats.covariance(), whole.stats.covariance(), 1e-12, 1e-12, 'covariance');
    // Shard 2/3's batches with the first of shard 1/3: distinct images, not all of them.
    const a = await extractFeatures(src, net, { ranges: shardRanges(23, 4, { k: 2, of: 3 }), ...opts });
    const b = await extractFeatures(src, net, { ranges: ranges.slice(0, 1), ...opts });
    assert.equal(mergeFeatureSets([a, b], 'disjoint').indices.length, a.indices.length + 4);
    assert.throws(() => mergeFeatureSets([a, a], 'disjoint'), /appears in two partial results/);
  });
});
