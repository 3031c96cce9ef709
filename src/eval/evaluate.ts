// The evaluation pipeline (issue "Evaluation"): images from a source (a model and sampler, a data set, a
// folder) are pushed batch by batch through a feature network and streamed into float64 statistics (FID's
// count, sum and sum of outer products), keeping only what the requested metrics need (features for KID and
// precision/recall, logits for IS), never the images. A run can be split into shards (--shard K/N) whose
// partial results merge into the result of one run: every image comes from its own noise stream, so its
// pixels do not depend on which shard or batch drew it.

import type { FeatureNet } from './featureNet.js';
import type { ImageSource } from './imageSource.js';
import {
  FeatureStats,
  frechetDistance,
  inceptionScore,
  kernelInceptionDistance,
  precisionRecall,
} from './metrics.js';

export type MetricName = 'fid' | 'is' | 'kid' | 'pr';
export const ALL_METRICS: readonly MetricName[] = ['fid', 'is', 'kid', 'pr'];

/** A contiguous run of image indices [start, start + count). */
export interface ImageRange {
  readonly start: number;
  readonly count: number;
}

/** The batches of n images (size `batch`) that shard k of `of` (1-based) evaluates: batch b goes to shard b mod of. */
export function shardRanges(n: number, batch: number, shard = { k: 1, of: 1 }): ImageRange[] {
  if (
    !(
      Number.isInteger(shard.of) &&
      shard.of >= 1 &&
      Number.isInteger(shard.k) &&
      shard.k >= 1 &&
      shard.k <= shard.of
    )
  ) {
    throw new Error(`shard ${shard.k}/${shard.of}: expected K/N with 1 <= K <= N`);
  }
  const out: ImageRange[] = [];
  for (let b = 0, start = 0; start < n; b++, start += batch) {
    if (b % shard.of === shard.k - 1) out.push({ start, count: Math.min(batch, n - start) });
  }
  return out;
}

/** Features of a set of images: the streaming statistics, and per-image features / logits when kept. */
export interface FeatureSet {
  readonly dims: number;
  readonly classes: number;
  /** Image index of each row, ascending. */
  readonly indices: Int32Array;
  readonly stats: FeatureStats;
  /** [rows, dims] in `indices` order (kept for KID and precision/recall). */
  readonly features?: Float32Array;
  /** [rows, classes] in `indices` order (kept for IS). */
  readonly logits?: Float32Array;
}

export interface ExtractOptions {
  readonly ranges: readonly ImageRange[];
  readonly keepFeatures: boolean;
  readonly keepLogits: boolean;
  /** Called during and after every range with the images done so far (fractional within a batch) and the total. */
  readonly onProgress?: (done: number, total: number) => void;
  /** Called after every range with the ranges done so far (views into the growing arrays: copy to keep). */
  readonly onRangeDone?: (soFar: FeatureSet) => void;
  /** Asked after every range: true ends the run there, returning the ranges done so far (fewer rows). */
  readonly shouldStop?: () => boolean;
}

/** Push the images of `ranges` through `net`, streaming their features into float64 statistics. */
export async function extractFeatures(
  source: ImageSource,
  net: FeatureNet,
  opts: ExtractOptions,
): Promise<FeatureSet> {
  if (opts.keepLogits && net.classes === 0) {
    throw new Error(`${net.name} has no classifier head: the Inception Score needs logits`);
  }
  const total = opts.ranges.reduce((a, r) => a + r.count, 0);
  const stats = new FeatureStats(net.dims);
  const indices = new Int32Array(total);
  const features = opts.keepFeatures ? new Float32Array(total * net.dims) : undefined;
  const logits = opts.keepLogits ? new Float32Array(total * net.classes) : undefined;
  let done = 0;
  const soFar = (): FeatureSet => ({
    dims: net.dims,
    classes: net.classes,
    indices: indices.subarray(0, done),
    stats,
    ...(features ? { features: features.subarray(0, done * net.dims) } : {}),
    ...(logits ? { logits: logits.subarray(0, done * net.classes) } : {}),
  });
  for (const r of [...opts.ranges].sort((a, b) => a.start - b.start)) {
    const x = await source.images(r.start, r.count, (f) => opts.onProgress?.(done + f * r.count, total)); // [count, C, H, W]
    const f = await net.extract(x);
    stats.add(f.features, r.count);
    for (let i = 0; i < r.count; i++) indices[done + i] = r.start + i;
    features?.set(f.features, done * net.dims);
    if (logits) {
      if (!f.logits) throw new Error(`${net.name} returned no logits`);
      logits.set(f.logits, done * net.classes);
    }
    done += r.count;
    opts.onProgress?.(done, total);
    opts.onRangeDone?.(soFar());
    if (done < total && opts.shouldStop?.()) break;
  }
  return soFar();
}

/**
 * Shards' feature sets as one: the statistics summed (the same sums as one pass, up to the order of float64
 * additions) and the rows of features / logits interleaved back into image order. No image may appear twice;
 * `cover` 'all' (shards merged into a whole run) also requires every image 0..total-1, 'disjoint' (a resumed
 * run's checkpoint and the rest of its images, which may be one shard's) only distinct images.
 */
