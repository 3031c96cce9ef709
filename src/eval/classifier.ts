// A small convolutional classifier as the feature network for 1-channel data (issue "Evaluation"). FID on
// MNIST-like data has no standard extractor and Inception's weights cannot be shipped, so, as is common
// practice for such data, the features come from a classifier trained on the data set itself: a plain CNN
// (3x3 convs, stride-2 convs to downsample, GroupNorm (Wu & He 2018), SiLU, global average pooling) whose
// pooled activations are the FEATURES and whose linear head gives the LOGITS (for the Inception Score). It
// is built on the graph builder, so one definition yields the training graph (with the gradient of every
// parameter, classifierTrain.ts) and the inference graph behind the FeatureNet. Scores from it are only
// comparable with scores from the same weights, so each carries its name and weights hash:
// `FID[mnist-classifier@1a2b3c4d]`.

import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { resizeCenterCrop } from '../data/resize.js';
import type { Engine, EngineSession, SessionOptions } from '../engine/engine.js';
import { Graph, type Value } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import type { ParamStore } from '../nn/unet.js';
import { Rng } from '../util/rng.js';
import { writeFileAtomic, writePartsAtomic } from '../util/atomicFile.js';
import { describeJson } from '../util/jsonCheck.js';
import { encodeSafeTensors, parseSafeTensors } from '../util/safetensors.js';
import { sizeOf, type Tensor } from '../util/tensor.js';
import type { FeatureBatch, FeatureNet } from './featureNet.js';
import { sha256Hex8 } from './hash.js';

export interface ClassifierConfig {
  /** Image channels and square size the network takes. */
  readonly inChannels: number;
  readonly resolution: number;
  /** Output channels of each 3x3 conv (conv1, conv2, ...). */
  readonly widths: readonly number[];
  /** Stride of each conv: 1, or 2 to halve the resolution. */
  readonly strides: readonly (1 | 2)[];
  /** GroupNorm groups after each conv (0 = no normalisation). */
  readonly groups: number;
  readonly classes: number;
}

/** The shipped digit / clothing classifier: 6 convs (32x32 -> 4x4), 128-d features, 10 classes. */
export const DIGIT_CLASSIFIER: ClassifierConfig = {
  inChannels: 1,
  resolution: 32,
  widths: [32, 64, 64, 128, 128, 128],
  strides: [1, 2, 1, 2, 1, 2],
  groups: 8,
  classes: 10,
};

export const GROUPNORM_EPS = 1e-5;

export const CLASSIFIER_FORMAT = 'ddpm-ts/classifier/v1';

/** How a classifier was trained and what it reached (written by `ddpm eval classifier`). */
export interface ClassifierTrainingInfo {
  /** Data specs (openDataset) of the training and test images, and how the two were split. */
  readonly data: string;
  readonly testData: string;
  readonly split: string;
  readonly trainImages: number;
  readonly testImages: number;
  readonly epochs: number;
  readonly batch: number;
  readonly lr: number;
  readonly seed: number;
  readonly dropout: number;
  readonly weightDecay: number;
  readonly augmentation: string;
  /** Fraction of the test images classified correctly by these weights. */
  readonly testAccuracy: number;
  readonly history: readonly { epoch: number; loss: number; testAccuracy: number; seconds: number }[];
  readonly seconds: number;
  readonly engine: string;
}

/** config.json of a classifier folder. */
export interface ClassifierFile extends Partial<ClassifierTrainingInfo> {
  readonly format: typeof CLASSIFIER_FORMAT;
  /** The network's name in every score label, e.g. 'mnist-classifier'. */
  readonly name: string;
  readonly architecture: ClassifierConfig;
}

/** A classifier folder that is missing, malformed, or does not match its architecture. */
export class ClassifierError extends Error {
  constructor(source: string, message: string) {
    super(`${source}: ${message}`);
    this.name = 'ClassifierError';
  }
}

export interface ClassifierParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: 'conv' | 'linear' | 'bias' | 'normWeight' | 'normBias';
}

