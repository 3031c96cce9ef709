// Where the time goes: `npm run profile -- [S-fwd|S-train|L-fwd|L-train] [--runs N] [--top K]`.
// Runs the row's ONNX model under ONNX Runtime's own profiler (our side only, no PyTorch), then prints the
// kernel time per op type and the most expensive nodes, summed over the timed runs and divided by their
// count. The first two runs are warm-up (ORT's arena grows; they are 3-5x slower) and are not counted.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CIFAR10_UNET, initParams, SMALL_UNET, unetParamSpecs } from '../src/nn/unet.js';
import { buildInferenceModel, inferenceTargetOf } from '../src/sample/denoiser.js';
import { nodeEngine } from '../src/engine/node.js';
import { nchwcBlockOf } from '../src/graph/nchwc.js';
import { DROPOUT_KEY_INPUT } from '../src/graph/passes/kernelDropout.js';
import { drawDropoutKey, dropoutKeyFeed, fillDropoutMask } from '../src/train/dropoutMask.js';
import { buildTrainModel } from '../src/train/trainGraph.js';
import { Rng } from '../src/util/rng.js';
import type { Tensor } from '../src/util/tensor.js';

interface Event {
  cat: string;
  name: string;
  dur: number;
  args?: {
    op_name?: string;
    input_type_shape?: Record<string, number[]>[];
    output_type_shape?: Record<string, number[]>[];
  };
}

function parse(argv: string[]) {
  let row = 'S-train';
  let runs = 5;
  let top = 25;
  let opt: 'all' | 'extended' | 'basic' = 'all';
  let byShape = '';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--runs') runs = Number(argv[++i]);
    else if (a === '--top') top = Number(argv[++i]);
    else if (a === '--opt') opt = argv[++i] as typeof opt;
    else if (a === '--by-shape') byShape = argv[++i] ?? '';
    else if (/^[SL]-(fwd|train)$/.test(a)) row = a;
    else {
      console.error(
        `profile: unknown argument ${a}\nusage: npm run profile -- [S-fwd|S-train|L-fwd|L-train] [--runs N] [--top K]`,
      );
      process.exit(2);
    }
  }
  if (!Number.isInteger(runs) || runs < 1) throw new Error('--runs needs a positive integer');
  return { row, runs, top, opt, byShape };
}

