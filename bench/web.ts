// The browser against Node (issue #17, "Sampling at full speed"): one U-Net forward pass of the shipped MNIST
// model's architecture (SMALL_UNET, hash-initialised weights: the cost does not depend on the values) at one
// batch, timed in three engines on the same machine, in the same run, interleaved round by round:
// - the native engine (this project's binding with its fused kernels, what `ddpm sample` uses),
// - onnxruntime-node (the plain ONNX graph, no fused kernels),
// - onnxruntime-web's wasm inside the demo page's worker, in headless Chromium, served by `ddpm serve`'s
//   server (cross-origin isolated, so wasm gets its threads), one page per thread count;
// - WebGPU in the page too when Chromium offers a hardware adapter (a software one, SwiftShader, is WebGPU on
//   the CPU and tens of times slower than wasm: it is named and skipped).
// Each engine and thread count gets a fresh session per round (core.fixtureForward: build, first run, then
// `repeats` timed runs whose median counts); the row's figure is the median over rounds. The issue's target
// is wasm within 1.5x of onnxruntime-node at the same threads.

import type { Browser, Page } from 'playwright-core';
import { buildWeb } from '../scripts/build-web.mjs';
import { CHROMIUM, launchChromium, noChromium } from '../scripts/chromium.js';
import { startServer } from '../scripts/serve.mjs';
import type { Engine } from '../src/engine/engine.js';
import { nativeEngine } from '../src/engine/native.js';
import { onnxruntimeNodeEngine } from '../src/engine/node.js';
import { SMALL_UNET } from '../src/nn/unet.js';
import { fixtureForward } from '../src/web/core.js';
import type { WebGpuInfo } from '../src/web/protocol.js';
import type { GemmPeak, MachineInfo } from './machine.js';

/** GFLOP per image of one SMALL_UNET forward (reference/README.md, count_flops). */
const GFLOP_PER_IMAGE = 0.841;

export interface WebBenchOptions {
  /** Rounds (each engine and thread count once per round). */
  readonly reps: number;
  /** Images per forward pass. */
  readonly batch: number;
  /** Thread counts to time (each engine at each). */
  readonly threads: readonly number[];
  /** Idle time before each timed call (ms). */
  readonly settleMs: number;
  /** Timed runs per call; their median is the call's figure. */
  readonly repeats: number;
}

type EngineName = 'native' | 'onnxruntime-node' | 'wasm' | 'webgpu';

interface Cell {
  readonly engine: EngineName;
  readonly threads: number;
  readonly ms: number[];
}

const log = (m: string) => process.stderr.write(`${m}\n`);
const median = (xs: readonly number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fmt = (ms: number) => (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1));

async function openPage(browser: Browser, url: string): Promise<Page> {
  const page = await browser.newPage();
  const errors: string[] = [];
  page.on('pageerror', (e) => errors.push(e.message));
  await page.goto(url);
  await page
    .waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 60_000 })
    .catch((e: Error) => {
      throw new Error(`the page at ${url} did not start: ${errors.join('; ') || e.message}`);
    });
  return page;
}

