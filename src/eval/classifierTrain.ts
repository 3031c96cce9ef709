// Training the evaluation classifier (classifier.ts) with this project's own engine: the graph's
// cross-entropy and its gradient for every parameter in one ONNX model, Adam (Kingma & Ba 2015, the
// trainer's optim.ts) with a linear warmup then cosine decay of the learning rate (Loshchilov & Hutter
// 2017), and light augmentation: random shifts by up to 2 pixels (digits stay digits), plus horizontal
// flips where the data set allows them (clothing, not digits); optional dropout on the features and
// decoupled weight decay. Deterministic for a seed: the initial weights, every epoch's order, shifts,
// flips and dropout masks come from one Rng.

import type { U8Dataset } from '../data/dataset.js';
import type { Engine } from '../engine/engine.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import { lowerConvsToNchwc, nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import type { ParamStore } from '../nn/unet.js';
import { adamStep, newAdamState } from '../train/optim.js';
import { drawDropoutKey, fillDropoutMask } from '../train/dropoutMask.js';
import { Rng } from '../util/rng.js';
import { sizeOf, type Tensor } from '../util/tensor.js';
import {
  buildClassifier,
  type ClassifierConfig,
  ClassifierError,
  classifierParamSpecs,
  createClassifierRunner,
  crossEntropy,
  DIGIT_CLASSIFIER,
  featureDims,
  initClassifierParams,
} from './classifier.js';

export interface ClassifierTrainOptions {
  readonly data: U8Dataset;
  readonly testData: U8Dataset;
  /** Default: DIGIT_CLASSIFIER at the data's channels and size. */
  readonly cfg?: ClassifierConfig;
  readonly epochs: number;
  readonly batch: number;
  /** Peak Adam learning rate (after warmup; cosine decay to 0 at the end). */
  readonly lr: number;
  readonly seed: number;
  /** ONNX Runtime threads (0 = all cores). */
  readonly threads: number;
  /** Largest random shift in pixels (default 2; 0 = none). */
  readonly maxShift?: number;
  /** Learning-rate warmup steps (default 200, at most a tenth of the run). */
  readonly warmup?: number;
  /** Dropout on the features before the head (default 0). */
  readonly dropout?: number;
  /** Decoupled weight decay of conv and linear weights (AdamW, Loshchilov & Hutter 2019), default 0. */
  readonly weightDecay?: number;
  readonly onProgress?: (p: ClassifierProgress) => void;
}

export type ClassifierProgress =
  | {
      readonly kind: 'step';
      readonly epoch: number;
      readonly step: number;
      readonly totalSteps: number;
      readonly loss: number;
      readonly lr: number;
    }
  | { readonly kind: 'epoch'; readonly result: EpochResult };

export interface EpochResult {
  /** 1-based. */
  readonly epoch: number;
  /** Mean training loss (cross-entropy, nats) over the epoch's steps. */
  readonly loss: number;
  /** Fraction of the test images classified correctly after the epoch. */
  readonly testAccuracy: number;
  /** Wall-clock seconds since training started. */
  readonly seconds: number;
}

export interface ClassifierTrainResult {
  readonly cfg: ClassifierConfig;
  readonly params: ParamStore;
  readonly epochs: readonly EpochResult[];
  readonly testAccuracy: number;
  readonly steps: number;
  readonly seconds: number;
}

/**
 * The training model: inputs x, onehot, every parameter and, with dropout, the features' mask
 * 'dropout.features' [B, D]; outputs loss and grad.<name>.
 */
export function buildClassifierTrainModel(
  cfg: ClassifierConfig,
  params: ParamStore,
  batch: number,
  nchwcBlock = 0,
  dropout = false,
): Uint8Array {
  const g = new Graph();
  const x = g.input('x', [batch, cfg.inChannels, cfg.resolution, cfg.resolution]);
  const onehot = g.input('onehot', [batch, cfg.classes]);
  const mask = dropout ? g.input('dropout.features', [batch, featureDims(cfg)]) : undefined;
  const net = buildClassifier(g, cfg, params, x, 'training', mask);
  const loss = crossEntropy(g, net.logits, onehot);
  const names = [...net.params.keys()];
  const grads = grad(
    g,
    loss,
    names.map((n) => net.params.get(n)!),
  );
  const outputs: Record<string, Value> = { loss };
  names.forEach((n, i) => {
    outputs[`grad.${n}`] = grads[i]!;
  });
  if (nchwcBlock > 1) lowerConvsToNchwc(g, nchwcBlock, Object.values(outputs));
  return toOnnx(g, { outputs, params: 'input', name: 'ddpm-classifier-train' });
}

/** Learning rate at update `step` (1-based) of `total`: linear warmup, then cosine decay to 0. */
export function classifierLr(lr: number, step: number, total: number, warmup: number): number {
  if (step <= warmup) return (lr * step) / warmup;
  const t = (step - warmup) / Math.max(1, total - warmup);
  return 0.5 * lr * (1 + Math.cos(Math.PI * Math.min(t, 1)));
}

