// `ddpm bpd`: the negative log-likelihood bound of data under a model in bits/dim (Ho et al. 2020,
// eq. 5 and Table 2): L = L_T + sum_{t>1} L_{t-1} + L_0, every term of the variational bound over all
// T steps (calcBpdLoop, the original's calc_bpd_loop), data scaled from {0..255} to [-1, 1].
// Cost: T network evaluations per batch, i.e. ceil(n / batch) * T forward passes (the MNIST model:
// T = 1000, so 64 images in one batch of 64 take 1000 calls of the U-Net on a batch of 64).

import { heldOutSplit, openDataset, seenInTraining } from '../data/open.js';
import { calcBpdLoop } from '../diffusion/vlb.js';
import { createDenoiser } from '../sample/denoiser.js';
import { writeFileAtomic } from '../util/atomicFile.js';
import { Rng } from '../util/rng.js';
import { helpText, type OptTable, type Parsed, parseOptions } from './args.js';
import { formatDuration, ProgressBar } from './progress.js';
import { EP_OPTION, openEpOption } from './epOption.js';
import { MODEL_OPTION, openModelOption, WEIGHTS_OPTION } from './modelOption.js';
import { checkOutputs } from './outputs.js';
import { catchStopSignals, type StopRequest } from './signals.js';

export const BPD_OPTIONS: OptTable = {
  model: MODEL_OPTION,
  weights: WEIGHTS_OPTION,
  data: {
    kind: 'string',
    help: "data: mnist[:train|:test] | fashion-mnist[:train|:test] | cifar10:PATH | folder:PATH | idx:PATH (default: the model's held-out split where there is one, fashion-mnist:test; else its training data)",
  },
  n: {
    kind: 'int',
    help: 'images: the first n of the data (fewer if the data has fewer)',
    default: 64,
    min: 1,
  },
  batch: { kind: 'int', help: 'images per network call (each batch costs T calls)', default: 64, min: 1 },
  seed: { kind: 'int', help: 'seed of the noise that draws each x_t', default: 0 },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: 0, min: 0 },
  ep: EP_OPTION,
  json: { kind: 'string', help: 'also write the per-term breakdown (mean, std error, per step) as JSON' },
};

/** Mean and standard error of the mean (sample std / sqrt(n); null for n = 1). */
export interface MeanSe {
  readonly mean: number;
  readonly stdErr: number | null;
}

function meanSe(xs: ArrayLike<number>): MeanSe {
  const n = xs.length;
  let s = 0;
  for (let i = 0; i < n; i++) s += xs[i]!;
  const mean = s / n;
  if (n < 2) return { mean, stdErr: null };
  let v = 0;
  for (let i = 0; i < n; i++) v += (xs[i]! - mean) ** 2;
  return { mean, stdErr: Math.sqrt(v / (n - 1) / n) };
}

/** MNIST-like 28x28 digits that the data layer pads to 32x32 (mnist, fashion-mnist, idx files). */
function isPaddedDigits(spec: string, resolution: number): boolean {
  const kind = spec.split(':')[0];
  return resolution === 32 && (kind === 'mnist' || kind === 'fashion-mnist' || kind === 'idx');
}

/** Where held-out images for a model trained on `data` come from. */
function heldOutHint(data: string): string {
  const split = heldOutSplit(data);
  if (split) return `--data ${split}`;
  if (data === 'mnist') {
    return "the mnist package's 10,000 digits are all training data for it; train with --data mnist:train to keep mnist:test out";
  }
  return 'pass --data with images outside its training data';
}

export async function bpdCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions('bpd', argv, BPD_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText(
        'bpd',
        'Bits/dim of data under a model: the whole variational bound (prior L_T, the KL terms L_1..L_{T-1} ' +
          "and the decoder L_0; paper eq. 5, Table 2), with the model's own variance when it learned one " +
          "('learned-range', Nichol & Dhariwal 2021). Costs T network calls per batch.",
        BPD_OPTIONS,
        [
          'ddpm bpd --n 16                                   # the shipped MNIST model, 16 digits',
          'ddpm bpd --model runs/mnist/model --n 256 --json bpd.json',
          'ddpm bpd --model models/fashion-mnist --data fashion-mnist:test --n 256',
        ],
      ),
    );
    return;
  }
  const stop = catchStopSignals('bpd', o.json ? `stopping; ${o.json} will not be written` : 'stopping');
  try {
    await bpdWith(o, stop);
  } finally {
    stop.dispose();
  }
}

