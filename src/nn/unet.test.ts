// The U-Net against the independent PyTorch reference (reference/make_fixtures.py, float64):
// forward outputs and every parameter's gradient of sum(out * r), on the same hash-initialised
// weights and inputs. Also the paper's parameter count and the diffusers names.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { nativeEngine } from '../engine/native.js';
import { nodeEngine } from '../engine/node.js';
import { grad } from '../graph/autodiff.js';
import { Graph, type Value } from '../graph/graph.js';
import { nchwcBlockOf } from '../graph/nchwc.js';
import { toOnnx } from '../graph/onnx.js';
import { runPasses } from '../graph/passes/index.js';
import { allClose, relErr } from '../util/allclose.js';
import { hashUniform } from '../util/rng.js';
import type { Tensor } from '../util/tensor.js';
import {
  buildUNet,
  CIFAR10_UNET,
  countParams,
  fnv1a,
  initParams,
  type UNetConfig,
  unetParamSpecs,
} from './unet.js';

interface Rec {
  shape: number[];
  numel: number;
  sum: number;
  sq_sum: number;
  indices: number[];
  values: number[];
  structurally_zero?: boolean;
}
interface Fixture {
  config: {
    in_channels: number;
    out_channels: number;
    resolution: number;
    ch: number;
    ch_mult: number[];
    num_res_blocks: number;
    attn_resolutions: number[];
    groups: number;
    eps: number;
  };
  batch: number;
  t: number[];
  param_count: number;
  params: [string, number[]][];
  output: Rec;
  grads?: Record<string, Rec>;
  grad_x?: Rec;
  grad_scale?: number;
}

function load(name: string): Fixture {
  return JSON.parse(readFileSync(new URL(`../../test/fixtures/unet_${name}.json`, import.meta.url), 'utf8'));
}

const nativeOnly = { skip: nativeEngine() ? false : 'the native binding is not built' };

function configOf(f: Fixture): UNetConfig {
  const c = f.config;
  return {
    inChannels: c.in_channels,
    outChannels: c.out_channels,
    resolution: c.resolution,
    ch: c.ch,
    chMult: c.ch_mult,
    numResBlocks: c.num_res_blocks,
    attnResolutions: c.attn_resolutions,
    dropout: 0,
    groups: c.groups,
    eps: c.eps,
  };
}

/** With `nchwcBlock` > 1: the training graph's form (weights as inputs, convs lowered to NCHWc, LayerNorm). */
async function run(f: Fixture, withGrads: boolean, nchwcBlock = 0, frozen = false, fused = false) {
  const cfg = configOf(f);
  const shape = [f.batch, cfg.inChannels, cfg.resolution, cfg.resolution];
  const n = shape.reduce((a, b) => a * b, 1);
  const g = new Graph();
  // The native engine's kernels (its fused GroupNorm + SiLU, and in gradients its Im2col).
  if (fused) g.fused = nativeEngine()!.fusedKernels!;
  const x = g.input('x', shape);
  const t = g.input('t', [f.batch]);
  const store = initParams(cfg, 'fixture');
  // The training-graph form also normalises with LayerNormalization (dropout is 0 in the fixtures).
  const training = nchwcBlock > 1 && !fused;
  const u = buildUNet(g, cfg, store, x, t, { training });
  // The default graph passes (graph/passes), as the denoiser and the trainer run them: before the
  // gradient, and the layout passes last.
  const passOpts = { training, constantWeights: frozen, nchwcBlock: fused ? nchwcBlock : 0 };
  runPasses(g, [u.out], 'forward', passOpts);
  const outputs: Record<string, Value> = { out: u.out };
  const names = [...u.params.keys()];
  if (withGrads) {
    const r = g.constant(hashUniform(fnv1a('r'), n, 1), u.out.shape);
    const loss = g.reduceSum(g.mul(u.out, r), [0, 1, 2, 3], false);
    const gs = grad(g, loss, [x, ...names.map((k) => u.params.get(k)!)]);
    outputs.grad_x = gs[0]!;
    names.forEach((k, i) => {
      outputs[`grad.${k}`] = gs[i + 1]!;
    });
  }
  const layout = runPasses(g, Object.values(outputs), 'layout', { ...passOpts, nchwcBlock });
  if (nchwcBlock > 1 && !fused) assert.ok(layout['nchwc-convs']! > 0);
  // The native engine's form: fused norms, activations kept in ORT's blocked layout between convs.
  if (nchwcBlock > 1 && fused) {
    assert.ok(layout['blocked-layout']! > 0);
    // Every norm reads blocked activations, the ones after an attention block too (its residual sum is
    // formed in blocks), so no norm or skip concatenation runs in NCHW between reorders.
    const nchwNorms = g
      .liveNodes(Object.values(outputs))
      .filter((nd) => nd.op.startsWith('GroupNormSilu') && !nd.attrs.block)
      .map((nd) => nd.outputs[0]!.name);
    assert.deepEqual(nchwNorms, [], 'GroupNormSilu nodes left in NCHW');
  }
  const params = nchwcBlock > 1 && !fused ? 'input' : 'initializer';
  const engine = fused ? nativeEngine()! : nodeEngine();
  const s = await engine.createSession(toOnnx(g, { outputs, params }), { threads: 2 });
  const feeds: Record<string, Tensor> = {
    x: { data: hashUniform(fnv1a('x'), n, 1), shape },
    t: { data: Float32Array.from(f.t), shape: [f.batch] },
  };
  if (params === 'input') for (const [k, v] of u.params) feeds[k] = { data: store.get(k)!, shape: v.shape };
  const res = await s.run(feeds);
  await s.release();
  return res;
}

