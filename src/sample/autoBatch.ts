// `--batch auto` for sampling ("Fast and lean" issue, item 7): the denoiser's compiled batch size that gives
// the most images per second on this machine, within memory. Images per second rise with the batch while
// the per-call overheads (thread hand-off, small GEMMs, the timestep embedding) amortise, then flatten or fall
// once the activations leave the caches; where the curve turns depends on the CPU, its cache sizes and the
// model, so it is measured, not guessed: one session per candidate batch (8, 16, 32, ...), timed on a few
// network calls of noise, doubling while the throughput still rises by more than `gain` and the process's
// resident memory leaves room for the next size. The winner's session is kept (already warm) and used for
// the job; the others are released. The probe costs a few seconds, so callers run it only for jobs that are
// long enough to repay it (`probeWorthIt`) and otherwise compile `fallback` images per call.
//
// The batch changes how images are grouped into network calls, never which images are drawn: samplers draw
// their noise for the whole set and the denoiser splits or pads it (createDenoiser), so the same seed gives
// the same images to float rounding whatever the batch.

import { freemem, totalmem } from 'node:os';
import type { Engine } from '../engine/engine.js';
import type { ParamStore, UNetConfig } from '../nn/unet.js';
import { Rng } from '../util/rng.js';
import { createDenoiser, type DenoiserOptions, type UNetDenoiser } from './denoiser.js';

export interface BatchProbe {
  readonly batch: number;
  /** Images per second over the timed calls (after one warm-up call). */
  readonly imagesPerSecond: number;
  /** Session build and warm-up, ms. */
  readonly setupMs: number;
  /** Resident memory of the process after the timed calls, MB. */
  readonly rssMb: number;
}

export interface AutoBatchOptions {
  /** No point compiling more images per call than the job has: the largest candidate is the first >= this. */
  readonly maxImages: number;
  /** Candidates start here and double (default 8) up to `limit` (default 256). */
  readonly start?: number;
  readonly limit?: number;
  /** Keep doubling while the next size gives at least this much more throughput (default 0.03 = 3%). */
  readonly gain?: number;
  /** Timed calls per candidate: at least this many (default 2) and at least `minMs` of work (default 600). */
  readonly calls?: number;
  readonly minMs?: number;
  /** Stop before a size whose projected resident memory passes this fraction of the machine's (default 0.5). */
  readonly memoryFraction?: number;
  /** Progress lines (one per candidate). */
  readonly log?: (line: string) => void;
}

export interface AutoBatchResult {
  readonly denoiser: UNetDenoiser;
  readonly batch: number;
  readonly probes: readonly BatchProbe[];
  /** Why the doubling stopped, in words. */
  readonly stoppedBecause: string;
}

/** Whether a job of `images` x `calls` network calls per image repays a probe (about 20 calls of the winner). */
export function probeWorthIt(images: number, callsPerImage: number, minImageCalls = 20_000): boolean {
  return images * callsPerImage >= minImageCalls;
}

