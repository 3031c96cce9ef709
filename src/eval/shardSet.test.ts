// Shard sets ('K/N', '1-25,31/100'): any set of shards written and read back is the same set; malformed
// text and shards outside 1..N are refused.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { formatShardSet, parseShardSet } from './shardSet.js';

describe('shard sets', () => {
  it('reads back what it writes, for any set of shards', () => {
    const sets = fc.integer({ min: 1, max: 200 }).chain((of) =>
      fc.record({
        of: fc.constant(of),
        ks: fc.uniqueArray(fc.integer({ min: 1, max: of }), { minLength: 1 }),
      }),
    );
    fc.assert(
      fc.property(sets, ({ of, ks }) => {
        const text = formatShardSet({ ks, of });
        assert.deepEqual(parseShardSet(text), { ks: [...ks].sort((a, b) => a - b), of }, text);
      }),
    );
  });

  it('writes runs of consecutive shards as ranges', () => {
    assert.equal(formatShardSet({ ks: [5, 1, 2, 3, 9, 10], of: 100 }), '1-3,5,9-10/100');
    assert.equal(formatShardSet({ ks: [7], of: 7 }), '7/7');
    assert.deepEqual(parseShardSet('3/4'), { ks: [3], of: 4 });
    assert.deepEqual(parseShardSet('2-4,3/10'), { ks: [2, 3, 4], of: 10 });
  });

  it('refuses text that is not a shard set', () => {
    for (const s of ['', '0/4', '5/4', '1-5/4', '3-2/4', '1,/4', '1/0', 'a/4', '1-2-3/4', '1/4/5', '-1/4']) {
      assert.equal(parseShardSet(s), undefined, s);
    }
  });
});
