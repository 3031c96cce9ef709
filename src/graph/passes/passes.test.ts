// Every graph pass on and off gives the same outputs (and, for the passes valid in training graphs, the
// same gradients of every parameter and of the input) to float rounding, on random small U-Nets (seeded
// random weights, none zero; random configs: with and without attention, one or two heads, several
// channel counts and group sizes); each pass alone against no pass, and the default pipeline without it
// against the whole default pipeline. Where its pattern is absent a pass changes nothing. The FID
// Inception (conv, BatchNorm, ReLU as torchvision writes it) goes through the pipeline too: fold-batchnorm
// folds every BatchNorm, and the features and logits stay those of the graph as written.
// Tolerances (allClose, |a - b| <= atol + rtol |b|): outputs rtol 1e-4, atol 1e-5 x max |output|;
// gradients rtol 1e-3, atol 1e-5 x the largest gradient of the model (a gradient that a pass makes
// exactly zero, as the key bias's, is rounding noise of that scale without it).

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { nativeEngine } from '../../engine/native.js';
import { nodeEngine } from '../../engine/node.js';
import { buildFidInception, hashInceptionWeights, inceptionParamSpecs } from '../../eval/inception.js';
import { buildUNet, type ParamStore, type UNetConfig, unetParamSpecs } from '../../nn/unet.js';
import { allClose } from '../../util/allclose.js';
import { hashUniform, Rng } from '../../util/rng.js';
import type { Tensor } from '../../util/tensor.js';
import { grad } from '../autodiff.js';
import { type FusedKernel, Graph, type Value } from '../graph.js';
import { nchwcBlockOf } from '../nchwc.js';
import { toOnnx } from '../onnx.js';
import { DEFAULT_PASSES, type GraphPass, PASS_NAMES, PASSES, runPasses, selectPasses } from './index.js';

const native = nativeEngine();
const engine = nodeEngine();

/** A random small U-Net config from the seed. */
function randomConfig(seed: number, attention: boolean, perGroup = 1, twoHeads = false): UNetConfig {
  const r = new Rng(seed);
  const ch = [8, 16][r.int(2)]!;
  const groups = ch / perGroup; // channels per group at the first level (twice that at the second)
  const res = 8;
  return {
    inChannels: [1, 3][r.int(2)]!,
    outChannels: [1, 3][r.int(2)]!,
    resolution: res,
    ch,
    chMult: [1, 2],
    numResBlocks: 1,
    attnResolutions: attention ? [res / 2] : [],
    dropout: 0,
    groups,
    eps: 1e-6,
    headDim: twoHeads ? ch : undefined, // two heads at the second level and the middle (2ch channels)
    midAttention: attention,
  };
}

/** Seeded random weights, none zero: uniform with He-like scales, norms around 1. */
function randomParams(cfg: UNetConfig, seed: number): ParamStore {
  const r = new Rng(seed);
  const store: ParamStore = new Map();
  for (const s of unetParamSpecs(cfg)) {
    const n = s.shape.reduce((a, b) => a * b, 1);
    const fanIn = s.shape.slice(1).reduce((a, b) => a * b, 1);
    const scale = s.kind === 'conv' || s.kind === 'linear' ? Math.sqrt(3 / fanIn) : 0.3;
    const d = new Float32Array(n);
    for (let i = 0; i < n; i++) d[i] = (2 * r.uniform() - 1) * scale + (s.kind === 'normWeight' ? 1 : 0);
    store.set(s.name, d);
  }
  return store;
}

interface Built {
  readonly model: Uint8Array;
  readonly report: Record<string, number>;
  readonly feeds: Record<string, Tensor>;
  readonly ops: ReadonlySet<string>; // the op types of the graph's nodes after the passes
}

const BATCH = 2;

/**
 * The U-Net's graph with the given passes: inference (weights as constants), or training-form (weights as
 * inputs, LayerNorm statistics) with the gradient of sum(out * r) for x and every parameter.
 */
