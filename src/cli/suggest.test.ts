// Tests of the "did you mean" matcher: typos (swaps, one letter more, less or wrong) find the name,
// unrelated words and one-letter options find nothing.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { closest, didYouMean, editDistance } from './suggest.js';

describe('suggest', () => {
  it('edit distance counts a swap of neighbours once', () => {
    assert.equal(editDistance('steps', 'steps'), 0);
    assert.equal(editDistance('stpes', 'steps'), 1);
    assert.equal(editDistance('sampel', 'sample'), 1);
    assert.equal(editDistance('', 'abc'), 3);
    assert.equal(editDistance('kitten', 'sitting'), 3);
  });
  it('finds the nearest name of a typo, and nothing for unrelated words', () => {
    const cmds = ['train', 'sample', 'eval', 'bpd', 'interpolate', 'export'];
    assert.equal(closest('sampel', cmds), 'sample');
    assert.equal(closest('trian', cmds), 'train');
    assert.equal(closest('interpolat', cmds), 'interpolate');
    assert.equal(closest('exprot', cmds), 'export');
    assert.equal(closest('frobnicate', cmds), undefined);
    assert.equal(closest('x', ['T', 'n']), undefined);
    assert.equal(closest('t', ['T', 'n']), 'T');
    assert.equal(closest('check', ['checkpoint-every', 'channels']), 'checkpoint-every');
    assert.equal(didYouMean('stpes', ['steps', 'seed'], '--'), " (did you mean '--steps'?)");
    assert.equal(didYouMean('zzzzzz', ['steps', 'seed'], '--'), '');
  });
});
