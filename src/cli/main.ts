// The `ddpm` command: train, sample, eval, bpd, interpolate, export, serve; --version, --help, and
// "did you mean" for a mistyped command.

import { readFileSync } from 'node:fs';
import { UsageError } from './args.js';
import { bpdCommand } from './bpd.js';
import { evalCommand } from './eval.js';
import { exportCommand } from './export.js';
import { interpolateCommand } from './interpolate.js';
import { sampleCommand } from './sample.js';
import { serveCommand } from './serve.js';
import { Interrupted } from './signals.js';
import { explainFsError } from '../util/fsErrors.js';
import { didYouMean } from './suggest.js';
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
  serve: { run: serveCommand, help: 'serve the browser demo (the page and one model folder) on localhost' },
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
    "run 'ddpm <command> --help' (or -h) for its options; 'ddpm --version' for the version",
  ].join('\n');
}

/** The version in package.json (two folders up from src/cli and from dist/cli alike). */
export function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version?: unknown;
  };
  return String(pkg.version);
}

export async function main(argv: readonly string[]): Promise<number> {
  let [cmd, ...rest] = argv;
  // 'ddpm help sample' is 'ddpm sample --help'.
  if (cmd === 'help' && rest[0] && Object.hasOwn(COMMANDS, rest[0])) [cmd, rest] = [rest[0], ['--help']];
  if (!cmd || cmd === '--help' || cmd === '-h' || cmd === 'help') {
    console.log(usage());
    return 0;
  }
  if (cmd === '--version' || cmd === '-v' || cmd === '-V' || cmd === 'version') {
    console.log(`ddpm-ts ${version()}`);
    return 0;
  }
  const c = Object.hasOwn(COMMANDS, cmd) ? COMMANDS[cmd] : undefined;
  if (!c) {
    const hint = cmd.startsWith('-')
      ? didYouMean(cmd.replace(/^-+/, ''), ['help', 'version'], '--')
      : didYouMean(cmd, Object.keys(COMMANDS));
    console.error(
      `ddpm: unknown ${cmd.startsWith('-') ? 'option' : 'command'} '${cmd}'${hint}\n\n${usage()}`,
    );
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