export function validateClassifierConfig(c: ClassifierConfig, source = 'classifier config'): void {
  const bad = (m: string): never => {
    throw new ClassifierError(source, m);
  };
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) > 0;
  if (!posInt(c.inChannels) || !posInt(c.resolution) || !posInt(c.classes)) {
    bad('inChannels, resolution and classes must be positive integers');
  }
  if (!Array.isArray(c.widths) || c.widths.length === 0 || !c.widths.every(posInt)) {
    bad('widths must be a non-empty list of positive integers');
  }
  if (!Array.isArray(c.strides) || c.strides.length !== c.widths.length) {
    bad(`strides must list one stride per conv (${c.widths.length})`);
  }
  if (!c.strides.every((s) => s === 1 || s === 2)) bad('every stride must be 1 or 2');
  const halvings = c.strides.filter((s) => s === 2).length;
  if (c.resolution % 2 ** halvings !== 0) {
    bad(`resolution ${c.resolution} must be divisible by 2^${halvings} (one halving per stride-2 conv)`);
  }
  if (!Number.isInteger(c.groups) || c.groups < 0)
    bad('groups must be 0 (no GroupNorm) or a positive integer');
  for (const w of c.widths)
    if (c.groups > 0 && w % c.groups !== 0) bad(`width ${w} not divisible by ${c.groups} groups`);
}

/** Every parameter, in order: conv{i}.weight/bias, norm{i}.weight/bias, ..., fc.weight/bias. */
export function classifierParamSpecs(c: ClassifierConfig): ClassifierParamSpec[] {
  validateClassifierConfig(c);
  const specs: ClassifierParamSpec[] = [];
  let inCh = c.inChannels;
  c.widths.forEach((w, i) => {
    specs.push({ name: `conv${i + 1}.weight`, shape: [w, inCh, 3, 3], kind: 'conv' });
    specs.push({ name: `conv${i + 1}.bias`, shape: [w], kind: 'bias' });
    if (c.groups > 0) {
      specs.push({ name: `norm${i + 1}.weight`, shape: [w], kind: 'normWeight' });
      specs.push({ name: `norm${i + 1}.bias`, shape: [w], kind: 'normBias' });
    }
    inCh = w;
  });
  specs.push({ name: 'fc.weight', shape: [c.classes, inCh], kind: 'linear' });
  specs.push({ name: 'fc.bias', shape: [c.classes], kind: 'bias' });
  return specs;
}

/** Feature width: the last conv's channels. */
export function featureDims(c: ClassifierConfig): number {
  return c.widths.at(-1)!;
}

export function countClassifierParams(c: ClassifierConfig): number {
  return classifierParamSpecs(c).reduce((a, s) => a + sizeOf(s.shape), 0);
}

/**
 * He-uniform init (He et al. 2015) for convs, U(-a, a) with a = sqrt(6 / fan_in); the head LeCun-uniform
 * (a = sqrt(3 / fan_in)); biases 0; GroupNorm 1 / 0. Deterministic for a seed.
 */
export function initClassifierParams(c: ClassifierConfig, seed: number): ParamStore {
  const rng = new Rng(seed);
  const store: ParamStore = new Map();
  for (const s of classifierParamSpecs(c)) {
    const data = new Float32Array(sizeOf(s.shape));
    const fanIn = sizeOf(s.shape.slice(1));
    switch (s.kind) {
      case 'conv':
      case 'linear': {
        const a = Math.sqrt((s.kind === 'conv' ? 6 : 3) / fanIn);
        for (let i = 0; i < data.length; i++) data[i] = (2 * rng.uniform() - 1) * a;
        break;
      }
      case 'normWeight':
        data.fill(1);
        break;
      case 'bias':
      case 'normBias':
        break;
    }
    store.set(s.name, data);
  }
  return store;
}

export interface ClassifierGraph {
  /** Globally average-pooled activations of the last conv, [N, featureDims]. */
  readonly features: Value;
  /** [N, classes]. */
  readonly logits: Value;
  /** Parameter values by name, in spec order. */
  readonly params: ReadonlyMap<string, Value>;
}

/**
 * Build the classifier on g for x [N, C, H, W] in [-1, 1] with its weights as graph params (classifierOn).
 * 'training' uses the GroupNorm form whose gradient is one fused rule; 'inference' the fastest forward form.
 */