/** Time the engines; prints the table and, last, one JSON line {"bench":"web",...}. */
export async function webSuite(
  o: WebBenchOptions,
  m: { machine: MachineInfo; peak: GemmPeak },
): Promise<void> {
  if (noChromium) throw new Error(`${noChromium}; the web suite needs it`);
  const native = nativeEngine();
  const nodeEngines: [EngineName, Engine][] = [
    ...(native ? [['native', native] as [EngineName, Engine]] : []),
    ['onnxruntime-node', onnxruntimeNodeEngine()],
  ];
  if (!native)
    log('[web] the native binding is not built here (npm ci builds it): timing onnxruntime-node only');
  log('[web] building dist-web/ ...');
  await buildWeb();
  const server = await startServer();
  const browser = await launchChromium();
  const cells: Cell[] = [];
  const cell = (engine: EngineName, threads: number) => {
    let c = cells.find((x) => x.engine === engine && x.threads === threads);
    if (!c) {
      c = { engine, threads, ms: [] };
      cells.push(c);
    }
    return c;
  };
  let webgpu: WebGpuInfo | null = null;
  let isolated = false;
  try {
    const pages = new Map<number, Page>();
    for (const t of o.threads) {
      const page = await openPage(browser, `${server.url}/dist-web/?threads=${t}`);
      const env = await page.evaluate(() => ({ ...window.ddpmTest!.env }));
      if (env.threads !== t) throw new Error(`the page runs wasm on ${env.threads} thread(s), not ${t}`);
      isolated = env.crossOriginIsolated;
      webgpu = env.webgpu;
      pages.set(t, page);
    }
    log(
      `[web] Chromium pages up: cross-origin isolated ${isolated}; WebGPU: ${webgpu?.ok ? webgpu.info : `none (${webgpu?.info})`}` +
        (webgpu?.software ? ' - a software adapter (WebGPU on the CPU): not timed' : ''),
    );
    const timeWeb = async (t: number, provider: 'wasm' | 'webgpu'): Promise<number> => {
      const r = await pages
        .get(t)!
        .evaluate(
          ({ cfg, batch, provider, repeats }) => window.ddpmTest!.forward({ cfg, batch, provider, repeats }),
          { cfg: SMALL_UNET, batch: o.batch, provider, repeats: o.repeats },
        );
      return median(r.forwardMs);
    };
    const timeNode = async (engine: Engine, t: number): Promise<number> => {
      const r = await fixtureForward(engine, SMALL_UNET, o.batch, { threads: t, repeats: o.repeats });
      return median(r.forwardMs);
    };
    const settle = () => new Promise((res) => setTimeout(res, o.settleMs));
    // Round 0 warms every engine up (V8 tiers the wasm up over the first calls; ORT's arenas grow) and
    // is not counted.
    for (let round = 0; round <= o.reps; round++) {
      for (const t of o.threads) {
        const seen: string[] = [];
        for (const [name, engine] of nodeEngines) {
          await settle();
          const ms = await timeNode(engine, t);
          if (round > 0) cell(name, t).ms.push(ms);
          seen.push(`${name} ${fmt(ms)}`);
        }
        await settle();
        const ms = await timeWeb(t, 'wasm');
        if (round > 0) cell('wasm', t).ms.push(ms);
        seen.push(`wasm ${fmt(ms)}`);
        if (webgpu?.ok && !webgpu.software && t === o.threads[0]) {
          await settle();
          const g = await timeWeb(t, 'webgpu');
          if (round > 0) cell('webgpu', 0).ms.push(g);
          seen.push(`webgpu ${fmt(g)}`);
        }
        log(
          `[web] ${round === 0 ? 'warm-up' : `round ${round}/${o.reps}`}, ${t} thread(s): ${seen.join(', ')} ms`,
        );
      }
    }
  } finally {
    await browser.close();
    await server.close();
  }

  const gflops = (ms: number) => (GFLOP_PER_IMAGE * o.batch) / (ms / 1000);
  const rows = o.threads.map((t) => {
    const get = (e: EngineName) => {
      const c = cells.find((x) => x.engine === e && x.threads === t);
      return c?.ms.length ? median(c.ms) : null;
    };
    const nat = get('native');
    const ortn = get('onnxruntime-node');
    const wasm = get('wasm');
    return {
      threads: t,
      native_ms: nat,
      onnxruntime_node_ms: ortn,
      wasm_ms: wasm,
      wasm_over_onnxruntime_node: wasm !== null && ortn !== null ? wasm / ortn : null,
      wasm_over_native: wasm !== null && nat !== null ? wasm / nat : null,
      native_gflops: nat === null ? null : gflops(nat),
      onnxruntime_node_gflops: ortn === null ? null : gflops(ortn),
      wasm_gflops: wasm === null ? null : gflops(wasm),
    };
  });
  const gpu = cells.find((c) => c.engine === 'webgpu');
  const head = ['threads', 'native ms', 'onnxruntime-node ms', 'wasm ms', 'wasm / ort-node', 'wasm / native'];
  const table = rows.map((r) => [
    String(r.threads),
    r.native_ms === null ? '-' : fmt(r.native_ms),
    r.onnxruntime_node_ms === null ? '-' : fmt(r.onnxruntime_node_ms),
    r.wasm_ms === null ? '-' : fmt(r.wasm_ms),
    r.wasm_over_onnxruntime_node === null ? '-' : r.wasm_over_onnxruntime_node.toFixed(2),
    r.wasm_over_native === null ? '-' : r.wasm_over_native.toFixed(2),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...table.map((c) => c[i]!.length)));
  const line = (cs: string[]) => cs.map((c, i) => c.padStart(widths[i]!)).join('  ');
  console.log('');
  console.log('== bench web ==');
  console.log(
    `machine: ${m.machine.cpu}, ${m.machine.logicalCpus} logical CPU(s), ${m.machine.isa.join(' ')}; ` +
      `ONNX Runtime NCHWc block ${m.machine.nchwcBlock}; float32 peak ${m.peak.gflops.toFixed(1)} GFLOP/s (${m.peak.n})`,
  );
  console.log(
    `One forward of the shipped MNIST U-Net (SMALL_UNET, 1x32x32) at batch ${o.batch}; ms = median over ${o.reps} round(s)\n` +
      `of each call's median of ${o.repeats} runs, after a warm-up round. wasm: onnxruntime-web in the demo page's worker,\n` +
      `headless Chromium (${CHROMIUM}), cross-origin isolated: ${isolated}. Target (issue #17): wasm / ort-node <= 1.5.`,
  );
  console.log(line(head));
  for (const r of table) console.log(line(r));
  console.log(
    gpu
      ? `webgpu (${webgpu?.info}): ${fmt(median(gpu.ms))} ms`
      : `webgpu: ${webgpu?.ok ? `${webgpu.info}, a software adapter: not timed` : `no adapter (${webgpu?.info ?? 'unknown'})`}`,
  );
  console.log(
    JSON.stringify({
      bench: 'web',
      cpu: m.machine.cpu,
      isa: m.machine.isa,
      nchwc_block: m.machine.nchwcBlock,
      peak_gflops: m.peak.gflops,
      batch: o.batch,
      reps: o.reps,
      repeats: o.repeats,
      cross_origin_isolated: isolated,
      webgpu: webgpu ? { ...webgpu, ms: gpu ? median(gpu.ms) : null } : null,
      rows,
    }),
  );
}
