// The FID Inception against the independent PyTorch reference (reference/inception_fid.py, float64, BatchNorm
// not folded, pytorch-fid's own preprocessing order): pool_3 features and the fc logits with and without
// bias, on the same hash-built weights and images (3x32x32, and 1x28x28 for the channel repeat and a
// non-power-of-two size). Also the resize matrices against the bilinear formula and hand-computed rows,
// and the weight loader's errors.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { nodeEngine } from '../engine/node.js';
import { Graph } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { fnv1a } from '../nn/unet.js';
import { allClose } from '../util/allclose.js';
import { hashUniform, Rng } from '../util/rng.js';
import { encodeSafeTensors, type SafeTensor } from '../util/safetensors.js';
import { paramsHash, sha256Hex8 } from './hash.js';
import {
  bilinearResizeMatrix,
  buildFidInception,
  hashInceptionWeights,
  INCEPTION_PREPROCESS,
  inceptionFeatureNet,
  inceptionParamSpecs,
  inceptionWeightsFromTensors,
  loadInceptionWeights,
  resizeBilinear,
} from './inception.js';

interface Rec {
  shape: number[];
  sum: number;
  values: number[];
}
interface Fixture {
  format: string;
  param_count: number;
  params: [string, number[]][];
  param_sums: Record<string, number>;
  inputs: { name: string; seed_name: string; shape: number[]; sum: number }[];
  outputs: Record<string, { pool: Rec; logits_unbiased: Rec; logits: Rec }>;
}

const fx = JSON.parse(
  readFileSync(new URL('../../test/fixtures/inception_fid.json', import.meta.url), 'utf8'),
) as Fixture;

const engine = nodeEngine();
const weights = hashInceptionWeights();

function inputOf(name: string): { data: Float32Array; shape: number[] } {
  const spec = fx.inputs.find((i) => i.name === name)!;
  const n = spec.shape.reduce((a, d) => a * d, 1);
  return { data: hashUniform(fnv1a(spec.seed_name), n, 1), shape: spec.shape };
}

function rms(v: readonly number[]): number {
  return Math.sqrt(v.reduce((a, x) => a + x * x, 0) / v.length);
}

/**
 * rtol 1e-4 plus an absolute floor of 1e-4 x the output's RMS: a feature or logit near zero is a sum of
 * terms of the output's scale that cancel, so its float32 error follows that scale, not its own value.
 * (PyTorch's float32 forward is within 5e-7 of the float64 reference relative to the largest output.)
 */
function closeToReference(got: Float32Array, want: Rec, what: string): void {
  assert.equal(got.length, want.values.length, `${what}: length`);
  allClose(got, want.values, 1e-4, 1e-4 * rms(want.values), what);
}

describe('FID Inception vs the PyTorch reference (reference/inception_fid.py)', () => {
  it('parameter list: names, shapes and order of the FID weights file; hash weights equal the reference', () => {
    assert.equal(fx.format, 'ddpm-ts/inception-fid-fixture/v1');
    const specs = inceptionParamSpecs();
    assert.deepEqual(
      specs.map((s) => [s.name, [...s.shape]]),
      fx.params,
    );
    assert.equal(
      specs.reduce((a, s) => a + s.shape.reduce((x, d) => x * d, 1), 0),
      fx.param_count,
    );
    for (const s of specs) {
      const sum = weights.params.get(s.name)!.reduce((a, v) => a + v, 0);
      allClose([sum], [fx.param_sums[s.name]!], 1e-9, 1e-9, `sum of ${s.name}`);
    }
    for (const i of fx.inputs) {
      allClose([inputOf(i.name).data.reduce((a, v) => a + v, 0)], [i.sum], 1e-12, 1e-9, `sum of ${i.name}`);
    }
  });

  it('pool, logits and unbiased logits of 1x28x28 images (channel repeat) from the graph', async () => {
    const x = inputOf('x1x28');
    const g = new Graph();
    const net = buildFidInception(g, weights.params, g.input('x', x.shape));
    assert.deepEqual(net.pool.shape, [2, 2048]);
    assert.deepEqual(net.logits.shape, [2, 1008]);
    const outputs = { pool: net.pool, logits: net.logits, logitsUnbiased: net.logitsUnbiased };
    const s = await engine.createSession(toOnnx(g, { outputs, params: 'initializer' }));
    try {
      const got = await s.run({ x });
      const want = fx.outputs.x1x28!;
      closeToReference(got.pool!.data, want.pool, 'x1x28 pool');
      closeToReference(got.logits!.data, want.logits, 'x1x28 logits');
      closeToReference(got.logitsUnbiased!.data, want.logits_unbiased, 'x1x28 logits without bias');
    } finally {
      await s.release();
    }
  });

  it('the FeatureNet: 8 images of 3x32x32 at batch 3 (split and padded), then 1x28x28 (new session)', async () => {
    const net = await inceptionFeatureNet(engine, weights, { batch: 3 });
    try {
      assert.equal(net.name, 'inception-v3-fid');
      assert.equal(net.weightsHash, paramsHash(weights.params));
      assert.deepEqual([net.dims, net.classes, net.channels], [2048, 1008, 3]);
      assert.equal(net.preprocess, INCEPTION_PREPROCESS);
      for (const name of ['x3x32', 'x1x28']) {
        const got = await net.extract(inputOf(name));
        closeToReference(got.features, fx.outputs[name]!.pool, `${name} features`);
        closeToReference(got.logits!, fx.outputs[name]!.logits_unbiased, `${name} logits (unbiased)`);
      }
    } finally {
      await net.release();
    }
  });
});