export function mergeFeatureSets(
  parts: readonly FeatureSet[],
  cover: 'all' | 'disjoint' = 'all',
): FeatureSet {
  if (parts.length === 0) throw new Error('merge: no partial results given');
  const { dims } = parts[0]!;
  // Parts that kept no logits have 0 classes; the others must agree.
  const classes = parts.find((p) => p.logits)?.classes ?? parts[0]!.classes;
  for (const p of parts) {
    if (p.dims !== dims || (p.logits && p.classes !== classes)) {
      throw new Error(`merge: feature widths differ (${p.dims}/${p.classes} vs ${dims}/${classes})`);
    }
  }
  const total = parts.reduce((a, p) => a + p.indices.length, 0);
  const rows: { part: number; row: number; index: number }[] = [];
  parts.forEach((p, part) => {
    p.indices.forEach((index, row) => {
      rows.push({ part, row, index });
    });
  });
  rows.sort((a, b) => a.index - b.index);
  for (let i = 0; i < rows.length; i++) {
    const idx = rows[i]!.index;
    if (i > 0 && rows[i - 1]!.index === idx) {
      throw new Error(`merge: image ${idx} appears in two partial results (the same shard twice?)`);
    }
    switch (cover) {
      case 'all':
        if (idx !== i) throw new Error(`merge: image ${i} is in no partial result (a shard is missing)`);
        break;
      case 'disjoint':
        break;
      default:
        throw new Error(`merge: unknown cover ${String(cover satisfies never)}`);
    }
  }
  const stats = new FeatureStats(dims);
  for (const p of parts) stats.merge(p.stats);
  const gather = (
    pick: (p: FeatureSet) => Float32Array | undefined,
    width: number,
  ): Float32Array | undefined => {
    if (parts.some((p) => !pick(p))) return undefined;
    const out = new Float32Array(total * width);
    rows.forEach((r, i) => {
      out.set(pick(parts[r.part]!)!.subarray(r.row * width, (r.row + 1) * width), i * width);
    });
    return out;
  };
  const features = gather((p) => p.features, dims);
  const logits = gather((p) => p.logits, classes);
  return {
    dims,
    classes,
    indices: Int32Array.from(rows, (r) => r.index),
    stats,
    ...(features ? { features } : {}),
    ...(logits ? { logits } : {}),
  };
}

/** What generated images are compared with: FID needs mu and sigma; KID and precision/recall need features. */
export interface Reference {
  /** Where it came from: a data spec or an .npz path. */
  readonly source: string;
  /** First 8 hex digits of the SHA-256 of mu and sigma's float64 bytes. */
  readonly hash: string;
  readonly n: number;
  readonly mu: Float64Array;
  readonly sigma: Float64Array;
  /** [n, dims]; absent for an .npz of mu and sigma only. */
  readonly features?: Float32Array;
  /** The feature network that made it, `name@hash`, when known. */
  readonly featureNet?: string;
}

export interface MetricOptions {
  readonly isSplits: number;
  readonly kidSubsets: number;
  readonly kidSubsetSize: number;
  readonly prK: number;
  readonly seed: number;
}

export const DEFAULT_METRIC_OPTIONS: MetricOptions = {
  isSplits: 10,
  kidSubsets: 100,
  kidSubsetSize: 1000,
  prK: 3,
  seed: 0,
};

export interface MeanStd {
  readonly mean: number;
  readonly std: number;
}

export interface MetricValues {
  fid?: number;
  is?: MeanStd;
  kid?: MeanStd;
  precision?: number;
  recall?: number;
}

/** The requested metrics of a generated feature set against a reference. */
export function computeMetrics(
  gen: FeatureSet,
  ref: Reference | undefined,
  metrics: readonly MetricName[],
  opts: MetricOptions = DEFAULT_METRIC_OPTIONS,
): MetricValues {
  const out: MetricValues = {};
  const n = gen.indices.length;
  const needRef = (m: string): Reference => {
    if (!ref) throw new Error(`${m} compares with reference images: pass --ref`);
    return ref;
  };
  for (const m of metrics) {
    switch (m) {
      case 'fid': {
        const r = needRef('FID');
        if (n < 2) throw new Error('FID needs at least 2 images');
        out.fid = frechetDistance(
          { mu: gen.stats.mean(), sigma: gen.stats.covariance() },
          { mu: r.mu, sigma: r.sigma },
        ).fid;
        break;
      }
      case 'is':
        out.is = inceptionScore(gen.logits!, n, gen.classes, opts.isSplits);
        break;
      case 'kid': {
        const r = needRef('KID');
        out.kid = kernelInceptionDistance(refFeatures(r, 'KID'), gen.features!, gen.dims, {
          subsets: opts.kidSubsets,
          subsetSize: opts.kidSubsetSize,
          seed: opts.seed,
        });
        break;
      }
      case 'pr': {
        const r = needRef('precision/recall');
        const pr = precisionRecall(refFeatures(r, 'precision/recall'), gen.features!, gen.dims, {
          k: opts.prK,
        });
        out.precision = pr.precision;
        out.recall = pr.recall;
        break;
      }
      default: {
        const never: never = m;
        throw new Error(`unknown metric ${String(never)}`);
      }
    }
  }
  return out;
}

function refFeatures(r: Reference, what: string): Float32Array {
  if (!r.features) {
    throw new Error(
      `${what} needs the reference images' features, and ${r.source} holds only mu and sigma: pass --ref with a data set (e.g. --ref fashion-mnist:test) or an .npz written by 'ddpm eval stats --with-features'`,
    );
  }
  return r.features;
}
