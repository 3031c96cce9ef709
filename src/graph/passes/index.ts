// The graph passes, by name, in the order they run: algebraic rewrites of the model as built ('forward'
// stage: before a gradient is taken, so training graphs differentiate the rewritten form), then layout
// passes on the whole graph ('layout' stage: after the gradient). Every pass matches its pattern on the
// recorded nodes and constants of any model built with the graph builder and leaves the graph unchanged
// where the pattern is absent; each is exact to float rounding (src/graph/passes/passes.test.ts checks
// every one on and off on random models, outputs and gradients). All run by default, each where it is
// valid (PassScope); DDPM_PASSES or a `passes` option switches any off for A/B runs:
//   DDPM_PASSES=-phase-split-upsample          all but this one
//   DDPM_PASSES=-fold-attention-norm,-blocked-layout
//   DDPM_PASSES=drop-key-bias,nchwc-convs      only these
//   DDPM_PASSES=none                           the model exactly as written
//   DDPM_PASSES=+quantize-int8                 the default plus an opt-in pass (needs calibration)
//   DDPM_PASSES=+winograd-bf16                 bfloat16 Winograd products (AVX-512 BF16 builds)

import type { Graph, Value } from '../graph.js';
import { cancelTimestepShift } from './cancelTimestepShift.js';
import { dropKeyBias } from './dropKeyBias.js';
import { foldBatchNorm } from './foldBatchNorm.js';
import { foldConstantReorders } from './foldConstantReorders.js';
import { foldAttentionNorm } from './foldAttentionNorm.js';
import { foldValueBias } from './foldValueBias.js';
import { fuseAttention } from './fuseAttention.js';
import { fuseGroupNormSilu } from './fuseGroupNormSilu.js';
import { fuseShiftGroupNormSilu } from './fuseShiftGroupNormSilu.js';
import { kernelDropout } from './kernelDropout.js';
import { blockedLayout, nchwcConvs } from './layout.js';
import { blockFilter } from './blockFilter.js';
import { phaseSplitUpsample } from './phaseSplitUpsample.js';
import { winogradBf16 } from './winogradBf16.js';
import { winogradConvs } from './winogradConvs.js';
import { recomputeNormAct } from './recomputeNormAct.js';
import { quantizeInt8 } from './quantizeInt8.js';
import type { ConvRanges, GraphPass, PassContext } from './util.js';

export type { ConvRanges, GraphPass, PassContext, PassScope } from './util.js';

/** Every pass, in the order the pipeline runs them. */
export const PASSES: readonly GraphPass[] = [
  cancelTimestepShift,
  foldBatchNorm,
  foldAttentionNorm,
  dropKeyBias,
  foldValueBias,
  fuseAttention,
  phaseSplitUpsample,
  quantizeInt8,
  fuseGroupNormSilu,
  fuseShiftGroupNormSilu,
  kernelDropout,
  recomputeNormAct,
  nchwcConvs,
  blockedLayout,
  blockFilter,
  winogradBf16,
  winogradConvs,
  foldConstantReorders,
];

export const PASS_NAMES: readonly string[] = PASSES.map((p) => p.name);

/** The default selection: every pass but the opt-in ones (quantize-int8, winograd-bf16), which run only when named. */
export const DEFAULT_PASSES: readonly string[] = PASSES.filter((p) => !p.optIn).map((p) => p.name);

/** The environment variable that selects passes (see the header): read when no `passes` option is given. */
export const PASSES_ENV = 'DDPM_PASSES';

/**
 * The pass names a selection picks, in pipeline order: undefined = DDPM_PASSES if set, else every pass but
 * the opt-in ones; a list (or comma-separated string) of names picks those; entries all prefixed '-' (or
 * '+') remove from (or add to) that default; 'none' or '' picks none. Unknown names throw, listing the known ones.
 */
export function selectPasses(selection?: string | readonly string[]): string[] {
  let spec = selection;
  if (spec === undefined) {
    const env = (globalThis as { process?: { env?: Record<string, string | undefined> } }).process?.env?.[
      PASSES_ENV
    ];
    if (env === undefined) return [...DEFAULT_PASSES];
    spec = env;
  }
  const items = (typeof spec === 'string' ? spec.split(',') : [...spec]).map((s) => s.trim()).filter(Boolean);
  if (items.length === 1 && items[0] === 'none') return [];
  const name = (s: string) => s.replace(/^[+-]/, '');
  for (const s of items) {
    if (!PASS_NAMES.includes(name(s))) {
      throw new Error(`graph passes: unknown pass "${name(s)}" (known: ${PASS_NAMES.join(', ')}; or none)`);
    }
  }
  const relative = items.length > 0 && items.every((s) => s.startsWith('-') || s.startsWith('+'));
  if (!relative && items.some((s) => s.startsWith('-') || s.startsWith('+'))) {
    throw new Error(`graph passes: mix of names and +/- entries in "${items.join(',')}"`);
  }
  const off = new Set(items.filter((s) => s.startsWith('-')).map(name));
  const added = new Set(items.filter((s) => s.startsWith('+')).map(name));
  const on = new Set(items.map(name));
  return PASS_NAMES.filter((n) =>
    relative ? (DEFAULT_PASSES.includes(n) || added.has(n)) && !off.has(n) : on.has(n),
  );
}

export interface PassOptions {
  /** A gradient is (or will be) taken: passes of scope 'any' only. */
  readonly training?: boolean;
  /** Parameters are baked in as constants (inference with initializers): folding passes apply. */
  readonly constantWeights?: boolean;
  /** The engine's NCHWc block size (nchwcBlockOf), 0 = none. */
  readonly nchwcBlock?: number;
  /** Which passes (selectPasses); default DDPM_PASSES, else all but the opt-in ones. */
  readonly passes?: string | readonly string[];
  /** Conv ranges for quantize-int8. */
  readonly calibration?: ConvRanges;
}

/**
 * Run the selected passes of one stage ('forward': on the model as built, before any gradient; 'layout':
 * last, on the whole graph; 'all': both, for graphs without a gradient) over what `roots` depend on.
 * Returns how many rewrites each pass made.
 */
export function runPasses(
  g: Graph,
  roots: readonly Value[],
  stage: 'forward' | 'layout' | 'all',
  opts: PassOptions = {},
): Record<string, number> {
  const training = opts.training ?? false;
  const constantWeights = opts.constantWeights ?? false;
  if (training && constantWeights)
    throw new Error('graph passes: a training graph cannot have constant weights');
  const ctx: PassContext = {
    graph: g,
    roots,
    training,
    constantWeights,
    nchwcBlock: opts.nchwcBlock ?? 0,
    ...(opts.calibration ? { calibration: opts.calibration } : {}),
  };
  const picked = new Set(selectPasses(opts.passes));
  const report: Record<string, number> = {};
  for (const p of PASSES) {
    if (!picked.has(p.name) || (stage !== 'all' && p.stage !== stage)) continue;
    if (training && p.scope !== 'any') continue;
    if (p.scope === 'constant-weights' && !constantWeights) continue;
    report[p.name] = p.run(ctx);
  }
  return report;
}
