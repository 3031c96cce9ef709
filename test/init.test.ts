// `ddpm train --init`: a new run starts from a trained model's weights (its EMA) with a fresh optimiser.
// With a zero learning rate the weights cannot move, so the new run's model must be the initial model
// exactly; another architecture is refused with the differing keys named; a run started from --init
// resumes only with the same starting weights.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { parseSafeTensors } from '../src/util/safetensors.js';
import { ddpmIn } from './ddpmProcess.js';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-init-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

const ddpm = ddpmIn(TMP);

const TINY = [
  ...[
    '--ch',
    '32',
    '--ch-mult',
    '1,2',
    '--res-blocks',
    '1',
    '--attn',
    '8',
    '--resolution',
    '16',
    '--T',
    '50',
  ],
  ...['--batch', '4', '--sample-every', '0', '--threads', '1'],
];

function tensors(dir: string): Map<string, Float32Array> {
  const st = parseSafeTensors(new Uint8Array(readFileSync(join(dir, 'model', 'model.safetensors'))));
  return new Map([...st.tensors].map(([k, t]) => [k, t.data as Float32Array]));
}

describe('ddpm train --init', () => {
  it('starts from the model (lr 0 keeps it exactly), refuses another architecture, resumes only with it', async () => {
    const a = await ddpm(['train', '--run', 'a', '--steps', '3', ...TINY]);
    assert.equal(a.code, 0, a.stderr);
    const b = await ddpm(['train', '--run', 'b', '--steps', '2', '--lr', '0', '--init', 'a', ...TINY]);
    assert.equal(b.code, 0, b.stderr);
    assert.match(b.stderr + b.stdout, /starting from the weights of .*a.* with a fresh optimiser/);
    const wa = tensors(join(TMP, 'a'));
    const wb = tensors(join(TMP, 'b'));
    assert.equal(wb.size, wa.size);
    for (const [k, v] of wa) assert.deepEqual(wb.get(k), v, k);
    // A random initialisation with lr 0 would have kept its own weights: the run really started from a.
    const c = await ddpm(['train', '--run', 'c', '--steps', '1', '--lr', '0', ...TINY]);
    assert.equal(c.code, 0, c.stderr);
    const wc = tensors(join(TMP, 'c'));
    assert.ok([...wa].some(([k, v]) => !wc.get(k)!.every((x, i) => x === v[i])));

    const other = await ddpm(['train', '--run', 'd', '--steps', '1', '--init', 'a', ...TINY, '--T', '40']);
    assert.equal(other.code, 2);
    assert.match(other.stderr, /--init a is another network than the options describe/);
    assert.match(other.stderr, /diffusion\.T: 50 in the model, 40 from the options/);
    assert.ok(!existsSync(join(TMP, 'd', 'checkpoint.safetensors')));

    const missing = await ddpm(['train', '--run', 'e', '--init', 'nope', ...TINY]);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /--init nope does not exist/);

    // b resumes with its --init, and refuses to resume without it
    const noInit = await ddpm(['train', '--run', 'b', '--steps', '3', '--lr', '0', ...TINY]);
    assert.notEqual(noInit.code, 0);
    assert.match(noInit.stderr, /different init/);
    const resumed = await ddpm(['train', '--run', 'b', '--steps', '3', '--lr', '0', '--init', 'a', ...TINY]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.match(resumed.stderr + resumed.stdout, /resumed .*b at step 2/);
  });

  it('a fixed-variance model starts a learned-range run: the same weights, conv_out with C zero variance channels', async () => {
    const a = await ddpm(['train', '--run', 'f', '--steps', '2', ...TINY]);
    assert.equal(a.code, 0, a.stderr);
    const lr = ['--var-type', 'learned-range'];
    const b = await ddpm(['train', '--run', 'g', '--steps', '1', '--lr', '0', '--init', 'f', ...lr, ...TINY]);
    assert.equal(b.code, 0, b.stderr);
    const wa = tensors(join(TMP, 'f'));
    const wb = tensors(join(TMP, 'g'));
    assert.equal(wb.size, wa.size);
    for (const [k, v] of wa) {
      const w = wb.get(k)!;
      if (k === 'conv_out.weight' || k === 'conv_out.bias') {
        assert.equal(w.length, 2 * v.length, k);
        assert.deepEqual(w.subarray(0, v.length), v, k);
        assert.ok(
          w.subarray(v.length).every((x) => x === 0),
          `${k}: variance channels not zero`,
        );
      } else assert.deepEqual(w, v, k);
    }
    // The other way (a learned-range model into a fixed-variance run) is another network.
    const back = await ddpm(['train', '--run', 'h', '--steps', '1', '--init', 'g', ...TINY]);
    assert.equal(back.code, 2);
    assert.match(back.stderr, /unet\.outChannels: 2 in the model, 1 from the options/);
  });
});
