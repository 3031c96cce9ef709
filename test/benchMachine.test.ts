// The bench's description of the machine (bench/machine.ts) from /proc/cpuinfo text: the CPU's name with its
// x86 family and model (a VM's bare "AMD EPYC" is both the AVX2 and the AVX-512 machine type), and its flags.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { cpuFlags, cpuName } from '../bench/machine.js';

const zen5 = [
  'processor\t: 0',
  'vendor_id\t: AuthenticAMD',
  'cpu family\t: 26',
  'model\t\t: 2',
  'model name\t: AMD EPYC',
  'flags\t\t: fpu sse2 avx2 fma avx512f avx512bw avx512_vnni avx512_bf16 avx_vnni',
].join('\n');

describe('bench machine description', () => {
  it('names the x86 family and model beside the model name', () => {
    assert.equal(cpuName(zen5), 'AMD EPYC (family 26, model 2)');
    assert.equal(cpuName('processor\t: 0\nmodel name\t: Some CPU\n'), 'Some CPU');
  });
  it('lists the vector instruction sets in a fixed order', () => {
    assert.deepEqual(cpuFlags(zen5), [
      'avx2',
      'fma',
      'avx512f',
      'avx512bw',
      'avx512_vnni',
      'avx512_bf16',
      'avx_vnni',
    ]);
    assert.deepEqual(cpuFlags('Features\t: fp asimd evtstrm'), ['neon']);
  });
});
