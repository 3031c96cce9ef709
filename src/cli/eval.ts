// `ddpm eval`: sample quality as the paper and its successors measure it (FID and IS, Table 1; KID;
// precision/recall), of a model and sampler or of a folder of images, against reference images or their
// statistics; `ddpm eval stats` writes reference statistics (.npz, pytorch-fid's layout), `ddpm eval merge`
// combines the partial results of sharded runs, `ddpm eval classifier` trains a domain feature network.
// Every result is printed with its feature network's name and weights hash and appended to a JSON-lines log
// with the whole protocol.

import { appendFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadImageFolder } from '../data/folder.js';
import { checkDataSpec, heldOutSplit, openDataset } from '../data/open.js';
import { samplerEntry } from '../diffusion/samplers.js';
import {
  ALL_METRICS,
  computeMetrics,
  extractFeatures,
  type FeatureSet,
  type ImageRange,
  type MetricName,
  type MetricOptions,
  type MetricValues,
  mergeFeatureSets,
  type Reference,
  shardRanges,
} from '../eval/evaluate.js';
import { classifierFeatureNet } from '../eval/classifier.js';
import { type FeatureNet, metricLabel } from '../eval/featureNet.js';
import { paramsHash, sha256Hex8 } from '../eval/hash.js';
import { datasetImages, type ImageSource, modelImages } from '../eval/imageSource.js';
import { inceptionFeatureNet } from '../eval/inception.js';
import { FeatureStats } from '../eval/metrics.js';
import { formatShardSet, parseShardSet, type ShardSet } from '../eval/shardSet.js';
import { writeFileAtomic } from '../util/atomicFile.js';
import { readNpz, writeNpz } from '../util/npy.js';
import { helpText, type OptTable, type Parsed, parseWithPositionals, UsageError } from './args.js';
import { classifierCommand } from './classifier.js';
import { didYouMean } from './suggest.js';
import { EP_OPTION, openEpOption } from './epOption.js';
import { commandDenoiser, PRECISION_OPTION } from './precisionOption.js';
import { MODEL_OPTION, openModelOption, WEIGHTS_OPTION } from './modelOption.js';
import {
  resolveSampling,
  SAMPLER_OPTION,
  samplingDiffusion,
  samplingLabel,
  STEPS_OPTION,
  VAR_TYPE_OPTION,
} from './samplingOption.js';
import { checkWritable } from './outputs.js';
import { formatDuration, ProgressBar } from './progress.js';
import { catchStopSignals, Interrupted, yielding } from './signals.js';

/** The shipped domain classifiers (feature networks for 1-channel data). */
const CLASSIFIERS: Record<string, string> = {
  'mnist-classifier': fileURLToPath(new URL('../../models/classifiers/mnist', import.meta.url)),
  'fashion-mnist-classifier': fileURLToPath(
    new URL('../../models/classifiers/fashion-mnist', import.meta.url),
  ),
};

const FEATURES_HELP =
  'feature network: auto (the shipped domain classifier for MNIST / Fashion-MNIST, Inception for colour images), inception, mnist-classifier, fashion-mnist-classifier, or a classifier folder';

const COMMON: OptTable = {
  features: { kind: 'string', help: FEATURES_HELP, default: 'auto' },
  inception: {
    kind: 'string',
    help: "pytorch-fid's Inception weights (pt_inception-2015-12-05-6726825d.pth or .safetensors); default $DDPM_INCEPTION",
  },
  batch: { kind: 'int', help: 'images per batch (sampling and features)', default: 64, min: 1 },
  'net-batch': {
    kind: 'auto-int',
    help: 'images per network call within a batch; auto: measured on this machine for long jobs, up to --batch',
    default: 'auto',
    min: 1,
  },
  threads: { kind: 'int', help: 'ONNX Runtime threads (0 = all cores)', default: 0, min: 0 },
  ep: EP_OPTION,
  precision: PRECISION_OPTION,
};

const METRIC_TUNING: OptTable = {
  'is-splits': { kind: 'int', help: 'Inception Score splits', default: 10, min: 1 },
  'kid-subsets': { kind: 'int', help: 'KID subsets', default: 100, min: 1 },
  'kid-subset-size': {
    kind: 'int',
    help: 'KID subset size (capped at the image counts)',
    default: 1000,
    min: 2,
  },
  'pr-k': { kind: 'int', help: 'precision/recall: k of the k-NN radii', default: 3, min: 1 },
  log: { kind: 'string', help: 'append every result as one JSON line to this file', default: 'eval.jsonl' },
};

export const EVAL_OPTIONS: OptTable = {
  model: MODEL_OPTION,
  weights: WEIGHTS_OPTION,
  samples: { kind: 'string', help: 'score a folder of PNG / JPEG images instead of a model' },
  sampler: SAMPLER_OPTION,
  steps: STEPS_OPTION,
  'var-type': VAR_TYPE_OPTION,
  eta: { kind: 'float', help: 'DDIM noise (0 = deterministic)', default: 0, min: 0 },
  n: { kind: 'int', help: 'images to generate (a folder: at most this many)', default: 10000, min: 1 },
  seed: { kind: 'int', help: 'seed: image i is drawn from noise stream (seed, i)', default: 0 },
  ref: {
    kind: 'string',
    help: "reference: a data spec (mnist, fashion-mnist:test, cifar10:PATH, folder:PATH) or an .npz of mu/sigma; default: the model's data (fashion-mnist: its test split)",
  },
  ...COMMON,
  shard: {
    kind: 'string',
    help: 'K/N: evaluate batches K, K+N, K+2N, ... only and write partial results to --out',
  },
  out: { kind: 'string', help: 'where a shard writes its partial results (.npz)' },
  checkpoint: {
    kind: 'string',
    help: "the images done so far (their features), written every 30 s and when Ctrl-C stops the run; the same command run again goes on from it, and it is deleted when the run completes. Default: eval-<hash of the run>.partial.npz in the current folder (a shard: OUT.partial.npz beside its --out); 'none': keep nothing",
  },
  ...METRIC_TUNING,
};

const STATS_OPTIONS: OptTable = {
  data: {
    kind: 'string',
    help: 'data spec (mnist, fashion-mnist:test, cifar10:PATH, folder:PATH, ...)',
    default: 'mnist',
  },
  out: { kind: 'string', help: 'output .npz (mu, sigma; pytorch-fid / clean-fid layout)' },
  n: { kind: 'int', help: 'at most this many images (default all)', min: 1 },
  resolution: { kind: 'int', help: 'image size (default: the data set’s own)', min: 4 },
  'with-features': {
    kind: 'bool',
    help: 'also store every feature vector (KID and precision/recall need them)',
  },
  ...COMMON,
};

