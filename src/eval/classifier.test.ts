// The evaluation classifier: its forward (training and inference graphs) against a float64 TypeScript
// transcription, every parameter's gradient against float64 central differences of that transcription and
// the input gradient against finite differences through the engine (gradcheck.ts); the shipped weights'
// accuracy on the held-out test splits; the FeatureNet's batch independence; clear loading errors.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { UsageError } from '../cli/args.js';
import { classifierCommand, testSpecFor } from '../cli/classifier.js';
import { U8Dataset } from '../data/dataset.js';
import { resizeCenterCrop } from '../data/resize.js';
import { FASHION_MNIST_DIRS, openDataset } from '../data/open.js';
import { nodeEngine } from '../engine/node.js';
import { gradCheck } from '../graph/gradcheck.js';
import type { ParamStore } from '../nn/unet.js';
import { allClose } from '../util/allclose.js';
import { Rng } from '../util/rng.js';
import { encodeSafeTensors } from '../util/safetensors.js';
import {
  type ClassifierConfig,
  ClassifierError,
  classifierFeatureNet,
  classifierOn,
  classifierParamSpecs,
  createClassifierRunner,
  crossEntropy,
  featureDims,
  GROUPNORM_EPS,
  initClassifierParams,
  loadClassifier,
  saveClassifier,
} from './classifier.js';
import { accuracy, augmentInto, buildClassifierTrainModel, trainClassifier } from './classifierTrain.js';

const engine = nodeEngine();
const root = mkdtempSync(join(tmpdir(), 'ddpm-classifier-'));
after(() => rmSync(root, { recursive: true, force: true }));
const shipped = (d: string) => fileURLToPath(new URL(`../../models/classifiers/${d}`, import.meta.url));

// ---- float64 transcription of the network (conv3x3 pad 1 -> GroupNorm -> SiLU, mean pool, linear) ----

type P64 = Map<string, Float64Array>;

function conv3x3(
  x: Float64Array,
  c: number,
  h: number,
  w: number,
  wt: Float64Array,
  b: Float64Array,
  o: number,
  s: number,
) {
  const oh = Math.floor((h - 1) / s) + 1;
  const ow = Math.floor((w - 1) / s) + 1;
  const y = new Float64Array(o * oh * ow);
  for (let k = 0; k < o; k++)
    for (let i = 0; i < oh; i++)
      for (let j = 0; j < ow; j++) {
        let acc = b[k]!;
        for (let ci = 0; ci < c; ci++)
          for (let di = 0; di < 3; di++)
            for (let dj = 0; dj < 3; dj++) {
              const yi = i * s + di - 1;
              const xj = j * s + dj - 1;
              if (yi < 0 || yi >= h || xj < 0 || xj >= w) continue;
              acc += wt[((k * c + ci) * 3 + di) * 3 + dj]! * x[(ci * h + yi) * w + xj]!;
            }
        y[(k * oh + i) * ow + j] = acc;
      }
  return { y, h: oh, w: ow };
}

function groupNormSilu(
  x: Float64Array,
  c: number,
  hw: number,
  groups: number,
  gamma: Float64Array,
  beta: Float64Array,
) {
  const per = (c / groups) * hw;
  const y = new Float64Array(x.length);
  for (let gi = 0; gi < groups; gi++) {
    let mean = 0;
    for (let k = 0; k < per; k++) mean += x[gi * per + k]!;
    mean /= per;
    let v = 0;
    for (let k = 0; k < per; k++) v += (x[gi * per + k]! - mean) ** 2;
    const rstd = 1 / Math.sqrt(v / per + GROUPNORM_EPS);
    for (let k = 0; k < per; k++) {
      const ch = Math.floor((gi * per + k) / hw);
      y[gi * per + k] = (x[gi * per + k]! - mean) * rstd * gamma[ch]! + beta[ch]!;
    }
  }
  return y;
}

