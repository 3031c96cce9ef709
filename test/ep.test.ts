// --ep: ONNX Runtime's execution provider for train, sample, bpd, interpolate and eval (sampling and the
// feature network; eval stats and eval classifier too). cpu runs; cuda and webgpu, where this machine has no GPU (or the provider's
// libraries), fail before any work with an error naming the command, the provider and what it needs, never
// a silent fall-back to the CPU; an unknown provider is a usage error. Training on cuda / webgpu uses
// onnxruntime-node with that provider and the standard-ONNX training graph (no fused kernels, no NCHWc),
// checked by emulating a provider that starts (onnxruntime-node's CPU under the cuda engine); --ep is not
// part of a run's identity: a run checkpointed on one engine resumes on the other.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { SessionOptions } from '../src/engine/engine.js';
import { engineForProvider, nodeEngine, onnxruntimeNodeEngine } from '../src/engine/node.js';
import { FUSED_DOMAIN } from '../src/graph/graph.js';
import { NCHWC_DOMAIN, nchwcBlockOf } from '../src/graph/nchwc.js';
import { defaultSpec, type ModelSpec } from '../src/model/spec.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
import { DEFAULT_TRAIN, type TrainOptions, train } from '../src/train/trainer.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-ep-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const BIN = new URL('../bin/ddpm.mjs', import.meta.url).pathname;
const ddpm = (args: readonly string[]) =>
  spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: TMP });

const TINY_TRAIN = [
  ...['--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8', '--resolution', '16'],
  ...['--T', '50', '--batch', '4', '--sample-every', '0', '--threads', '1'],
];

/** Each command as a user runs it, small enough to finish quickly where the provider is there. */
const COMMANDS: Record<string, (ep: string) => string[]> = {
  sample: (ep) => ['sample', '--n', '2', '--steps', '2', '--threads', '1', '--out', `${ep}.png`],
  train: (ep) => ['train', '--run', `run-${ep}`, '--steps', '1', ...TINY_TRAIN],
  bpd: () => ['bpd', '--n', '1', '--batch', '1', '--threads', '1'],
  eval: (ep) => [
    ...['eval', 'fid', '--n', '2', '--batch', '2', '--sampler', 'ddim', '--steps', '2'],
    ...['--threads', '1', '--log', `eval-${ep}.jsonl`],
  ],
  interpolate: (ep) => [
    'interpolate',
    '--lambdas',
    '2',
    '--t',
    '2',
    '--threads',
    '1',
    '--out',
    `interp-${ep}.png`,
  ],
  'eval classifier': (ep) => [
    ...['eval', 'classifier', '--data', 'mnist:train', '--epochs', '1', '--threads', '1'],
    ...['--out', `clf-${ep}`],
  ],
  'eval stats': (ep) => [
    ...['eval', 'stats', '--data', 'mnist:test', '--n', '2', '--batch', '2', '--threads', '1'],
    ...['--out', `stats-${ep}.npz`],
  ],
};

const NEEDS = {
  cuda: /it needs onnxruntime-node's CUDA provider .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node.* CUDA 12 and cuDNN 9/,
  webgpu: /it needs a WebGPU adapter: a GPU with Vulkan drivers/,
} as const;

describe('--ep on every command that runs a network', () => {
  it('sample --ep cpu samples', () => {
    const r = ddpm([...COMMANDS.sample!('cpu'), '--ep', 'cpu']);
    assert.equal(r.status, 0, r.stderr);
  });

  for (const [name, args] of Object.entries(COMMANDS)) {
    const cmd = name.split(' ')[0]!;
    for (const ep of ['cuda', 'webgpu'] as const) {
      it(`${name} --ep ${ep}: runs where the provider is there, else an error naming it and what it needs`, (t) => {
        const r = ddpm([...args(ep), '--ep', ep]);
        if (r.status === 0) {
          t.diagnostic(`${ep} is available here`);
          return;
        }
        assert.equal(r.status, 1, r.stderr);
        assert.match(
          r.stderr,
          new RegExp(`ddpm ${cmd}: --ep ${ep}: ONNX Runtime could not start its ${ep} execution provider`),
        );
        assert.match(r.stderr, NEEDS[ep]);
        assert.match(r.stderr, /Use --ep cpu to run on the CPU/);
        // It failed before any work: nothing was written.
        for (const f of [
          `${ep}.png`,
          `run-${ep}`,
          `eval-${ep}.jsonl`,
          `stats-${ep}.npz`,
          `interp-${ep}.png`,
          `clf-${ep}`,
        ])
          assert.ok(!existsSync(join(TMP, f)), `${f} was written`);
      });
    }
    it(`${name}: an unknown provider is a usage error listing the choices; --help lists --ep`, () => {
      const r = ddpm([...args('tpu'), '--ep', 'tpu']);
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, new RegExp(`ddpm ${name}: --ep "tpu": expected one of cpu, cuda, webgpu`));
      const h = ddpm([...name.split(' '), '--help']);
      assert.equal(h.status, 0, h.stderr);
      assert.match(h.stdout, /--ep <cpu\|cuda\|webgpu>\s+ONNX Runtime's execution provider/);
    });
  }

  it('train: --ep is not part of the run (its config and checkpoint identity do not hold it)', () => {
    const r = ddpm(['train', '--run', 'cpu-run', '--steps', '1', ...TINY_TRAIN, '--ep', 'cpu']);
    assert.equal(r.status, 0, r.stderr);
    const config = readFileSync(join(TMP, 'cpu-run', 'config.json'), 'utf8');
    assert.doesNotMatch(config, /"ep"|provider|engine/i);
    const identity = loadCheckpoint(join(TMP, 'cpu-run', 'checkpoint.safetensors')).meta.identity;
    assert.doesNotMatch(JSON.stringify(identity), /"ep"|provider|engine/i);
  });
});