/** Time one candidate batch: build, one warm-up call, then timed calls of fresh noise at random timesteps. */
async function probe(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  batch: number,
  session: DenoiserOptions,
  calls: number,
  minMs: number,
): Promise<{ den: UNetDenoiser; probe: BatchProbe }> {
  const t0 = performance.now();
  const den = await createDenoiser(engine, cfg, params, batch, session);
  const rng = new Rng(batch);
  const shape = [batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const per = cfg.inChannels * cfg.resolution * cfg.resolution;
  const call = async () => {
    const t = new Int32Array(batch);
    for (let i = 0; i < batch; i++) t[i] = rng.int(1000);
    await den.denoise({ data: rng.normalArray(batch * per), shape }, t);
  };
  await call(); // ONNX Runtime's first run allocates and tunes
  const setupMs = performance.now() - t0;
  let done = 0;
  const t1 = performance.now();
  while (done < calls || performance.now() - t1 < minMs) {
    await call();
    done++;
  }
  const ms = performance.now() - t1;
  return {
    den,
    probe: {
      batch,
      imagesPerSecond: (1000 * done * batch) / ms,
      setupMs,
      rssMb: process.memoryUsage().rss / 2 ** 20,
    },
  };
}

/** The candidate sizes: start, 2 start, ... up to the first that covers maxImages, at most limit. */
export function batchCandidates(maxImages: number, start = 8, limit = 256): number[] {
  const out: number[] = [];
  for (let b = start; b <= limit; b *= 2) {
    out.push(b);
    if (b >= maxImages) break;
  }
  if (out.length === 0) out.push(Math.max(1, Math.min(maxImages, limit)));
  return out;
}

export async function autoBatchDenoiser(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  session: DenoiserOptions,
  opts: AutoBatchOptions,
): Promise<AutoBatchResult> {
  const candidates = batchCandidates(
    Math.max(1, opts.maxImages),
    Math.min(opts.start ?? 8, Math.max(1, opts.maxImages)),
    opts.limit ?? 256,
  );
  const gain = opts.gain ?? 0.03;
  const memoryLimitMb = ((opts.memoryFraction ?? 0.5) * totalmem()) / 2 ** 20;
  const probes: BatchProbe[] = [];
  let best: { den: UNetDenoiser; probe: BatchProbe } | null = null;
  let stoppedBecause = `reached ${candidates.at(-1)} images per call (the job's size or the limit)`;
  const baseRss = process.memoryUsage().rss / 2 ** 20;
  for (const batch of candidates) {
    if (best) {
      // Activation memory grows with the batch: project the next size from the last one's growth.
      const grown = 2 * (best.probe.rssMb - baseRss) + baseRss;
      const free = freemem() / 2 ** 20;
      if (grown > memoryLimitMb || grown - best.probe.rssMb > 0.8 * free) {
        stoppedBecause = `batch ${batch} would need about ${grown.toFixed(0)} MB resident (limit ${memoryLimitMb.toFixed(0)} MB, ${free.toFixed(0)} MB free)`;
        break;
      }
    }
    const next = await probe(engine, cfg, params, batch, session, opts.calls ?? 2, opts.minMs ?? 600);
    probes.push(next.probe);
    opts.log?.(
      `batch ${batch}: ${next.probe.imagesPerSecond.toFixed(1)} images/s through the network, ` +
        `${next.probe.rssMb.toFixed(0)} MB resident, set-up ${(next.probe.setupMs / 1000).toFixed(1)} s`,
    );
    if (best && next.probe.imagesPerSecond < (1 + gain) * best.probe.imagesPerSecond) {
      const better = next.probe.imagesPerSecond > best.probe.imagesPerSecond;
      stoppedBecause =
        `batch ${batch} gave ${next.probe.imagesPerSecond.toFixed(1)} images/s against ${best.probe.imagesPerSecond.toFixed(1)} ` +
        `at batch ${best.probe.batch} (${better ? 'less than' : 'no'} ${(100 * gain).toFixed(0)}% more)`;
      if (better) {
        await best.den.release();
        best = next;
      } else {
        await next.den.release();
      }
      break;
    }
    if (best) await best.den.release();
    best = next;
  }
  return { denoiser: best!.den, batch: best!.probe.batch, probes, stoppedBecause };
}

/** The compiled batch when a job is too short to repay a probe (today's fixed default). */
export const FALLBACK_BATCH = 64;

export interface DenoiserChoice {
  readonly denoiser: UNetDenoiser;
  readonly batch: number;
  /** How the batch was chosen, for the command's output. */
  readonly how: string;
  /** The batch was measured (autoBatchDenoiser ran). */
  readonly measured: boolean;
}

/**
 * The denoiser of a sampling job of `images` images at `callsPerImage` network calls each: `batch` images per
 * call when given, else (auto) the measured best for long jobs (autoBatchDenoiser) or FALLBACK_BATCH.
 */
export async function denoiserForJob(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  session: DenoiserOptions,
  job: {
    readonly images: number;
    readonly callsPerImage: number;
    readonly batch: number | 'auto';
    /** At most this many images per call (ddpm eval: its --batch, the images it hands over at a time). */
    readonly limit?: number;
  },
  log?: (line: string) => void,
): Promise<DenoiserChoice> {
  if (job.batch !== 'auto' || !probeWorthIt(job.images, job.callsPerImage)) {
    const batch = Math.min(
      job.batch === 'auto' ? FALLBACK_BATCH : job.batch,
      job.images,
      job.limit ?? Infinity,
    );
    const denoiser = await createDenoiser(engine, cfg, params, batch, session);
    const how =
      job.batch === 'auto'
        ? `batch ${batch} (auto: a job of ${job.images} x ${job.callsPerImage} image-calls is too short to repay measuring)`
        : `batch ${batch}`;
    return { denoiser, batch, how, measured: false };
  }
  const r = await autoBatchDenoiser(engine, cfg, params, session, {
    maxImages: Math.min(job.images, job.limit ?? Infinity),
    limit: Math.min(256, job.limit ?? 256),
    log,
  });
  const best = r.probes.find((p) => p.batch === r.batch)!;
  return {
    denoiser: r.denoiser,
    batch: r.batch,
    measured: true,
    how: `batch ${r.batch} (auto: measured ${best.imagesPerSecond.toFixed(1)} images/s; ${r.stoppedBecause})`,
  };
}
