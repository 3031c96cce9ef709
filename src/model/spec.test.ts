// Model configs are checked against the schema before use: null, wrong types ("ch": "abc"), missing keys,
// out-of-range values and unknown choices each give an error naming the file, the key and what was
// expected (never a JavaScript TypeError); diffusers configs and scheduler configs likewise.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { initParams, TINY_UNET } from '../nn/unet.js';
import { defaultSpec, type ModelSpec, validateSpec } from './spec.js';
import { loadModel, saveModel } from './weights.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-spec-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const good: ModelSpec = { ...defaultSpec(), unet: TINY_UNET };
const F = '/m/config.json';

/** good with `path` (a.b) set to `value` (undefined: deleted). */
function withKey(path: string, value: unknown): unknown {
  const o = JSON.parse(JSON.stringify(good));
  const keys = path.split('.');
  const last = keys.pop()!;
  const parent = keys.reduce((x, k) => x[k], o);
  if (value === undefined) delete parent[last];
  else parent[last] = value;
  return o;
}

function rejects(raw: unknown, says: RegExp): void {
  assert.throws(
    () => validateSpec(raw, F),
    (e: Error) => {
      assert.ok(!(e instanceof TypeError), `a TypeError: ${e.message}`);
      assert.ok(e.message.startsWith(`${F}: `), `names the file: ${e.message}`);
      assert.match(e.message, says);
      return true;
    },
  );
}

describe('validateSpec', () => {
  it('accepts a good spec unchanged', () => {
    assert.deepEqual(validateSpec(JSON.parse(JSON.stringify(good)), F), good);
  });

  it('the inference-timestep keys: read, checked, and the older "diffusersSampling" form read too', () => {
    const d = (o: Record<string, unknown>) =>
      validateSpec({ ...good, diffusion: { ...good.diffusion, ...o } }, F).diffusion;
    assert.deepEqual(
      [d({ timestepSpacing: 'trailing', stepsOffset: 2, setAlphaToOne: false })].map((x) => [
        x.timestepSpacing,
        x.stepsOffset,
        x.setAlphaToOne,
      ]),
      [['trailing', 2, false]],
    );
    const legacy = d({
      diffusersSampling: { timestepSpacing: 'leading', stepsOffset: 1, setAlphaToOne: true },
    });
    assert.deepEqual(
      [legacy.timestepSpacing, legacy.stepsOffset, legacy.setAlphaToOne, 'diffusersSampling' in legacy],
      ['leading', 1, true, false],
    );
    rejects(
      withKey('diffusion.timestepSpacing', 'uniform'),
      /"diffusion\.timestepSpacing" is "uniform" \(a string\); expected one of "improved-diffusion", "leading", "trailing", "linspace"/,
    );
    rejects(
      withKey('diffusion.stepsOffset', 1),
      /"diffusion\.stepsOffset" is 1 \(a number\); expected 0 with timestepSpacing "improved-diffusion"/,
    );
    rejects(withKey('diffusion.setAlphaToOne', 'no'), /"diffusion\.setAlphaToOne" is "no" .*true or false/);
  });

  it('the recommended sampling: read, checked against the samplers and T', () => {
    const sampling = { sampler: 'ddim', steps: 20, basis: 'README: steps versus quality' };
    assert.deepEqual(validateSpec(withKey('sampling', sampling), F).sampling, sampling);
    assert.equal('sampling' in validateSpec(JSON.parse(JSON.stringify(good)), F), false);
    rejects(withKey('sampling', 'ddim'), /"sampling" is "ddim" \(a string\); expected an object such as/);
    rejects(
      withKey('sampling', { sampler: 'plms', steps: 20 }),
      /"sampling\.sampler" is "plms" .*; expected one of "ddpm", "ddim", "dpm\+\+2m"/,
    );
    rejects(
      withKey('sampling', { sampler: 'ddim' }),
      /"sampling\.steps" is missing; expected a positive integer/,
    );
    rejects(
      withKey('sampling', { sampler: 'ddim', steps: good.diffusion.T + 1 }),
      new RegExp(
        `"sampling\\.steps" is ${good.diffusion.T + 1} .*; expected at most diffusion\\.T = ${good.diffusion.T}`,
      ),
    );
    rejects(withKey('sampling', { sampler: 'ddim', steps: 5, basis: 7 }), /"sampling\.basis" is 7/);
    const small = { sampler: 'ddpm', steps: 50, varType: 'fixedsmall' };
    assert.deepEqual(validateSpec(withKey('sampling', small), F).sampling, small);
    rejects(
      withKey('sampling', { ...small, varType: 'learned-range' }),
      /"sampling\.varType" .*; expected one of "fixedlarge", "fixedsmall"/,
    );
    rejects(
      withKey('sampling', { ...small, sampler: 'ddim' }),
      /"sampling\.varType" .*only the ddpm sampler uses/,
    );
    const learned = JSON.parse(JSON.stringify(withKey('sampling', small)));
    learned.diffusion.modelVarType = 'learned-range';
    learned.unet.outChannels = 2 * learned.unet.inChannels;
    rejects(learned, /"sampling\.varType" .*this model learns its variance/);
  });

  it('names the key, the value and what was expected', () => {
    rejects(null, /the file is null; expected a JSON object with "format", "unet" and "diffusion"/);
    rejects('hello', /the file is "hello" \(a string\); expected a JSON object/);
    rejects([1], /the file is \[1\] \(an array\)/);
    rejects(withKey('format', undefined), /"format" is missing; expected "ddpm-ts\/model\/v1"/);
    rejects(withKey('unet', null), /"unet" is null; expected an object/);
    rejects(withKey('diffusion', undefined), /"diffusion" is missing; expected an object/);
    rejects(withKey('unet.ch', 'abc'), /"unet\.ch" is "abc" \(a string\); expected a positive integer/);
    rejects(withKey('unet.ch', 0), /"unet\.ch" is 0 \(a number\); expected a positive integer/);
    rejects(withKey('unet.groups', undefined), /"unet\.groups" is missing; expected a positive integer/);
    rejects(
      withKey('unet.chMult', '1,2'),
      /"unet\.chMult" is "1,2" \(a string\); expected a non-empty array/,
    );
    rejects(withKey('unet.chMult', []), /"unet\.chMult" is \[\] \(an array\); expected a non-empty array/);
    rejects(
      withKey('unet.attnResolutions', [8, 'x']),
      /"unet\.attnResolutions" .* expected an array of positive/,
    );
    rejects(withKey('unet.dropout', 1), /"unet\.dropout" is 1 \(a number\); expected a number in \[0, 1\)/);
    rejects(withKey('unet.ch', 30), /ch 30 must be divisible by groups 32/);
    rejects(
      withKey('diffusion.T', '1000'),
      /"diffusion\.T" is "1000" \(a string\); expected a positive integer/,
    );
    rejects(
      withKey('diffusion.schedule', 'cubic'),
      /"diffusion\.schedule" is "cubic" .*; expected one of "linear"/,
    );
    rejects(
      withKey('diffusion.betaEnd', null),
      /"diffusion\.betaEnd" is null; expected a number in \[0, 1\]/,
    );
    rejects(
      withKey('diffusion.modelVarType', 'learned'),
      /"diffusion\.modelVarType" .* one of "fixedlarge", "fixedsmall"/,
    );
    rejects(withKey('data', 3), /"data" is 3 \(a number\); expected a data spec string/);
  });
});

