// int8 feasibility probe ("Fast and lean" issue, item 4): one 3x3 convolution in float32 against the same
// convolution in ONNX's QDQ form (uint8 activations, per-channel int8 weights, scales from the data's and
// the float output's largest magnitude), which ONNX Runtime fuses into QLinearConv. Prints the relative
// error of the int8 output and the median time of each, interleaved, 9 runs.
//   npx tsx bench/int8Conv.ts                 # batch 16, 128 channels, 32x32 (SHAPE=B,C,R to change)
import { nodeEngine } from '../src/engine/node.js';
import { Graph, type Value } from '../src/graph/graph.js';
import { toOnnx } from '../src/graph/onnx.js';
import { Rng } from '../src/util/rng.js';
const [B, C, R] = (process.env.SHAPE ?? '16,128,32').split(',').map(Number) as [number, number, number];
const rng = new Rng(1);
const w = Float32Array.from(rng.normalArray(C * C * 9), (v) => v / 30);
const engine = nodeEngine();
const feed = { data: Float32Array.from(rng.normalArray(B * C * R * R)), shape: [B, C, R, R] };
const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
let outMax = 1;
function model(q: boolean) {
  const g = new Graph();
  const x = g.input('x', [B, C, R, R]);
  let xin: Value = x;
  let win: Value;
  if (q) {
    const sx = g.constant(Float32Array.of(maxAbs(feed.data) / 127), []);
    const zx = g.constant(Uint8Array.of(128), []);
    const xq = g.node('QuantizeLinear', [x, sx, zx], [x.shape], {}, undefined, ['uint8'])[0]!;
    xin = g.node('DequantizeLinear', [xq, sx, zx], [x.shape])[0]!;
    const scales = new Float32Array(C);
    const wq = new Int8Array(C * C * 9);
    for (let o = 0; o < C; o++) {
      let m = 0;
      for (let i = 0; i < C * 9; i++) m = Math.max(m, Math.abs(w[o * C * 9 + i]!));
      scales[o] = m / 127;
      for (let i = 0; i < C * 9; i++) wq[o * C * 9 + i] = Math.round(w[o * C * 9 + i]! / scales[o]!);
    }
    win = g.node(
      'DequantizeLinear',
      [g.constant(wq, [C, C, 3, 3]), g.constant(scales, [C]), g.constant(new Int8Array(C), [C])],
      [[C, C, 3, 3]],
      { axis: 0 },
    )[0]!;
  } else win = g.constant(w, [C, C, 3, 3]);
  let y = g.conv(xin, win, undefined, { pads: [1, 1, 1, 1] });
  if (q) {
    const sy = g.constant(Float32Array.of(outMax / 127), []);
    const zy = g.constant(Uint8Array.of(128), []);
    const yq = g.node('QuantizeLinear', [y, sy, zy], [y.shape], {}, undefined, ['uint8'])[0]!;
    y = g.node('DequantizeLinear', [yq, sy, zy], [y.shape])[0]!;
  }
  return toOnnx(g, { outputs: { y }, params: 'initializer' });
}
const sf = await engine.createSession(model(false), { threads: 2 });
const yf = (await sf.run({ x: feed })).y!.data;
outMax = maxAbs(yf);
const sq = await engine.createSession(model(true), { threads: 2 });
const yq = (await sq.run({ x: feed })).y!.data;
let e = 0,
  n = 0;
for (let i = 0; i < yf.length; i++) {
  e += (yf[i]! - yq[i]!) ** 2;
  n += yf[i]! ** 2;
}
console.log('rel err', Math.sqrt(e / n).toFixed(4));
const tf: number[] = [],
  tq: number[] = [];
for (let r = 0; r < 9; r++) {
  let t0 = performance.now();
  await sf.run({ x: feed });
  tf.push(performance.now() - t0);
  t0 = performance.now();
  await sq.run({ x: feed });
  tq.push(performance.now() - t0);
}
const med = (a: number[]) => [...a].sort((p, q) => p - q)[a.length >> 1]!;
const gf = (2 * B * C * C * 9 * R * R) / 1e6;
console.log(
  `B${B} C${C} R${R}: fp32 ${med(tf).toFixed(1)} ms (${(gf / med(tf)).toFixed(0)} GFLOP/s), int8 QDQ ${med(tq).toFixed(1)} ms, ratio ${(med(tq) / med(tf)).toFixed(2)}`,
);