export function buildClassifier(
  g: Graph,
  c: ClassifierConfig,
  store: ParamStore,
  x: Value,
  mode: 'training' | 'inference',
  featureMask?: Value,
): ClassifierGraph {
  const params = new Map<string, Value>();
  for (const s of classifierParamSpecs(c)) {
    const data = store.get(s.name);
    if (!data) throw new ClassifierError('classifier', `parameter ${s.name} missing from the weights`);
    params.set(s.name, g.param(s.name, s.shape, data));
  }
  return { ...classifierOn(g, c, params, x, mode, featureMask), params };
}

/**
 * The network on given parameter values: each conv3x3 (padding 1) -> GroupNorm -> SiLU, then the spatial
 * mean (features) and a linear head (logits). featureMask [N, D] (training only: dropout, 0 or 1/(1-p))
 * multiplies the features on their way to the head.
 */
export function classifierOn(
  g: Graph,
  c: ClassifierConfig,
  params: ReadonlyMap<string, Value>,
  x: Value,
  mode: 'training' | 'inference',
  featureMask?: Value,
): { features: Value; logits: Value } {
  const want = [c.inChannels, c.resolution, c.resolution];
  if (x.shape.length !== 4 || x.shape.slice(1).join(',') !== want.join(',')) {
    throw new ClassifierError('classifier', `input [${x.shape}] is not [N, ${want.join(', ')}]`);
  }
  const p = (name: string) => {
    const v = params.get(name);
    if (!v) throw new ClassifierError('classifier', `parameter ${name} missing`);
    return v;
  };
  let h = x;
  c.widths.forEach((_, i) => {
    const k = i + 1;
    const s = c.strides[i]!;
    h = g.scope(`conv${k}`, () => {
      const y = g.conv(h, p(`conv${k}.weight`), p(`conv${k}.bias`), { strides: [s, s], pads: [1, 1, 1, 1] });
      const n =
        c.groups > 0
          ? g.groupNorm(y, c.groups, p(`norm${k}.weight`), p(`norm${k}.bias`), GROUPNORM_EPS, mode)
          : y;
      return g.silu(n);
    });
  });
  const [n, ch] = h.shape as [number, number];
  const features = g.reshape(g.reduceMean(h, [2, 3], false), [n, ch]);
  const logits = g.linear(
    featureMask ? g.mul(features, featureMask) : features,
    p('fc.weight'),
    p('fc.bias'),
  );
  return { features, logits };
}

/**
 * Mean cross-entropy of logits [N, K] against one-hot labels [N, K]: log-softmax as z - log(sum(exp(z)))
 * with z = logits - mean(logits) (the shift cancels; exp never overflows unless the top logit sits 88
 * above the mean, and the sum is always >= 1, so the log never sees 0).
 */
export function crossEntropy(g: Graph, logits: Value, onehot: Value): Value {
  const z = g.sub(logits, g.reduceMean(logits, [1], true));
  const lse = g.log(g.reduceSum(g.exp(z), [1], true)); // [N, 1]
  const picked = g.reduceSum(g.mul(z, onehot), [1], true); // [N, 1]
  return g.reduceMean(g.sub(lse, picked), [0, 1], false);
}

/** A forward ONNX model and the ONNX names of its two outputs. */
export interface ClassifierModel {
  readonly model: Uint8Array;
  /** Output names of features [B, D] and logits [B, K]. */
  readonly outputs: { readonly features: string; readonly logits: string };
}

/**
 * The forward ONNX model for a fixed batch: input x [B, C, H, W]; outputs features [B, D] and logits
 * [B, K], under their values' own names: renamed through Identity nodes, ONNX Runtime 1.30's basic graph
 * optimisations drop the producer of the features that the head's MatMul + Add also reads, and the
 * session fails to load ("Node input ... is not a graph input") when the weights are graph inputs.
 * params 'initializer' bakes the weights in (feature extraction); 'input' feeds them every run
 * (evaluation during training).
 */
export function buildClassifierModel(
  c: ClassifierConfig,
  store: ParamStore,
  batch: number,
  params: 'initializer' | 'input',
): ClassifierModel {
  const g = new Graph();
  const x = g.input('x', [batch, c.inChannels, c.resolution, c.resolution]);
  const net = buildClassifier(g, c, store, x, 'inference');
  const outputs = { features: net.features.name, logits: net.logits.name };
  const model = toOnnx(g, {
    outputs: { [outputs.features]: net.features, [outputs.logits]: net.logits },
    params,
    name: 'ddpm-classifier',
  });
  return { model, outputs };
}

