// Shard sets: which of a sharded evaluation's N shards a partial result holds. One shard is 'K/N' (what
// `ddpm eval --shard K/N` writes); a partial result combined from several (`ddpm eval merge --out`) holds a
// set written as ranges, '1-25,31/100', so a long run's progress travels as one file.

/** The shards a partial result holds (ascending, each once) out of `of`. */
export interface ShardSet {
  ks: number[];
  of: number;
}

/** 'K/N' or 'a-b,c,.../N' -> the set, or undefined when s is not of that form or a shard is outside 1..N. */
export function parseShardSet(s: string): ShardSet | undefined {
  const m = /^(\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)\/(\d+)$/.exec(s);
  if (!m) return undefined;
  const of = Number(m[2]);
  const ks = new Set<number>();
  for (const part of m[1]!.split(',')) {
    const [a, b = a] = part.split('-').map(Number) as [number, number?];
    if (a < 1 || b < a || b > of) return undefined;
    for (let k = a; k <= b; k++) ks.add(k);
  }
  return { ks: [...ks].sort((x, y) => x - y), of };
}

/** The set as parseShardSet reads it, runs of consecutive shards as ranges: [1,2,3,5] of 100 -> '1-3,5/100'. */
export function formatShardSet(set: ShardSet): string {
  const ks = [...new Set(set.ks)].sort((x, y) => x - y);
  const runs: string[] = [];
  for (let i = 0; i < ks.length; ) {
    let j = i;
    while (j + 1 < ks.length && ks[j + 1] === ks[j]! + 1) j++;
    runs.push(j === i ? `${ks[i]}` : `${ks[i]}-${ks[j]}`);
    i = j + 1;
  }
  return `${runs.join(',')}/${set.of}`;
}
