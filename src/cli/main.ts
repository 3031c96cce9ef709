// The `ddpm` command: train, sample, eval, bpd, interpolate, export.

import { UsageError } from './args.js';
import { bpdCommand } from './bpd.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { interpolateCommand } from './interpolate.js';
import { sampleCommand } from './sample.js';
import { Interrupted } from './signals.js';
import { explainFsError } from '../util/fsErrors.js';
import { trainCommand } from './train.js';

const COMMANDS: Record<string, { run: (argv: readonly string[]) => Promise<void>; help: string }> = {
  train: { run: trainCommand, help: 'train a model (Algorithm 1); rerun to resume' },
  sample: { run: sampleCommand, help: 'sample images (Algorithm 2, respaced, DDIM; progressive, GIF)' },
  eval: { run: evalCommand, help: 'sample quality: FID, IS, KID, precision/recall; reference stats; shards' },
  bpd: { run: bpdCommand, help: 'bits/dim of data: the whole variational bound (eq. 5), T calls per batch' },
  interpolate: { run: interpolateCommand, help: 'interpolate two images in latent space (Fig. 8)' },
  export: {
    run: exportCommand,
    help: 'write a model as a diffusers pipeline folder or a standalone ONNX file',
  },
};

function usage(): string {
  return [
    'usage: ddpm <command> [options]',
    '',
    'Denoising Diffusion Probabilistic Models (Ho, Jain, Abbeel 2020) in TypeScript.',
    '',
    'commands:',
    ...Object.entries(COMMANDS).map(([k, v]) => `  ${k.padEnd(12)} ${v.help}`),
    '',
    "run 'ddpm <command> --help' for its options",
  ].join('\n');
}

export async function main(argv: readonly string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return 0;
  }
  const c = COMMANDS[cmd];
  if (!c) {
    console.error(`ddpm: unknown command '${cmd}'\n\n${usage()}`);
    return 2;
  }
  try {
    await c.run(rest);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      console.error(e.message);
      return 2;
    }
    if (e instanceof Interrupted) {
      console.error(`ddpm ${cmd}: ${e.message}`);
      return e.status;
    }
    console.error(`ddpm ${cmd}: ${explainFsError(e).message}`);
    if (process.env.DDPM_DEBUG) console.error((e as Error).stack);
    return 1;
  }
}
