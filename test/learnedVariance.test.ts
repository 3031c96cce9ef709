// `ddpm train --var-type learned-range --mean-type v` end to end (issue 13 items 1 and 2, issue 14's scheduler
// keys): a tiny run trains a U-Net with twice the image channels and writes the options into its model config
// and checkpoint; `ddpm bpd` measures it with the learned variance (finite); `ddpm export --to diffusers`
// writes prediction_type "v_prediction" and variance_type "learned_range", and the folder loads back the same.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadModel } from '../src/model/weights.js';
import { ddpmIn } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-learned-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const ddpm = ddpmIn(TMP);

describe('ddpm train --var-type learned-range --mean-type v', () => {
  it('trains, measures bits/dim with the learned variance, and exports to diffusers', async () => {
    const run = join(TMP, 'run');
    const train = await ddpm([
      'train',
      ...['--run', run, '--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8'],
      ...['--resolution', '16', '--T', '20', '--batch', '2', '--steps', '3', '--threads', '1'],
      ...['--sample-every', '0', '--var-type', 'learned-range', '--mean-type', 'v'],
    ]);
    assert.equal(train.code, 0, train.stderr);
    const cfg = JSON.parse(readFileSync(join(run, 'model', 'config.json'), 'utf8'));
    assert.equal(cfg.unet.inChannels, 1);
    assert.equal(cfg.unet.outChannels, 2, 'the mean output, then the variance values');
    assert.equal(cfg.diffusion.modelVarType, 'learned-range');
    assert.equal(cfg.diffusion.modelMeanType, 'v');
    const log = readFileSync(join(run, 'log.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    assert.ok(log.every((r) => Number.isFinite(r.loss)));

    const bpd = await ddpm([
      'bpd',
      '--model',
      join(run, 'model'),
      '--n',
      '2',
      '--batch',
      '2',
      '--threads',
      '1',
    ]);
    assert.equal(bpd.code, 0, bpd.stderr);
    const total = /total\s+([-\d.]+)/.exec(bpd.stdout);
    assert.ok(total && Number.isFinite(Number(total[1])) && Number(total[1]) > 0, bpd.stdout);

    const out = join(TMP, 'pipe');
    const exp = await ddpm(['export', '--model', join(run, 'model'), '--to', 'diffusers', out]);
    assert.equal(exp.code, 0, exp.stderr);
    const sched = JSON.parse(readFileSync(join(out, 'scheduler', 'scheduler_config.json'), 'utf8'));
    assert.equal(sched.prediction_type, 'v_prediction');
    assert.equal(sched.variance_type, 'learned_range');
    assert.equal(JSON.parse(readFileSync(join(out, 'unet', 'config.json'), 'utf8')).out_channels, 2);
    const back = loadModel(out);
    assert.equal(back.spec.diffusion.modelMeanType, 'v');
    assert.equal(back.spec.diffusion.modelVarType, 'learned-range');
    assert.equal(back.spec.unet.outChannels, 2);
    assert.ok(existsSync(join(run, 'checkpoint.safetensors')));
  });
});