const MERGE_OPTIONS: OptTable = {
  ref: { kind: 'string', help: 'reference (default: the one the shards recorded)' },
  out: {
    kind: 'string',
    help: "write the given shards as one partial result (.npz, any subset of one run's shards; a later merge takes it as those shards) instead of computing the metrics",
  },
  ...COMMON,
  ...METRIC_TUNING,
};

const SUMMARY = [
  'usage: ddpm eval <metrics> [options]      metrics: fid, is, kid, pr, all, or a list such as fid,kid',
  '       ddpm eval stats --data SPEC --out X.npz',
  '       ddpm eval merge PART.npz... [--ref ...]',
  '       ddpm eval classifier --data SPEC --out DIR',
  '',
  'Sample quality of a model (and sampler) or of a folder of images: FID (Heusel et al. 2017), Inception Score',
  '(Salimans et al. 2016), KID (Binkowski et al. 2018), precision/recall (Kynkaanniemi et al. 2019). Scores carry',
  'the feature network that measured them: FID[inception-v3-fid@...] is comparable with pytorch-fid;',
  'FID[mnist-classifier@...] only with scores of the same classifier.',
].join('\n');

export async function evalCommand(argv: readonly string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (!sub || sub === '--help' || sub === '-h' || sub === 'help') {
    console.log(
      `${SUMMARY}\n\n${helpText('eval <metrics>', 'Score a model or a folder of images.', EVAL_OPTIONS, [
        'ddpm eval fid --sampler ddim --steps 20 --n 1000            # the shipped MNIST model, 1,000 images',
        'ddpm eval all --model runs/fashion --ref fashion-mnist:test',
        'ddpm eval fid --samples my-pngs/ --ref stats/cifar10-train.npz --inception pt_inception-2015-12-05-6726825d.pth',
        'ddpm eval fid --n 50000 --shard 1/4 --out part1.npz         # then: ddpm eval merge part*.npz',
      ]).replace(/^usage: .*\n\n/, '')}`,
    );
    return;
  }
  switch (sub) {
    case 'stats':
      return statsCommand(rest);
    case 'merge':
      return mergeCommand(rest);
    case 'classifier':
      return classifierCommand(rest);
    default:
      return metricsCommand(parseMetrics(sub), rest);
  }
}

function parseMetrics(s: string): MetricName[] {
  if (s === 'all') return [...ALL_METRICS];
  const out: MetricName[] = [];
  for (const m of s.split(',')) {
    if (!(ALL_METRICS as readonly string[]).includes(m)) {
      throw new UsageError(
        `ddpm eval: unknown metric or command '${m}'${didYouMean(m, [...ALL_METRICS, 'all', 'stats', 'merge', 'classifier'])}; expected fid, is, kid, pr, all (or a list like fid,kid), stats, merge or classifier`,
      );
    }
    if (!out.includes(m as MetricName)) out.push(m as MetricName);
  }
  return out;
}

function parseShard(s: string | undefined): { k: number; of: number } | undefined {
  if (s === undefined) return undefined;
  const m = /^(\d+)\/(\d+)$/.exec(s);
  const k = Number(m?.[1]);
  const of = Number(m?.[2]);
  if (!m || k < 1 || of < 1 || k > of) {
    throw new UsageError(`ddpm eval: --shard ${JSON.stringify(s)}: expected K/N with 1 <= K <= N, e.g. 1/4`);
  }
  return { k, of };
}

function metricOptions(o: Parsed, seed: number): MetricOptions {
  return {
    isSplits: o['is-splits'] as number,
    kidSubsets: o['kid-subsets'] as number,
    kidSubsetSize: o['kid-subset-size'] as number,
    prK: o['pr-k'] as number,
    seed,
  };
}

/** The MNIST-like domain of a data spec, for choosing a shipped classifier. */
function domainOf(spec: string | undefined): 'mnist' | 'fashion-mnist' | undefined {
  if (!spec) return undefined;
  const kind = spec.split(':')[0];
  return kind === 'mnist' || kind === 'fashion-mnist' ? kind : undefined;
}

/** The default reference of a model trained on `data`: its held-out split where there is one, else the data. */
export function defaultRef(data: string | undefined): string | undefined {
  return heldOutSplit(data) ?? (domainOf(data) ? data : undefined);
}

/** The feature network o.features names, on the engine o.ep names (EP_OPTION). */
export async function openFeatureNet(
  cmd: string,
  o: Readonly<Record<string, unknown>>,
  channels: number,
  domainHint: string | undefined,
): Promise<FeatureNet> {
  const batch = o.batch as number;
  const threads = o.threads as number;
  let choice = o.features as string;
  if (choice === 'auto') {
    const domain = domainOf(domainHint);
    if (channels === 3) choice = 'inception';
    else if (domain) choice = `${domain}-classifier`;
    else {
      throw new UsageError(
        `ddpm ${cmd}: which feature network measures these 1-channel images? pass --features mnist-classifier, fashion-mnist-classifier, a classifier folder (ddpm eval classifier) or inception`,
      );
    }
  }
  if (choice === 'inception') {
    const path = (o.inception as string | undefined) ?? process.env.DDPM_INCEPTION;
    return inceptionFeatureNet(await openEpOption(o.ep), path, { batch, threads });
  }
  const dir = CLASSIFIERS[choice] ?? choice;
  if (!existsSync(dir)) {
    throw new UsageError(
      `ddpm ${cmd}: --features ${choice}: no such feature network or folder; ${FEATURES_HELP}`,
    );
  }
  return classifierFeatureNet(await openEpOption(o.ep), dir, { batch, threads });
}

/** Feature statistics (and features) of a data spec's images, shaped as the generated ones. */
async function referenceFromData(
  spec: string,
  net: FeatureNet,
  imageShape: readonly number[],
  keepFeatures: boolean,
  batch: number,
): Promise<Reference> {
  const [c, h] = imageShape as [number, number];
  const ds = openDataset(spec, { resolution: h, channels: c as 1 | 3 });
  const source = datasetImages(ds);
  const bar = new ProgressBar('reference');
  const t0 = performance.now();
  const set = await extractFeatures(source, net, {
    ranges: shardRanges(source.n, batch),
    keepFeatures,
    keepLogits: false,
    onProgress: (done, total) => bar.update(Math.floor(done), total, rate(done, total, t0)),
  });
  bar.done();
  return referenceOf(set, spec, net);
}

function referenceOf(set: FeatureSet, source: string, net: FeatureNet): Reference {
  const mu = set.stats.mean();
  const sigma = set.stats.covariance();
  return {
    source,
    hash: sha256Hex8(mu, sigma),
    n: set.indices.length,
    mu,
    sigma,
    ...(set.features ? { features: set.features } : {}),
    featureNet: `${net.name}@${net.weightsHash}`,
  };
}