/** Features and logits of one image (C x H x W, float64); mask (dropout) scales the features into the head. */
function forward64(c: ClassifierConfig, p: P64, img: Float64Array, mask?: ArrayLike<number>) {
  let h: Float64Array = img;
  let [ch, hh, ww] = [c.inChannels, c.resolution, c.resolution];
  c.widths.forEach((o, i) => {
    const k = i + 1;
    const r = conv3x3(h, ch, hh, ww, p.get(`conv${k}.weight`)!, p.get(`conv${k}.bias`)!, o, c.strides[i]!);
    [ch, hh, ww] = [o, r.h, r.w];
    const n =
      c.groups > 0
        ? groupNormSilu(r.y, o, hh * ww, c.groups, p.get(`norm${k}.weight`)!, p.get(`norm${k}.bias`)!)
        : r.y;
    h = n.map((v) => v / (1 + Math.exp(-v)));
  });
  const features = new Float64Array(ch);
  for (let k = 0; k < ch; k++) {
    for (let q = 0; q < hh * ww; q++) features[k]! += h[k * hh * ww + q]!;
    features[k]! /= hh * ww;
  }
  const fw = p.get('fc.weight')!;
  const logits = Float64Array.from(p.get('fc.bias')!);
  for (let j = 0; j < c.classes; j++)
    for (let k = 0; k < ch; k++) logits[j]! += fw[j * ch + k]! * features[k]! * (mask?.[k] ?? 1);
  return { features, logits };
}

/** Mean cross-entropy over a batch, float64. */
function loss64(
  c: ClassifierConfig,
  p: P64,
  xs: Float64Array,
  labels: readonly number[],
  mask?: Float32Array,
): number {
  const per = c.inChannels * c.resolution * c.resolution;
  let sum = 0;
  labels.forEach((l, i) => {
    const d = featureDims(c);
    const { logits } = forward64(
      c,
      p,
      xs.subarray(i * per, (i + 1) * per),
      mask?.subarray(i * d, (i + 1) * d),
    );
    const m = Math.max(...logits);
    const lse = m + Math.log(logits.reduce((a, v) => a + Math.exp(v - m), 0));
    sum += lse - logits[l]!;
  });
  return sum / labels.length;
}

const to64 = (store: ParamStore): P64 => new Map([...store].map(([k, v]) => [k, Float64Array.from(v)]));

// ---- a tiny config: 8x8 images, two convs (one strided), GroupNorm with 2 channels per group ----

const TINY: ClassifierConfig = {
  inChannels: 1,
  resolution: 8,
  widths: [4, 6],
  strides: [1, 2],
  groups: 2,
  classes: 3,
};

function tinySetup(batch: number) {
  const params = initClassifierParams(TINY, 7);
  // Non-trivial norms and biases, so every parameter's gradient is exercised.
  const rng = new Rng(3);
  for (const s of classifierParamSpecs(TINY)) {
    if (s.kind === 'bias' || s.kind === 'normBias' || s.kind === 'normWeight') {
      const d = params.get(s.name)!;
      for (let i = 0; i < d.length; i++)
        d[i] = (s.kind === 'normWeight' ? 1 : 0) + 0.3 * (2 * rng.uniform() - 1);
    }
  }
  const x = Float32Array.from({ length: batch * 64 }, () => 2 * rng.uniform() - 1);
  const labels = Array.from({ length: batch }, (_, i) => i % TINY.classes);
  return { params, x, labels };
}

