// `ddpm export`: ours -> ONNX -> ONNX Runtime (onnxruntime-node itself, none of the project's graph code)
// gives the project's outputs at any batch size; ours -> ONNX / diffusers folder -> ours gives the same spec
// and bit-identical weights; the standalone model has standard ops only; the command's errors.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import * as ort from 'onnxruntime-node';
import { nodeEngine } from '../src/engine/node.js';
import { readFields } from '../src/graph/protobuf.js';
import { unetFromDiffusers } from '../src/model/diffusers.js';
import { defaultSpec, type ModelSpec } from '../src/model/spec.js';
import { loadModel, saveModel } from '../src/model/weights.js';
import { fnv1a, initParams, TINY_UNET } from '../src/nn/unet.js';
import { createDenoiser } from '../src/sample/denoiser.js';
import { relErr } from '../src/util/allclose.js';
import { hashUniform } from '../src/util/rng.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-export-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const BIN = new URL('../bin/ddpm.mjs', import.meta.url).pathname;

function ddpm(...args: string[]) {
  return spawnSync(process.execPath, [BIN, ...args], {
    encoding: 'utf8',
    env: { ...process.env, DDPM_DEBUG: '' },
  });
}

const FIX = JSON.parse(readFileSync(new URL('./fixtures/diffusers_unet.json', import.meta.url), 'utf8'));
const SPECS: [string, ModelSpec][] = [
  ['tiny', { ...defaultSpec(), unet: TINY_UNET }],
  // diffusers' defaults: 4 heads of 8, [cos, sin] features, padding-1 downsampling, eps 1e-5.
  ['multi-head', { ...defaultSpec(), unet: unetFromDiffusers(FIX.cases[0].config, 'c') }],
];

/** The opset imports of an ONNX model: [domain, version] ('' is the standard ONNX domain). */
function opsetsOf(bytes: Uint8Array): [string, number][] {
  return readFields(bytes)
    .filter((f) => f.field === 8)
    .map((f) => {
      const fs = readFields(f.value as Uint8Array);
      const dom = fs.find((x) => x.field === 1);
      return [
        dom ? new TextDecoder().decode(dom.value as Uint8Array) : '',
        Number(fs.find((x) => x.field === 2)!.value),
      ];
    });
}

/** The op types of an ONNX model's graph nodes (and their domains). */
function opsOf(bytes: Uint8Array): string[] {
  const text = (b: unknown) => new TextDecoder().decode(b as Uint8Array);
  const graph = readFields(bytes).find((f) => f.field === 7)!.value as Uint8Array;
  return readFields(graph)
    .filter((f) => f.field === 1)
    .map((f) => {
      const fs = readFields(f.value as Uint8Array);
      const dom = fs.find((x) => x.field === 7);
      return (dom ? `${text(dom.value)}:` : '') + text(fs.find((x) => x.field === 4)!.value);
    });
}

describe('ddpm export --to onnx', () => {
  for (const [name, spec] of SPECS) {
    it(`${name}: onnxruntime-node runs the file at batch 1 and 5 as the project does; it loads back exactly`, async () => {
      saveModel(join(TMP, name), spec, initParams(spec.unet, 'fixture'));
      const file = join(TMP, `${name}.onnx`);
      const r = ddpm('export', '--model', join(TMP, name), '--to', 'onnx', file, '--threads', '1');
      assert.equal(r.status, 0, r.stderr);
      const bytes = readFileSync(file);
      const ops = new Set(opsOf(bytes));
      assert.ok(![...ops].some((o) => o.includes(':')), `custom ops: ${[...ops]}`);
      assert.deepEqual(opsetsOf(bytes), [['', 17]]); // the standard domain alone, opset 17
      const session = await ort.InferenceSession.create(bytes, { intraOpNumThreads: 1 });
      assert.deepEqual([...session.inputNames].sort(), ['t', 'x']);
      assert.deepEqual(session.outputNames, ['out']);
      const u = spec.unet;
      for (const batch of [1, 5]) {
        const shape = [batch, u.inChannels, u.resolution, u.resolution];
        const x = hashUniform(
          fnv1a('x'),
          shape.reduce((a, b) => a * b, 1),
          1,
        );
        const t = Float32Array.from({ length: batch }, (_, i) => [0, 999, 3, 500, 77][i]!);
        const got = (
          await session.run({
            x: new ort.Tensor('float32', x, shape),
            t: new ort.Tensor('float32', t, [batch]),
          })
        ).out!.data as Float32Array;
        const den = await createDenoiser(nodeEngine(), u, initParams(u, 'fixture'), batch, { threads: 1 });
        const want = await den.denoise({ data: x, shape }, Int32Array.from(t));
        await den.release();
        const err = relErr(got, want.data);
        if (process.env.DDPM_PRINT_ERRORS)
          console.log(`${name} batch ${batch}: ONNX Runtime vs project rel L2 ${err.toExponential(2)}`);
        assert.ok(err < 1e-5, `batch ${batch}: relative error ${err}`);
      }
      await session.release();
      const back = loadModel(file);
      assert.deepEqual(back.spec, spec);
      for (const [k, v] of initParams(spec.unet, 'fixture'))
        assert.ok(Buffer.from(back.params.get(k)!.buffer).equals(Buffer.from(v.buffer)), k);
    });
  }
});

