// The native engine: ONNX Runtime's C API through this project's Node-API binding (native/ortnative.cc),
// which adds the fused kernels of the custom-op domain 'ai.ddpm' (FUSED_DOMAIN). It runs the runtime
// library that onnxruntime-node ships, so both engines compute with the same kernels everywhere else.
// CPU only; `nativeEngine()` is null when the binding was not built (no C++ compiler at install).

import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FUSED_KERNELS, type FusedKernel } from '../graph/graph.js';
import type { Tensor } from '../util/tensor.js';
import type { Engine, EngineSession, MemArena, OptimKernels, SessionOptions } from './engine.js';
import { collectGarbage } from './gc.js';

interface Binding {
  init(libPath: string): string;
  /** The fused kernels this build registers (absent in builds older than the list). */
  kernels?(): string[];
  createSession(
    model: Uint8Array,
    threads: number,
    level: number,
    profilePrefix: string | null,
    memArena: MemArena,
    memPattern?: boolean,
  ): { handle: unknown; inputs: string[]; outputs: string[] };
  run(
    handle: unknown,
    inNames: string[],
    inData: Float32Array[],
    inShapes: (readonly number[])[],
    outNames: string[],
    outData: (Float32Array | null)[],
    outShapes: (readonly number[] | null)[],
  ): { data: Float32Array; shape: number[] }[];
  endProfiling(handle: unknown): string;
  release(handle: unknown): void;
  /** The optimiser's passes (native/optim.cc); absent in builds older than them. */
  optimAdam?(
    ps: readonly Float32Array[],
    gs: readonly Float32Array[],
    ms: readonly Float32Array[],
    vs: readonly Float32Array[],
    coefs: readonly number[],
  ): void;
  optimEma?(es: readonly Float32Array[], ps: readonly Float32Array[], decay: number): void;
  optimSumSquares?(gs: readonly Float32Array[]): number[];
}

/** The binding's optimiser passes as OptimKernels, or undefined for a build without them. */
function optimKernelsOf(b: Binding): OptimKernels | undefined {
  const { optimAdam, optimEma, optimSumSquares } = b;
  if (!optimAdam || !optimEma || !optimSumSquares) return undefined;
  return {
    sumSquares: (gs) => optimSumSquares(gs),
    adam: (ps, gs, ms, vs, c) => optimAdam(ps, gs, ms, vs, [c.beta1, c.beta2, c.eps, c.alpha, c.clip]),
    ema: (es, ps, decay) => optimEma(es, ps, decay),
  };
}

const require = createRequire(import.meta.url);

/** This package's root: the nearest folder above this file holding native/. */
function packageRoot(): string {
  let d = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(d, 'native', 'ortnative.cc'))) {
    const up = dirname(d);
    if (up === d) throw new Error('native engine: cannot find the package root (native/ortnative.cc)');
    d = up;
  }
  return d;
}

/** libonnxruntime.so.1 inside the installed onnxruntime-node package. */
function ortLibrary(): string {
  const pkg = dirname(require.resolve('onnxruntime-node/package.json'));
  const bin = join(pkg, 'bin');
  for (const napi of existsSync(bin) ? readdirSync(bin).sort().reverse() : []) {
    const lib = join(bin, napi, process.platform, process.arch, 'libonnxruntime.so.1');
    if (existsSync(lib)) return lib;
  }
  throw new Error(`native engine: libonnxruntime.so.1 not found under ${bin}`);
}

function level(o: NonNullable<SessionOptions['optimization']>): number {
  switch (o) {
    case 'none':
      return 0;
    case 'basic':
      return 1;
    case 'extended':
      return 2;
    case 'all':
      return 99;
  }
}

let loaded: { binding: Binding; version: string } | null | undefined;

/** The binding, loaded once; null when it is not built or DDPM_ENGINE=onnxruntime-node. */
function binding(): { binding: Binding; version: string } | null {
  if (loaded !== undefined) return loaded;
  loaded = null;
  if (process.env.DDPM_ENGINE === 'onnxruntime-node') return loaded;
  const file = join(packageRoot(), 'native', 'build', 'ortnative.node');
  if (!existsSync(file)) return loaded;
  const b = require(file) as Binding;
  loaded = { binding: b, version: b.init(ortLibrary()) };
  return loaded;
}

/** The names this binary's kernels() lists: its kernels and capabilities (older builds: the first four). */
function kernelNamesOf(b: Binding): string[] {
  return b.kernels?.() ?? ['GroupNormSilu', 'GroupNormSiluRecompute', 'Im2col', 'DropoutMul'];
}