function pick(data: Float32Array, rec: Rec): number[] {
  return rec.indices.map((i) => data[i]!);
}

for (const name of ['tiny', 'S']) {
  describe(`U-Net '${name}' vs PyTorch float64`, () => {
    const f = load(name);
    it('has the same parameter names, shapes and count', () => {
      const cfg = configOf(f);
      const ours = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape.join(',')]));
      assert.equal(ours.size, f.params.length);
      for (const [k, shape] of f.params) assert.equal(ours.get(k), shape.join(','), k);
      assert.equal(countParams(cfg), f.param_count);
    });
    const gradsMatch = (res: Awaited<ReturnType<typeof run>>) => {
      const out = res.out!.data;
      assert.ok(relErr(out, f.output.values) < 1e-4, `output rel err ${relErr(out, f.output.values)}`);
      allClose(pick(out, f.output), f.output.values, 1e-3, 1e-4, 'output');
      const gx = res.grad_x!.data;
      assert.ok(relErr(pick(gx, f.grad_x!), f.grad_x!.values) < 1e-4, 'grad x');
      const scale = f.grad_scale!;
      let worst = 0;
      for (const [k, rec] of Object.entries(f.grads!)) {
        const got = pick(res[`grad.${k}`]!.data, rec);
        if (rec.structurally_zero) {
          // Mathematically zero (e.g. biases cancelled by a following GroupNorm): absolute check.
          allClose(got, rec.values, 0, 1e-5 * scale, `grad ${k}`);
          continue;
        }
        const e = relErr(got, rec.values);
        worst = Math.max(worst, e);
        assert.ok(e < 1e-3, `grad ${k}: rel err ${e.toExponential(2)}`);
      }
      assert.ok(worst < 1e-3);
    };
    it('forward output and every gradient match', async () => gradsMatch(await run(f, true)));
    it(
      'the same with the native engine’s fused GroupNorm + SiLU and its gradient kernel',
      nativeOnly,
      async () => gradsMatch(await run(f, true, 0, false, true)),
    );
    it('the same in the training-graph form (weight inputs, NCHWc convs, LayerNorm statistics)', async (t) => {
      const block = await nchwcBlockOf(nodeEngine());
      if (block < 2) return t.skip('this runtime has no NCHWc kernels');
      gradsMatch(await run(f, true, block));
    });
    const outputMatches = (out: Float32Array) => {
      assert.ok(relErr(out, f.output.values) < 1e-4, `output rel err ${relErr(out, f.output.values)}`);
      allClose(pick(out, f.output), f.output.values, 1e-3, 1e-4, 'output');
    };
    it('the inference form (frozen weights, attention projections folded) gives the same output', async () =>
      outputMatches((await run(f, false, 0, true)).out!.data));
    it(
      'the inference form with the native engine’s fused GroupNorm + SiLU gives the same output',
      nativeOnly,
      async () => outputMatches((await run(f, false, 0, true, true)).out!.data),
    );
    it(
      'and in the native engine’s form (that, with activations in ORT’s blocked layout)',
      nativeOnly,
      async () =>
        outputMatches((await run(f, false, await nchwcBlockOf(nativeEngine()!), true, true)).out!.data),
    );
  });
}

describe('U-Net CIFAR-10 configuration', () => {
  it('has exactly the paper parameter count, 35,746,307, with diffusers names', () => {
    const f = load('cifar');
    assert.equal(countParams(CIFAR10_UNET), 35746307);
    assert.equal(f.param_count, 35746307);
    const ours = new Set(unetParamSpecs(CIFAR10_UNET).map((s) => s.name));
    for (const [k] of f.params) assert.ok(ours.has(k), k);
  });
  it('forward output (inference form) matches PyTorch to relative error < 1e-4', async () => {
    const f = load('cifar');
    const res = await run(f, false, 0, true);
    const e = relErr(pick(res.out!.data, f.output), f.output.values);
    assert.ok(e < 1e-4, `rel err ${e}`);
  });
  it(
    'the same in the native engine’s form (fused GroupNorm + SiLU, blocked activations)',
    nativeOnly,
    async () => {
      const f = load('cifar');
      const res = await run(f, false, await nchwcBlockOf(nativeEngine()!), true, true);
      const e = relErr(pick(res.out!.data, f.output), f.output.values);
      assert.ok(e < 1e-4, `rel err ${e}`);
    },
  );
});