export interface ClassifierRunner {
  readonly batch: number;
  /** Features and logits of x [n, C, H, W] (any n: split and padded to the compiled batch). */
  run(x: Tensor, params?: ParamStore): Promise<Required<FeatureBatch>>;
  release(): Promise<void>;
}

/**
 * A forward session for any number of images. With `feedParams` the weights are graph inputs and every
 * run passes the current ones (params argument); otherwise `store` is baked in.
 */
export async function createClassifierRunner(
  engine: Engine,
  c: ClassifierConfig,
  store: ParamStore,
  batch: number,
  opts: SessionOptions & { feedParams?: boolean } = {},
): Promise<ClassifierRunner> {
  const { feedParams = false, ...sessionOpts } = opts;
  if (!Number.isInteger(batch) || batch < 1)
    throw new ClassifierError('classifier', `batch ${batch} must be a positive integer`);
  const built = buildClassifierModel(c, store, batch, feedParams ? 'input' : 'initializer');
  const session: EngineSession = await engine.createSession(built.model, sessionOpts);
  const specs = classifierParamSpecs(c);
  const per = c.inChannels * c.resolution * c.resolution;
  const dims = featureDims(c);
  const xbuf = new Float32Array(batch * per);
  const feat = { data: new Float32Array(batch * dims), shape: [batch, dims] };
  const logit = { data: new Float32Array(batch * c.classes), shape: [batch, c.classes] };
  const outs = { [built.outputs.features]: feat, [built.outputs.logits]: logit };
  return {
    batch,
    async run(x, params) {
      const n = x.shape[0] ?? 0;
      if (x.shape.length !== 4 || sizeOf(x.shape) !== n * per) {
        throw new ClassifierError(
          'classifier',
          `images [${x.shape}] are not [N, ${c.inChannels}, ${c.resolution}, ${c.resolution}]`,
        );
      }
      const features = new Float32Array(n * dims);
      const logits = new Float32Array(n * c.classes);
      for (let s = 0; s < n; s += batch) {
        const m = Math.min(batch, n - s);
        xbuf.fill(0);
        xbuf.set(x.data.subarray(s * per, (s + m) * per));
        const feeds: Record<string, Tensor> = {
          x: { data: xbuf, shape: [batch, c.inChannels, c.resolution, c.resolution] },
        };
        if (feedParams) {
          if (!params)
            throw new ClassifierError('classifier', 'this runner feeds its weights: pass them to run()');
          for (const sp of specs) feeds[sp.name] = { data: params.get(sp.name)!, shape: sp.shape };
        }
        await session.run(feeds, outs);
        features.set(feat.data.subarray(0, m * dims), s * dims);
        logits.set(logit.data.subarray(0, m * c.classes), s * c.classes);
      }
      return { features, logits };
    },
    release: () => session.release(),
  };
}

export interface LoadedClassifier {
  readonly file: ClassifierFile;
  readonly params: ParamStore;
  /** First 8 hex digits of the SHA-256 of model.safetensors. */
  readonly weightsHash: string;
  readonly dir: string;
}

