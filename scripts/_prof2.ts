import * as ort from 'onnxruntime-node';
import { buildTrainModel } from '../src/train/trainGraph.js';
import { buildInferenceModel } from '../src/sample/denoiser.js';
import { initParams, SMALL_UNET, unetParamSpecs } from '../src/nn/unet.js';
const cfg = SMALL_UNET; const B = 64;
const p = initParams(cfg, 'paper', 0);
const mode = process.argv[2];
const model = mode === 'train' ? buildTrainModel(cfg, p, B).model : buildInferenceModel(cfg, p, B);
const built = mode === 'train' ? buildTrainModel(cfg, p, B) : null;
const s = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, enableProfiling: process.argv[3] === 'prof', profileFilePrefix: '/tmp/ortprof', graphOptimizationLevel: 'all', enableMemPattern: process.env.MP !== '0', enableCpuMemArena: process.env.ARENA !== '0' });
const feeds: any = {};
const rnd = (n: number) => Float32Array.from({ length: n }, () => Math.random());
if (mode === 'train') {
  feeds.xt = new ort.Tensor('float32', rnd(B * 1024), [B, 1, 32, 32]);
  feeds.target = new ort.Tensor('float32', rnd(B * 1024), [B, 1, 32, 32]);
  feeds.t = new ort.Tensor('float32', new Float32Array(B).fill(5), [B]);
  feeds.weight = new ort.Tensor('float32', new Float32Array(B).fill(1), [B, 1, 1, 1]);
  for (const sp of unetParamSpecs(cfg)) feeds[sp.name] = new ort.Tensor('float32', p.get(sp.name)!, sp.shape as number[]);
  for (const d of built!.dropoutSites) feeds[d.name] = new ort.Tensor('float32', new Float32Array(d.shape.reduce((a, b) => a * b, 1)).fill(1), d.shape as number[]);
} else {
  feeds.x = new ort.Tensor('float32', rnd(B * 1024), [B, 1, 32, 32]);
  feeds.t = new ort.Tensor('float32', new Float32Array(B).fill(5), [B]);
}
const ts = [];
for (let i = 0; i < 6; i++) { const t0 = performance.now(); await s.run(feeds); ts.push(Math.round(performance.now() - t0)); }
console.log(mode, ts.join(' '));
if (process.argv[3] === 'prof') { const f = s.endProfiling(); console.log(f); }