describe('training on a GPU provider: onnxruntime-node, the standard-ONNX graph, resumable across engines', () => {
  const spec: ModelSpec = {
    ...defaultSpec(),
    unet: {
      ...defaultSpec().unet,
      ch: 32,
      chMult: [1, 2],
      numResBlocks: 1,
      attnResolutions: [8],
      resolution: 16,
      dropout: 0,
    },
    diffusion: { ...defaultSpec().diffusion, T: 50 },
  };
  const opts = (runDir: string, steps: number): TrainOptions => ({
    ...DEFAULT_TRAIN,
    runDir,
    spec,
    batch: 4,
    steps,
    adam: { ...DEFAULT_TRAIN.adam, warmup: 0 }, // full-size steps from the first
    checkpointEvery: 2,
    sampleEvery: 0,
    logEvery: 1,
    threads: 1,
  });

  it('--ep cuda trains with the plain graph on onnxruntime-node (cuda, strict) and resumes a cpu run', async (t) => {
    const cuda = engineForProvider('cuda');
    assert.equal(cuda.fusedKernels, undefined);
    assert.equal(cuda.standardOnnxOnly, true);
    assert.equal(await nchwcBlockOf(cuda), 0);
    // A CUDA provider that starts, emulated: the sessions the cuda engine asks onnxruntime-node for run on
    // its CPU provider instead; the models and options it asked with are recorded.
    const ort = onnxruntimeNodeEngine();
    const original = ort.createSession;
    const asked: { model: string; opts: SessionOptions }[] = [];
    ort.createSession = (model, o = {}) => {
      asked.push({ model: Buffer.from(model).toString('latin1'), opts: o });
      return original.call(ort, model, { ...o, provider: 'cpu', strictProvider: false });
    };
    try {
      // 4 steps on cpu (the native engine when built) against 2 on cpu + 2 resumed on "cuda".
      const whole = await train(nodeEngine(), opts(join(TMP, 'whole'), 4));
      const half = await train(nodeEngine(), opts(join(TMP, 'split'), 2));
      const events: string[] = [];
      const resumed = await train(cuda, opts(join(TMP, 'split'), 4), { onEvent: (m) => events.push(m) });
      assert.ok(
        events.some((m) => /resumed .*split at step 2/.test(m)),
        events.join('\n'),
      );
      assert.equal(resumed.step, 4);
      // The training session: onnxruntime-node, the cuda provider alone, standard ONNX only.
      const trainModels = asked.filter((a) => a.model.includes('grad.'));
      assert.equal(trainModels.length, 1);
      for (const a of asked) {
        assert.equal(a.opts.provider, 'cuda');
        assert.equal(a.opts.strictProvider, true);
        assert.ok(!a.model.includes(FUSED_DOMAIN), 'a fused kernel in a cuda graph');
        assert.ok(!a.model.includes(NCHWC_DOMAIN), 'an NCHWc kernel in a cuda graph');
      }
      // The weights of the uninterrupted run, to the rounding of the fused vs plain kernels: the resumed run
      // differs from it by under 1% of what its last two steps moved the weights.
      let diff = 0;
      let moved = 0;
      for (const [k, v] of whole.params) {
        const w = resumed.params.get(k)!;
        const h = half.params.get(k)!;
        for (let i = 0; i < v.length; i++) {
          diff += Math.abs(v[i]! - w[i]!);
          moved += Math.abs(v[i]! - h[i]!);
        }
      }
      t.diagnostic(
        `${nodeEngine().name} then cuda (emulated): |resumed - whole| ${diff}, |whole - step 2| ${moved}`,
      );
      assert.ok(moved > 0 && diff < 0.01 * moved, `|resumed - whole| ${diff}, |whole - step 2| ${moved}`);
    } finally {
      ort.createSession = original;
    }
  });
});