/** Bilinear resize of one [h, w] image to [size, size], straight from the definition, in float64. */
function bilinearDirect(img: Float32Array, h: number, w: number, size: number): Float64Array {
  const source = (i: number, n: number) => {
    const s = Math.max(0, ((i + 0.5) * n) / size - 0.5); // half-pixel centres; PyTorch clamps below at 0
    const lo = Math.floor(s);
    return { lo, hi: Math.min(lo + 1, n - 1), t: s - lo };
  };
  const out = new Float64Array(size * size);
  for (let i = 0; i < size; i++) {
    const r = source(i, h);
    for (let j = 0; j < size; j++) {
      const c = source(j, w);
      const top = img[r.lo * w + c.lo]! * (1 - c.t) + img[r.lo * w + c.hi]! * c.t;
      const bottom = img[r.hi * w + c.lo]! * (1 - c.t) + img[r.hi * w + c.hi]! * c.t;
      out[i * size + j] = top * (1 - r.t) + bottom * r.t;
    }
  }
  return out;
}

describe('bilinear resize (PyTorch, align_corners=False)', () => {
  it('rows by hand: 2 -> 4 and 4 -> 2; every row sums to 1; same size is the identity', () => {
    assert.deepEqual(Array.from(bilinearResizeMatrix(2, 4)), [1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1]);
    assert.deepEqual(Array.from(bilinearResizeMatrix(4, 2)), [0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5]);
    for (const [a, b] of [
      [32, 299],
      [28, 299],
      [400, 299],
    ] as const) {
      const m = bilinearResizeMatrix(a, b);
      for (let i = 0; i < b; i++) {
        const row = m.subarray(i * a, (i + 1) * a).reduce((s, v) => s + v, 0);
        assert.ok(Math.abs(row - 1) < 1e-12, `${a} -> ${b} row ${i} sums to ${row}`);
      }
    }
    const id = bilinearResizeMatrix(5, 5);
    for (let i = 0; i < 5; i++) for (let j = 0; j < 5; j++) assert.equal(id[i * 5 + j], i === j ? 1 : 0);
  });

  for (const [h, w] of [
    [32, 32],
    [28, 20],
    [300, 400],
  ] as const) {
    it(`the graph's two MatMuls resize ${h}x${w} to 299x299 as the direct formula`, async () => {
      const shape = [2, 1, h, w];
      const x = new Rng(h + w).normalArray(2 * h * w);
      const g = new Graph();
      const y = resizeBilinear(g, g.input('x', shape), 299);
      const s = await engine.createSession(toOnnx(g, { outputs: { y }, params: 'initializer' }));
      try {
        const got = (await s.run({ x: { data: x, shape } })).y!;
        assert.deepEqual(got.shape, [2, 1, 299, 299]);
        for (let b = 0; b < 2; b++) {
          const want = bilinearDirect(x.subarray(b * h * w, (b + 1) * h * w), h, w, 299);
          allClose(got.data.subarray(b * 299 * 299, (b + 1) * 299 * 299), want, 1e-5, 1e-5, `image ${b}`);
        }
      } finally {
        await s.release();
      }
    });
  }
});

describe('loading the weights', () => {
  const dir = mkdtempSync(join(tmpdir(), 'inception-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const tensors = () =>
    new Map<string, SafeTensor>(
      inceptionParamSpecs().map((s) => [s.name, { shape: s.shape, data: weights.params.get(s.name)! }]),
    );

  it('a .safetensors file: every tensor, the file hash; num_batches_tracked is ignored', () => {
    const t = tensors();
    t.set('Conv2d_1a_3x3.bn.num_batches_tracked', { shape: [], data: Float32Array.of(0) });
    const parts = encodeSafeTensors(t);
    const path = join(dir, 'w.safetensors');
    writeFileSync(path, Buffer.concat(parts));
    const w = loadInceptionWeights(path);
    assert.equal(w.hash, sha256Hex8(...parts));
    assert.equal(w.params.size, inceptionParamSpecs().length);
    assert.deepEqual(w.params.get('fc.bias'), weights.params.get('fc.bias'));
  });

  it('errors name the tensor: wrong shape, missing key, unexpected key, missing file', async () => {
    const bad = tensors();
    bad.set('Mixed_6b.branch7x7_2.conv.weight', {
      shape: [128, 128, 7, 1],
      data: new Float32Array(128 * 128 * 7),
    });
    assert.throws(
      () => inceptionWeightsFromTensors(bad, 'w.pth'),
      /w\.pth: Mixed_6b\.branch7x7_2\.conv\.weight has shape \[128,128,7,1\], expected \[128,128,1,7\]/,
    );
    const missing = tensors();
    missing.delete('Mixed_7c.branch_pool.bn.running_var');
    assert.throws(
      () => inceptionWeightsFromTensors(missing, 'w.pth'),
      /1 tensor\(s\) missing, e\.g\. Mixed_7c\.branch_pool\.bn\.running_var/,
    );
    const extra = tensors();
    extra.set('AuxLogits.fc.weight', { shape: [1000, 768], data: new Float32Array(768000) });
    assert.throws(
      () => inceptionWeightsFromTensors(extra, 'w.pth'),
      /unexpected tensor\(s\) AuxLogits\.fc\.weight/,
    );
    assert.throws(
      () => loadInceptionWeights(join(dir, 'nothing.pth')),
      /no such file.*pt_inception-2015-12-05-6726825d\.pth \(about 91 MB.*--inception PATH.*DDPM_INCEPTION/,
    );
    await assert.rejects(inceptionFeatureNet(engine, undefined), /no weights given.*--inception PATH/);
  });
});