describe('classifier graph vs float64', () => {
  it('inference forward: features and logits match the float64 transcription', async () => {
    const { params, x } = tinySetup(5);
    const runner = await createClassifierRunner(engine, TINY, params, 3, { threads: 1 });
    const got = await runner.run({ data: x, shape: [5, 1, 8, 8] });
    await runner.release();
    const p = to64(params);
    const wantF: number[] = [];
    const wantL: number[] = [];
    for (let i = 0; i < 5; i++) {
      const r = forward64(TINY, p, Float64Array.from(x.subarray(i * 64, (i + 1) * 64)));
      wantF.push(...r.features);
      wantL.push(...r.logits);
    }
    allClose(got.features, wantF, 1e-5, 1e-6, 'features');
    allClose(got.logits, wantL, 1e-5, 1e-6, 'logits');
  });

  it('training graph with dropout: loss and every parameter gradient match float64 central differences', async () => {
    const batch = 4;
    const { params, x, labels } = tinySetup(batch);
    // Every other feature dropped (p = 0.5: kept ones scaled by 2), a different pattern per image.
    const mask = Float32Array.from({ length: batch * 6 }, (_, i) => ((i + Math.floor(i / 6)) % 2 ? 2 : 0));
    const session = await engine.createSession(buildClassifierTrainModel(TINY, params, batch, 0, true), {
      threads: 1,
    });
    const onehot = new Float32Array(batch * TINY.classes);
    labels.forEach((l, i) => {
      onehot[i * TINY.classes + l] = 1;
    });
    const feeds: Record<string, { data: Float32Array; shape: readonly number[] }> = {
      x: { data: x, shape: [batch, 1, 8, 8] },
      onehot: { data: onehot, shape: [batch, TINY.classes] },
      'dropout.features': { data: mask, shape: [batch, 6] },
    };
    const specs = classifierParamSpecs(TINY);
    for (const s of specs) feeds[s.name] = { data: params.get(s.name)!, shape: s.shape };
    const out = await session.run(feeds);
    await session.release();
    const p = to64(params);
    const x64 = Float64Array.from(x);
    allClose([out.loss!.data[0]!], [loss64(TINY, p, x64, labels, mask)], 1e-5, 0, 'loss');
    const h = 1e-5;
    for (const s of specs) {
      const v = p.get(s.name)!;
      const want = Array.from(v, (_, i) => {
        const keep = v[i]!;
        v[i] = keep + h;
        const up = loss64(TINY, p, x64, labels, mask);
        v[i] = keep - h;
        const down = loss64(TINY, p, x64, labels, mask);
        v[i] = keep;
        return (up - down) / (2 * h);
      });
      allClose(out[`grad.${s.name}`]!.data, want, 1e-3, 2e-5, `grad.${s.name}`);
    }
  });

  it('input and parameter gradients through network and loss vs finite differences (gradcheck)', async () => {
    const { params, labels } = tinySetup(3);
    const onehot = new Float32Array(3 * TINY.classes);
    labels.forEach((l, i) => {
      onehot[i * TINY.classes + l] = 1;
    });
    const shapes: Record<string, readonly number[]> = { x: [3, 1, 8, 8] };
    for (const s of classifierParamSpecs(TINY)) shapes[s.name] = s.shape;
    const rs = await gradCheck(
      engine,
      shapes,
      (g, xs) => {
        const p = new Map(classifierParamSpecs(TINY).map((s) => [s.name, xs[s.name]!]));
        const net = classifierOn(g, TINY, p, xs.x!, 'training');
        const loss = crossEntropy(g, net.logits, g.constant(onehot, [3, TINY.classes]));
        return g.add(g.reshape(loss, [1]), g.reshape(g.reduceSum(net.features, [0, 1], false), [1]));
      },
      { h: 1e-2, directions: 2, init: (name, rng, n) => params.get(name)?.slice() ?? rng.normalArray(n) },
    );
    assert.equal(rs.length, 2 * Object.keys(shapes).length);
    for (const r of rs) {
      assert.ok(
        Math.abs(r.analytic - r.numeric) <= 2e-3 * Math.max(1, Math.abs(r.numeric)),
        `d/d${r.input}: analytic ${r.analytic} vs numeric ${r.numeric}`,
      );
    }
  });
});