describe('loadModel: bad config.json', () => {
  const folder = (name: string, config: string, extra: Record<string, string> = {}) => {
    const dir = join(TMP, name);
    mkdirSync(dir);
    saveModel(dir, good, initParams(TINY_UNET, 'fixture'));
    writeFileSync(join(dir, 'config.json'), config);
    for (const [f, text] of Object.entries(extra)) writeFileSync(join(dir, f), text);
    return dir;
  };
  const cases: [string, string, RegExp, Record<string, string>?][] = [
    ['null', 'null', /config\.json: the file is null; expected a JSON object/],
    ['number', '42', /the file is 42 \(a number\)/],
    ['neither', '{"hello": 1}', /neither a ddpm-ts model config .* nor a diffusers UNet2DModel config/],
    [
      'ch',
      JSON.stringify(withKey('unet.ch', 'abc')),
      /"unet\.ch" is "abc" \(a string\); expected a positive integer/,
    ],
    [
      'diffusers',
      '{"block_out_channels": "32,64", "down_block_types": []}',
      /"block_out_channels" is "32,64"/,
    ],
    [
      'diffusers2',
      '{"block_out_channels": [32, 64], "down_block_types": ["DownBlock2D"]}',
      /"down_block_types" .*expected an array of 2 block names/,
    ],
    [
      'diffusers3',
      '{"block_out_channels": [32, 64], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "sample_size": "16"}',
      /"sample_size" is "16" \(a string\); expected a positive integer/,
    ],
    [
      'scheduler',
      '{"block_out_channels": [32, 64], "down_block_types": ["DownBlock2D", "AttnDownBlock2D"], "up_block_types": ["AttnUpBlock2D", "UpBlock2D"], "sample_size": 16, "in_channels": 1, "out_channels": 1, "layers_per_block": 1}',
      /scheduler_config\.json: "beta_end" is "0\.02" \(a string\)/,
      { 'scheduler_config.json': '{"beta_end": "0.02"}' },
    ],
  ];
  for (const [name, config, says, extra] of cases) {
    it(`${name}: an error naming config.json and the key`, () => {
      const dir = folder(name, config, extra);
      assert.throws(
        () => loadModel(dir),
        (e: Error) => {
          assert.ok(!(e instanceof TypeError), `a TypeError: ${e.message}`);
          assert.ok(
            e.message.includes(join(dir, name === 'scheduler' ? 'scheduler_config.json' : 'config.json')),
            e.message,
          );
          assert.match(e.message, says);
          return true;
        },
      );
    });
  }
});
