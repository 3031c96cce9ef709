// `ddpm train --var-type learned-range --mean-type v` end to end (issue 13 items 1 and 2, issue 14's scheduler
// keys): a tiny run trains a U-Net with twice the image channels and writes the options into its model config
// and checkpoint; `ddpm bpd` measures it with the learned variance (finite); `ddpm export --to diffusers`
// writes prediction_type "v_prediction" and variance_type "learned_range", and the folder loads back the same.
// `--loss kl --timestep-sampler loss-second-moment` (importance-sampled timesteps) with a learned variance:
// its loss history is checkpointed, and a run stopped half-way and resumed ends with exactly the weights of
// an uninterrupted one.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadModel } from '../src/model/weights.js';
import { loadCheckpoint } from '../src/train/checkpoint.js';
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

  it('--loss kl --timestep-sampler loss-second-moment: history checkpointed, resume is exact', async () => {
    const args = (run: string, steps: number) => [
      'train',
      ...['--run', run, '--ch', '32', '--ch-mult', '1,2', '--res-blocks', '1', '--attn', '8'],
      ...['--resolution', '16', '--T', '5', '--batch', '5', '--steps', String(steps), '--threads', '1'],
      ...['--sample-every', '0', '--var-type', 'learned-range', '--loss', 'kl'],
      ...['--timestep-sampler', 'loss-second-moment', '--checkpoint-every', '12'],
    ];
    const [whole, half] = [join(TMP, 'whole'), join(TMP, 'half')];
    for (const r of await Promise.all([ddpm(args(whole, 24)), ddpm(args(half, 12))]))
      assert.equal(r.code, 0, r.stderr);
    const resumed = await ddpm(args(half, 24));
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stdout + resumed.stderr, /resumed .* at step 12/);
    const ck = loadCheckpoint(join(whole, 'checkpoint.safetensors'));
    const st = (ck.meta.state as { timesteps: { counts: number[]; history: number[] } }).timesteps;
    assert.deepEqual(st.counts, [10, 10, 10, 10, 10], 'every t holds 10 losses: sampling by importance');
    assert.ok(st.history.every((v) => Number.isFinite(v) && v > 0));
    assert.ok(
      readFileSync(join(whole, 'model', 'model.safetensors')).equals(
        readFileSync(join(half, 'model', 'model.safetensors')),
      ),
      'the resumed run ends with the weights of the uninterrupted one',
    );
    const mse = await ddpm(['train', '--run', join(TMP, 'x'), '--timestep-sampler', 'loss-second-moment']);
    assert.equal(mse.code, 2);
    assert.match(
      mse.stderr,
      /--timestep-sampler loss-second-moment importance-samples .* use it with --loss kl/,
    );
  });
});
