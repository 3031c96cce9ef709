// The feature network interface of the evaluation layer (issue "Evaluation"; FID of Heusel et al. 2017,
// IS of Salimans et al. 2016, KID of Binkowski et al. 2018, precision/recall of Kynkaanniemi et al. 2019).
// A feature network maps images in [-1, 1] to feature vectors (FID, KID, precision/recall) and, when it is a
// classifier, to class logits (IS). Every score is labelled with the network's name and weights hash, so a
// number is never separated from what measured it: `FID[inception-v3-fid@6726825d]`, `FID[mnist-classifier@1a2b3c4d]`.

import type { Tensor } from '../util/tensor.js';

export interface FeatureBatch {
  /** [n, dims], row-major. */
  readonly features: Float32Array;
  /** [n, classes] logits for the Inception Score; absent when the network has no classifier head. */
  readonly logits?: Float32Array;
}

export interface FeatureNet {
  /** The network's name, e.g. 'inception-v3-fid' or 'mnist-classifier'. */
  readonly name: string;
  /** First 8 hex digits of the SHA-256 of its weights (file bytes, or the canonical tensor bytes). */
  readonly weightsHash: string;
  /** Feature width (2048 for Inception's pool_3). */
  readonly dims: number;
  /** Logit width (1008 for the FID Inception), 0 when there are none. */
  readonly classes: number;
  /** How images reach the network's input size, recorded in every result (e.g. 'bilinear-299 (pytorch-fid)'). */
  readonly preprocess: string;
  /** Image channels the network takes: 1-channel images go to 3-channel networks repeated, never the reverse. */
  readonly channels: 1 | 3;
  /** Features (and logits) of x: [n, C, H, W] in [-1, 1]; any n. */
  extract(x: Tensor): Promise<FeatureBatch>;
  release(): Promise<void>;
}

/** The label a score carries: `FID[mnist-classifier@1a2b3c4d]`. */
export function metricLabel(metric: string, net: Pick<FeatureNet, 'name' | 'weightsHash'>): string {
  return `${metric}[${net.name}@${net.weightsHash}]`;
}