/** Write a classifier folder: dir/model.safetensors and dir/config.json, each atomically. */
export function saveClassifier(dir: string, file: ClassifierFile, params: ParamStore): void {
  mkdirSync(dir, { recursive: true });
  const tensors = classifierParamSpecs(file.architecture).map((s) => {
    const data = params.get(s.name);
    if (!data || data.length !== sizeOf(s.shape))
      throw new ClassifierError('classifier', `parameter ${s.name} missing or of the wrong size`);
    return [s.name, { data, shape: s.shape }] as const;
  });
  writePartsAtomic(
    join(dir, 'model.safetensors'),
    encodeSafeTensors(tensors, { format: 'ddpm-ts/classifier-weights/v1' }),
  );
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(file, null, 2)}\n`);
}

/** Read a classifier folder: config.json (ClassifierFile) and model.safetensors. */
export function loadClassifier(dir: string): LoadedClassifier {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new ClassifierError(
      'classifier',
      `${dir} is not a folder; a classifier folder holds config.json and model.safetensors (make one with \`ddpm eval classifier --out DIR\`)`,
    );
  }
  const cfgPath = join(dir, 'config.json');
  const wPath = join(dir, 'model.safetensors');
  for (const p of [cfgPath, wPath]) {
    if (!existsSync(p))
      throw new ClassifierError(
        'classifier',
        `no ${p.slice(dir.length + 1)} in ${dir}; a classifier folder holds config.json and model.safetensors`,
      );
  }
  let raw: Partial<ClassifierFile>;
  try {
    raw = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new ClassifierError(cfgPath, `not valid JSON (${(e as Error).message})`);
  }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    throw new ClassifierError(
      cfgPath,
      `is ${describeJson(raw)}; expected a JSON object with "format", "name" and "architecture"`,
    );
  if (raw.format !== CLASSIFIER_FORMAT) {
    throw new ClassifierError(
      cfgPath,
      `format is ${describeJson(raw.format)}, expected '${CLASSIFIER_FORMAT}': not a classifier folder (a diffusion model folder?)`,
    );
  }
  if (typeof raw.name !== 'string' || raw.name === '')
    throw new ClassifierError(cfgPath, 'needs a "name" (e.g. "mnist-classifier")');
  if (!raw.architecture) throw new ClassifierError(cfgPath, 'needs an "architecture" record');
  validateClassifierConfig(raw.architecture, cfgPath);
  const bytes = readFileSync(wPath);
  const tensors = parseSafeTensors(bytes, wPath).tensors;
  const params: ParamStore = new Map();
  const specs = classifierParamSpecs(raw.architecture);
  for (const s of specs) {
    const t = tensors.get(s.name);
    if (!t)
      throw new ClassifierError(
        wPath,
        `tensor ${s.name} is missing (does config.json's architecture match these weights?)`,
      );
    if (t.shape.join(',') !== s.shape.join(',')) {
      throw new ClassifierError(
        wPath,
        `tensor ${s.name} has shape [${t.shape}], the architecture needs [${s.shape}]`,
      );
    }
    params.set(s.name, t.data);
  }
  const extra = [...tensors.keys()].filter((k) => !params.has(k));
  if (extra.length)
    throw new ClassifierError(
      wPath,
      `unexpected tensors ${extra.slice(0, 3).join(', ')}: these weights are not for this architecture`,
    );
  return { file: raw as ClassifierFile, params, weightsHash: sha256Hex8(bytes), dir };
}

/** The FeatureNet of a classifier folder: pooled features, and logits for the Inception Score. */
export async function classifierFeatureNet(
  engine: Engine,
  modelDir: string,
  opts: { batch?: number; threads?: number } = {},
): Promise<FeatureNet> {
  const m = loadClassifier(modelDir);
  const c = m.file.architecture;
  const runner = await createClassifierRunner(engine, c, m.params, opts.batch ?? 64, {
    threads: opts.threads ?? 0,
  });
  const res = c.resolution;
  const shape = `${c.inChannels}x${res}x${res}`;
  return {
    name: m.file.name,
    weightsHash: m.weightsHash,
    dims: featureDims(c),
    classes: c.classes,
    preprocess: `none at ${shape}; other sizes resized to ${res}x${res} (bilinear, antialiased when shrinking)`,
    channels: c.inChannels === 3 ? 3 : 1,
    async extract(x) {
      const [n, ch, h, w] = x.shape as [number, number, number, number];
      if (x.shape.length !== 4 || ch !== c.inChannels) {
        throw new ClassifierError(
          m.file.name,
          `this network takes ${c.inChannels}-channel images, got [${x.shape.slice(1)}]; for colour images pass --features inception`,
        );
      }
      if (h === res && w === res) return runner.run(x);
      // Images of another size (a model trained at 16x16 or 28x28) meet the network at its own size, as the
      // reference images do: both sides of a comparison pass through the same resize.
      const per = ch * h * w;
      const out = new Float32Array(n * ch * res * res); // [n, ch, res, res]
      for (let i = 0; i < n; i++) {
        out.set(resizeCenterCrop(x.data.subarray(i * per, (i + 1) * per), ch, h, w, res), i * ch * res * res);
      }
      return runner.run({ data: out, shape: [n, ch, res, res] });
    },
    release: () => runner.release(),
  };
}
