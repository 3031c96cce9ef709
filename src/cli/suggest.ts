// "Did you mean" for the `ddpm` command: the nearest known name to a mistyped command or option by
// edit distance (optimal string alignment: insertions, deletions, substitutions and swaps of two
// neighbouring letters each cost 1), offered only when it is close enough to be a typo.

/** Optimal-string-alignment distance between a and b (a swap of two neighbours counts once). */
export function editDistance(a: string, b: string): number {
  const n = a.length;
  const m = b.length;
  // d[i][j]: distance between a[0, i) and b[0, j), rows kept as flat arrays.
  const d: number[][] = Array.from({ length: n + 1 }, (_, i) =>
    Array.from({ length: m + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)),
  );
  for (let i = 1; i <= n; i++) {
    for (let j = 1; j <= m; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[n]![m]!;
}

/**
 * The candidate nearest to `word`, ignoring case, if it is a plausible typo of it (distance 0 for names
 * of up to 2 letters, at most 1 up to 4, 2 up to 8, a third of the length beyond), or else the one
 * candidate `word` is a prefix of; undefined otherwise. Ties go to the earlier candidate.
 */
export function closest(word: string, candidates: readonly string[]): string | undefined {
  const w = word.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    if (dist < bestD) {
      best = c;
      bestD = dist;
    }
  }
  const limit = w.length <= 2 ? 0 : w.length <= 4 ? 1 : w.length <= 8 ? 2 : Math.floor(w.length / 3);
  if (best !== undefined && best !== word && bestD <= limit) return best;
  const prefixed = candidates.filter((c) => w.length >= 2 && c.toLowerCase().startsWith(w));
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** " (did you mean 'X'?)" or '' when nothing is close; prefix goes before the name ('--'). */
export function didYouMean(word: string, candidates: readonly string[], prefix = ''): string {
  const c = closest(word, candidates);
  return c === undefined ? '' : ` (did you mean '${prefix}${c}'?)`;
}
