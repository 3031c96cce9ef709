// Ctrl-C and SIGTERM for the `ddpm` commands: the first signal asks the command to stop at a safe point
// (training: after the current step, with a checkpoint; sampling, bpd, interpolation: before the next
// network call, writing nothing), a second one exits at once. Either way the status is the shell's
// convention, 128 + the signal number: 130 for SIGINT, 143 for SIGTERM. Files are only ever written by
// synchronous atomic writes (src/util/atomicFile.ts), during which no signal handler runs, so an exit
// at any moment leaves each output whole or absent.

import { basename, isAbsolute, relative } from 'node:path';
import type { Denoiser } from '../diffusion/types.js';

export type StopSignal = 'SIGINT' | 'SIGTERM';

const STATUS: Readonly<Record<StopSignal, number>> = { SIGINT: 130, SIGTERM: 143 };

/** The exit status of a command stopped by `signal`. */
export function signalStatus(signal: StopSignal): number {
  return STATUS[signal];
}

/** A command stopped by a signal: main prints the message and exits with the signal's status. */
export class Interrupted extends Error {
  constructor(
    readonly signal: StopSignal,
    message: string,
  ) {
    super(message);
    this.name = 'Interrupted';
  }

  get status(): number {
    return STATUS[this.signal];
  }
}

export interface StopRequest {
  /** Aborted at the first SIGINT / SIGTERM. */
  readonly signal: AbortSignal;
  /** The signal received, if any. */
  received(): StopSignal | undefined;
  /** Throws Interrupted(`stopped by SIG...: ${what}`) once a signal came. */
  check(what: string): void;
  /** The denoiser with check(what) before every network call: a sampler stops within one step. */
  wrap(denoise: Denoiser, what: string): Denoiser;
  /** Remove the handlers (default signal behaviour again). */
  dispose(): void;
}

/**
 * Catch SIGINT and SIGTERM for one command. `firstMessage` is printed when the first signal arrives
 * (what the command will do now); a second signal prints a line and exits the process at once.
 */
export function catchStopSignals(cmd: string, firstMessage: string): StopRequest {
  const ctl = new AbortController();
  let got: StopSignal | undefined;
  const handler = (sig: StopSignal) => {
    if (got !== undefined) {
      process.stderr.write(`\nddpm ${cmd}: second ${sig}: exiting now\n`);
      process.exit(STATUS[sig]);
    }
    got = sig;
    const again = sig === 'SIGINT' ? 'press Ctrl-C again' : 'send it again';
    process.stderr.write(`\nddpm ${cmd}: ${sig}: ${firstMessage} (${again} to exit at once)\n`);
    ctl.abort(sig);
  };
  const onInt = () => handler('SIGINT');
  const onTerm = () => handler('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const check = (what: string) => {
    if (got !== undefined) throw new Interrupted(got, `stopped by ${got}: ${what}`);
  };
  return {
    signal: ctl.signal,
    received: () => got,
    check,
    wrap: (denoise, what) =>
      yielding(async (x, t) => {
        check(what);
        return denoise(x, t);
      }),
    dispose: () => {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/**
 * Let the event loop run once. The native engine runs synchronously, so a loop of network calls is all
 * microtasks and would deliver no signal (nor timer) until it ends; one turn per call costs microseconds.
 */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The denoiser with one turn of the event loop before every network call, so that a signal (and the progress
 * timer) gets through a loop of synchronous native calls; the command decides where it stops.
 */
export function yielding(denoise: Denoiser): Denoiser {
  return async (x, t) => {
    await yieldToEventLoop();
    return denoise(x, t);
  };
}

/** Quote one argument for a POSIX shell (only where needed). */
export function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
}

/**
 * The command line this process was started with, as a user would type it again: `ddpm ...` where the
 * package is installed, `node bin/ddpm.mjs ...` in a clone (the path relative to the current folder).
 */
export function commandLine(argv: readonly string[] = process.argv): string {
  const script = argv[1] ?? 'ddpm';
  const rel = relative(process.cwd(), script);
  const shown = !rel.startsWith('..') && !isAbsolute(rel) ? rel : script;
  const head = basename(script) === 'ddpm' ? 'ddpm' : `node ${shellQuote(shown)}`;
  return [head, ...argv.slice(2).map(shellQuote)].join(' ');
}