describe('ddpm export --to diffusers', () => {
  it('writes a pipeline folder that loads back with the same spec and bit-identical weights', () => {
    const [, spec] = SPECS[1]!;
    const src = join(TMP, 'src-d');
    const p = initParams(spec.unet, 'fixture');
    saveModel(src, spec, p);
    const out = join(TMP, 'pipe');
    const r = ddpm('export', '--model', src, '--to', 'diffusers', out);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /DDPMPipeline\.from_pretrained/);
    // diffusers' pipeline layout: the index names the pipeline and its two components by library and class.
    const idx = JSON.parse(readFileSync(join(out, 'model_index.json'), 'utf8'));
    assert.equal(idx._class_name, 'DDPMPipeline');
    assert.deepEqual(idx.unet, ['diffusers', 'UNet2DModel']);
    assert.deepEqual(idx.scheduler, ['diffusers', 'DDPMScheduler']);
    const sched = JSON.parse(readFileSync(join(out, 'scheduler', 'scheduler_config.json'), 'utf8'));
    assert.equal(sched._class_name, 'DDPMScheduler');
    const unet = JSON.parse(readFileSync(join(out, 'unet', 'config.json'), 'utf8'));
    assert.equal(unet._class_name, 'UNet2DModel');
    const back = loadModel(out);
    const { data: _d, ...rest } = spec;
    assert.deepEqual(back.spec, rest);
    for (const [k, v] of p)
      assert.ok(Buffer.from(back.params.get(k)!.buffer).equals(Buffer.from(v.buffer)), k);
  });

  it('ddpm sample from the exported folder and ONNX file: the images of the original model, same seed', () => {
    const src = join(TMP, 'src-d');
    const onnx = join(TMP, 'src-d.onnx');
    assert.equal(ddpm('export', '--model', src, '--to', 'onnx', onnx).status, 0);
    const grid = (model: string, name: string) => {
      const out = join(TMP, `${name}.png`);
      const r = ddpm(
        ...['sample', '--model', model, '--n', '4', '--steps', '5', '--seed', '3'],
        ...['--threads', '1', '--out', out],
      );
      assert.equal(r.status, 0, r.stderr);
      return readFileSync(out);
    };
    const want = grid(src, 'from-ours');
    assert.ok(grid(join(TMP, 'pipe'), 'from-diffusers').equals(want), 'diffusers folder');
    assert.ok(grid(onnx, 'from-onnx').equals(want), 'ONNX file');
  });

  it("the inference-timestep keys: ours exported as linspace + our own key (and said so), diffusers' kept and honoured", () => {
    const src = join(TMP, 'src-d');
    const pipe = join(TMP, 'pipe-trailing');
    let r = ddpm('export', '--model', src, '--to', 'diffusers', pipe);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stdout,
      /note: this model samples with improved-diffusion's timesteps .*which no diffusers timestep_spacing gives exactly: scheduler_config\.json says "linspace"/,
    );
    const sc = join(pipe, 'scheduler', 'scheduler_config.json');
    const { _ddpm_ts_timestep_spacing: own, ...sched } = JSON.parse(readFileSync(sc, 'utf8'));
    assert.deepEqual(
      [own, sched.timestep_spacing, sched.steps_offset],
      ['improved-diffusion', 'linspace', 0],
    );
    // diffusers' own rule: no private key; kept through another export, which has nothing to say.
    writeFileSync(sc, JSON.stringify({ ...sched, timestep_spacing: 'trailing', steps_offset: 1 }));
    const again = join(TMP, 'pipe-trailing-again');
    r = ddpm('export', '--model', pipe, '--to', 'diffusers', again);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /note:/);
    const kept = JSON.parse(readFileSync(join(again, 'scheduler', 'scheduler_config.json'), 'utf8'));
    assert.deepEqual([kept.timestep_spacing, kept.steps_offset], ['trailing', 1]);
    assert.equal(kept._ddpm_ts_timestep_spacing, undefined);
    const sample = (model: string, out: string) =>
      ddpm(
        ...['sample', '--model', model, '--n', '1', '--sampler', 'ddim', '--steps', '3', '--seed', '2'],
        ...['--threads', '1', '--out', join(TMP, out)],
      );
    r = sample(pipe, 'trailing.png');
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /note/); // honoured, nothing to say
    assert.equal(sample(src, 'ours.png').status, 0);
    // ddim 3 steps of T = 1000: ours visits 0, 334, 668; trailing 332, 666, 999 (diffusers' timesteps)
    assert.ok(!readFileSync(join(TMP, 'trailing.png')).equals(readFileSync(join(TMP, 'ours.png'))));
    // our key beside a spacing it was not written with: refused, naming both
    writeFileSync(sc, JSON.stringify({ ...sched, steps_offset: 1, _ddpm_ts_timestep_spacing: own }));
    r = sample(pipe, 'x.png');
    assert.notEqual(r.status, 0);
    assert.match(
      r.stderr,
      /"_ddpm_ts_timestep_spacing" is "improved-diffusion" but "timestep_spacing" is "linspace" and "steps_offset" 1/,
    );
  });

  it('errors: no --to, no output, a wrong extension, a file as the folder, an xprev model', () => {
    const src = join(TMP, 'src-d');
    let r = ddpm('export', '--model', src, join(TMP, 'o'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--to diffusers\|onnx is required/);
    r = ddpm('export', '--model', src, '--to', 'onnx');
    assert.match(
      r.stderr,
      /expected one output \(a \.onnx file\), got 0: name it, e\.g\. ddpm export --to onnx model\.onnx/,
    );
    r = ddpm('export', '--model', src, '--to', 'onnx', '--out', join(TMP, 'a.onnx'), join(TMP, 'b.onnx'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /expected one output \(a \.onnx file\), got 2: .*a\.onnx, .*b\.onnx/);
    r = ddpm('export', '--model', src, '--to', 'onnx', '--out', join(TMP, 'm.bin'));
    assert.match(r.stderr, /must end in \.onnx/); // --out is OUT
    r = ddpm('export', '--model', src, '--to', 'onnx', join(TMP, 'm.bin'));
    assert.match(r.stderr, /must end in \.onnx/);
    r = ddpm('export', '--model', src, '--to', 'tflite', join(TMP, 'm'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--to "tflite"/);
    writeFileSync(join(TMP, 'afile'), 'x');
    r = ddpm('export', '--model', src, '--to', 'diffusers', join(TMP, 'afile'));
    assert.match(r.stderr, /is a file; --to diffusers writes a folder/);
    const xprev = join(TMP, 'xprev');
    saveModel(
      xprev,
      { ...SPECS[0]![1], diffusion: { ...SPECS[0]![1].diffusion, modelMeanType: 'xprev' } },
      initParams(TINY_UNET, 'fixture'),
    );
    r = ddpm('export', '--model', xprev, '--to', 'diffusers', join(TMP, 'xp'));
    assert.equal(r.status, 2);
    assert.match(r.stderr, /has no diffusers prediction_type/);
  });
});