/** An .npz reference that is not there: the error says how to write one (checked before any work). */
function checkNpzExists(path: string, who = 'ddpm eval: --ref'): void {
  if (!existsSync(path) || statSync(path).isDirectory()) {
    throw new UsageError(
      `${who} ${path}: no such file; write reference statistics with 'ddpm eval stats --data SPEC --out ${path}', or pass a data spec such as mnist or fashion-mnist:test`,
    );
  }
}

/** An .npz of reference statistics: ours, pytorch-fid's, TTUR's or clean-fid's (mu, sigma). */
/** `who` names the option in messages: 'ddpm eval: --ref', 'ddpm train: --eval-ref'. */
export function referenceFromNpz(
  path: string,
  net: Pick<FeatureNet, 'name' | 'weightsHash' | 'dims'>,
  who = 'ddpm eval: --ref',
): Reference {
  checkNpzExists(path, who);
  let arrays: ReturnType<typeof readNpz>;
  try {
    arrays = readNpz(new Uint8Array(readFileSync(path)), path);
  } catch (e) {
    throw new UsageError(`${who} ${(e as Error).message}`); // readNpz's message starts with the path
  }
  const mu = arrays.get('mu');
  const sigma = arrays.get('sigma');
  if (!mu || !sigma) {
    throw new UsageError(
      `${who} ${path} has no 'mu' and 'sigma' arrays (found: ${[...arrays.keys()].join(', ')})`,
    );
  }
  const d = net.dims;
  if (mu.data.length !== d || sigma.data.length !== d * d) {
    throw new UsageError(
      `${who} ${path} holds ${mu.data.length}-d statistics but ${net.name} gives ${d}-d features: statistics of another feature network`,
    );
  }
  const meta = readMeta(arrays);
  const made = typeof meta?.featureNet === 'string' ? meta.featureNet : undefined;
  if (made && made !== `${net.name}@${net.weightsHash}`) {
    throw new UsageError(
      `${who} ${path} was computed with ${made}, but the features now come from ${net.name}@${net.weightsHash}; FIDs of different networks do not compare`,
    );
  }
  const mu64 = float64(mu.data);
  const sigma64 = float64(sigma.data);
  const feats = arrays.get('features');
  if (feats && feats.data.length % d !== 0) {
    throw new UsageError(
      `${who} ${path}: its features hold ${feats.data.length} values, not rows of ${d}: a corrupt file; write it again with 'ddpm eval stats'`,
    );
  }
  return {
    source: path,
    hash: sha256Hex8(mu64, sigma64),
    n: typeof meta?.n === 'number' ? meta.n : Number.NaN,
    mu: mu64,
    sigma: sigma64,
    ...(feats ? { features: Float32Array.from(float64(feats.data)) } : {}),
    ...(made ? { featureNet: made } : {}),
  };
}

export async function openReference(
  spec: string,
  net: FeatureNet,
  imageShape: readonly number[],
  keepFeatures: boolean,
  batch: number,
  who?: string,
): Promise<Reference> {
  return /\.npz$/i.test(spec)
    ? referenceFromNpz(spec, net, who)
    : referenceFromData(spec, net, imageShape, keepFeatures, batch);
}

/** An .npz array's values as float64, whatever its dtype (int64 arrays hold BigInts). */
function float64(data: ArrayLike<number | bigint>): Float64Array {
  return Float64Array.from(data as ArrayLike<number | bigint>, (v) => Number(v));
}