function buildModel(
  cfg: UNetConfig,
  store: ParamStore,
  passes: readonly string[],
  opts: { training: boolean; fused: boolean; nchwcBlock: number },
): Built {
  const g = new Graph();
  if (opts.fused) g.fused = native!.fusedKernels!;
  const shape = [BATCH, cfg.inChannels, cfg.resolution, cfg.resolution];
  const x = g.input('x', shape);
  const t = g.input('t', [BATCH]);
  const u = buildUNet(g, cfg, store, x, t, { training: opts.training });
  const popts = {
    training: opts.training,
    constantWeights: !opts.training,
    nchwcBlock: opts.nchwcBlock,
    passes,
  };
  const report = runPasses(g, [u.out], 'forward', popts);
  const outputs: Record<string, Value> = { out: u.out };
  const names = [...u.params.keys()];
  if (opts.training) {
    const n = u.out.shape.reduce((a, b) => a * b, 1);
    const rr = g.constant(hashUniform(7, n, 1), u.out.shape);
    const loss = g.reduceSum(g.mul(u.out, rr), [0, 1, 2, 3], false);
    const gs = grad(g, loss, [x, ...names.map((k) => u.params.get(k)!)]);
    outputs.grad_x = gs[0]!;
    names.forEach((k, i) => {
      outputs[`grad.${k}`] = gs[i + 1]!;
    });
  }
  Object.assign(report, runPasses(g, Object.values(outputs), 'layout', popts));
  const n = shape.reduce((a, b) => a * b, 1);
  const feeds: Record<string, Tensor> = {
    x: { data: hashUniform(11, n, 1), shape },
    t: { data: Float32Array.from({ length: BATCH }, (_, i) => 17 + 613 * i), shape: [BATCH] },
  };
  if (opts.training) for (const [k, v] of u.params) feeds[k] = { data: store.get(k)!, shape: v.shape };
  const params = opts.training ? 'input' : 'initializer';
  return { model: toOnnx(g, { outputs, params }), report, feeds, ops: new Set(g.nodes.map((n) => n.op)) };
}

async function runModel(b: Built, fused: boolean): Promise<Record<string, Tensor>> {
  const e = fused ? native! : engine;
  const s = await e.createSession(b.model, { threads: 1 });
  try {
    return await s.run(b.feeds);
  } finally {
    await s.release();
  }
}

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}

function assertSame(got: Record<string, Tensor>, want: Record<string, Tensor>, what: string): void {
  assert.deepEqual(Object.keys(got).sort(), Object.keys(want).sort());
  allClose(got.out!.data, want.out!.data, 1e-4, 1e-5 * maxAbs(want.out!.data), `${what}: out`);
  const gradKeys = Object.keys(want).filter((k) => k !== 'out');
  const scale = Math.max(0, ...gradKeys.map((k) => maxAbs(want[k]!.data)));
  for (const k of gradKeys) allClose(got[k]!.data, want[k]!.data, 1e-3, 1e-5 * scale, `${what}: ${k}`);
}

/** Passes valid in the form, and whether its engine is there. */
const TRAINING_PASSES = PASSES.filter((p) => p.scope === 'any').map((p) => p.name);
/** Every pass but winograd-bf16, which rounds to bfloat16 (quantize-int8 needs ranges: none here). */
const EXACT_PASSES = PASS_NAMES.filter((n) => n !== 'winograd-bf16');