describe('training pieces', () => {
  it('augmentation shifts with background fill and mirrors', () => {
    const ds = openDataset('mnist:test');
    const out = new Float32Array(1024);
    const ref = new Float32Array(1024);
    ds.get(0, ref, 0);
    augmentInto(ds, 0, out, 0, 2, -1, false); // right 2, up 1
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++) {
        const sy = y + 1;
        const sx = x - 2;
        const want = sy < 32 && sx >= 0 ? ref[sy * 32 + sx]! : -1;
        assert.equal(out[y * 32 + x], want, `pixel ${y},${x}`);
      }
    augmentInto(ds, 0, out, 0, 0, 0, true);
    for (let y = 0; y < 32; y++)
      for (let x = 0; x < 32; x++) assert.equal(out[y * 32 + x], ref[y * 32 + 31 - x]);
  });
});

describe('shipped classifiers', () => {
  it('mnist-classifier: stated accuracy (>= 99%) on the 1,000 held-out digits; features match float64', async () => {
    const m = loadClassifier(shipped('mnist'));
    assert.equal(m.file.name, 'mnist-classifier');
    assert.equal(m.file.testData, 'mnist:test');
    const test = openDataset('mnist:test');
    const runner = await createClassifierRunner(engine, m.file.architecture, m.params, 100, { threads: 1 });
    const acc = await accuracy((x) => runner.run(x), test, 10);
    await runner.release();
    assert.ok(acc >= 0.99, `accuracy ${acc} below 0.99`);
    allClose([acc], [m.file.testAccuracy!], 0, 1.5e-3, 'accuracy vs config.json');
    // The FeatureNet's features of a few digits against the float64 transcription of the network.
    const net = await classifierFeatureNet(engine, shipped('mnist'), { batch: 4, threads: 1 });
    const x = new Float32Array(3 * 1024);
    for (let i = 0; i < 3; i++) test.get(i * 97, x, i * 1024);
    const got = await net.extract({ data: x, shape: [3, 1, 32, 32] });
    await net.release();
    const p = to64(m.params);
    const want: number[] = [];
    for (let i = 0; i < 3; i++)
      want.push(
        ...forward64(m.file.architecture, p, Float64Array.from(x.subarray(i * 1024, (i + 1) * 1024)))
          .features,
      );
    allClose(got.features, want, 1e-4, 1e-5, 'features vs float64');
  });

  const fashion = FASHION_MNIST_DIRS.some((d) => existsSync(join(d, 't10k-images-idx3-ubyte.gz')));
  it('fashion-mnist-classifier: >= 90% on a fixed fifth of the test split (every 5th image, 2,000)', {
    skip: fashion ? false : 'Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)',
  }, async () => {
    const m = loadClassifier(shipped('fashion-mnist'));
    assert.equal(m.file.name, 'fashion-mnist-classifier');
    assert.equal(m.file.testData, 'fashion-mnist:test');
    assert.ok(m.file.testAccuracy! >= 0.9, `config.json states ${m.file.testAccuracy}`);
    const full = openDataset('fashion-mnist:test');
    assert.equal(full.n, 10000);
    const keep = Array.from({ length: 2000 }, (_, k) => 5 * k);
    const test = new U8Dataset({
      name: 'fashion-mnist:test, every 5th',
      n: keep.length,
      channels: 1,
      height: 32,
      width: 32,
      canFlip: true,
      pixels: Uint8Array.from(keep.flatMap((i) => [...full.bytes(i)])),
      labels: Uint8Array.from(keep, (i) => full.labels![i]!),
    });
    const runner = await createClassifierRunner(engine, m.file.architecture, m.params, 250, { threads: 1 });
    const acc = await accuracy((x) => runner.run(x), test, 10);
    await runner.release();
    assert.ok(acc >= 0.9, `accuracy ${acc} below 0.90`);
  });
});

