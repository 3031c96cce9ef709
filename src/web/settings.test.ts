import assert from 'node:assert/strict';
import { test } from 'node:test';
import { autoBackend, checkInt, DEFAULTS, plural, readSettings, settingsQuery } from './settings.js';

const limits = { T: 1000, maxThreads: 16 };

test('plural: "1 image", "2 images", "1 thread"', () => {
  assert.equal(plural(1, 'image'), '1 image');
  assert.equal(plural(2, 'image'), '2 images');
  assert.equal(plural(0, 'thread'), '0 threads');
  assert.equal(plural(1, 'network pass', 'network passes'), '1 network pass');
  assert.equal(plural(1000, 'step'), '1,000 steps');
});

test('checkInt: whole numbers in range, or a message saying what to enter', () => {
  assert.deepEqual(checkInt(' 12 ', 'Steps', 1, 100), { ok: true, value: 12 });
  assert.deepEqual(checkInt('', 'Steps', 1, 100), {
    ok: false,
    message: 'Steps: empty; enter a whole number from 1 to 100',
  });
  for (const bad of ['abc', '2.5', '1e3', 'NaN', '0x10']) {
    const c = checkInt(bad, 'Steps', 1, 100);
    assert.ok(!c.ok && c.message.includes('is not a whole number'), bad);
  }
  const c = checkInt('101', 'Steps', 1, 100);
  assert.ok(!c.ok && c.message === 'Steps: 101 is out of range; enter a whole number from 1 to 100');
});

test('readSettings: the URL round-trips; bad values give a message and the default', () => {
  const good = readSettings(
    new URLSearchParams('sampler=heun&steps=12&n=5&seed=42&backend=webgpu&threads=3&view=xt&model=/m/'),
    limits,
  );
  assert.deepEqual(good.messages, []);
  assert.deepEqual(good.settings, {
    model: '/m/',
    sampler: 'heun',
    steps: 12,
    n: 5,
    seed: 42,
    backend: 'webgpu',
    threads: 3,
    xt: true,
  });
  const q = settingsQuery(good.settings);
  assert.deepEqual(readSettings(new URLSearchParams(q), limits).settings, good.settings);
  assert.equal(settingsQuery(DEFAULTS), '', 'the defaults give a bare URL');

  const bad = readSettings(
    new URLSearchParams('threads=abc&steps=0&n=65&seed=x&sampler=plms&backend=gpu'),
    limits,
  );
  assert.deepEqual({ ...bad.settings }, { ...DEFAULTS, threads: undefined, backend: undefined });
  assert.deepEqual(bad.messages, [
    '?sampler=plms is not a sampler (ddpm, ddim, dpm++2m, dpm++3m, euler, heun). Using dpm++2m.',
    '?backend=gpu: expected wasm or webgpu. Choosing automatically (WebGPU on a hardware GPU, else wasm).',
    '?threads=abc: "abc" is not a whole number; enter one from 1 to 16. Using all cores.',
    '?steps=0: 0 is out of range; enter a whole number from 1 to 1000. Using 15 steps.',
    '?n=65: 65 is out of range; enter a whole number from 1 to 64. Using 4 images.',
    '?seed=x: "x" is not a whole number; enter one from 0 to 2147483647. Using seed 0.',
  ]);
});

test('autoBackend: WebGPU on a hardware adapter only', () => {
  assert.equal(autoBackend({ ok: true, software: false }), 'webgpu');
  assert.equal(
    autoBackend({ ok: true, software: true }),
    'wasm',
    'SwiftShader and the like are slower than wasm',
  );
  assert.equal(autoBackend({ ok: false, software: false }), 'wasm');
});