describe('graph passes: each on and off gives the same outputs and gradients', async () => {
  const block = await nchwcBlockOf(engine);
  const nativeBlock = native ? await nchwcBlockOf(native) : 0;
  // Training graphs (outputs and every gradient, the slow half) on two of the four: with and without attention.
  const configs = [
    { seed: 1, attention: true, perGroup: 1, trainingToo: true },
    { seed: 2, attention: true, perGroup: 2, twoHeads: true, trainingToo: false },
    { seed: 3, attention: false, perGroup: 1, trainingToo: true },
    { seed: 4, attention: true, perGroup: 4, trainingToo: false },
  ];
  for (const { seed, attention, perGroup, twoHeads, trainingToo } of configs) {
    const cfg = randomConfig(seed, attention, perGroup, twoHeads);
    const store = randomParams(cfg, 100 + seed);
    const label = `ch ${cfg.ch}, groups ${cfg.groups}, ${cfg.inChannels}->${cfg.outChannels}, ${attention ? `attention (${cfg.headDim ? 'heads of' : 'one head'}${cfg.headDim ? ` ${cfg.headDim}` : ''})` : 'no attention'}`;
    for (const training of trainingToo ? [false, true] : [false]) {
      for (const pass of PASSES) {
        if (training && pass.scope !== 'any') continue;
        const fused = [
          'fuse-attention',
          'fuse-groupnorm-silu',
          'fuse-shift-groupnorm-silu',
          'recompute-norm-act',
          'blocked-layout',
          'block-filter',
          'winograd-convs',
        ].includes(pass.name);
        // Passes that rewrite what another pass makes: "alone" is with that one, "none" is that one alone.
        // blocked-layout in a training graph: after the convs' lowering, and with the fused norm and its
        // recomputation, whose backward kernels it keeps blocked.
        const needs = ['recompute-norm-act', 'fuse-shift-groupnorm-silu'].includes(pass.name)
          ? ['fuse-groupnorm-silu']
          : pass.name === 'block-filter'
            ? ['nchwc-convs']
            : pass.name === 'winograd-convs' // on ORT's NCHWc convolutions (training: fed filters)
              ? training
                ? ['nchwc-convs']
                : ['fuse-groupnorm-silu', 'blocked-layout']
              : pass.name === 'blocked-layout' && training
                ? ['fuse-groupnorm-silu', 'recompute-norm-act', 'nchwc-convs']
                : [];
        const nchwcBlock =
          pass.name === 'blocked-layout' || pass.name === 'block-filter' || pass.name === 'winograd-convs'
            ? nativeBlock
            : pass.name === 'nchwc-convs'
              ? block
              : 0;
        const skip =
          pass.name === 'winograd-bf16'
            ? 'approximate by design (bfloat16 products): winogradBf16.test.ts and nativeWinograd.test.ts'
            : skipReason(pass, training, fused, nchwcBlock);
        it(`${pass.name} (${training ? 'training graph' : 'inference'}; ${label})`, { skip }, async () => {
          const opts = { training, fused, nchwcBlock };
          // Alone against no pass at all (the model exactly as written).
          const none = buildModel(cfg, store, needs, opts);
          const alone = buildModel(cfg, store, [...needs, pass.name], opts);
          const hits = alone.report[pass.name] ?? 0;
          const expected = expectedHits(pass.name, cfg, training);
          if (expected === 0) {
            assert.equal(hits, 0, 'no match where the pattern is absent');
            assert.deepEqual(alone.model, none.model, 'the graph is unchanged where the pattern is absent');
          } else assert.ok(hits >= expected, `${pass.name} matched ${hits} times, expected ${expected}`);
          const wantNone = await runModel(none, fused);
          assertSame(await runModel(alone, fused), wantNone, `${pass.name} alone`);
          // The default pipeline without it against the whole default pipeline.
          const all = EXACT_PASSES.filter((n) => training === false || TRAINING_PASSES.includes(n));
          const full = buildModel(cfg, store, all, opts);
          const without = buildModel(
            cfg,
            store,
            all.filter((n) => n !== pass.name),
            opts,
          );
          assertSame(
            await runModel(without, fused),
            await runModel(full, fused),
            `default without ${pass.name}`,
          );
          assertSame(await runModel(full, fused), wantNone, 'default pipeline against none');
          if (
            pass.name === 'winograd-convs' &&
            training &&
            native?.fusedKernels?.includes('ConvWinogradWeightGrad')
          )
            assert.ok(
              full.ops.has('ConvWinogradWeightGrad'),
              'the blocked weight gradients of 3x3 convs are Winograd',
            );
        });
      }
    }
  }
});

/** Why a pass's case cannot run on this machine's engines, or false. */
function skipReason(pass: GraphPass, training: boolean, fused: boolean, nchwcBlock: number): string | false {
  const has = (k: FusedKernel) => native?.fusedKernels?.includes(k) ?? false;
  if (fused && !native) return 'the native binding is not built';
  if (pass.stage === 'layout' && pass.name !== 'recompute-norm-act' && nchwcBlock < 2)
    return 'this runtime has no NCHWc kernels';
  if (pass.name === 'blocked-layout' && training && !has('BlockedTraining'))
    return 'the graphs do not use the blocked training kernels (no ConvWeightGrad)';
  if (pass.name === 'winograd-convs' && (!has('ConvWinograd') || nchwcBlock !== 16))
    return 'the graphs do not use the ConvWinograd kernel on this build (AVX-512; DDPM_WINOGRAD=1 elsewhere)';
  if (pass.name === 'fuse-attention' && !has('Attention'))
    return 'the graphs do not use the Attention kernel on this build (DDPM_ATTENTION=1 for them)';
  return false;
}