/**
 * The kernels of FUSED_KERNELS this binary has: the graph uses no kernel a stale build lacks. ConvWeightGrad,
 * and with it the blocked training graph (BlockedTraining), only where the build says it is the faster path
 * (ConvWeightGradPreferred: AVX-512) or DDPM_CONV_WEIGHT_GRAD=1 asks for it (to time both on another machine:
 * bench/README.md, "The weight gradients" and "The training graph in the blocked layout"); Attention likewise
 * (AttentionPreferred, or DDPM_ATTENTION=1), and the Winograd kernels (WinogradPreferred, or DDPM_WINOGRAD=1;
 * which tile each layer takes: graph/passes/winogradConvs.ts, tileFor).
 */
function fusedKernelsOf(b: Binding): FusedKernel[] {
  const has = kernelNamesOf(b);
  const convWeightGrad = has.includes('ConvWeightGradPreferred') || process.env.DDPM_CONV_WEIGHT_GRAD === '1';
  const attention = has.includes('AttentionPreferred') || process.env.DDPM_ATTENTION === '1';
  const winograd = has.includes('WinogradPreferred') || process.env.DDPM_WINOGRAD === '1';
  const wanted = (k: FusedKernel): boolean => {
    switch (k) {
      case 'ConvWeightGrad':
      case 'BlockedTraining':
        return convWeightGrad;
      case 'Attention':
        return attention;
      case 'ConvWinograd':
      case 'WinogradFilter':
      case 'ConvWinogradWeightGrad':
      case 'WinogradBlock8':
      case 'ConvWinogradBf16':
      case 'WinogradBf16':
        return winograd;
      case 'WinogradF4':
        return winograd;
      default:
        return true;
    }
  };
  return FUSED_KERNELS.filter((k) => has.includes(k) && wanted(k));
}

/** Every kernel the native binding registers, whether or not the graphs use it (empty when not built). */
export function nativeKernelNames(): string[] {
  const l = binding();
  return l ? kernelNamesOf(l.binding) : [];
}

let cached: Engine | null | undefined;

/** The native engine (one per process), or null when its binding is not built. */
export function nativeEngine(): Engine | null {
  if (cached === undefined) cached = makeEngine();
  return cached;
}

function makeEngine(): Engine | null {
  const l = binding();
  if (!l) return null;
  const b = l.binding;
  return {
    name: `ortnative (ONNX Runtime ${l.version})`,
    fusedKernels: fusedKernelsOf(b),
    optimKernels: optimKernelsOf(b),
    collectGarbage,
    // run() wraps each Float32Array as an ONNX Runtime tensor over its memory. DDPM_FEED_CONSTANTS=0 turns the
    // use of it off (the weights then travel in the model's bytes), for A/B runs.
    feedsInPlace: process.env.DDPM_FEED_CONSTANTS !== '0',
    async createSession(model: Uint8Array, opts: SessionOptions = {}): Promise<EngineSession> {
      const provider = opts.provider ?? 'cpu';
      if (provider !== 'cpu') {
        throw new Error(`native engine: CPU only (asked for '${provider}'); use onnxruntime-node for it`);
      }
      const s = b.createSession(
        model,
        opts.threads || availableParallelism(),
        level(opts.optimization ?? 'all'),
        opts.profilePrefix ?? null,
        opts.memArena ?? 'session',
        opts.memPattern,
      );
      const inputSet = new Set(s.inputs);
      return {
        inputNames: s.inputs,
        outputNames: s.outputs,
        async run(feeds, outputs) {
          // Feeds the graph does not read (a parameter it dropped, say) are ignored, as onnxruntime-node does.
          const inNames = Object.keys(feeds).filter((k) => inputSet.has(k));
          const ins = inNames.map((k) => feeds[k]!);
          const given =
            outputs && !Array.isArray(outputs) ? (outputs as Readonly<Record<string, Tensor>>) : null;
          const outNames = given
            ? Object.keys(given)
            : outputs
              ? [...(outputs as readonly string[])]
              : s.outputs;
          const res = b.run(
            s.handle,
            inNames,
            ins.map((t) => t.data),
            ins.map((t) => t.shape),
            outNames,
            outNames.map((k) => given?.[k]?.data ?? null),
            outNames.map((k) => given?.[k]?.shape ?? null),
          );
          if (given) return { ...given };
          const out: Record<string, Tensor> = {};
          outNames.forEach((k, i) => {
            out[k] = res[i]!;
          });
          return out;
        },
        async endProfiling() {
          if (!opts.profilePrefix)
            throw new Error('endProfiling: the session was created without profilePrefix');
          return b.endProfiling(s.handle);
        },
        async release() {
          b.release(s.handle); // idempotent; the binding refuses a released session's run
        },
      };
    },
  };
}
