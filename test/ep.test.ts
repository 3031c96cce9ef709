// --ep: ONNX Runtime's execution provider for sampling. cpu runs; cuda and webgpu, where this machine has
// no GPU (or the provider's libraries), fail with an error naming the provider and what it needs, never a
// silent fall-back to the CPU; an unknown provider is a usage error.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-ep-'));
after(() => rmSync(TMP, { recursive: true, force: true }));
const BIN = new URL('../bin/ddpm.mjs', import.meta.url).pathname;
const sample = (ep: string) =>
  spawnSync(
    process.execPath,
    [
      BIN,
      'sample',
      '--ep',
      ep,
      '--n',
      '2',
      '--steps',
      '2',
      '--threads',
      '1',
      '--out',
      join(TMP, `${ep}.png`),
    ],
    { encoding: 'utf8' },
  );

describe('ddpm sample --ep', () => {
  it('cpu samples', () => {
    const r = sample('cpu');
    assert.equal(r.status, 0, r.stderr);
  });

  for (const [ep, needs] of [
    [
      'cuda',
      /it needs onnxruntime-node's CUDA provider .*ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node.* CUDA 12 and cuDNN 9/,
    ],
    ['webgpu', /it needs a WebGPU adapter: a GPU with Vulkan drivers/],
  ] as const) {
    it(`${ep}: runs where the provider is there, else an error naming it and what it needs`, (t) => {
      const r = sample(ep);
      if (r.status === 0) {
        t.diagnostic(`${ep} is available here`);
        return;
      }
      assert.equal(r.status, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`ddpm sample: --ep ${ep}: ONNX Runtime could not start its ${ep} execution provider`),
      );
      assert.match(r.stderr, needs);
      assert.match(r.stderr, /Use --ep cpu to run on the CPU/);
    });
  }

  it('an unknown provider is a usage error listing the choices', () => {
    const r = sample('tpu');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /--ep "tpu".*cpu.*cuda.*webgpu/);
  });
});
