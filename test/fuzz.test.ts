// Property-based fuzzing of every file reader (test/fuzz/readers.ts, fast-check): a bounded number of mutated
// valid files per reader, each read to a valid result or refused with the reader's own clear error, never a
// JavaScript TypeError/RangeError/SyntaxError, a hang or an allocation out of proportion to the file (a
// failure prints the shrunk case). `npm run fuzz` runs the long campaign. Below: one regression test per bug
// the fuzzer (and the reading of the readers it led to) found.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import fc from 'fast-check';
import { encode as encodePngRaw } from 'fast-png';
import jpeg from 'jpeg-js';
import { readPartial, referenceFromNpz } from '../src/cli/eval.js';
import { DataError } from '../src/data/dataset.js';
import { decodeImage, loadImageFile } from '../src/data/folder.js';
import { loadIdx } from '../src/data/idx.js';
import { ClassifierError, loadClassifier } from '../src/eval/classifier.js';
import { readOnnx } from '../src/graph/onnx.js';
import { Msg } from '../src/graph/protobuf.js';
import { defaultSpec, validateSpec } from '../src/model/spec.js';
import { loadModel } from '../src/model/weights.js';
import { unetParamSpecs } from '../src/nn/unet.js';
import { loadCheckpoint, resumeState, saveCheckpoint } from '../src/train/checkpoint.js';
import { readEvalLog, readLog } from '../src/train/trainer.js';
import { describeJson } from '../src/util/jsonCheck.js';
import { writeNpz } from '../src/util/npy.js';
import { parseSafeTensors, SafeTensorsError } from '../src/util/safetensors.js';
import { readTorchStateDict, TorchCheckpointError } from '../src/util/torchCheckpoint.js';
import { crc32, readZip, writeZip } from '../src/util/zip.js';
import { caseArbitrary, createFuzzer, materialize, runCase } from './fuzz/readers.js';

/** Cases per reader in `npm test` (about 20 s in all on this 2-core machine with a training job running). */
const RUNS: Record<string, number> = {
  safetensors: 2000,
  'model-config': 200,
  'model-weights': 200,
  'diffusers-scheduler': 200,
  checkpoint: 120,
  'run-log': 400,
  idx: 400,
  'idx-labels': 300,
  cifar10: 400,
  png: 400,
  jpeg: 300,
  npz: 1500,
  'npz-reference': 400,
  'npz-partial': 400,
  onnx: 200,
  classifier: 200,
  pth: 1000,
};
const SEED = Number(process.env.FUZZ_SEED ?? 20261203);

describe('fuzz: every reader parses or refuses clearly (bounded; npm run fuzz for the campaign)', () => {
  const f = createFuzzer();
  after(() => f.close());
  it('covers every reader of the campaign', () => {
    assert.deepEqual(
      f.targets.map((t) => t.name),
      Object.keys(RUNS),
    );
  });
  for (const t of f.targets) {
    it(`${t.name}: ${RUNS[t.name]} mutated files`, () => {
      const seeds = f.seedsOf(t);
      const dir = f.dirOf(t);
      // The seeds themselves are valid files: they parse.
      for (const s of seeds) {
        const o = runCase(t, s.bytes, dir);
        assert.equal(o.verdict, 'parsed', `seed ${s.name}: ${o.finding?.kind}: ${o.finding?.detail}`);
      }
      const tally = { parsed: 0, refused: 0 };
      fc.assert(
        fc.property(caseArbitrary, (c) => {
          const { input, where } = materialize(seeds, c);
          const o = runCase(t, input, dir);
          if (o.verdict === 'finding') throw new Error(`${o.finding!.kind} [${where}]: ${o.finding!.detail}`);
          tally[o.verdict]++;
        }),
        { numRuns: RUNS[t.name]!, seed: SEED },
      );
      // Both outcomes occur: the mutations reach past the first check, and some still parse.
      if (t.tolerant) assert.equal(tally.refused, 0);
      else assert.ok(tally.refused > RUNS[t.name]! / 10, `only ${tally.refused} refused`);
      assert.ok(tally.parsed > 0, 'none parsed');
    });
  }
});

// ---------------------------------------------------------------------------------------------------------
// Regressions: one per bug found

const TMP = mkdtempSync(join(tmpdir(), 'ddpm-fuzz-regress-'));
after(() => rmSync(TMP, { recursive: true, force: true }));

/** The error fn throws, checked to be a plain (own) error and not a JavaScript one. */
function refusal(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    for (const C of [TypeError, RangeError, SyntaxError])
      assert.ok(!(e instanceof C), `${e.name}: ${e.message}`);
    return e;
  }
  assert.fail('not refused');
}

