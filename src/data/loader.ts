// BatchLoader: an endless stream of shuffled minibatches with random horizontal flips.
// Each epoch draws, from the loader's own Rng, a Fisher-Yates permutation of 0..n-1 followed by one
// flip bit per position; batches are consecutive slices of that order and run on into the next
// epoch, so every batch has exactly batchSize images. Because an epoch's order and flips depend only
// on the Rng state at its start, the state {epoch, index, rngState (at the epoch's start)} restores
// the stream bit-exactly: a resumed training run sees the same batches as an uninterrupted one.

import { Rng, type RngState } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import type { ImageDataset } from './dataset.js';

export interface LoaderOptions {
  batchSize: number;
  /** Seed of the loader's own Rng (default 0). */
  seed?: number;
  /** Random horizontal flips when the dataset allows them (default true). */
  flip?: boolean;
  /** Visit images in order 0..n-1 without flips (evaluation, reference statistics). */
  sequential?: boolean;
}

export interface LoaderState {
  /** Epochs started so far minus one (0 during the first epoch). */
  readonly epoch: number;
  /** Position of the next image within the current epoch's order. */
  readonly index: number;
  /** The Rng state at the start of the current epoch (before its shuffle). */
  readonly rngState: RngState;
  /** Dataset size, checked on restore. */
  readonly n: number;
}

export interface Batch {
  /** [B, C, H, W] in [-1, 1]. */
  readonly x: Tensor;
  /** Dataset index of each row. */
  readonly indices: Int32Array;
  /** 1 where the row was flipped horizontally. */
  readonly flipped: Uint8Array;
}

export class BatchLoader {
  readonly batchSize: number;
  private readonly rng: Rng;
  private readonly flipEnabled: boolean;
  private readonly sequential: boolean;
  private epoch = -1;
  private index = 0;
  private epochStart!: RngState;
  private order = new Int32Array(0);
  private flips = new Uint8Array(0);

  constructor(
    readonly dataset: ImageDataset,
    opts: LoaderOptions,
  ) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) {
      throw new Error(`BatchLoader: batchSize must be a positive integer, got ${opts.batchSize}`);
    }
    if (dataset.n < 1) throw new Error(`BatchLoader: dataset ${dataset.name} is empty`);
    this.batchSize = opts.batchSize;
    this.rng = new Rng(opts.seed ?? 0);
    this.flipEnabled = (opts.flip ?? true) && dataset.canFlip && !opts.sequential;
    this.sequential = opts.sequential ?? false;
    this.startEpoch();
  }

  /** Draws the next epoch's order and flip bits (always drawn, so toggling flips keeps the order). */
  private startEpoch(): void {
    this.epoch++;
    this.index = 0;
    this.epochStart = this.rng.getState();
    const n = this.dataset.n;
    if (this.order.length !== n) this.order = new Int32Array(n);
    for (let i = 0; i < n; i++) this.order[i] = i;
    if (this.sequential) {
      this.flips = new Uint8Array(n);
      return;
    }
    this.rng.shuffle(this.order);
    if (this.flips.length !== n) this.flips = new Uint8Array(n);
    for (let i = 0; i < n; i++) this.flips[i] = this.rng.nextU32() >>> 31;
  }

  next(): Batch {
    const ds = this.dataset;
    const B = this.batchSize;
    const per = ds.channels * ds.height * ds.width;
    const data = new Float32Array(B * per);
    const indices = new Int32Array(B);
    const flipped = new Uint8Array(B);
    for (let b = 0; b < B; b++) {
      if (this.index >= ds.n) this.startEpoch();
      const i = this.order[this.index]!;
      indices[b] = i;
      ds.get(i, data, b * per);
      if (this.flipEnabled && this.flips[this.index]) {
        flipRows(data, b * per, ds.channels * ds.height, ds.width);
        flipped[b] = 1;
      }
      this.index++;
    }
    return { x: { data, shape: [B, ds.channels, ds.height, ds.width] }, indices, flipped };
  }

  /** Whole epochs completed plus the fraction of the current one. */
  get epochsSeen(): number {
    return this.epoch + this.index / this.dataset.n;
  }

  getState(): LoaderState {
    const s = this.epochStart;
    return {
      epoch: this.epoch,
      index: this.index,
      rngState: { s: [...s.s], spare: s.spare },
      n: this.dataset.n,
    };
  }

  setState(state: LoaderState): void {
    if (state.n !== this.dataset.n) {
      throw new Error(
        `BatchLoader: saved state is for a dataset of ${state.n} images, but ${this.dataset.name} has ${this.dataset.n}: resume with the same data`,
      );
    }
    if (!(state.index >= 0 && state.index <= state.n))
      throw new Error(`BatchLoader: bad state index ${state.index}`);
    this.rng.setState(state.rngState);
    this.epoch = state.epoch - 1;
    this.startEpoch();
    this.index = state.index;
  }
}

/** Reverses each of `rows` rows of length w starting at data[offset]. */
function flipRows(data: Float32Array, offset: number, rows: number, w: number): void {
  for (let r = 0; r < rows; r++) {
    const a = offset + r * w;
    for (let x = 0; x < w >> 1; x++) {
      const t = data[a + x]!;
      data[a + x] = data[a + w - 1 - x]!;
      data[a + w - 1 - x] = t;
    }
  }
}