async function bpdWith(o: Parsed, stop: StopRequest): Promise<void> {
  const json = o.json as string | undefined;
  checkOutputs('bpd', [json === undefined ? undefined : { option: 'json', path: json, format: 'json' }]);
  const model = openModelOption('bpd', o.model, o.weights);
  const engine = await openEpOption(o.ep); // before the data is read: a missing provider fails now
  const cfg = model.spec.unet;
  const { diffusion } = model;
  const T = diffusion.numTimesteps;
  const spec = (o.data as string | undefined) ?? heldOutSplit(model.spec.data) ?? model.spec.data ?? 'mnist';
  const ds = openDataset(spec, { resolution: cfg.resolution, channels: cfg.inChannels as 1 | 3 });
  const n = Math.min(o.n as number, ds.n);
  const batch = Math.min(o.batch as number, n);
  const per = cfg.inChannels * cfg.resolution * cfg.resolution;
  const batches = Math.ceil(n / batch);
  const bar = new ProgressBar('bpd');
  bar.log(
    `ddpm bpd: ${n} images of ${ds.name}, T = ${T}: ${batches} batch(es) x ${T} network calls of batch ${batch}`,
  );
  if (seenInTraining(model.spec.data, spec)) {
    bar.log(
      `ddpm bpd: note: the model was trained on ${model.spec.data}, which holds the images of ${spec}: this is not ` +
        `held-out bits/dim. That needs images it never saw: ${heldOutHint(model.spec.data!)}`,
    );
  }
  const den = await createDenoiser(engine, cfg, model.params, batch, { threads: o.threads as number });
  const denoise = stop.wrap(
    den.denoise,
    o.json ? `no bits/dim measured, ${o.json} not written` : 'no bits/dim measured',
  );
  const rng = new Rng(o.seed as number);
  const total = new Float64Array(n);
  const prior = new Float64Array(n);
  const decoder = new Float64Array(n);
  const kl = new Float64Array(n);
  const perStep = new Float64Array(T); // sum over images of L_{t-1}, by 0-based t
  const t0 = performance.now();
  try {
    for (let b = 0; b < batches; b++) {
      const s = b * batch;
      const m = Math.min(batch, n - s);
      const x = new Float32Array(m * per);
      for (let i = 0; i < m; i++) ds.get(s + i, x, i * per);
      const r = await calcBpdLoop(
        diffusion,
        denoise,
        { data: x, shape: [m, cfg.inChannels, cfg.resolution, cfg.resolution] },
        rng,
        {
          onProgress: ({ step }) => {
            const done = b * T + step;
            const el = (performance.now() - t0) / 1000;
            bar.update(done, batches * T, `eta ${formatDuration((el / done) * (batches * T - done))}`);
          },
        },
      );
      for (let i = 0; i < m; i++) {
        total[s + i] = r.totalBpd[i]!;
        prior[s + i] = r.priorBpd[i]!;
        decoder[s + i] = r.termsBpd[0]![i]!;
        let k = 0;
        for (let t = 1; t < T; t++) k += r.termsBpd[t]![i]!;
        kl[s + i] = k;
      }
      for (let t = 0; t < T; t++) for (let i = 0; i < m; i++) perStep[t]! += r.termsBpd[t]![i]!;
    }
  } finally {
    await den.release();
  }
  bar.done();
  const secs = (performance.now() - t0) / 1000;
  // Digits padded from 28x28 to 32x32: the border is always background, so the total bits over the 28x28
  // pixels bound the unpadded image's bits/dim from above (the padding can only add code length).
  const padded28 = isPaddedDigits(spec, cfg.resolution);
  const unpadded = padded28 ? meanSe(total.map((v) => (v * per) / (28 * 28 * cfg.inChannels))) : null;
  const rows: [string, string, MeanSe][] = [
    ['L_T', 'prior KL(q(x_T|x_0) || N(0, I))', meanSe(prior)],
    ['L_1..L_{T-1}', `sum of the ${T - 1} KL terms`, meanSe(kl)],
    ['L_0', 'discretized decoder -log p(x_0|x_1)', meanSe(decoder)],
    ['total', 'the bound (NLL <=)', meanSe(total)],
    ...(unpadded
      ? ([['total / 28x28', 'the same bits over the 28x28 pixels: bounds the unpadded image', unpadded]] as [
          string,
          string,
          MeanSe,
        ][])
      : []),
  ];
  const fmt = (v: MeanSe) =>
    `${v.mean.toFixed(4).padStart(10)}  ${v.stdErr === null ? '       n/a' : `+- ${v.stdErr.toFixed(4)}`}`;
  console.log(`bits/dim of ${n} images of ${ds.name} under ${model.source} (T = ${T}, seed ${o.seed}):`);
  console.log(`  ${'term'.padEnd(14)}${'bits/dim'.padStart(10)}  std err   what`);
  for (const [name, what, v] of rows) console.log(`  ${name.padEnd(14)}${fmt(v)}  ${what}`);
  console.log(`${batches * T} network calls in ${secs.toFixed(1)} s`);
  if (o.json) {
    const report = {
      model: model.source,
      data: spec,
      dataset: ds.name,
      // Whether the images are outside the model's training data (false: not a held-out figure).
      heldOut: !seenInTraining(model.spec.data, spec),
      n,
      T,
      seed: o.seed,
      dims: per,
      unit: 'bits/dim',
      prior: meanSe(prior),
      decoder: meanSe(decoder),
      klSum: meanSe(kl),
      total: meanSe(total),
      // Total bits divided by the 28x28 pixels of the unpadded digits (an upper bound on their bits/dim).
      ...(unpadded ? { totalPer28x28: unpadded } : {}),
      // perStep[t - 1]: mean over images of L_{t-1} for the paper's t = 1..T (perStep[0] is the decoder L_0).
      perStep: Array.from(perStep, (v) => v / n),
      seconds: secs,
    };
    writeFileAtomic(o.json as string, `${JSON.stringify(report, null, 2)}\n`);
    console.log(`wrote ${o.json}`);
  }
}
