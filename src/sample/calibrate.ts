// Calibration for int8 sampling ("Fast and lean" issue, item 4): the range of every convolution's input and
// output on the model's own sampling inputs. The float32 network (the forward-stage graph passes, no layout
// passes) is built with each conv's input and output as extra graph outputs and run along a short stochastic
// DDIM chain (eta 1, so the inputs look like the ancestral sampler's as well as the deterministic ones')
// from fresh noise; the smallest and largest value of each is kept, by the conv weight's name. The
// quantize-int8 graph pass (src/graph/passes/quantizeInt8.ts) turns these into uint8 scales.

import { ddimSample } from '../diffusion/ddim.js';
import type { GaussianDiffusion } from '../diffusion/gaussianDiffusion.js';
import type { Denoiser } from '../diffusion/types.js';
import type { Engine, SessionOptions } from '../engine/engine.js';
import { Graph, type Value } from '../graph/graph.js';
import { toOnnx } from '../graph/onnx.js';
import { type ConvRanges, runPasses } from '../graph/passes/index.js';
import { convWeightParam } from '../graph/passes/quantizeInt8.js';
import { buildUNet, type ParamStore, type UNetConfig } from '../nn/unet.js';
import { Rng } from '../util/rng.js';

export interface CalibrationOptions {
  /** Images in the calibration chain (default 16) and its steps (default 20). */
  readonly images?: number;
  readonly steps?: number;
  readonly seed?: number;
  /**
   * Leave the first and last convolution out (default true): they read the image and write the prediction,
   * where the quantisation error is not averaged over channels; the usual practice for int8 networks.
   */
  readonly keepEndsFloat?: boolean;
}

export async function calibrateConvs(
  engine: Engine,
  cfg: UNetConfig,
  params: ParamStore,
  diffusion: GaussianDiffusion,
  session: SessionOptions = {},
  opts: CalibrationOptions = {},
): Promise<ConvRanges> {
  const n = opts.images ?? 16;
  const g = new Graph();
  const x = g.input('x', [n, cfg.inChannels, cfg.resolution, cfg.resolution]);
  const t = g.input('t', [n]);
  const u = buildUNet(g, cfg, params, x, t);
  runPasses(g, [u.out], 'forward', { constantWeights: true });
  const probes: { name: string; x: Value; y: Value }[] = [];
  for (const node of g.liveNodes([u.out])) {
    const w = convWeightParam(g, node);
    if (w) probes.push({ name: w.name, x: node.inputs[0]!, y: node.outputs[0]! });
  }
  if ((opts.keepEndsFloat ?? true) && probes.length > 2) {
    probes.pop(); // conv_out
    probes.shift(); // conv_in
  }
  const outputs: Record<string, Value> = { out: u.out };
  probes.forEach((p, i) => {
    outputs[`cx${i}`] = p.x;
    outputs[`cy${i}`] = p.y;
  });
  const s = await engine.createSession(
    toOnnx(g, { outputs, params: 'initializer', name: 'calibrate' }),
    session,
  );
  const ranges = new Map<string, { x: [number, number]; y: [number, number] }>();
  for (const p of probes) ranges.set(p.name, { x: [Infinity, -Infinity], y: [Infinity, -Infinity] });
  const widen = (r: [number, number], d: Float32Array) => {
    for (const v of d) {
      if (v < r[0]) r[0] = v;
      if (v > r[1]) r[1] = v;
    }
  };
  const denoise: Denoiser = async (xt, ts) => {
    const res = await s.run({
      x: { data: xt.data, shape: xt.shape },
      t: { data: Float32Array.from(ts), shape: [n] },
    });
    probes.forEach((p, i) => {
      const r = ranges.get(p.name)!;
      widen(r.x, res[`cx${i}`]!.data);
      widen(r.y, res[`cy${i}`]!.data);
    });
    return { data: res.out!.data, shape: res.out!.shape };
  };
  try {
    const shape = [n, cfg.inChannels, cfg.resolution, cfg.resolution];
    await ddimSample(diffusion, denoise, shape, new Rng(opts.seed ?? 12345), {
      steps: opts.steps ?? 20,
      eta: 1,
    });
  } finally {
    await s.release();
  }
  return ranges;
}