describe('FeatureNet', () => {
  it('features and logits do not depend on the batch split (7 vs 64); metadata from the folder', async () => {
    const dir = shipped('mnist');
    const a = await classifierFeatureNet(engine, dir, { batch: 7, threads: 1 });
    const b = await classifierFeatureNet(engine, dir, { batch: 64, threads: 1 });
    const test = openDataset('mnist:test');
    const n = 20;
    const x = new Float32Array(n * 1024);
    for (let i = 0; i < n; i++) test.get(i, x, i * 1024);
    const fa = await a.extract({ data: x, shape: [n, 1, 32, 32] });
    const fb = await b.extract({ data: x, shape: [n, 1, 32, 32] });
    assert.equal(fa.features.length, n * 128);
    allClose(fa.features, fb.features, 1e-5, 1e-6, 'features, batch 7 vs 64');
    allClose(fa.logits!, fb.logits!, 1e-5, 1e-5, 'logits, batch 7 vs 64');
    const hash = createHash('sha256')
      .update(readFileSync(join(dir, 'model.safetensors')))
      .digest('hex');
    assert.deepEqual(
      [a.name, a.weightsHash, a.dims, a.classes, a.preprocess, a.channels],
      ['mnist-classifier', hash.slice(0, 8), 128, 10, a.preprocess, 1],
    );
    assert.match(a.preprocess, /^none at 1x32x32; other sizes resized to 32x32/);
    await assert.rejects(
      () => a.extract({ data: new Float32Array(3 * 28 * 28), shape: [1, 3, 28, 28] }),
      (e: Error) =>
        e instanceof ClassifierError &&
        /takes 1-channel images/.test(e.message) &&
        /--features inception/.test(e.message),
    );
    // 16x16 images are upsampled to 32x32 first: the same as feeding the resized images directly. The
    // bilinear 2x upsampling of a constant image is that constant, checked through the resize too.
    const small = new Float32Array(2 * 256);
    for (let i = 0; i < small.length; i++) small[i] = Math.sin(i * 0.37);
    const up = new Float32Array(2 * 1024);
    for (let i = 0; i < 2; i++)
      up.set(resizeCenterCrop(small.subarray(i * 256, (i + 1) * 256), 1, 16, 16, 32), i * 1024);
    const f16 = await a.extract({ data: small, shape: [2, 1, 16, 16] });
    const f32 = await a.extract({ data: up, shape: [2, 1, 32, 32] });
    allClose(f16.features, f32.features, 0, 0, 'resized inside = resized outside');
    const flat = resizeCenterCrop(new Float32Array(256).fill(0.25), 1, 16, 16, 32);
    allClose(flat, new Float32Array(1024).fill(0.25), 0, 1e-7, 'a constant image stays constant');
    await a.release();
    await b.release();
  });
});

