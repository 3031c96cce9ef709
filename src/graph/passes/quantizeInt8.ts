// quantize-int8 (opt-in): the convolutions of an inference graph in ONNX's QDQ form, which ONNX Runtime
// fuses into its integer kernel (QLinearConv: uint8 activations, int8 weights, int32 accumulation). Per conv:
// the input is quantized to uint8 with a scale and zero point from its calibrated range, the weights to int8
// per output channel (symmetric, scale max|w_o| / 127), the bias to int32 at the product of the two scales,
// and the output to uint8 from its calibrated range, each followed by its DequantizeLinear so every other op
// (GroupNorm, SiLU, attention, the residual sums, the timestep path) stays float32. Only convs whose weight is
// a named parameter with a calibrated range are quantized (src/sample/calibrate.ts measures the ranges on
// the model's own sampling inputs). Approximate by design: "Fast and lean" issue, item 4.

import type { Graph, Node, Value } from '../graph.js';
import { type ConvRanges, type GraphPass, liveNodes, type PassContext } from './util.js';

/** uint8 scale and zero point of [lo, hi] (widened to contain 0, as ONNX's zero point must be exact). */
export function uint8Params(lo: number, hi: number): { scale: number; zero: number } {
  const a = Math.min(lo, 0);
  const b = Math.max(hi, 0);
  const scale = b - a > 0 ? (b - a) / 255 : 1;
  return { scale, zero: Math.min(255, Math.max(0, Math.round(-a / scale))) };
}

/** Symmetric int8 per output channel: w [O, ...] -> q, scale [O] (max |w_o| / 127). */
export function int8PerChannel(w: Float32Array, o: number): { q: Int8Array; scale: Float32Array } {
  const per = w.length / o;
  const q = new Int8Array(w.length);
  const scale = new Float32Array(o);
  for (let c = 0; c < o; c++) {
    let m = 0;
    for (let i = 0; i < per; i++) m = Math.max(m, Math.abs(w[c * per + i]!));
    const s = m > 0 ? m / 127 : 1;
    scale[c] = s;
    for (let i = 0; i < per; i++)
      q[c * per + i] = Math.max(-127, Math.min(127, Math.round(w[c * per + i]! / s)));
  }
  return { q, scale };
}

/** The weight parameter of a plain Conv (its name keys the ranges), or undefined: the convs this pass can take. */
export function convWeightParam(g: Graph, n: Node): { name: string; data: Float32Array } | undefined {
  const w = n.inputs[1];
  if (n.op !== 'Conv' || n.domain || !w) return undefined;
  const leaf = g.leafOf(w);
  return leaf?.kind === 'param' ? { name: w.name, data: leaf.data } : undefined;
}

function quantize(ctx: PassContext, n: Node, ranges: ConvRanges): boolean {
  const g = ctx.graph;
  const weight = convWeightParam(g, n);
  const r = weight && ranges.get(weight.name);
  if (!weight || !r) return false;
  const [x, w, b] = n.inputs as [Value, Value, Value | undefined];
  const o = w.shape[0]!;
  const bias = b ? g.leafOf(b) : undefined;
  if (b && bias?.kind !== 'param') return false;
  const qx = uint8Params(r.x[0], r.x[1]);
  const qy = uint8Params(r.y[0], r.y[1]);
  const qw = int8PerChannel(weight.data, o);
  const scalar = (v: number) => g.constant(Float32Array.of(v), []);
  g.replaceNode(n, () => {
    const sx = scalar(qx.scale);
    const zx = g.constant(Uint8Array.of(qx.zero), []);
    const xq = g.node('QuantizeLinear', [x, sx, zx], [x.shape], {}, undefined, ['uint8'])[0]!;
    const xd = g.node('DequantizeLinear', [xq, sx, zx], [x.shape])[0]!;
    const wd = g.node(
      'DequantizeLinear',
      [g.constant(qw.q, w.shape), g.constant(qw.scale, [o]), g.constant(new Int8Array(o), [o])],
      [w.shape],
      { axis: 0 },
    )[0]!;
    const ins = [xd, wd];
    if (b && bias?.kind === 'param') {
      // int32 bias at scale sx * sw_o, as QLinearConv adds it to the int32 accumulator.
      const sb = Float32Array.from(qw.scale, (s) => s * qx.scale);
      const bq = Int32Array.from(bias.data, (v, i) => Math.round(v / sb[i]!));
      ins.push(
        g.node(
          'DequantizeLinear',
          [g.constant(bq, [o]), g.constant(sb, [o]), g.constant(new Int32Array(o), [o])],
          [[o]],
          { axis: 0 },
        )[0]!,
      );
    }
    const out = n.outputs[0]!;
    const y = g.node('Conv', ins, [out.shape], { ...n.attrs })[0]!;
    const sy = scalar(qy.scale);
    const zy = g.constant(Uint8Array.of(qy.zero), []);
    const yq = g.node('QuantizeLinear', [y, sy, zy], [out.shape], {}, undefined, ['uint8'])[0]!;
    return g.node('DequantizeLinear', [yq, sy, zy], [out.shape])[0]!;
  });
  return true;
}

export const quantizeInt8: GraphPass = {
  name: 'quantize-int8',
  stage: 'forward',
  scope: 'constant-weights',
  optIn: true,
  summary: 'convolutions with calibrated ranges in QDQ int8 form (ORT QLinearConv); approximate, opt-in',
  run(ctx) {
    const ranges = ctx.calibration;
    if (!ranges) return 0;
    let count = 0;
    for (const n of liveNodes(ctx)) if (quantize(ctx, n, ranges)) count++;
    return count;
  },
};