/** How many times a pass must match at least on this config (0: never). */
function expectedHits(name: string, cfg: UNetConfig, training: boolean): number {
  const attn = cfg.attnResolutions.length > 0;
  const levels = cfg.chMult.length;
  switch (name) {
    case 'fold-batchnorm': // the U-Net has none (the Inception test below)
      return 0;
    case 'cancel-timestep-shift': // the ResNet blocks at channel counts with one channel per group
      return cfg.groups === cfg.ch ? 1 : 0;
    case 'fold-attention-norm': // single-head attention only
      return attn && !cfg.headDim ? 1 : 0;
    case 'drop-key-bias':
    case 'fold-value-bias':
    case 'fuse-attention': // L = 16 at the 4x4 level, 8-32 channels per head
      return attn ? 1 : 0;
    case 'phase-split-upsample':
      return levels - 1;
    case 'fuse-groupnorm-silu':
      return 1;
    case 'fuse-shift-groupnorm-silu': // every ResNet block's second norm (no cancel-timestep-shift alone)
      return training ? 0 : 1;
    case 'kernel-dropout': // these models have no dropout (kernelDropout.test.ts trains with it)
      return 0;
    case 'recompute-norm-act': // training graphs only
      return training ? 1 : 0;
    case 'nchwc-convs': // weights fed at run time only
      return training ? 1 : 0;
    case 'blocked-layout': // every conv, inference or training
      return 1;
    case 'block-filter': // the filters nchwc-convs reorders (weights fed at run time)
      return training ? 1 : 0;
    case 'winograd-convs': // 3x3 convolutions with 16, 32, ... channels in and out: every config's second level
      return 1;
    case 'fold-constant-reorders': // alone: the model as written has no reorders of constants
      return 0;
    case 'quantize-int8': // needs calibrated ranges (quantizeInt8.test.ts), none here
      return 0;
    case 'winograd-bf16': // skipped above
      return 0;
    default:
      throw new Error(`no expectation for pass ${name}`);
  }
}

describe('graph pass selection', () => {
  it('all by default, by name, by removal, none; unknown names refused', () => {
    assert.deepEqual(selectPasses([]), []);
    assert.deepEqual(selectPasses('none'), []);
    assert.deepEqual(
      selectPasses('-phase-split-upsample'),
      DEFAULT_PASSES.filter((n) => n !== 'phase-split-upsample'),
    );
    // The opt-in passes: never by default, added with '+', or named.
    assert.ok(!DEFAULT_PASSES.includes('quantize-int8') && PASS_NAMES.includes('quantize-int8'));
    assert.ok(!DEFAULT_PASSES.includes('winograd-bf16') && PASS_NAMES.includes('winograd-bf16'));
    assert.deepEqual(selectPasses('+quantize-int8'), EXACT_PASSES);
    assert.deepEqual(selectPasses('+quantize-int8,+winograd-bf16'), PASS_NAMES);
    assert.deepEqual(selectPasses('quantize-int8'), ['quantize-int8']);
    assert.deepEqual(selectPasses('nchwc-convs,drop-key-bias'), ['drop-key-bias', 'nchwc-convs']);
    assert.throws(() => selectPasses('-no-such-pass'), /unknown pass "no-such-pass"/);
    assert.throws(() => selectPasses('drop-key-bias,-fold-value-bias'), /mix/);
    const saved = process.env.DDPM_PASSES;
    try {
      process.env.DDPM_PASSES = '-fold-attention-norm';
      assert.deepEqual(
        selectPasses(),
        DEFAULT_PASSES.filter((n) => n !== 'fold-attention-norm'),
      );
      delete process.env.DDPM_PASSES;
      assert.deepEqual(selectPasses(), DEFAULT_PASSES);
    } finally {
      if (saved === undefined) delete process.env.DDPM_PASSES;
      else process.env.DDPM_PASSES = saved;
    }
  });
  it('a training graph gets only the passes of scope "any"', () => {
    const cfg = randomConfig(1, true);
    const store = randomParams(cfg, 101);
    const g = new Graph();
    const u = buildUNet(g, cfg, store, g.input('x', [1, cfg.inChannels, 8, 8]), g.input('t', [1]), {
      training: true,
    });
    const report = runPasses(g, [u.out], 'forward', { training: true, passes: PASS_NAMES });
    assert.deepEqual(Object.keys(report).sort(), [
      'drop-key-bias',
      'fold-value-bias',
      'fuse-attention',
      'fuse-groupnorm-silu',
      'kernel-dropout',
      'phase-split-upsample',
    ]);
    assert.throws(
      () => runPasses(g, [u.out], 'forward', { training: true, constantWeights: true }),
      /constant weights/,
    );
  });
});

