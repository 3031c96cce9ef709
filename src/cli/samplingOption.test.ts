// Where `ddpm sample` / `ddpm eval` take their sampler, steps and variance from: the options, the model's
// config.json "sampling", or Algorithm 2 on the chain respaced to DEFAULT_RESPACED_STEPS.

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DEFAULT_RESPACED_STEPS } from '../diffusion/ancestral.js';
import { loadModel } from '../model/weights.js';
import { defaultSpec, diffusionFromSpec, type ModelSpec, type SamplingSpec } from '../model/spec.js';
import { SHIPPED_MODEL } from './modelOption.js';
import { resolveSampling, samplingDiffusion, samplingLabel } from './samplingOption.js';

const fixed = defaultSpec().diffusion; // T = 1000, fixedlarge
const rec: SamplingSpec = { sampler: 'ddim', steps: 20, basis: 'measured' };
type Opts = { sampler?: string; steps?: number; 'var-type'?: string };
const pick = (o: Opts, sampling?: SamplingSpec, diffusion = fixed) =>
  resolveSampling('sample', o, { diffusion, sampling });
const core = (c: ReturnType<typeof pick>) => [c.sampler, c.steps, c.varType, c.varOverride];

describe('resolveSampling', () => {
  it('no recommendation: ddpm on the respaced chain, the options as given, steps capped at T', () => {
    assert.deepEqual(pick({}), {
      sampler: 'ddpm',
      steps: DEFAULT_RESPACED_STEPS,
      varType: 'fixedlarge',
      varOverride: false,
    });
    assert.deepEqual(core(pick({ sampler: 'heun' })), ['heun', DEFAULT_RESPACED_STEPS, 'fixedlarge', false]);
    assert.deepEqual(core(pick({ sampler: 'ddim', steps: 5000 })), ['ddim', 1000, 'fixedlarge', false]);
    assert.deepEqual(core(pick({ 'var-type': 'fixedsmall' })), [
      'ddpm',
      DEFAULT_RESPACED_STEPS,
      'fixedsmall',
      true,
    ]);
    assert.deepEqual(core(pick({ 'var-type': 'fixedlarge' })), [
      'ddpm',
      DEFAULT_RESPACED_STEPS,
      'fixedlarge',
      false,
    ]);
  });

  it("the model's recommendation fills what the options leave out, and says so", () => {
    const both = pick({}, rec);
    assert.deepEqual(core(both), ['ddim', 20, 'fixedlarge', false]);
    assert.match(
      both.note ?? '',
      /^sample: ddim, 20 steps: the sampler and steps this model recommends \(config\.json "sampling"; measured\)/,
    );
    const steps = pick({ sampler: 'ddim' }, rec);
    assert.deepEqual(core(steps), ['ddim', 20, 'fixedlarge', false]);
    assert.match(steps.note ?? '', /the steps this model recommends/);
    const sampler = pick({ steps: 7 }, rec);
    assert.deepEqual(core(sampler), ['ddim', 7, 'fixedlarge', false]);
    assert.match(sampler.note ?? '', /the sampler this model recommends/);
    const small: SamplingSpec = { sampler: 'ddpm', steps: 50, varType: 'fixedsmall' };
    const all = pick({}, small);
    assert.deepEqual(core(all), ['ddpm', 50, 'fixedsmall', true]);
    assert.match(
      all.note ?? '',
      /^sample: ddpm, 50 steps, variance fixedsmall: the sampler, steps and variance this model/,
    );
    assert.deepEqual(core(pick({ 'var-type': 'fixedlarge' }, small)), ['ddpm', 50, 'fixedlarge', false]);
  });

  it('another sampler than the recommended one inherits neither its steps nor its variance; full options say nothing', () => {
    assert.deepEqual(core(pick({ sampler: 'ddpm' }, rec)), [
      'ddpm',
      DEFAULT_RESPACED_STEPS,
      'fixedlarge',
      false,
    ]);
    const small: SamplingSpec = { sampler: 'ddpm', steps: 50, varType: 'fixedsmall' };
    assert.deepEqual(core(pick({ sampler: 'ddim' }, small)), [
      'ddim',
      DEFAULT_RESPACED_STEPS,
      'fixedlarge',
      false,
    ]);
    assert.equal(pick({ sampler: 'ddim', steps: 50 }, rec).note, undefined);
  });

  it('refuses a variance the chain cannot use, naming why', () => {
    const learned = { ...fixed, modelVarType: 'learned-range' as const };
    assert.throws(
      () => pick({ 'var-type': 'fixedsmall' }, undefined, learned),
      /this model learns its variance/,
    );
    assert.throws(
      () => pick({ sampler: 'ddim', 'var-type': 'fixedsmall' }),
      /--var-type fixedsmall is the ancestral chain's variance \(--sampler ddpm\); ddim does not use it/,
    );
  });

  it('labels and diffusion follow the chosen variance', () => {
    const small = pick({ 'var-type': 'fixedsmall', steps: 50 });
    assert.equal(samplingLabel(small, 0, 1000), 'ddpm-50-fixedsmall');
    assert.equal(samplingLabel(pick({ steps: 50 }), 0, 1000), 'ddpm-50');
    const model = { spec: { diffusion: fixed } as ModelSpec, diffusion: diffusionFromSpec(fixed) };
    assert.equal(samplingDiffusion(model, pick({})), model.diffusion);
    const d = samplingDiffusion(model, small);
    assert.equal(d.modelVarType, 'fixedsmall');
  });

  it('the shipped MNIST model recommends a sampling its config.json validates', () => {
    const m = loadModel(SHIPPED_MODEL);
    assert.ok(m.spec.sampling, 'models/mnist/config.json has "sampling"');
    assert.ok(m.spec.sampling.steps <= m.spec.diffusion.T);
  });
});