async function main() {
  const { row, runs, top, opt, byShape } = parse(process.argv.slice(2));
  const cfg = row.startsWith('S') ? SMALL_UNET : CIFAR10_UNET;
  const B = row.startsWith('S') ? 64 : 16;
  const train = row.endsWith('train');
  const params = initParams(cfg, train ? 'paper' : 'fixture', 0);
  const shape = [B, cfg.inChannels, cfg.resolution, cfg.resolution];
  const per = shape.reduce((a, c) => a * c, 1);
  const rng = new Rng(0);
  const feeds: Record<string, Tensor> = {};
  const engine = nodeEngine();
  const shapes = new Map(unetParamSpecs(cfg).map((s) => [s.name, s.shape]));
  let model: Uint8Array;
  if (train) {
    // As the trainer: convs lowered to the runtime's NCHWc block size (override: NCHWC=0|8|16).
    const block = process.env.NCHWC !== undefined ? Number(process.env.NCHWC) : await nchwcBlockOf(engine);
    const built = buildTrainModel(cfg, params, B, block, 'mse', engine.fusedKernels);
    model = built.model;
    feeds.target = { data: rng.normalArray(per), shape };
    feeds.weight = { data: new Float32Array(B).fill(1), shape: [B, 1, 1, 1] };
    // Dropout as the trainer: the step key (the native engine's kernels make the masks), else fed masks.
    const stepKey = drawDropoutKey(rng);
    if (built.dropoutKey) feeds[DROPOUT_KEY_INPUT] = { data: dropoutKeyFeed(stepKey, 0), shape: [3] };
    for (const d of built.dropoutSites) {
      const m = new Float32Array(d.shape.reduce((a, c) => a * c, 1));
      fillDropoutMask(m, cfg.dropout, stepKey, d.site);
      feeds[d.name] = { data: m, shape: d.shape as number[] };
    }
    for (const s of built.paramNames) {
      const p = params.get(s)!;
      feeds[s] = { data: p, shape: [...shapes.get(s)!] };
    }
  } else {
    // The sampling graph exactly as createDenoiser builds it (input x).
    const built = buildInferenceModel(cfg, params, B, await inferenceTargetOf(engine));
    model = built.model;
    Object.assign(feeds, built.feeds); // the constants fed with every run
  }
  feeds[train ? 'xt' : 'x'] = { data: rng.normalArray(per), shape };
  feeds.t = { data: Float32Array.from({ length: B }, () => rng.int(1000)), shape: [B] };

  const dir = mkdtempSync(join(tmpdir(), 'ddpm-profile-'));
  const session = await engine.createSession(model, {
    optimization: opt,
    threads: 2,
    profilePrefix: join(dir, 'ort'),
  });
  const wall: number[] = [];
  for (let i = 0; i < runs + 2; i++) {
    const t0 = performance.now();
    await session.run(feeds);
    wall.push(performance.now() - t0);
  }
  const profile = await session.endProfiling();
  await session.release();
  const events = JSON.parse(readFileSync(profile, 'utf8')) as Event[];
  rmSync(dir, { recursive: true, force: true });

  // Node events come in run order; drop the first two runs' worth.
  const nodeEvents = events.filter((e) => e.cat === 'Node' && e.name.endsWith('_kernel_time'));
  const perRun = nodeEvents.length / (runs + 2);
  const counted = nodeEvents.slice(perRun * 2);
  const byOp = new Map<string, { us: number; n: number }>();
  const byNode = new Map<string, { us: number; op: string; shapes: string }>();
  for (const e of counted) {
    const op = e.args?.op_name ?? '?';
    const a = byOp.get(op) ?? { us: 0, n: 0 };
    a.us += e.dur;
    a.n++;
    byOp.set(op, a);
    const name = e.name.replace(/_kernel_time$/, '');
    const sh = (l?: Record<string, number[]>[]) => (l ?? []).map((r) => `[${Object.values(r)[0]}]`).join(' ');
    const b = byNode.get(name) ?? {
      us: 0,
      op,
      shapes: `${sh(e.args?.input_type_shape)} -> ${sh(e.args?.output_type_shape)}`,
    };
    b.us += e.dur;
    byNode.set(name, b);
  }
  const total = [...byOp.values()].reduce((s, a) => s + a.us, 0) / runs / 1000;
  const med = [...wall.slice(2)].sort((a, b) => a - b)[Math.floor(runs / 2)]!;
  console.log(
    `${row}: batch ${B}, ${perRun} kernels per run, kernel time ${total.toFixed(1)} ms per run, wall median ${med.toFixed(1)} ms (warm-up ${wall
      .slice(0, 2)
      .map((w) => w.toFixed(0))
      .join(', ')} ms)`,
  );
  console.log('\nop type                      ms/run   share   nodes');
  for (const [op, a] of [...byOp].sort((x, y) => y[1].us - x[1].us)) {
    const ms = a.us / runs / 1000;
    console.log(
      `${op.padEnd(26)} ${ms.toFixed(1).padStart(8)} ${((100 * ms) / total).toFixed(1).padStart(6)}% ${String(a.n / runs).padStart(7)}`,
    );
  }
  if (byShape) {
    const agg = new Map<string, { us: number; n: number }>();
    for (const b of byNode.values()) {
      if (b.op !== byShape) continue;
      const a = agg.get(b.shapes) ?? { us: 0, n: 0 };
      a.us += b.us;
      a.n++;
      agg.set(b.shapes, a);
    }
    console.log(`\n${byShape} by shapes                                                    ms/run  nodes`);
    for (const [sh, a] of [...agg].sort((x, y) => y[1].us - x[1].us)) {
      console.log(
        `${sh.slice(0, 70).padEnd(70)} ${(a.us / runs / 1000).toFixed(2).padStart(7)} ${String(a.n).padStart(5)}`,
      );
    }
  }
  console.log(`\ntop ${top} nodes                                                      ms/run  op`);
  for (const [name, b] of [...byNode].sort((x, y) => y[1].us - x[1].us).slice(0, top)) {
    console.log(
      `${name.slice(0, 64).padEnd(64)} ${(b.us / runs / 1000).toFixed(2).padStart(7)}  ${b.op} ${b.shapes}`,
    );
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
