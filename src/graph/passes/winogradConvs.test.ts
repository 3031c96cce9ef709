// winograd-convs' choice of tile (tileFor): F(4x4, 3x3) from 16x16 grids up and for narrow layers, F(2x2) for
// wide layers on small grids (where F(4x4)'s 2.25 times larger filters were measured slower), F(2x2) wherever
// the grid is not a multiple of 4 or the engine lacks WinogradF4; DDPM_WINOGRAD_TILE forces either.

import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { Graph } from '../graph.js';
import { tileFor, WINOGRAD_TILE_ENV } from './winogradConvs.js';

const graph = (f4: boolean) => {
  const g = new Graph();
  g.fused = f4 ? ['ConvWinograd', 'WinogradF4'] : ['ConvWinograd'];
  return g;
};

describe('winograd-convs tile', () => {
  const saved = process.env[WINOGRAD_TILE_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[WINOGRAD_TILE_ENV];
    else process.env[WINOGRAD_TILE_ENV] = saved;
  });

  it('F(4x4) from 16x16 up and for C K <= 64 x 64, else F(2x2)', () => {
    delete process.env[WINOGRAD_TILE_ENV];
    const g = graph(true);
    const cases: [number, number, number, number, 2 | 4][] = [
      [32, 32, 128, 128, 4],
      [16, 16, 256, 256, 4],
      [16, 16, 512, 256, 4],
      [8, 8, 256, 256, 2],
      [8, 8, 512, 256, 2],
      [4, 4, 256, 256, 2],
      [8, 8, 128, 64, 2],
      [8, 8, 64, 64, 4],
      [4, 4, 64, 64, 4],
      [4, 4, 32, 32, 4],
      [12, 12, 32, 32, 4],
      [14, 14, 32, 32, 2], // not a multiple of 4
      [6, 6, 16, 16, 2],
    ];
    for (const [h, w, c, k, want] of cases)
      assert.equal(tileFor(g, h, w, c, k), want, `${c} -> ${k} at ${h}x${w}`);
    assert.equal(tileFor(graph(false), 32, 32, 64, 64), 2, 'no WinogradF4');
  });

  it('DDPM_WINOGRAD_TILE=2 or 4 forces the tile where the grid allows it', () => {
    const g = graph(true);
    process.env[WINOGRAD_TILE_ENV] = '4';
    assert.equal(tileFor(g, 8, 8, 256, 256), 4);
    assert.equal(tileFor(g, 6, 6, 256, 256), 2);
    assert.equal(tileFor(graph(false), 8, 8, 16, 16), 2);
    process.env[WINOGRAD_TILE_ENV] = '2';
    assert.equal(tileFor(g, 32, 32, 32, 32), 2);
    process.env[WINOGRAD_TILE_ENV] = '3';
    assert.throws(() => tileFor(g, 32, 32, 32, 32), /DDPM_WINOGRAD_TILE=3: the Winograd tile must be 2 or 4/);
  });
});