describe('loading errors', () => {
  const params = initClassifierParams(TINY, 1);
  const file = { format: 'ddpm-ts/classifier/v1' as const, name: 'tiny-classifier', architecture: TINY };
  const folder = (name: string) => {
    const d = join(root, name);
    saveClassifier(d, file, params);
    return d;
  };

  it('round trip: weights and hash', () => {
    const d = folder('ok');
    const m = loadClassifier(d);
    for (const [k, v] of params) allClose(m.params.get(k)!, v, 0, 0, k);
    assert.match(m.weightsHash, /^[0-9a-f]{8}$/);
  });

  it('each problem names the file and what to do', () => {
    const expect = (dir: string, re: RegExp) =>
      assert.throws(
        () => loadClassifier(dir),
        (e: Error) => e instanceof ClassifierError && re.test(e.message),
      );
    expect(join(root, 'nowhere'), /is not a folder.*config\.json and model\.safetensors/);
    const noWeights = folder('no-weights');
    rmSync(join(noWeights, 'model.safetensors'));
    expect(noWeights, /no model\.safetensors in/);
    const badJson = folder('bad-json');
    writeFileSync(join(badJson, 'config.json'), '{ nope');
    expect(badJson, /config\.json: not valid JSON/);
    const unet = folder('unet');
    writeFileSync(join(unet, 'config.json'), JSON.stringify({ format: 'ddpm-ts/model/v1' }));
    expect(unet, /format is "ddpm-ts\/model\/v1".*not a classifier folder/);
    const badArch = folder('bad-arch');
    writeFileSync(
      join(badArch, 'config.json'),
      JSON.stringify({ ...file, architecture: { ...TINY, strides: [1] } }),
    );
    expect(badArch, /strides must list one stride per conv/);
    const missing = folder('missing');
    const tensors = classifierParamSpecs(TINY)
      .filter((s) => s.name !== 'fc.bias')
      .map((s) => [s.name, { data: params.get(s.name)!, shape: s.shape }] as const);
    writeFileSync(join(missing, 'model.safetensors'), Buffer.concat(encodeSafeTensors(tensors)));
    expect(missing, /tensor fc\.bias is missing/);
    const shape = folder('shape');
    writeFileSync(
      join(shape, 'config.json'),
      JSON.stringify({ ...file, architecture: { ...TINY, widths: [4, 8], groups: 2 } }),
    );
    expect(shape, /conv2\.weight has shape \[6,4,3,3\], the architecture needs \[8,4,3,3\]/);
  });
});

describe('training and the CLI', () => {
  const SMALL: ClassifierConfig = {
    ...TINY,
    resolution: 32,
    widths: [8, 16],
    strides: [2, 2],
    groups: 4,
    classes: 10,
  };

  it('trainClassifier is deterministic for a seed (weights and losses), and the seed matters', async () => {
    const data = openDataset('mnist:test');
    const run = (seed: number) =>
      trainClassifier(engine, {
        data,
        testData: data,
        cfg: SMALL,
        epochs: 1,
        batch: 50,
        lr: 2e-3,
        seed,
        threads: 1,
        dropout: 0.25,
        weightDecay: 0.01,
      });
    const [a, b, c] = [await run(5), await run(5), await run(6)];
    assert.equal(a.steps, 20);
    assert.deepEqual(
      a.epochs.map((e) => [e.loss, e.testAccuracy]),
      b.epochs.map((e) => [e.loss, e.testAccuracy]),
    );
    for (const [k, v] of a.params) allClose(b.params.get(k)!, v, 0, 0, k);
    assert.notDeepEqual(c.params.get('conv1.weight'), a.params.get('conv1.weight'));
  });

  it('ddpm eval classifier writes a folder whose stated accuracy the weights reproduce', async () => {
    const out = join(root, 'cli');
    const argv = [
      '--data',
      'mnist:test',
      '--test-data',
      'mnist:test',
      '--out',
      out,
      '--epochs',
      '1',
      '--batch',
      '100',
      '--threads',
      '1',
    ];
    await classifierCommand(argv);
    const m = loadClassifier(out);
    assert.equal(m.file.name, 'mnist-classifier');
    assert.deepEqual(
      [m.file.data, m.file.testData, m.file.epochs, m.file.testImages],
      ['mnist:test', 'mnist:test', 1, 1000],
    );
    const runner = await createClassifierRunner(engine, m.file.architecture, m.params, 100, { threads: 1 });
    const acc = await accuracy((x) => runner.run(x), openDataset('mnist:test'), 10);
    await runner.release();
    assert.equal(acc, m.file.testAccuracy);
    await assert.rejects(
      () => classifierCommand(['--data', 'mnist:train']),
      (e: Error) => e instanceof UsageError && /--out DIR is required/.test(e.message),
    );
    await assert.rejects(
      () => classifierCommand(['--data', 'mnist', '--out', out]),
      (e: Error) => e instanceof UsageError && /pass --test-data/.test(e.message),
    );
    assert.equal(testSpecFor('fashion-mnist:train:/data/fm'), 'fashion-mnist:test:/data/fm');
  });
});