function timed<T>(fn: () => T, ms: number, what: string): T {
  const t0 = performance.now();
  try {
    return fn();
  } finally {
    const took = performance.now() - t0;
    assert.ok(took < ms, `${what}: ${took.toFixed(0)} ms`);
  }
}

const DEEP = `${'['.repeat(20_000)}${']'.repeat(20_000)}`;

describe('fuzz findings', () => {
  it('JSON nested too deeply for JSON.stringify is described, not a RangeError (headers, configs, checkpoints)', () => {
    assert.equal(describeJson(JSON.parse(DEEP)), '[[[... (an array)');
    // A safetensors header whose dtype is such a value: the reader's own error, naming the tensor.
    const header = new TextEncoder().encode(`{"w":{"dtype":${DEEP},"shape":[1],"data_offsets":[0,4]}}`);
    const file = new Uint8Array(8 + header.length + 4);
    new DataView(file.buffer).setBigUint64(0, BigInt(header.length), true);
    file.set(header, 8);
    const e = refusal(() => parseSafeTensors(file, 'deep.safetensors'));
    assert.ok(e instanceof SafeTensorsError);
    assert.match(
      e.message,
      /^deep\.safetensors: tensor w: dtype is \[\[\[\.\.\. \(an array\); expected a string/,
    );
    // A model config.json with such a value.
    const spec = JSON.parse(JSON.stringify(defaultSpec()));
    const text = JSON.stringify({ ...spec, unet: { ...spec.unet, ch: '@' } }).replace('"@"', DEEP);
    const m = refusal(() => validateSpec(JSON.parse(text), 'config.json'));
    assert.match(
      m.message,
      /^config\.json: "unet\.ch" is \[\[\[\.\.\. \(an array\); expected a positive integer/,
    );
  });

  it('a config.json with a huge numResBlocks (or ch, resolution, levels, T) is refused at once, not a hang', () => {
    const spec = JSON.parse(JSON.stringify(defaultSpec()));
    for (const [key, value, says] of [
      ['numResBlocks', 1e9, /numResBlocks 1000000000 is over 64/],
      ['ch', 2 ** 40, /ch 1099511627776 is over 4096/],
      ['resolution', 2 ** 50, /resolution \d+ is over 4096/],
      ['chMult', new Array(5000).fill(1), /number of levels \(chMult entries\) 5000 is over 12/],
    ] as const) {
      const e = timed(
        () => refusal(() => validateSpec({ ...spec, unet: { ...spec.unet, [key]: value } }, 'config.json')),
        200,
        key,
      );
      assert.match(e.message, says);
      assert.match(e.message, /^config\.json: .*corrupt or crafted config/);
    }
    const t = refusal(() =>
      validateSpec({ ...spec, diffusion: { ...spec.diffusion, T: 1e12 } }, 'config.json'),
    );
    assert.match(
      t.message,
      /^config\.json: "diffusion\.T" is 1000000000000 \(a number\); expected at most 100000/,
    );
    // Through loadModel: the whole model folder refused within the time limit.
    const dir = join(TMP, 'huge-blocks');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ ...spec, unet: { ...spec.unet, numResBlocks: 1e9 } }),
    );
    writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(16));
    const l = timed(() => refusal(() => loadModel(dir)), 500, 'loadModel');
    assert.match(l.message, /config\.json: U-Net config: numResBlocks 1000000000 is over 64/);
  });

  it('log.jsonl lines torn by a kill or garbled are skipped by the readers, not a SyntaxError / TypeError', () => {
    const p = join(TMP, 'log.jsonl');
    const good = [
      '{"step":1,"loss":0.9,"lr":0.0001,"gradNorm":2,"stepsPerSec":3,"epoch":0}',
      '{"step":2,"eval":{"fid":12.5},"evalN":64}',
    ];
    writeFileSync(
      p,
      [
        good[0],
        '{"step":2,"loss":0.8,"lr":0.0',
        '21',
        'null',
        '{"step":"x","loss":1,"lr":1,"gradNorm":1,"stepsPerSec":1,"epoch":0}',
        '{"step":3,"loss":[1.5],"lr":0.0001,"gradNorm":1,"stepsPerSec":3,"epoch":1}',
        good[1],
        '{"step":4,"eval":{"fid":"abc"},"evalN":64}',
        '',
      ].join('\n'),
    );
    assert.deepEqual(
      readLog(p).map((r) => [r.step, r.loss]),
      [[1, 0.9]],
    );
    assert.deepEqual(readEvalLog(p), [{ step: 2, label: 'fid', value: 12.5, n: 64 }]);
  });

  it("a checkpoint's training state is checked field by field before a run resumes from it", () => {
    const cfg = defaultSpec().unet;
    const specs = unetParamSpecs({
      ...cfg,
      ch: 8,
      groups: 4,
      chMult: [1],
      attnResolutions: [],
      numResBlocks: 1,
    });
    const shapes = new Map(specs.map((s) => [s.name, s.shape]));
    const store = () =>
      new Map(specs.map((s) => [s.name, new Float32Array(s.shape.reduce((a, b) => a * b, 1))]));
    const rng = { s: [1, 2, 3, 4], spare: null };
    const state = {
      step: 3,
      adamStep: 3,
      trainRng: rng,
      loader: { epoch: 0, index: 1, rngState: rng, n: 10 },
    };
    const path = join(TMP, 'checkpoint.safetensors');
    const write = (meta: Record<string, unknown>) => {
      saveCheckpoint(path, { meta, params: store(), ema: store(), adamM: store(), adamV: store() }, shapes);
      return loadCheckpoint(path);
    };
    const ok = resumeState(write({ identity: { seed: 1 }, state }), path, shapes);
    assert.equal(ok.state.step, 3);
    assert.deepEqual(ok.state.loader.rngState, rng);
    // Before: state.trainRng missing reached Rng.setState as a TypeError ("Cannot read properties of undefined").
    for (const [bad, says] of [
      [{ ...state, trainRng: undefined }, /state\.trainRng is missing; expected an object \{s, spare\}/],
      [
        { ...state, trainRng: { s: [1, 2], spare: null } },
        /state\.trainRng\.s is \[1,2\] \(an array\); expected four 32-bit integers/,
      ],
      [{ ...state, adamStep: 'x' }, /state\.adamStep is "x" \(a string\); expected an integer >= 0/],
      [
        { ...state, loader: { ...state.loader, index: 11 } },
        /state\.loader\.index is 11 \(a number\); expected at most state\.loader\.n = 10/,
      ],
      [{ ...state, loader: { ...state.loader, epoch: -1 } }, /state\.loader\.epoch is -1/],
    ] as const) {
      const e = refusal(() => resumeState(write({ identity: {}, state: bad }), path, shapes));
      assert.match(e.message, says);
      assert.ok(e.message.startsWith(`checkpoint: ${path}: `), e.message);
      assert.match(e.message, /move it away to start the run over from step 0/);
    }
    // Weights that do not fit the network (a changed header, a crafted file).
    const short = new Map(store());
    short.delete(specs[0]!.name);
    saveCheckpoint(
      path,
      { meta: { identity: {}, state }, params: short, ema: store(), adamM: store(), adamV: store() },
      shapes,
    );
    const e = refusal(() => resumeState(loadCheckpoint(path), path, shapes));
    assert.match(e.message, new RegExp(`tensor params\\.${specs[0]!.name.replace(/\./g, '\\.')} is missing`));
  });

  it('an IDX file of 0 images, or of 0-pixel images, is refused (was a dataset of 16386 images of 5 x 0)', () => {
    for (const dims of [
      [16386, 5, 0],
      [0, 28, 28],
    ]) {
      const p = join(TMP, 'train-images-idx3-ubyte');
      const h = new DataView(new ArrayBuffer(16));
      h.setUint32(0, 0x803, false);
      dims.forEach((d, i) => {
        h.setUint32(4 + 4 * i, d, false);
      });
      writeFileSync(p, new Uint8Array(h.buffer));
      const e = refusal(() => loadIdx(p, { labelsPath: null }));
      assert.ok(e instanceof DataError);
      assert.match(
        e.message,
        new RegExp(`holds ${dims[0]} images of ${dims[1]} x ${dims[2]} pixels: nothing to train on`),
      );
    }
  });

  it('an ONNX file cut inside a fixed-size field, or with float_data that does not fill its shape, is refused naming it', () => {
    // Before: RangeError "Offset is outside the bounds of the DataView" from the protobuf reader, and messages
    // from nested messages ("protobuf: ...") that did not name the file.
    const tensor = (floats: number[], dims: number[]) => {
      const t = new Msg();
      for (const d of dims) t.int(1, d);
      t.int(2, 1); // FLOAT
      for (const f of floats) t.float(4, f);
      t.string(8, 'w');
      return t;
    };
    const model = (t: Msg) => new Msg().msg(7, new Msg().msg(5, t)).toBytes();
    assert.deepEqual(
      readOnnx(model(tensor([1, 2], [2])), 'ok.onnx').initializers.get('w')?.data,
      Float32Array.of(1, 2),
    );
    const short = refusal(() => readOnnx(model(tensor([1, 2], [3])), 'short.onnx'));
    assert.match(short.message, /^short\.onnx: initializer w has 2 values for shape \[3\]: a corrupt file/);
    const good = model(tensor([1, 2], [2]));
    for (let cut = 1; cut < good.length; cut++) {
      const e = refusal(() => readOnnx(good.subarray(0, cut), 'cut.onnx'));
      assert.match(e.message, /^cut\.onnx: /, `cut at ${cut}: ${e.message}`);
    }
    const fixed64 = Uint8Array.of(0x3a, 3, 0x09, 1, 2); // graph { a fixed64 field cut after 2 of its 8 bytes }
    assert.match(
      refusal(() => readOnnx(fixed64, 'f.onnx')).message,
      /^f\.onnx: not an ONNX model, or a corrupt one \(protobuf: a fixed64 field/,
    );
  });

  it('a classifier config.json that is null or lacks "format" is refused in words (was a TypeError / "undefined")', () => {
    const dir = join(TMP, 'classifier');
    mkdirSync(dir);
    writeFileSync(join(dir, 'model.safetensors'), new Uint8Array(8));
    for (const [text, says] of [
      ['null', /config\.json: is null; expected a JSON object with "format", "name" and "architecture"/],
      ['[1]', /config\.json: is \[1\] \(an array\); expected a JSON object/],
      ['{}', /config\.json: format is missing, expected 'ddpm-ts\/classifier\/v1'/],
    ] as const) {
      writeFileSync(join(dir, 'config.json'), text);
      const e = refusal(() => loadClassifier(dir));
      assert.ok(e instanceof ClassifierError);
      assert.match(e.message, says);
    }
  });

  it("ddpm eval's .npz readers take int64 arrays and refuse partial results whose arrays disagree", () => {
    // Before: Float64Array.from(BigInt64Array) threw "TypeError: Cannot convert a BigInt value to a number".
    const ref = join(TMP, 'ref.npz');
    writeFileSync(
      ref,
      writeNpz({
        mu: { data: BigInt64Array.of(1n, 2n), shape: [2] },
        sigma: { data: BigInt64Array.of(1n, 0n, 0n, 1n), shape: [2, 2] },
      }),
    );
    const r = referenceFromNpz(ref, { name: 'net', weightsHash: 'x', dims: 2 });
    assert.deepEqual([...r.mu], [1, 2]);
    assert.deepEqual([...r.sigma], [1, 0, 0, 1]);
    const meta = new TextEncoder().encode('{"shard":"1/2"}');
    const part = (arrays: Parameters<typeof writeNpz>[0]) => {
      const p = join(TMP, 'part.npz');
      writeFileSync(p, writeNpz({ meta: { data: meta, shape: [meta.length] }, ...arrays }));
      return p;
    };
    const base = {
      count: { data: Float64Array.of(2), shape: [] },
      sum: { data: BigInt64Array.of(1n, 2n), shape: [2] },
      outer: { data: Float64Array.of(1, 1, 1, 2), shape: [2, 2] },
      indices: { data: BigInt64Array.of(0n, 5n), shape: [2] },
    };
    const ok = readPartial(part(base));
    assert.equal(ok.set.stats.count, 2);
    assert.deepEqual([...ok.set.indices], [0, 5]);
    for (const [change, says] of [
      [{ count: { data: Float64Array.of(3), shape: [] } }, /count is \[3\], not the 2 rows of indices/],
      [{ features: { data: new Float32Array(3), shape: [3] } }, /features hold 3 values, not 2 rows of 2/],
      [{ indices: { data: Float64Array.of(0, 1.5), shape: [2] } }, /indices are not image numbers/],
      [{ outer: { data: new Float64Array(3), shape: [3] } }, /a corrupt partial result; run its shard again/],
    ] as const) {
      const e = refusal(() => readPartial(part({ ...base, ...change })));
      assert.match(e.message, says);
      assert.match(e.message, /^ddpm eval merge: .*part\.npz: /);
    }
  });

  it('a .pth whose tensor repeats 3 stored values 2^28 times (stride 0) is refused (was 1 GiB and 8 s from 6 KB)', () => {
    const pth = new Uint8Array(readFileSync(new URL('fixtures/io_state_dict.pth', import.meta.url)));
    const zip = readZip(pth, 'pth');
    const files = zip.entries.map((e) => ({ name: e.name, data: zip.read(e.name).slice() }));
    const pkl = files.find((f) => f.name.endsWith('data.pkl'))!.data;
    // '0.bias': size (3,) at byte 224 (BININT1 3), stride (1,) at byte 229 (BININT1 1), as torch 1.13 wrote it.
    assert.deepEqual([...pkl.subarray(224, 226), ...pkl.subarray(229, 231)], [0x4b, 3, 0x4b, 1]);
    const patched = new Uint8Array(pkl.length + 3);
    patched.set(pkl.subarray(0, 224));
    patched.set([0x4a, 0, 0, 0, 0x10], 224); // BININT 2^28
    patched.set(pkl.subarray(226), 229);
    patched[233] = 0; // the stride: 0
    const bytes = writeZip(files.map((f) => (f.data === pkl ? { name: f.name, data: patched } : f)));
    const e = timed(() => refusal(() => readTorchStateDict(bytes, 'bcast.pth')), 500, 'readTorchStateDict');
    assert.ok(e instanceof TorchCheckpointError);
    assert.match(
      e.message,
      /^bcast\.pth: tensor 0\.bias \(size \(268435456\), stride \(0\)\) repeats the 3 elements of storage 1 into 268435456/,
    );
  });

  it('a PNG whose IHDR claims 20000 x 20000 pixels in 60 bytes is refused before allocating (was 1.1 GB)', () => {
    const png = new Uint8Array(
      encodePngRaw({ width: 4, height: 4, channels: 3, depth: 8, data: new Uint8Array(48) }),
    );
    const v = new DataView(png.buffer);
    v.setUint32(16, 20000, false);
    v.setUint32(20, 20000, false);
    v.setUint32(29, crc32(png.subarray(12, 29)), false); // a valid IHDR CRC
    const before = process.memoryUsage().arrayBuffers;
    const e = timed(() => refusal(() => decodeImage(png, 'big.png')), 200, 'decodeImage');
    assert.ok(process.memoryUsage().arrayBuffers - before < 64 * 2 ** 20);
    assert.ok(e instanceof DataError);
    assert.match(
      e.message,
      /^image: big\.png claims 20000 x 20000 pixels, more than its \d+ bytes of PNG can hold/,
    );
  });

  it('a JPEG whose frame claims 9000 x 9000 pixels in 300 bytes is refused at once (was 3 s and 512 MB)', () => {
    const j = new Uint8Array(jpeg.encode({ width: 8, height: 8, data: Buffer.alloc(256) }, 50).data);
    for (let p = 2; p < j.length; ) {
      const len = (j[p + 2]! << 8) | j[p + 3]!;
      if (j[p + 1] === 0xc0) {
        new DataView(j.buffer).setUint16(p + 5, 9000, false);
        new DataView(j.buffer).setUint16(p + 7, 9000, false);
        break;
      }
      p += 2 + len;
    }
    const e = timed(() => refusal(() => decodeImage(j, 'big.jpg')), 200, 'decodeImage');
    assert.match(
      e.message,
      /^image: big\.jpg claims 9000 x 9000 pixels, more than its \d+ bytes of JPEG can hold/,
    );
  });

  it("the image decoders' own TypeErrors and 'undefined's become a plain description", () => {
    // A PNG cut inside its scanlines (fast-png: "Unsupported filter: undefined").
    const png = new Uint8Array(
      encodePngRaw({ width: 3, height: 2, channels: 4, depth: 8, data: new Uint8Array(24).fill(7) }),
    );
    const p = join(TMP, 'cut.png');
    let found = 0;
    for (let cut = 40; cut < png.length; cut++) {
      writeFileSync(p, png.subarray(0, cut));
      try {
        loadImageFile(p, 8, 3);
      } catch (e) {
        assert.ok(e instanceof DataError, String(e));
        assert.doesNotMatch(e.message, /undefined|Cannot read properties/);
        if (/its data ends early or is inconsistent/.test(e.message)) found++;
      }
    }
    assert.ok(found > 0);
    // A JPEG whose marker segments are shuffled (jpeg-js: "Cannot read properties of undefined").
    const j = new Uint8Array(
      jpeg.encode({ width: 9, height: 7, data: Buffer.alloc(9 * 7 * 4, 90) }, 90).data,
    );
    let typeErrors = 0;
    for (let i = 2; i < Math.min(j.length, 400); i++) {
      const b = j.slice();
      b[i] = 0xc4;
      try {
        decodeImage(b, 'x.jpg');
      } catch (e) {
        assert.ok(e instanceof DataError, String(e));
        assert.doesNotMatch(e.message, /undefined|Cannot (read|set) properties/);
        if (/its data ends early or is inconsistent/.test(e.message)) typeErrors++;
      }
    }
    assert.ok(typeErrors > 0);
  });
});