/**
 * Write image i of ds into out at offset, shifted by (dx, dy) pixels (background -1 enters at the
 * edges) and mirrored when flip.
 */
export function augmentInto(
  ds: U8Dataset,
  i: number,
  out: Float32Array,
  offset: number,
  dx: number,
  dy: number,
  flip: boolean,
): void {
  const { channels: c, height: h, width: w } = ds;
  const px = ds.bytes(i);
  for (let ch = 0; ch < c; ch++) {
    for (let y = 0; y < h; y++) {
      const sy = y - dy;
      const row = offset + (ch * h + y) * w;
      for (let x = 0; x < w; x++) {
        const sx0 = x - dx;
        const sx = flip ? w - 1 - sx0 : sx0;
        const inside = sy >= 0 && sy < h && sx0 >= 0 && sx0 < w;
        out[row + x] = inside ? px[(ch * h + sy) * w + sx]! / 127.5 - 1 : -1;
      }
    }
  }
}

function labelsOf(ds: U8Dataset, role: string): Uint8Array | Int32Array {
  if (!ds.labels) {
    throw new ClassifierError(
      'classifier training',
      `the ${role} data ${ds.name} has no labels; a classifier needs labelled data (mnist, fashion-mnist, an IDX file with its labels file beside it, cifar10)`,
    );
  }
  return ds.labels;
}

function checkData(cfg: ClassifierConfig, ds: U8Dataset, role: string): Uint8Array | Int32Array {
  if (ds.channels !== cfg.inChannels || ds.height !== cfg.resolution || ds.width !== cfg.resolution) {
    throw new ClassifierError(
      'classifier training',
      `the ${role} data ${ds.name} is ${ds.channels}x${ds.height}x${ds.width}, the network takes ${cfg.inChannels}x${cfg.resolution}x${cfg.resolution}`,
    );
  }
  const labels = labelsOf(ds, role);
  for (let i = 0; i < labels.length; i++) {
    if (!(labels[i]! >= 0 && labels[i]! < cfg.classes)) {
      throw new ClassifierError(
        'classifier training',
        `the ${role} data ${ds.name} has label ${labels[i]} at ${i}, outside 0..${cfg.classes - 1}`,
      );
    }
  }
  return labels;
}

/** Fraction of ds classified correctly (argmax of the logits), in batches, by a forward runner. */
export async function accuracy(
  run: (x: Tensor) => Promise<{ logits: Float32Array }>,
  ds: U8Dataset,
  classes: number,
  chunk = 500,
): Promise<number> {
  const labels = labelsOf(ds, 'test');
  const per = ds.channels * ds.height * ds.width;
  let correct = 0;
  for (let s = 0; s < ds.n; s += chunk) {
    const m = Math.min(chunk, ds.n - s);
    const x = new Float32Array(m * per);
    for (let i = 0; i < m; i++) ds.get(s + i, x, i * per);
    const { logits } = await run({ data: x, shape: [m, ds.channels, ds.height, ds.width] });
    for (let i = 0; i < m; i++) if (argmax(logits, i * classes, classes) === labels[s + i]) correct++;
  }
  return correct / ds.n;
}

function argmax(a: Float32Array, off: number, n: number): number {
  let best = 0;
  for (let k = 1; k < n; k++) if (a[off + k]! > a[off + best]!) best = k;
  return best;
}

interface StepSession {
  /** Loss of one step on the batch; the gradients land in `grads`. */
  run(params: ParamStore, x: Tensor, onehot: Tensor, rng: Rng): Promise<number>;
  readonly grads: Map<string, Float32Array>;
  release(): Promise<void>;
}

/** The training session with its output buffers, allocated once and reused every step. */
async function createStepSession(
  engine: Engine,
  cfg: ClassifierConfig,
  params: ParamStore,
  batch: number,
  dropout: number,
  threads: number,
): Promise<StepSession> {
  const block = await nchwcBlockOf(engine);
  const model = buildClassifierTrainModel(cfg, params, batch, block, dropout > 0);
  const session = await engine.createSession(model, { threads });
  const specs = classifierParamSpecs(cfg);
  const outs: Record<string, Tensor> = { loss: { data: new Float32Array(1), shape: [] } };
  const grads = new Map<string, Float32Array>();
  for (const s of specs) {
    const t = { data: new Float32Array(sizeOf(s.shape)), shape: s.shape };
    outs[`grad.${s.name}`] = t;
    grads.set(s.name, t.data);
  }
  const mask: Tensor = { data: new Float32Array(batch * featureDims(cfg)), shape: [batch, featureDims(cfg)] };
  return {
    grads,
    async run(p, x, onehot, rng) {
      const feeds: Record<string, Tensor> = { x, onehot };
      if (dropout > 0) {
        fillDropoutMask(mask.data, dropout, drawDropoutKey(rng), 0);
        feeds['dropout.features'] = mask;
      }
      for (const s of specs) feeds[s.name] = { data: p.get(s.name)!, shape: s.shape };
      await session.run(feeds, outs);
      return outs.loss!.data[0]!;
    },
    release: () => session.release(),
  };
}

