// `ddpm eval classifier`: train the evaluation classifier (src/eval/classifier.ts) on labelled 1-channel
// data and write a classifier folder (config.json + model.safetensors) that `ddpm eval --features DIR`
// measures FID / IS / KID / precision-recall with, labelled `FID[<name>@<weights hash>]`.

import { openDataset } from '../data/open.js';
import {
  CLASSIFIER_FORMAT,
  type ClassifierFile,
  countClassifierParams,
  DIGIT_CLASSIFIER,
  loadClassifier,
  saveClassifier,
} from '../eval/classifier.js';
import { trainClassifier } from '../eval/classifierTrain.js';
import { helpText, type OptTable, parseOptions, UsageError } from './args.js';
import { EP_OPTION, openEpOption } from './epOption.js';
import { formatDuration, ProgressBar } from './progress.js';

const CMD = 'eval classifier';

export const CLASSIFIER_OPTIONS: OptTable = {
  data: {
    kind: 'string',
    help: 'labelled training data: mnist:train | fashion-mnist:train | idx:PATH | ...',
    default: 'mnist:train',
  },
  'test-data': {
    kind: 'string',
    help: "held-out data for the accuracy (default: the data spec with ':train' -> ':test')",
  },
  out: { kind: 'string', help: 'classifier folder to write (config.json, model.safetensors)' },
  name: {
    kind: 'string',
    help: "the network's name in score labels (default: <dataset>-classifier, e.g. mnist-classifier)",
  },
  epochs: { kind: 'int', help: 'passes over the training data', default: 20, min: 1 },
  batch: { kind: 'int', help: 'batch size', default: 64, min: 1 },
  lr: {
    kind: 'float',
    help: 'peak Adam learning rate (warmup, then cosine decay to 0)',
    default: 2e-3,
    min: 0,
  },
  dropout: { kind: 'float', help: 'dropout on the features before the head', default: 0.25, min: 0 },
  'weight-decay': {
    kind: 'float',
    help: 'decoupled (AdamW) weight decay of conv and linear weights',
    default: 0,
    min: 0,
  },
  seed: { kind: 'int', help: 'random seed (weights, order, augmentation)', default: 0 },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: 0, min: 0 },
  ep: EP_OPTION,
};

/** The test split that goes with a training spec: 'mnist:train' -> 'mnist:test' (also with ':DIR'). */
export function testSpecFor(data: string): string | undefined {
  const m = /^([\w-]+):train(:.*)?$/.exec(data);
  return m ? `${m[1]}:test${m[2] ?? ''}` : undefined;
}

/** What a train / test pair of data specs is, for config.json. */
export function describeSplit(data: string, trainN: number, test: string, testN: number): string {
  const base = `${data} (${trainN} images) for training, ${test} (${testN} images) for the accuracy`;
  if (data === 'mnist:train' && test === 'mnist:test') {
    return `${base}: the mnist package's 10,000 digits have no official test split, so mnist:test holds out the last 100 digits of each class and mnist:train is the other 9,000`;
  }
  if (/^fashion-mnist:train/.test(data) && /^fashion-mnist:test/.test(test)) {
    return `${base}: Fashion-MNIST's official train and t10k test files`;
  }
  return base;
}

/** 'mnist:train' -> 'mnist-classifier'; a bare path -> 'classifier'. */
export function defaultName(data: string): string {
  const m = /^(mnist|fashion-mnist)(:|$)/.exec(data);
  return m ? `${m[1]}-classifier` : 'classifier';
}

export async function classifierCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions(CMD, argv, CLASSIFIER_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText(
        CMD,
        "Train the evaluation classifier (a small CNN: its pooled features stand in for Inception's on 1x32x32 data) and write a classifier folder for `ddpm eval --features DIR`.",
        CLASSIFIER_OPTIONS,
        [
          'ddpm eval classifier --data mnist:train --out models/classifiers/mnist --threads 1',
          'ddpm eval classifier --data fashion-mnist:train --out models/classifiers/fashion-mnist --epochs 8',
        ],
      ),
    );
    return;
  }
  const out = o.out as string | undefined;
  if (!out) throw new UsageError(`ddpm ${CMD}: --out DIR is required (the classifier folder to write)`);
  const dataSpec = o.data as string;
  const testSpec = (o['test-data'] as string | undefined) ?? testSpecFor(dataSpec);
  if (!testSpec) {
    throw new UsageError(
      `ddpm ${CMD}: no test split known for --data ${dataSpec}; pass --test-data (e.g. --data mnist:train --test-data mnist:test)`,
    );
  }
  const engine = await openEpOption(o.ep); // a missing provider fails before the data is read
  const data = openDataset(dataSpec);
  const testData = openDataset(testSpec);
  const cfg = { ...DIGIT_CLASSIFIER, inChannels: data.channels, resolution: data.height };
  const name = (o.name as string | undefined) ?? defaultName(dataSpec);
  const bar = new ProgressBar('classifier');
  bar.log(
    `ddpm ${CMD}: ${name}, ${countClassifierParams(cfg).toLocaleString('en-US')} parameters; train ${data.name} (${data.n}), test ${testData.name} (${testData.n})`,
  );
  const res = await trainClassifier(engine, {
    data,
    testData,
    cfg,
    epochs: o.epochs as number,
    batch: o.batch as number,
    lr: o.lr as number,
    seed: o.seed as number,
    threads: o.threads as number,
    dropout: o.dropout as number,
    weightDecay: o['weight-decay'] as number,
    onProgress: (p) => {
      switch (p.kind) {
        case 'step':
          bar.update(
            p.step,
            p.totalSteps,
            `epoch ${p.epoch} | loss ${p.loss.toFixed(4)} | lr ${p.lr.toExponential(2)}`,
          );
          break;
        case 'epoch': {
          const r = p.result;
          bar.log(
            `epoch ${r.epoch}: loss ${r.loss.toFixed(4)}, test accuracy ${(100 * r.testAccuracy).toFixed(2)}% (${formatDuration(r.seconds)})`,
          );
          break;
        }
      }
    },
  });
  bar.done();
  const file: ClassifierFile = {
    format: CLASSIFIER_FORMAT,
    name,
    architecture: res.cfg,
    data: dataSpec,
    testData: testSpec,
    split: describeSplit(dataSpec, data.n, testSpec, testData.n),
    trainImages: data.n,
    testImages: testData.n,
    epochs: o.epochs as number,
    batch: o.batch as number,
    lr: o.lr as number,
    seed: o.seed as number,
    dropout: o.dropout as number,
    weightDecay: o['weight-decay'] as number,
    augmentation: `random shifts of up to 2 px${data.canFlip ? ', horizontal flips' : ''}`,
    testAccuracy: res.testAccuracy,
    history: res.epochs,
    seconds: res.seconds,
    engine: engine.name,
  };
  saveClassifier(out, file, res.params);
  const saved = loadClassifier(out);
  console.log(
    `test accuracy ${(100 * res.testAccuracy).toFixed(2)}% on ${testData.n} images of ${testSpec}; wrote ${out} (${name}@${saved.weightsHash}, ${formatDuration(res.seconds)})`,
  );
}
