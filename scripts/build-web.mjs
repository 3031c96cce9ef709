// Bundles the browser demo (src/web) into dist-web/ with esbuild: main.js (+ source map), index.html and
// onnxruntime-web's wasm runtimes (ort-wasm-simd-threaded{,.jsep}.{mjs,wasm}, copied from node_modules,
// so the page fetches nothing from a CDN). Fails if anything Node-only reaches the bundle.
// Usage: node scripts/build-web.mjs [--no-minify]   (also imported by test/web.test.ts)
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as esbuild from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** onnxruntime-web's runtimes: the plain wasm build (provider 'wasm') and the JSEP build ('webgpu'). */
export const ORT_FILES = [
  'ort-wasm-simd-threaded.mjs',
  'ort-wasm-simd-threaded.wasm',
  'ort-wasm-simd-threaded.jsep.mjs',
  'ort-wasm-simd-threaded.jsep.wasm',
];

/** Bundle inputs that must never reach the browser (they import node:fs, onnxruntime-node, ...). */
const NODE_ONLY = [
  /^node:/,
  /onnxruntime-node/,
  /src\/engine\/node\.ts$/,
  /src\/model\/weights\.ts$/,
  /src\/util\/(atomicFile|imageFile)\.ts$/,
  /src\/(cli|train|data)\//,
];

function copyIfChanged(from, to) {
  const a = statSync(from);
  try {
    const b = statSync(to);
    if (b.size === a.size && b.mtimeMs >= a.mtimeMs) return;
  } catch {}
  copyFileSync(from, to);
}

/** Build dist-web/; returns the output folder, the bundle size and the bundled source files. */
export async function buildWeb({ outdir = join(ROOT, 'dist-web'), minify = true } = {}) {
  mkdirSync(join(outdir, 'ort'), { recursive: true });
  const res = await esbuild.build({
    absWorkingDir: ROOT,
    entryPoints: [join(ROOT, 'src/web/main.ts')],
    outfile: join(outdir, 'main.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    // onnxruntime-web's build that loads its .wasm and loader .mjs from env.wasm.wasmPaths.
    conditions: ['onnxruntime-web-use-extern-wasm'],
    minify,
    sourcemap: true,
    metafile: true,
    logLevel: 'silent',
  });
  for (const w of res.warnings) console.warn(`build-web: ${w.text}`);
  const inputs = Object.keys(res.metafile.inputs);
  const bad = inputs.filter((p) => NODE_ONLY.some((re) => re.test(p)));
  if (bad.length) throw new Error(`build-web: Node-only modules in the browser bundle: ${bad.join(', ')}`);
  copyFileSync(join(ROOT, 'src/web/index.html'), join(outdir, 'index.html'));
  const ortDist = join(ROOT, 'node_modules/onnxruntime-web/dist');
  for (const f of ORT_FILES) copyIfChanged(join(ortDist, f), join(outdir, 'ort', f));
  const out = res.metafile.outputs[relative(ROOT, join(outdir, 'main.js')).split('\\').join('/')];
  return { outdir, bytes: out ? out.bytes : statSync(join(outdir, 'main.js')).size, inputs };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = performance.now();
  const r = await buildWeb({ minify: !process.argv.includes('--no-minify') });
  const own = r.inputs.filter((p) => p.startsWith('src/')).length;
  console.log(
    `dist-web/main.js: ${(r.bytes / 1024).toFixed(0)} KiB from ${r.inputs.length} modules (${own} from src/), ` +
      `ort wasm in dist-web/ort/, ${(performance.now() - t0).toFixed(0)} ms`,
  );
}
