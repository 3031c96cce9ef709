// Finite-difference gradient checking for graph-built functions, run through the real engine.
// Directional central differences: for random directions v, (L(x + h v) - L(x - h v)) / 2h is
// compared with <dL/dx, v> from the autodiff graph. Used by the op and U-Net tests.

import type { Engine } from '../engine/engine.js';
import { Rng } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import { grad } from './autodiff.js';
import { Graph, type Value } from './graph.js';
import { toOnnx } from './onnx.js';

export interface GradCheckResult {
  readonly input: string;
  readonly analytic: number;
  readonly numeric: number;
}

/**
 * Build f with `build(g, inputs)` returning a tensor y; the loss is sum(y * r) for a fixed random r.
 * Returns, per input and per direction, the analytic and numeric directional derivatives.
 */
export async function gradCheck(
  engine: Engine,
  inputShapes: Readonly<Record<string, readonly number[]>>,
  build: (g: Graph, xs: Record<string, Value>) => Value,
  opts: {
    seed?: number;
    h?: number;
    directions?: number;
    init?: (name: string, rng: Rng, n: number) => Float32Array;
  } = {},
): Promise<GradCheckResult[]> {
  const rng = new Rng(opts.seed ?? 1);
  const h = opts.h ?? 1e-2;
  const g = new Graph();
  const xs: Record<string, Value> = {};
  for (const [k, s] of Object.entries(inputShapes)) xs[k] = g.input(k, s);
  const y = build(g, xs);
  const n = y.shape.reduce((a, b) => a * b, 1);
  const r = g.input('r', y.shape);
  const loss = g.reduceSum(
    g.mul(y, r),
    y.shape.map((_, i) => i),
    false,
  );
  const names = Object.keys(xs);
  const grads = grad(
    g,
    loss,
    names.map((k) => xs[k]!),
  );
  const outputs: Record<string, Value> = { loss };
  names.forEach((k, i) => {
    outputs[`d_${k}`] = grads[i]!;
  });
  const train = await engine.createSession(toOnnx(g, { outputs, params: 'input' }), { threads: 1 });
  const fwd = await engine.createSession(toOnnx(g, { outputs: { loss }, params: 'input' }), { threads: 1 });
  const feeds: Record<string, Tensor> = {};
  for (const [k, s] of Object.entries(inputShapes)) {
    const m = s.reduce((a, b) => a * b, 1);
    feeds[k] = { data: opts.init ? opts.init(k, rng, m) : rng.normalArray(m), shape: s };
  }
  feeds.r = { data: rng.normalArray(n), shape: y.shape };
  const res = await train.run(feeds);
  const out: GradCheckResult[] = [];
  for (const k of names) {
    const gk = res[`d_${k}`]!.data;
    for (let d = 0; d < (opts.directions ?? 3); d++) {
      const v = rng.normalArray(gk.length);
      let analytic = 0;
      for (let i = 0; i < v.length; i++) analytic += gk[i]! * v[i]!;
      const base = feeds[k]!;
      const shifted = async (sign: number) => {
        const data = new Float32Array(base.data.length);
        for (let i = 0; i < data.length; i++) data[i] = base.data[i]! + sign * h * v[i]!;
        const o = await fwd.run({ ...feeds, [k]: { data, shape: base.shape } });
        return o.loss!.data[0]!;
      };
      const numeric = ((await shifted(1)) - (await shifted(-1))) / (2 * h);
      out.push({ input: k, analytic, numeric });
    }
  }
  await train.release();
  await fwd.release();
  return out;
}
