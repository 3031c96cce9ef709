// Builds native/ortnative.cc, native/attention.cc, native/winograd.cc and native/optim.cc (the Node-API binding to ONNX Runtime with this project's fused kernels) into
// native/build/ortnative.node. Run by `npm ci` and `npm install` (the install script, so also where this
// package is installed as a dependency). Optional by design: with no C++ compiler or no Node headers it
// says so and exits 0, and the engine layer uses onnxruntime-node alone (same results, slower).
// DDPM_NATIVE=0 skips the build.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'native', 'ortnative.cc');
const outDir = join(root, 'native', 'build');
const out = join(outDir, 'ortnative.node');

function skip(why) {
  console.warn(`ddpm: native kernels not built (${why}); using onnxruntime-node's kernels only.`);
  process.exit(0);
}

if (process.env.DDPM_NATIVE === '0') skip('DDPM_NATIVE=0');
if (process.platform !== 'linux') skip(`platform ${process.platform}: only Linux is supported`);
const include = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].find((d) => existsSync(join(d, 'node_api.h')));
if (!include) skip('node_api.h not found next to this Node.js or in /usr/include/node');
const cxx = process.env.CXX || 'c++';
// -march: the machine's own (native) unless DDPM_NATIVE_MARCH names another, e.g. x86-64-v3 to build and test
// the AVX2 kernels on an AVX-512 machine.
const march = `-march=${process.env.DDPM_NATIVE_MARCH || 'native'}`;
if (spawnSync(cxx, ['--version']).status !== 0) skip(`no C++ compiler (${cxx})`);

mkdirSync(outDir, { recursive: true });
const tmp = `${out}.tmp-${process.pid}`;
// The optimiser's passes (native/optim.cc) are built apart, without -ffast-math and without contracting
// a * b + c into one rounding: they must give the IEEE results of src/train/optim.ts's loops bit for bit
// (vector sqrt and division are correctly rounded, as the scalar ones).
const optimObj = join(outDir, `optim.o.tmp-${process.pid}`);
const optim = spawnSync(
  cxx,
  [
    '-O3',
    march,
    '-fno-fast-math',
    '-ffp-contract=off',
    // sqrt without errno (the only thing -fno-math-errno changes: a negative argument still gives NaN):
    // GCC then vectorises Adam's sqrt and division, where it ran them one element at a time.
    '-fno-math-errno',
    '-std=c++17',
    '-fPIC',
    '-pthread',
    '-c',
    join(root, 'native', 'optim.cc'),
    '-o',
    optimObj,
  ],
  { stdio: ['ignore', 'inherit', 'inherit'] },
);
if (optim.status !== 0) skip(`${cxx} failed on native/optim.cc`);
// -march=native: the binary is built on, and for, the machine that installs it.
const args = [
  '-O3',
  march,
  '-ffast-math',
  '-fopenmp-simd',
  '-std=c++17',
  '-fPIC',
  '-shared',
  '-fvisibility=hidden',
  '-DNODE_GYP_MODULE_NAME=ortnative',
  `-I${include}`,
  src,
  join(root, 'native', 'attention.cc'),
  join(root, 'native', 'winograd.cc'),
  optimObj,
  '-o',
  tmp,
  '-ldl',
  '-pthread',
];
const r = spawnSync(cxx, args, { stdio: ['ignore', 'inherit', 'inherit'] });
rmSync(optimObj, { force: true });
if (r.status !== 0) skip(`${cxx} failed`);
renameSync(tmp, out);
console.log(`ddpm: built ${out}`);
