// Respacing: sample with a subsequence of the T timesteps (Nichol & Dhariwal 2021, section 4; the
// improved-diffusion code's space_timesteps and SpacedDiffusion). The kept steps t_1 < .. < t_K define a new
// diffusion with the same abar at those steps: betaNew_k = 1 - abar_{t_k} / abar_{t_{k-1}} (abar before the
// first kept step is 1). Its inner index k is mapped back to t_k for the Denoiser.

import { GaussianDiffusion } from './gaussianDiffusion.js';

/** Python's round(): halves go to the even neighbour (space_timesteps relies on it). */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const diff = v - f;
  if (diff > 0.5) return f + 1;
  if (diff < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * The kept timesteps, ascending. spec: "ddimK" = range(0, T, stride) for the integer stride giving exactly K
 * steps; "K" = K steps evenly strided over [0, T-1] (both ends kept); "K1,K2,..." = the range split into
 * equal sections with K_i evenly strided steps in section i.
 */
export function spacedTimesteps(T: number, spec: string): Int32Array {
  const s = spec.trim();
  if (s.startsWith('ddim')) {
    const want = Number(s.slice(4));
    if (!Number.isInteger(want) || want < 1) throw new Error(`spacedTimesteps: bad spec "${spec}"`);
    for (let stride = 1; stride < Math.max(T, 2); stride++) {
      if (Math.ceil(T / stride) === want) return Int32Array.from({ length: want }, (_, i) => i * stride);
    }
    throw new Error(`spacedTimesteps: cannot get exactly ${want} steps from ${T} with an integer stride`);
  }
  const counts = s.split(',').map((c) => Number(c));
  if (counts.some((c) => !Number.isInteger(c) || c < 0))
    throw new Error(`spacedTimesteps: bad spec "${spec}"`);
  const sizePer = Math.floor(T / counts.length);
  const extra = T % counts.length;
  const steps = new Set<number>();
  let startIdx = 0;
  counts.forEach((count, i) => {
    const size = sizePer + (i < extra ? 1 : 0);
    if (size < count)
      throw new Error(`spacedTimesteps: cannot take ${count} steps from a section of ${size}`);
    const fracStride = count <= 1 ? 1 : (size - 1) / (count - 1);
    let cur = 0;
    for (let k = 0; k < count; k++) {
      steps.add(startIdx + roundHalfEven(cur));
      cur += fracStride;
    }
    startIdx += size;
  });
  return Int32Array.from([...steps].sort((a, b) => a - b));
}

/**
 * A diffusion over the kept timesteps of base (any order and duplicates accepted; they are sorted and
 * deduplicated). The 'xprev' parameterisation predicts the base chain's one-step posterior mean, which has no
 * meaning for a coarser chain, so it is refused unless every step is kept.
 */
export function respacedDiffusion(base: GaussianDiffusion, timesteps: ArrayLike<number>): GaussianDiffusion {
  const keep = [...new Set(Array.from(timesteps))].sort((a, b) => a - b);
  if (keep.length === 0) throw new Error('respacedDiffusion: no timesteps');
  for (const t of keep) {
    if (!(Number.isInteger(t) && t >= 0 && t < base.numTimesteps)) {
      throw new Error(`respacedDiffusion: timestep ${t} is outside [0, ${base.numTimesteps})`);
    }
  }
  if (base.modelMeanType === 'xprev' && keep.length !== base.numTimesteps) {
    throw new Error(
      "respacedDiffusion: 'xprev' models predict the full chain's x_{t-1}; they cannot skip steps",
    );
  }
  const betas = new Float64Array(keep.length);
  let lastAlphaCumprod = 1;
  keep.forEach((t, k) => {
    const abar = base.alphasCumprod[t]!;
    betas[k] = 1 - abar / lastAlphaCumprod;
    lastAlphaCumprod = abar;
  });
  return new GaussianDiffusion({
    betas,
    modelMeanType: base.modelMeanType,
    modelVarType: base.modelVarType,
    lossType: base.lossType,
    timestepMap: keep.map((t) => base.timestepMap[t]!),
    clipRange: base.clipRange,
  });
}