function readMeta(
  arrays: Map<string, { data: ArrayLike<number | bigint> }>,
): Record<string, unknown> | undefined {
  const m = arrays.get('meta');
  if (!m || !(m.data instanceof Uint8Array)) return undefined;
  try {
    const meta: unknown = JSON.parse(new TextDecoder().decode(m.data));
    return meta !== null && typeof meta === 'object' && !Array.isArray(meta)
      ? (meta as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

/** The meta record of an .npz written by this project (undefined for others, and for missing files). */
function npzMeta(path: string): Record<string, unknown> | undefined {
  if (!existsSync(path)) return undefined;
  try {
    return readMeta(readNpz(new Uint8Array(readFileSync(path)), path));
  } catch {
    return undefined; // referenceFromNpz reports what is wrong with the file
  }
}

function metaArray(meta: unknown): { data: Uint8Array; shape: number[] } {
  const bytes = new TextEncoder().encode(JSON.stringify(meta));
  return { data: bytes, shape: [bytes.length] };
}

function rate(done: number, total: number, t0: number): string {
  const el = (performance.now() - t0) / 1000;
  const ips = done / Math.max(el, 1e-9);
  // Two significant digits below 10 images/s: a 1000-step sampler on one thread makes about 0.2 a second.
  const shown = ips >= 10 ? ips.toFixed(0) : ips.toPrecision(2);
  return `${shown} img/s | eta ${formatDuration(done > 0 ? (total - done) / ips : Number.NaN)}`;
}

/** Where the evaluated images come from, and the protocol fields that say so. */
interface Images {
  readonly source: ImageSource;
  readonly protocol: Record<string, unknown>;
  readonly domain: string | undefined;
  readonly defaultRef: string | undefined;
  release(): Promise<void>;
}

/** The sampling.json of a folder `ddpm sample --out DIR/` wrote, or undefined (absent or not such a record). */
function sampleRecord(dir: string): Record<string, unknown> | undefined {
  const path = join(dir, 'sampling.json');
  if (!existsSync(path)) return undefined;
  try {
    const r = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    return r.format === 'ddpm-ts/samples/v1' ? r : undefined;
  } catch {
    return undefined;
  }
}

async function openImages(o: Parsed): Promise<Images> {
  if (o.samples !== undefined) {
    const dir = o.samples as string;
    if (!existsSync(dir) || !statSync(dir).isDirectory()) {
      throw new UsageError(`ddpm eval: --samples ${dir}: no such folder`);
    }
    // The options of a model's sampling would be ignored: refused, so no record claims what did not happen.
    const sampling = [
      o.model !== MODEL_OPTION.default && '--model',
      o.weights !== WEIGHTS_OPTION.default && '--weights',
      o.sampler !== undefined && '--sampler',
      o.steps !== undefined && '--steps',
      o['var-type'] !== undefined && '--var-type',
      o.eta !== 0 && '--eta',
      o.precision !== 'float32' && '--precision',
    ].filter(Boolean);
    if (sampling.length) {
      throw new UsageError(
        `ddpm eval: ${sampling.join(', ')} ${sampling.length > 1 ? 'set' : 'sets'} how a model samples; the images of --samples ${dir} are already drawn (a folder from 'ddpm sample --out DIR/' records how in its sampling.json)`,
      );
    }
    // The folder's images take the shape of the reference data (32x32 RGB when there is none); an .npz
    // written by `ddpm eval stats` records its data set and image shape.
    const refSpec = o.ref as string | undefined;
    const npz = refSpec && /\.npz$/i.test(refSpec) ? npzMeta(refSpec) : undefined;
    const like = refSpec && !npz && !/\.npz$/i.test(refSpec) ? openDataset(refSpec) : undefined;
    // A folder `ddpm sample --out DIR/` wrote names what drew it (model hash, sampler, steps, seed).
    const drawnBy = sampleRecord(dir);
    const shape = like
      ? [like.channels, like.height]
      : ((npz?.imageShape ?? drawnBy?.imageShape) as number[] | undefined);
    const source = folderImages(dir, o.n as number, (shape?.[0] ?? 3) as 1 | 3, shape?.[1] ?? 32);
    return {
      source,
      protocol: { kind: 'samples', dir, ...(drawnBy ? { drawnBy } : {}) },
      domain: npz ? (npz.data as string | undefined) : refSpec,
      defaultRef: undefined,
      release: async () => {},
    };
  }
  const model = openModelOption('eval', o.model, o.weights);
  const cfg = model.spec.unet;
  const batch = o.batch as number;
  const sampling = resolveSampling('eval', o, model.spec);
  if (sampling.note) console.error(sampling.note);
  const diffusion = samplingDiffusion(model, sampling);
  const choice = {
    sampler: sampling.sampler,
    steps: sampling.steps,
    eta: o.eta as number,
    seed: o.seed as number,
  };
  // The images are drawn per --batch range (seeds and shards follow it); the network's compiled batch is
  // measured (src/sample/autoBatch.ts) up to that size unless --net-batch says.
  const picked = await commandDenoiser(
    'eval',
    o,
    { cfg, params: model.params, diffusion },
    {
      images: o.n as number,
      callsPerImage: samplerEntry(choice.sampler).calls(diffusion, choice.steps),
      batch: o['net-batch'] as number | 'auto',
      limit: batch,
    },
  );
  const den = picked.denoiser;
  const sampler = samplingLabel(sampling, choice.eta, diffusion.numTimesteps);
  return {
    source: modelImages(
      diffusion,
      yielding(den.denoise), // Ctrl-C gets through between network calls
      [cfg.inChannels, cfg.resolution, cfg.resolution],
      o.n as number,
      choice,
      `${model.source}, ${sampler}, seed ${choice.seed}`,
    ),
    protocol: {
      kind: 'model',
      model: model.source,
      weightsHash: paramsHash(model.params),
      sampler,
      steps: choice.steps,
      eta: choice.eta,
      ...(sampling.varOverride ? { varType: sampling.varType } : {}),
      seed: choice.seed,
      batch,
      // int8: how many convolutions were quantized (the first and last stay float32; calibrate.ts).
      ...(picked.int8Convs !== undefined ? { precision: 'int8', int8Convs: picked.int8Convs } : {}),
      ...(picked.bf16 ? { precision: 'bf16' } : {}),
    },
    domain: model.spec.data,
    defaultRef: defaultRef(model.spec.data),
    release: () => den.release(),
  };
}

/** A folder of images, loaded at the size and channel count the reference (or feature network) expects. */
function folderImages(dir: string, n: number, channels: 1 | 3, resolution: number): ImageSource {
  const ds = loadImageFolder(dir, { channels, resolution, limit: n, canFlip: false });
  if (ds.n === 0) throw new UsageError(`ddpm eval: --samples ${dir} holds no PNG or JPEG images`);
  return datasetImages(ds);
}

async function metricsCommand(metrics: MetricName[], argv: readonly string[]): Promise<void> {
  const p = parseWithPositionals('eval', argv, EVAL_OPTIONS, 0);
  if (p === 'help') return evalCommand(['--help']);
  const o = p.options;
  const shard = parseShard(o.shard as string | undefined);
  if (shard && o.out === undefined) {
    throw new UsageError(`ddpm eval: --shard ${o.shard} writes partial results: pass --out PART.npz`);
  }
  if (!shard && o.out !== undefined) {
    throw new UsageError(
      'ddpm eval: --out is for the partial results of --shard; results go to --log and the terminal',
    );
  }
  if (shard) checkWritable('eval', o.out as string, 'partial results');
  if (o.log) checkWritable('eval', o.log as string, 'log');
  const t0 = performance.now();
  // A reference that cannot be there fails now, not after the model's set-up and batch measurement.
  const refArg = o.ref as string | undefined;
  if (refArg && /\.npz$/i.test(refArg)) checkNpzExists(refArg);
  else if (refArg) checkDataSpec(refArg);
  const images = await openImages(o);
  let net: FeatureNet | undefined;
  try {
    // A folder's images take the reference's shape; a model's are its own.
    const refSpec = (o.ref as string | undefined) ?? images.defaultRef;
    const needRef = metrics.some((m) => m !== 'is');
    if (needRef && !refSpec) {
      throw new UsageError(
        `ddpm eval: ${metrics.filter((m) => m !== 'is').join(', ')} compare with reference images: pass --ref (a data spec such as fashion-mnist:test, or an .npz of mu/sigma)`,
      );
    }
    const { source, domain } = images;
    net = await openFeatureNet('eval', o, source.imageShape[0], domain);
    const keepFeatures = metrics.includes('kid') || metrics.includes('pr');
    // The reference first: a wrong path or another network's statistics fail before an hour of sampling.
    // A shard only checks it (the merge measures against it).
    let ref: Reference | undefined;
    if (needRef && shard) {
      if (/\.npz$/i.test(refSpec!)) referenceFromNpz(refSpec!, net);
      else openDataset(refSpec!);
    } else if (needRef) {
      ref = await openReference(refSpec!, net, source.imageShape, keepFeatures, o.batch as number);
    }
    const n = source.n;
    const protocol = {
      images: { ...images.protocol, n },
      featureNet: { name: net.name, weightsHash: net.weightsHash, preprocess: net.preprocess },
      ref: refSpec ?? null,
      metrics,
    };
    const shardMeta = shard ? { shard: `${shard.k}/${shard.of}` } : {};
    const allRanges = shardRanges(n, o.batch as number, shard);
    const ck = openCheckpoint(o, protocol, shardMeta, allRanges, keepFeatures, metrics.includes('is'));
    const ranges = allRanges.filter((r) => !ck.held.has(r.start));
    const wanted = allRanges.reduce((a, r) => a + r.count, 0);
    // Ctrl-C from here on stops after the current batch (the first line below says the run has started).
    const stop = catchStopSignals(
      'eval',
      ck.path
        ? `stopping after the current batch; the images done are kept in ${ck.path}`
        : 'stopping after the current batch (--checkpoint none: the images done are not kept)',
    );
    const bar = new ProgressBar(shard ? `eval ${shard.k}/${shard.of}` : 'eval');
    bar.log(
      `ddpm eval: ${metrics.join(', ')} of ${n} images (${source.description}) with ${net.name}@${net.weightsHash}` +
        (shard ? `; shard ${shard.k}/${shard.of}: ${wanted} images` : ''),
    );
    if (ck.resumed) {
      bar.log(
        `ddpm eval: going on from ${ck.path}: ${ck.resumed.indices.length} of ${wanted} images done (${ck.priorSeconds.toFixed(0)} s)`,
      );
    }
    const tg = performance.now();
    const seconds = () => ck.priorSeconds + (performance.now() - tg) / 1000;
    let lastSave = performance.now();
    let gen: FeatureSet;
    try {
      gen = await extractFeatures(source, net, {
        ranges,
        keepFeatures,
        keepLogits: metrics.includes('is'),
        onProgress: (done, total) => bar.update(Math.floor(done), total, rate(done, total, tg)),
        onRangeDone: (soFar) => {
          if (ck.path && performance.now() - lastSave > CHECKPOINT_EVERY_MS) {
            ck.save(soFar, seconds());
            lastSave = performance.now();
          }
        },
        shouldStop: () => stop.received() !== undefined,
      });
    } finally {
      stop.dispose();
    }
    bar.done();
    const got = stop.received();
    const done = gen.indices.length + (ck.resumed?.indices.length ?? 0);
    if (got && done < wanted) {
      if (ck.path) ck.save(gen, seconds());
      throw new Interrupted(
        got,
        ck.path
          ? `stopped by ${got} after ${done} of ${wanted} images; they are kept in ${ck.path}: run the same command again to go on from there`
          : `stopped by ${got} after ${done} of ${wanted} images; nothing kept (--checkpoint none)`,
      );
    }
    if (ck.resumed) gen = mergeFeatureSets([ck.resumed, gen], 'disjoint');
    const genSeconds = seconds();
    if (shard) {
      // imageSeconds: this shard's sampling and feature time; the merge reports the sum over shards per image.
      writePartial(o.out as string, gen, { ...protocol, ...shardMeta, imageSeconds: genSeconds });
      console.log(
        `wrote ${o.out}: partial results of shard ${shard.k}/${shard.of} (${gen.indices.length} of ${n} images, ${genSeconds.toFixed(1)} s); combine with 'ddpm eval merge'`,
      );
    } else {
      const values = computeMetrics(gen, ref, metrics, metricOptions(o, o.seed as number));
      report(o, net, values, gen.indices.length, ref, protocol, {
        seconds: (performance.now() - t0) / 1000 + ck.priorSeconds,
        imageSeconds: genSeconds,
      });
    }
    ck.remove();
  } finally {
    await net?.release();
    await images.release();
  }
}

/** How often a run writes its checkpoint (after the batch that passes this time since the last write). */
const CHECKPOINT_EVERY_MS = 30_000;

interface Checkpoint {
  /** null: --checkpoint none. */
  readonly path: string | null;
  /** The images a previous run of the same command kept, if any. */
  readonly resumed: FeatureSet | undefined;
  /** The start of every batch those images fill (batches are kept whole). */
  readonly held: ReadonlySet<number>;
  /** The sampling and feature time the kept images cost. */
  readonly priorSeconds: number;
  /** Write the kept images with `soFar` (this run's images) atomically. */
  save(soFar: FeatureSet, seconds: number): void;
  /** Delete the file (the run completed). */
  remove(): void;
}

/**
 * The run's checkpoint: its path (--checkpoint, else a name from the hash of the run's protocol, so the same
 * command finds it again), and what a previous run of the same command kept there. A file from another run
 * (a different model, sampler, seed, batch, feature network or reference), one without the features or logits
 * this run's metrics need, or one holding images outside this run's batches is refused with what differs.
 */
function openCheckpoint(
  o: Parsed,
  protocol: Record<string, unknown>,
  shardMeta: Record<string, unknown>,
  ranges: readonly ImageRange[],
  keepFeatures: boolean,
  keepLogits: boolean,
): Checkpoint {
  const given = o.checkpoint as string | undefined;
  const id = sha256Hex8(new TextEncoder().encode(JSON.stringify({ ...protocol, ...shardMeta })));
  const path =
    given === 'none'
      ? null
      : (given ?? (o.out ? `${o.out as string}.partial.npz` : `eval-${id}.partial.npz`));
  const meta = { ...protocol, ...shardMeta, checkpointOf: id };
  let resumed: FeatureSet | undefined;
  let priorSeconds = 0;
  const held = new Set<number>();
  if (path) checkWritable('eval', path, 'checkpoint');
  if (path && existsSync(path)) {
    const who = `ddpm eval: checkpoint ${path}`;
    const fresh = `delete it to start over, or pass another --checkpoint`;
    const part = readPartial(path, 'ddpm eval: checkpoint', fresh);
    const diff = protocolDifferences(part.meta, meta);
    if (part.meta.checkpointOf !== id || diff.length > 0) {
      throw new UsageError(
        `${who} is of another evaluation${diff.length ? ` (${diff.slice(0, 3).join('; ')})` : ` (run ${String(part.meta.checkpointOf)}, this one ${id})`}; ${fresh}`,
      );
    }
    if ((keepFeatures && !part.set.features) || (keepLogits && !part.set.logits)) {
      throw new UsageError(`${who} lacks the features or logits these metrics need; ${fresh}`);
    }
    const byStart = new Map(ranges.map((r) => [r.start, r.count]));
    const idx = part.set.indices;
    for (let i = 0; i < idx.length; ) {
      const count = byStart.get(idx[i]!);
      if (count === undefined || i + count > idx.length || idx[i + count - 1] !== idx[i]! + count - 1) {
        throw new UsageError(
          `${who} holds image ${idx[i]}, which is not the start of one of this run's batches; ${fresh}`,
        );
      }
      held.add(idx[i]!);
      i += count;
    }
    resumed = part.set;
    priorSeconds = typeof part.meta.imageSeconds === 'number' ? part.meta.imageSeconds : 0;
  }
  return {
    path,
    resumed,
    held,
    priorSeconds,
    save(soFar, seconds) {
      if (!path) return;
      const set = resumed ? mergeFeatureSets([resumed, copySet(soFar)], 'disjoint') : soFar;
      writePartial(path, set, { ...meta, imageSeconds: seconds });
    },
    remove() {
      if (path && existsSync(path)) rmSync(path);
    },
  };
}

/** A feature set whose arrays are its own (extractFeatures hands out views of arrays it keeps filling). */
function copySet(s: FeatureSet): FeatureSet {
  return {
    ...s,
    indices: s.indices.slice(),
    ...(s.features ? { features: s.features.slice() } : {}),
    ...(s.logits ? { logits: s.logits.slice() } : {}),
  };
}

function writePartial(path: string, set: FeatureSet, meta: Record<string, unknown>): void {
  const d = set.dims;
  const arrays: Record<
    string,
    { data: Float64Array | Float32Array | BigInt64Array | Uint8Array; shape: number[] }
  > = {
    count: { data: Float64Array.of(set.stats.count), shape: [] },
    sum: { data: set.stats.sum, shape: [d] },
    outer: { data: set.stats.outer, shape: [d, d] },
    indices: { data: BigInt64Array.from(set.indices, (v) => BigInt(v)), shape: [set.indices.length] },
    meta: metaArray(meta),
  };
  if (set.features) arrays.features = { data: set.features, shape: [set.indices.length, d] };
  if (set.logits) arrays.logits = { data: set.logits, shape: [set.indices.length, set.classes] };
  writeFileAtomic(path, writeNpz(arrays));
}

/** A partial result of `ddpm eval --shard` (writePartial's .npz), checked: every array's type and size. */
export function readPartial(
  path: string,
  who = 'ddpm eval merge',
  again = 'run its shard again (ddpm eval --shard K/N)',
): { set: FeatureSet; meta: Record<string, unknown> } {
  if (!existsSync(path)) throw new UsageError(`${who}: ${path} does not exist`);
  let arrays: ReturnType<typeof readNpz>;
  try {
    arrays = readNpz(new Uint8Array(readFileSync(path)), path);
  } catch (e) {
    throw new UsageError(`${who}: ${(e as Error).message}; ${again}`); // readNpz's message starts with the path
  }
  const meta = readMeta(arrays);
  const need = ['count', 'sum', 'outer', 'indices'];
  if (!meta || need.some((k) => !arrays.has(k))) {
    throw new UsageError(`${who}: ${path} is not a partial result of 'ddpm eval' (--shard or --checkpoint)`);
  }
  const corrupt = (what: string): never => {
    throw new UsageError(`${who}: ${path}: ${what}: a corrupt partial result; ${again}`);
  };
  const sum = float64(arrays.get('sum')!.data);
  const d = sum.length;
  const count = float64(arrays.get('count')!.data);
  const idx = float64(arrays.get('indices')!.data);
  if (d === 0) corrupt('sum is empty');
  if (count.length !== 1 || count[0] !== idx.length)
    corrupt(`count is [${count.slice(0, 3).join(', ')}], not the ${idx.length} rows of indices`);
  if (!idx.every((v) => Number.isInteger(v) && v >= 0 && v < 2 ** 31))
    corrupt('indices are not image numbers (integers from 0)');
  let stats: FeatureStats;
  try {
    stats = FeatureStats.fromSums(d, count[0]!, sum, float64(arrays.get('outer')!.data));
  } catch (e) {
    return corrupt((e as Error).message);
  }
  const indices = Int32Array.from(idx);
  const f = arrays.get('features');
  const l = arrays.get('logits');
  if (f && f.data.length !== indices.length * d)
    corrupt(`features hold ${f.data.length} values, not ${indices.length} rows of ${d}`);
  if (l && (indices.length === 0 || l.data.length % indices.length !== 0))
    corrupt(`logits hold ${l.data.length} values, not ${indices.length} rows`);
  const classes = l ? l.data.length / Math.max(indices.length, 1) : 0;
  return {
    set: {
      dims: d,
      classes,
      indices,
      stats,
      ...(f ? { features: Float32Array.from(float64(f.data)) } : {}),
      ...(l ? { logits: Float32Array.from(float64(l.data)) } : {}),
    },
    meta,
  };
}

/**
 * Where two shards' records differ, as 'images.sampler: "ddpm-50" in the first, "ddpm-50-fixedsmall" here';
 * empty when they come from the same evaluation. Their shard, timing, metrics and image count N aside: image
 * i is drawn from noise stream (seed, i) whatever N is, so the shards of an N = 1,000 run are the first
 * 1,000 images of an N = 10,000 run with the same model, sampler and seed (an evaluation grows).
 */
function protocolDifferences(a: Record<string, unknown>, b: Record<string, unknown>): string[] {
  const out: string[] = [];
  const walk = (x: unknown, y: unknown, path: string) => {
    const obj = (v: unknown): v is Record<string, unknown> =>
      v !== null && typeof v === 'object' && !Array.isArray(v);
    if (obj(x) && obj(y)) {
      for (const k of new Set([...Object.keys(x), ...Object.keys(y)])) {
        if (!path && (k === 'shard' || k === 'imageSeconds' || k === 'metrics')) continue;
        if (path === 'images' && k === 'n') continue;
        walk(x[k], y[k], path ? `${path}.${k}` : k);
      }
    } else if (JSON.stringify(x) !== JSON.stringify(y)) {
      const show = (v: unknown) => (v === undefined ? 'absent' : JSON.stringify(v));
      out.push(`${path}: ${show(x)} in the first, ${show(y)} here`);
    }
  };
  walk(a, b, '');
  return out;
}

/** What a partial result must have kept for a metric to be computed from it (FID needs only the sums). */
function keptFor(m: MetricName): 'logits' | 'features' | undefined {
  switch (m) {
    case 'fid':
      return undefined;
    case 'is':
      return 'logits';
    case 'kid':
    case 'pr':
      return 'features';
  }
}

async function mergeCommand(argv: readonly string[]): Promise<void> {
  const p = parseWithPositionals('eval merge', argv, MERGE_OPTIONS);
  if (p === 'help') {
    console.log(
      helpText(
        'eval merge PART.npz...',
        'Combine the partial results of sharded runs (ddpm eval --shard K/N) into the result of one run.',
        MERGE_OPTIONS,
        [
          'ddpm eval merge part1.npz part2.npz part3.npz part4.npz',
          '# grow an N = 1,000 run (10 shards of --batch 100) to N = 10,000: run shards 11..100 of 100 with --n 10000',
          'ddpm eval merge n1000-*of10.npz n10000-*of100.npz',
          '# carry a long run as one file: shards 1..25 of 100 -> part-1-25-of-100.npz (0.15 MB + 0.56 kB an image)',
          'ddpm eval merge --out part-1-25-of-100.npz part-{1..25}-of-100.npz',
        ],
      ),
    );
    return;
  }
  const o = p.options;
  if (p.positionals.length === 0)
    throw new UsageError('ddpm eval merge: name the partial results, e.g. ddpm eval merge part*.npz');
  if (o.log) checkWritable('eval merge', o.log as string, 'log');
  if (o.out !== undefined) checkWritable('eval merge', o.out as string, 'partial results');
  const t0 = performance.now();
  const parts = p.positionals.map((f) => readPartial(f));
  const meta0 = parts[0]!.meta;
  for (const [i, part] of parts.entries()) {
    const differ = protocolDifferences(meta0, part.meta);
    if (differ.length) {
      throw new UsageError(
        `ddpm eval merge: ${p.positionals[i]} comes from another evaluation than ${p.positionals[0]}: ${differ.slice(0, 3).join('; ')}`,
      );
    }
  }
  // Every metric any part asked for, if every part kept what it needs (IS: logits; KID, PR: features).
  const asked = new Set(parts.flatMap((x) => x.meta.metrics as MetricName[]));
  const metrics = ALL_METRICS.filter((m) => asked.has(m));
  for (const m of metrics) {
    const needs = keptFor(m);
    const lacking = needs ? parts.findIndex((x) => !x.set[needs]) : -1;
    if (needs && lacking >= 0) {
      throw new UsageError(
        `ddpm eval merge: ${p.positionals[lacking]} kept no ${needs} (its run measured ${(parts[lacking]!.meta.metrics as string[]).join(',')}), so ${m} cannot be merged; run that shard again with ${m} among its metrics`,
      );
    }
  }
  const sameRun = parts.every((x) => imageCountOf(x.meta) === imageCountOf(meta0));
  const sets = parts.map((x) => parseShardSet(String(x.meta.shard)));
  // One run's parts (or --out, which combines one run's) must each say which shards they hold.
  const unsharded = sameRun || o.out !== undefined ? sets.findIndex((x) => !x) : -1;
  if (unsharded >= 0) {
    throw new UsageError(
      `ddpm eval merge: ${p.positionals[unsharded]} records no shard (K/N): merge takes the partial results of 'ddpm eval --shard K/N' runs`,
    );
  }
  const of = sets[0]?.of ?? Number.NaN;
  // Each shard of a run once: a part holds one shard ('K/N') or several (written by merge --out).
  const heldBy = new Map<number, number>();
  for (const [i, set] of sets.entries()) {
    for (const k of set?.ks ?? []) {
      const j = heldBy.get(k);
      if (j !== undefined && sameRun) {
        throw new UsageError(
          `ddpm eval merge: shard ${k}/${of} is in both ${p.positionals[j]} and ${p.positionals[i]}; give it once`,
        );
      }
      heldBy.set(k, i);
    }
  }
  if (o.out !== undefined) {
    writeCombined(o.out as string, parts, sets as ShardSet[], p.positionals);
    return;
  }
  if (sameRun && heldBy.size !== of) {
    const missing = Array.from({ length: of }, (_, i) => i + 1).filter((k) => !heldBy.has(k));
    throw new UsageError(
      `ddpm eval merge: the shards were split ${of} ways but the ${parts.length} partial results given hold ${heldBy.size} of them (missing: ${formatShardSet({ ks: missing, of })})`,
    );
  }
  // Shards of runs with different N (an evaluation grown from N = 1,000 to 10,000): the largest N is the
  // merged run's, and every image below it must be in exactly one part.
  const n = Math.max(...parts.map((x) => imageCountOf(x.meta)));
  const held = parts.reduce((a, x) => a + x.set.indices.length, 0);
  if (held < n) {
    const have = new Uint8Array(n);
    for (const x of parts) for (const i of x.set.indices) if (i < n) have[i] = 1;
    const first = have.indexOf(0);
    let last = first;
    while (last + 1 < n && !have[last + 1]) last++;
    throw new UsageError(
      `ddpm eval merge: the shards hold ${held} of ${n} images; images ${first}..${last} are in none of them (a shard is missing)`,
    );
  }
  const gen = mergeFeatureSets(parts.map((x) => x.set));
  if (gen.indices.length !== n) {
    throw new UsageError(`ddpm eval merge: the shards hold ${gen.indices.length} images, not ${n}`);
  }
  const fn = meta0.featureNet as { name: string; weightsHash: string };
  const images: Record<string, unknown> = { ...(meta0.images as Record<string, unknown>), n };
  const features = CLASSIFIERS[fn.name]
    ? fn.name
    : fn.name === 'inception-v3-fid'
      ? 'inception'
      : (o.features as string);
  const net = await openFeatureNet(
    'eval merge',
    { ...o, features: o.features === 'auto' ? features : o.features },
    1,
    undefined,
  );
  try {
    if (net.weightsHash !== fn.weightsHash) {
      throw new UsageError(
        `ddpm eval merge: the shards used ${fn.name}@${fn.weightsHash}, but ${net.name}@${net.weightsHash} is at hand`,
      );
    }
    const refSpec = (o.ref as string | undefined) ?? (meta0.ref as string | null) ?? undefined;
    const needRef = metrics.some((m) => m !== 'is');
    const imageShape = await shapeOfImages(images, refSpec);
    const ref =
      needRef && refSpec
        ? await openReference(refSpec, net, imageShape, !!gen.features, o.batch as number)
        : undefined;
    const values = computeMetrics(gen, ref, metrics, metricOptions(o, Number(images.seed ?? 0)));
    report(
      o,
      net,
      values,
      gen.indices.length,
      ref,
      { ...meta0, images, metrics, shard: undefined, imageSeconds: undefined, mergedFrom: p.positionals },
      {
        seconds: (performance.now() - t0) / 1000,
        // the shards' own times, summed (parts written before they recorded it have none)
        ...(parts.every((x) => typeof x.meta.imageSeconds === 'number')
          ? { imageSeconds: parts.reduce((a, x) => a + (x.meta.imageSeconds as number), 0) }
          : {}),
      },
    );
  } finally {
    await net.release();
  }
}

/** The N of the run a partial result comes from (its images.n). */
function imageCountOf(meta: Record<string, unknown>): number {
  return Number((meta.images as Record<string, unknown>).n);
}

/**
 * `eval merge --out`: the parts (shards of one run, each once) as one partial result that holds their shard
 * set, for a later merge to take as those shards. Nothing is measured, so no feature network or reference.
 */
function writeCombined(
  out: string,
  parts: readonly { set: FeatureSet; meta: Record<string, unknown> }[],
  sets: readonly ShardSet[],
  names: readonly string[],
): void {
  const odd = sets.findIndex(
    (s, i) => s.of !== sets[0]!.of || imageCountOf(parts[i]!.meta) !== imageCountOf(parts[0]!.meta),
  );
  if (odd >= 0) {
    throw new UsageError(
      `ddpm eval merge --out: ${names[odd]} (shard ${String(parts[odd]!.meta.shard)} of N = ${imageCountOf(parts[odd]!.meta)}) is not a shard of the run ${names[0]} is from (shard ${String(parts[0]!.meta.shard)} of N = ${imageCountOf(parts[0]!.meta)}); --out combines the shards of one run`,
    );
  }
  const gen = mergeFeatureSets(
    parts.map((x) => x.set),
    'disjoint',
  );
  // The metrics any part asked for that the combined parts can still give (IS: logits; KID, PR: features).
  const asked = new Set(parts.flatMap((x) => x.meta.metrics as MetricName[]));
  const metrics = ALL_METRICS.filter((m) => {
    const needs = keptFor(m);
    return asked.has(m) && (!needs || gen[needs]);
  });
  const seconds = parts.every((x) => typeof x.meta.imageSeconds === 'number')
    ? { imageSeconds: parts.reduce((a, x) => a + (x.meta.imageSeconds as number), 0) }
    : {};
  const shard = formatShardSet({ ks: sets.flatMap((s) => s.ks), of: sets[0]!.of });
  writePartial(out, gen, { ...parts[0]!.meta, metrics, shard, ...seconds });
  console.log(
    `wrote ${out}: partial results of shards ${shard} (${gen.indices.length} of ${imageCountOf(parts[0]!.meta)} images); a later merge takes it as those shards`,
  );
}

/** The [C, H, W] the reference data must take to match the evaluated images. */
async function shapeOfImages(
  images: Record<string, unknown>,
  refSpec: string | undefined,
): Promise<number[]> {
  if (images.kind === 'model') {
    const m = openModelOption('eval merge', images.model);
    const c = m.spec.unet;
    return [c.inChannels, c.resolution, c.resolution];
  }
  if (refSpec && /\.npz$/i.test(refSpec)) {
    const shape = npzMeta(refSpec)?.imageShape as number[] | undefined;
    return shape ?? [3, 32, 32];
  }
  const ds = refSpec ? openDataset(refSpec) : undefined;
  return [ds?.channels ?? 3, ds?.height ?? 32, ds?.width ?? 32];
}

function report(
  o: Parsed,
  net: FeatureNet,
  v: MetricValues,
  n: number,
  ref: Reference | undefined,
  protocol: Record<string, unknown>,
  time: { seconds: number; imageSeconds?: number },
): void {
  const results: Record<string, unknown> = {};
  const lines: string[] = [];
  const put = (metric: string, value: number | { mean: number; std: number }, fmt: (x: number) => string) => {
    const label = metricLabel(metric, net);
    results[label] = value;
    lines.push(
      `  ${label.padEnd(34)} ${typeof value === 'number' ? fmt(value) : `${fmt(value.mean)} +- ${fmt(value.std)}`}`,
    );
  };
  if (v.fid !== undefined) put('FID', v.fid, (x) => x.toFixed(3));
  if (v.is !== undefined) put('IS', v.is, (x) => x.toFixed(3));
  if (v.kid !== undefined) put('KID', v.kid, (x) => x.toExponential(3));
  if (v.precision !== undefined) put('precision', v.precision, (x) => x.toFixed(4));
  if (v.recall !== undefined) put('recall', v.recall, (x) => x.toFixed(4));
  const refText = ref
    ? `against ${ref.source} (${Number.isNaN(ref.n) ? '?' : ref.n} images, stats ${ref.hash})`
    : '';
  console.log(`${n} images ${refText}:`);
  for (const l of lines) console.log(l);
  const perImage =
    time.imageSeconds !== undefined ? `; ${((1000 * time.imageSeconds) / n).toFixed(1)} ms per image` : '';
  console.log(`${time.seconds.toFixed(1)} s in all${perImage}`);
  if (o.log) {
    const record = {
      time: new Date().toISOString(),
      results,
      n,
      protocol: {
        ...protocol,
        reference: ref ? { source: ref.source, hash: ref.hash, n: Number.isNaN(ref.n) ? null : ref.n } : null,
        is: { splits: o['is-splits'] },
        kid: { subsets: o['kid-subsets'], subsetSize: o['kid-subset-size'] },
        pr: { k: o['pr-k'] },
      },
      seconds: time.seconds,
      ...(time.imageSeconds !== undefined ? { msPerImage: (1000 * time.imageSeconds) / n } : {}),
      machine: { cpu: cpus()[0]?.model ?? 'unknown', cores: cpus().length, threads: o.threads, ep: o.ep },
    };
    appendFileSync(o.log as string, `${JSON.stringify(record)}\n`);
    console.log(`appended to ${o.log}`);
  }
}

async function statsCommand(argv: readonly string[]): Promise<void> {
  const p = parseWithPositionals('eval stats', argv, STATS_OPTIONS, 0);
  if (p === 'help') {
    console.log(
      helpText(
        'eval stats',
        'Reference statistics of a data set: mu and sigma (float64) of its features in an .npz, the layout pytorch-fid, TTUR and clean-fid read; with --with-features also the features (for KID and precision/recall).',
        STATS_OPTIONS,
        [
          'ddpm eval stats --data fashion-mnist:test --out fashion-test.npz --with-features',
          'ddpm eval stats --data cifar10:~/cifar-10-batches-bin --out cifar10-train.npz --inception pt_inception-2015-12-05-6726825d.pth',
        ],
      ),
    );
    return;
  }
  const o = p.options;
  if (o.out === undefined)
    throw new UsageError('ddpm eval stats: pass --out X.npz (where to write mu and sigma)');
  checkWritable('eval stats', o.out as string, 'statistics');
  const spec = o.data as string;
  const probe = openDataset(spec, o.resolution ? { resolution: o.resolution as number } : {});
  const net = await openFeatureNet('eval stats', o, probe.channels, spec);
  try {
    const source = datasetImages(probe, (o.n as number | undefined) ?? probe.n);
    const bar = new ProgressBar('stats');
    const t0 = performance.now();
    const set = await extractFeatures(source, net, {
      ranges: shardRanges(source.n, o.batch as number),
      keepFeatures: !!o['with-features'],
      keepLogits: false,
      onProgress: (done, total) => bar.update(Math.floor(done), total, rate(done, total, t0)),
    });
    bar.done();
    const ref = referenceOf(set, spec, net);
    const d = net.dims;
    const arrays: Record<string, { data: Float64Array | Float32Array | Uint8Array; shape: number[] }> = {
      mu: { data: ref.mu, shape: [d] },
      sigma: { data: ref.sigma, shape: [d, d] },
      meta: metaArray({
        data: spec,
        dataset: probe.name,
        imageShape: [probe.channels, probe.height, probe.width],
        n: ref.n,
        featureNet: ref.featureNet,
        preprocess: net.preprocess,
        time: new Date().toISOString(),
      }),
    };
    if (set.features) arrays.features = { data: set.features, shape: [ref.n, d] };
    writeFileAtomic(o.out as string, writeNpz(arrays));
    console.log(
      `wrote ${o.out}: mu, sigma${set.features ? ', features' : ''} of ${ref.n} images of ${probe.name} (${net.name}@${net.weightsHash}, stats ${ref.hash}, ${((performance.now() - t0) / 1000).toFixed(1)} s)`,
    );
  } finally {
    await net.release();
  }
}