describe('graph passes on the FID Inception', () => {
  it('the default pipeline gives the same features and logits as none (small input)', async () => {
    const weights = hashInceptionWeights().params;
    const build = (passes: readonly string[], fused: boolean, nchwcBlock: number) => {
      const g = new Graph();
      if (fused) g.fused = native!.fusedKernels!;
      const net = buildFidInception(g, weights, g.input('x', [1, 3, 16, 16]));
      const roots = [net.pool, net.logitsUnbiased];
      const report = runPasses(g, roots, 'all', { constantWeights: true, nchwcBlock, passes });
      const model = toOnnx(g, {
        outputs: { pool: net.pool, logits: net.logitsUnbiased },
        params: 'initializer',
      });
      return { model, report };
    };
    const x = { x: { data: hashUniform(5, 3 * 16 * 16, 1), shape: [1, 3, 16, 16] } };
    const run = async (model: Uint8Array, e = engine) => {
      const s = await e.createSession(model, { threads: 2 });
      try {
        return await s.run(x);
      } finally {
        await s.release();
      }
    };
    const none = build([], false, 0);
    const dflt = build(PASS_NAMES, false, 0);
    const convs = inceptionParamSpecs().filter((p) => p.name.endsWith('.conv.weight')).length;
    assert.equal(dflt.report['fold-batchnorm'], convs, 'every BatchNorm folded into its conv');
    const want = await run(none.model);
    const got = await run(dflt.model);
    for (const k of ['pool', 'logits'])
      allClose(got[k]!.data, want[k]!.data, 1e-4, 1e-5 * maxAbs(want[k]!.data), `inception ${k}`);
  });
});

describe('fold-batchnorm on random conv + BatchNorm stacks', () => {
  for (const seed of [1, 2, 3]) {
    it(`seed ${seed}: folded against as written (with and without conv bias, stride 1 and 2)`, async () => {
      const r = new Rng(seed);
      const rand = (n: number, scale: number, offset = 0) =>
        Float32Array.from({ length: n }, () => offset + (2 * r.uniform() - 1) * scale);
      const c0 = 1 + r.int(4);
      const layers = Array.from({ length: 3 }, (_, i) => ({
        out: 2 + r.int(6),
        k: [1, 3][r.int(2)]!,
        stride: 1 + (i % 2),
        bias: r.int(2) === 1,
      }));
      const data = layers.map((l, i) => {
        const cin = i === 0 ? c0 : layers[i - 1]!.out;
        return {
          w: rand(l.out * cin * l.k * l.k, Math.sqrt(3 / (cin * l.k * l.k))),
          b: rand(l.out, 0.3),
          bn: [rand(l.out, 0.3, 1), rand(l.out, 0.3), rand(l.out, 0.3), rand(l.out, 0.4, 1)],
        };
      });
      const build = (passes: readonly string[]) => {
        const g = new Graph();
        let y = g.input('x', [2, c0, 9, 9]);
        layers.forEach((l, i) => {
          const d = data[i]!;
          const w = g.param(`w${i}`, [l.out, y.shape[1]!, l.k, l.k], d.w);
          const b = l.bias ? g.param(`b${i}`, [l.out], d.b) : undefined;
          const p = (k: number) => g.param(`bn${i}.${k}`, [l.out], d.bn[k]!);
          const pad = (l.k - 1) / 2;
          const conv = g.conv(y, w, b, { strides: [l.stride, l.stride], pads: [pad, pad, pad, pad] });
          y = g.relu(g.batchNorm(conv, p(0), p(1), p(2), p(3), 1e-3));
        });
        const report = runPasses(g, [y], 'all', { constantWeights: true, passes });
        return { model: toOnnx(g, { outputs: { y }, params: 'initializer' }), report };
      };
      const feeds = { x: { data: hashUniform(seed, 2 * c0 * 81, 1), shape: [2, c0, 9, 9] } };
      const run = async (m: Uint8Array) => {
        const s = await engine.createSession(m, { threads: 1 });
        try {
          return (await s.run(feeds)).y!.data;
        } finally {
          await s.release();
        }
      };
      const folded = build(['fold-batchnorm']);
      assert.equal(folded.report['fold-batchnorm'], layers.length);
      const want = await run(build([]).model);
      allClose(await run(folded.model), want, 1e-4, 1e-5 * maxAbs(want), 'conv + BatchNorm stack');
    });
  }
});
