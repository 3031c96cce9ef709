// Elementwise likelihood terms of the variational bound (Ho et al. 2020, section 3.3, eqs. 5 and 13),
// as the original code (normal_kl, approx_standard_normal_cdf, discretized_gaussian_log_likelihood).
// Inputs are flat arrays (tensor data); outputs are float64, in nats.

type Values = ArrayLike<number> | number;

function at(v: Values, i: number): number {
  return typeof v === 'number' ? v : v[i]!;
}

function lengthOf(what: string, ...vs: Values[]): number {
  let n = -1;
  for (const v of vs) {
    if (typeof v === 'number') continue;
    if (n >= 0 && v.length !== n) throw new Error(`${what}: argument lengths differ (${n} vs ${v.length})`);
    n = v.length;
  }
  return n < 0 ? 1 : n;
}

/**
 * KL(N(mean1, exp(logvar1)) || N(mean2, exp(logvar2))) elementwise, in nats. Numbers broadcast.
 * 0.5 * (-1 + logvar2 - logvar1 + exp(logvar1 - logvar2) + (mean1 - mean2)^2 exp(-logvar2))
 */
export function normalKl(mean1: Values, logvar1: Values, mean2: Values, logvar2: Values): Float64Array {
  const n = lengthOf('normalKl', mean1, logvar1, mean2, logvar2);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const lv1 = at(logvar1, i);
    const lv2 = at(logvar2, i);
    const d = at(mean1, i) - at(mean2, i);
    out[i] = 0.5 * (-1 + lv2 - lv1 + Math.exp(lv1 - lv2) + d * d * Math.exp(-lv2));
  }
  return out;
}

/** Standard normal CDF, tanh approximation: 0.5 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))). */
export function approxStandardNormalCdf(x: number): number {
  return 0.5 * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x * x * x)));
}

/**
 * log P(x) under a Gaussian discretized to 256 bins of [-1, 1] (eq. 13): the mass of N(mean, exp(logScale)^2)
 * over [x - 1/255, x + 1/255], with the edge bins open (x < -0.999: (-inf, x + 1/255]; x > 0.999:
 * [x - 1/255, inf)). x must be on bin centres (data scaled from {0..255}). Each probability is clamped
 * at 1e-12 before the log, as the original.
 */
export function discretizedGaussianLogLikelihood(
  x: ArrayLike<number>,
  means: Values,
  logScales: Values,
): Float64Array {
  const n = lengthOf('discretizedGaussianLogLikelihood', x, means, logScales);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const xi = x[i]!;
    const centered = xi - at(means, i);
    const invStdv = Math.exp(-at(logScales, i));
    const cdfPlus = approxStandardNormalCdf(invStdv * (centered + 1 / 255));
    const cdfMin = approxStandardNormalCdf(invStdv * (centered - 1 / 255));
    if (xi < -0.999) out[i] = Math.log(Math.max(cdfPlus, 1e-12));
    else if (xi > 0.999) out[i] = Math.log(Math.max(1 - cdfMin, 1e-12));
    else out[i] = Math.log(Math.max(cdfPlus - cdfMin, 1e-12));
  }
  return out;
}