/** Batch b of an epoch's order: augmented images into x, one-hot labels into onehot. */
function fillBatch(
  o: ClassifierTrainOptions,
  labels: Uint8Array | Int32Array,
  order: Int32Array,
  b: number,
  x: Tensor,
  onehot: Tensor,
  rng: Rng,
): void {
  const batch = onehot.shape[0]!;
  const classes = onehot.shape[1]!;
  const per = x.data.length / batch;
  const shift = o.maxShift ?? 2;
  onehot.data.fill(0);
  for (let k = 0; k < batch; k++) {
    const idx = order[b * batch + k]!;
    const dx = rng.int(2 * shift + 1) - shift;
    const dy = rng.int(2 * shift + 1) - shift;
    const flip = rng.uniform() < 0.5 && o.data.canFlip;
    augmentInto(o.data, idx, x.data, k * per, dx, dy, flip);
    onehot.data[k * classes + labels[idx]!] = 1;
  }
}

/** AdamW's decoupled decay: conv and linear weights shrink by lr * wd before the Adam update. */
function decayWeights(cfg: ClassifierConfig, params: ParamStore, lr: number, wd: number): void {
  if (wd === 0) return;
  const f = 1 - lr * wd;
  for (const s of classifierParamSpecs(cfg)) {
    if (s.kind !== 'conv' && s.kind !== 'linear') continue;
    const p = params.get(s.name)!;
    for (let i = 0; i < p.length; i++) p[i]! *= f;
  }
}

export async function trainClassifier(
  engine: Engine,
  o: ClassifierTrainOptions,
): Promise<ClassifierTrainResult> {
  const cfg = o.cfg ?? { ...DIGIT_CLASSIFIER, inChannels: o.data.channels, resolution: o.data.height };
  const labels = checkData(cfg, o.data, 'training');
  checkData(cfg, o.testData, 'test');
  const { batch, epochs } = o;
  if (!(Number.isInteger(batch) && batch >= 1 && batch <= o.data.n)) {
    throw new ClassifierError(
      'classifier training',
      `batch ${batch} must be between 1 and the ${o.data.n} training images`,
    );
  }
  const dropout = o.dropout ?? 0;
  if (!(dropout >= 0 && dropout < 1))
    throw new ClassifierError('classifier training', `dropout ${dropout} must be in [0, 1)`);
  const rng = new Rng(o.seed);
  const params = initClassifierParams(cfg, rng.nextU32());
  const stepsPerEpoch = Math.floor(o.data.n / batch);
  const total = stepsPerEpoch * epochs;
  const warmup = Math.max(1, Math.min(o.warmup ?? 200, Math.floor(total / 10)));
  const train = await createStepSession(engine, cfg, params, batch, dropout, o.threads);
  const evalRunner = await createClassifierRunner(engine, cfg, params, 250, {
    threads: o.threads,
    feedParams: true,
  });
  const adam = newAdamState(params);
  const xShape = [batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const x: Tensor = { data: new Float32Array(sizeOf(xShape)), shape: xShape };
  const onehot: Tensor = { data: new Float32Array(batch * cfg.classes), shape: [batch, cfg.classes] };
  const order = new Int32Array(o.data.n);
  const results: EpochResult[] = [];
  const t0 = Date.now();
  let step = 0;
  try {
    for (let epoch = 1; epoch <= epochs; epoch++) {
      for (let i = 0; i < order.length; i++) order[i] = i;
      rng.shuffle(order);
      let lossSum = 0;
      for (let b = 0; b < stepsPerEpoch; b++) {
        fillBatch(o, labels, order, b, x, onehot, rng);
        const loss = await train.run(params, x, onehot, rng);
        step++;
        const lr = classifierLr(o.lr, step, total, warmup);
        decayWeights(cfg, params, lr, o.weightDecay ?? 0);
        adamStep(
          { lr, beta1: 0.9, beta2: 0.999, eps: 1e-8, warmup: 0, gradClip: 0 },
          adam,
          params,
          train.grads,
        );
        lossSum += loss;
        o.onProgress?.({ kind: 'step', epoch, step, totalSteps: total, loss, lr });
      }
      const testAccuracy = await accuracy((xs) => evalRunner.run(xs, params), o.testData, cfg.classes);
      const result = {
        epoch,
        loss: lossSum / stepsPerEpoch,
        testAccuracy,
        seconds: (Date.now() - t0) / 1000,
      };
      results.push(result);
      o.onProgress?.({ kind: 'epoch', result });
    }
  } finally {
    await train.release();
    await evalRunner.release();
  }
  const seconds = (Date.now() - t0) / 1000;
  return {
    cfg,
    params,
    epochs: results,
    testAccuracy: results.at(-1)?.testAccuracy ?? Number.NaN,
    steps: step,
    seconds,
  };
}
