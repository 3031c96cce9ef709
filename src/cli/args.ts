// Command-line option parsing shared by the `ddpm` subcommands: typed options with defaults, help
// text generated from the same table, and errors that name the option and what it accepts.

import { parseArgs } from 'node:util';
import { didYouMean } from './suggest.js';

/** 'auto-int': a whole number or the word auto (parsed as the string 'auto'). */
export type OptKind = 'int' | 'auto-int' | 'float' | 'string' | 'bool' | 'list';

export interface OptDef {
  readonly kind: OptKind;
  readonly help: string;
  readonly default?: string | number | boolean | readonly number[];
  /** Allowed values of a string option. */
  readonly choices?: readonly string[];
  readonly min?: number;
}

export type OptTable = Readonly<Record<string, OptDef>>;

export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export function helpText(
  cmd: string,
  summary: string,
  table: OptTable,
  examples: readonly string[] = [],
): string {
  const lines = [`usage: ddpm ${cmd} [options]`, '', summary, '', 'options:'];
  for (const [name, d] of Object.entries(table)) {
    const arg =
      d.kind === 'bool'
        ? ''
        : ` <${d.choices ? d.choices.join('|') : d.kind === 'auto-int' ? 'auto|int' : d.kind}>`;
    const def =
      d.default === undefined
        ? ''
        : ` (default: ${Array.isArray(d.default) ? d.default.join(',') : d.default})`;
    const head = `  --${name}${arg}`;
    // A long option (a list of choices) gets its description on the next line.
    lines.push(
      head.length < 34 ? head.padEnd(34) + d.help + def : `${head}\n${' '.repeat(34)}${d.help}${def}`,
    );
  }
  lines.push(`${`  -h, --help`.padEnd(34)}show this help`);
  if (examples.length) lines.push('', 'examples:', ...examples.map((e) => `  ${e}`));
  return lines.join('\n');
}

export type Parsed = Record<string, string | number | boolean | number[] | undefined>;

export function parseOptions(cmd: string, argv: readonly string[], table: OptTable): Parsed | 'help' {
  const r = parseWithPositionals(cmd, argv, table, 0);
  return r === 'help' ? r : r.options;
}

/** parseOptions for commands that also take up to `maxPositionals` bare arguments (e.g. file names). */
export function parseWithPositionals(
  cmd: string,
  argv: readonly string[],
  table: OptTable,
  maxPositionals = Infinity,
): { options: Parsed; positionals: string[] } | 'help' {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = {
    help: { type: 'boolean', short: 'h' },
  };
  for (const [name, d] of Object.entries(table))
    options[name] = { type: d.kind === 'bool' ? 'boolean' : 'string' };
  let values: Record<string, string | boolean | undefined>;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: [...argv],
      options,
      strict: true,
      allowPositionals: maxPositionals > 0,
    }) as { values: Record<string, string | boolean | undefined>; positionals: string[] });
  } catch (e) {
    const msg = (e as Error).message;
    const opt = /'(--?[\w-]+)'/.exec(msg)?.[1];
    const unknown = (e as { code?: string }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION';
    const next = opt ? argv[argv.indexOf(opt) + 1] : undefined; // the dash-led word parseArgs would not take
    const text = /ambiguous/.test(msg)
      ? `${opt} needs a value (a value starting with '-' is written ${opt}=${next ?? '-4'})`
      : unknown && opt
        ? `Unknown option '${opt}'${didYouMean(opt.replace(/^-+/, ''), ['help', ...Object.keys(table)], '--')}`
        : msg.split('\n')[0]!.replace(/\.$/, '');
    throw new UsageError(`ddpm ${cmd}: ${text}; see 'ddpm ${cmd} --help'`);
  }
  if (values.help) return 'help';
  if (positionals.length > maxPositionals) {
    throw new UsageError(
      `ddpm ${cmd}: unexpected argument '${positionals[maxPositionals]}'; see 'ddpm ${cmd} --help'`,
    );
  }
  const out: Parsed = {};
  for (const [name, d] of Object.entries(table)) {
    const raw = values[name];
    if (raw === undefined) {
      out[name] = d.default as Parsed[string];
      continue;
    }
    const fail = (what: string): never => {
      throw new UsageError(
        `ddpm ${cmd}: --${name} ${JSON.stringify(raw)}: ${what}; see 'ddpm ${cmd} --help'`,
      );
    };
    switch (d.kind) {
      case 'bool':
        out[name] = raw as boolean;
        break;
      case 'string':
        if (d.choices && !d.choices.includes(raw as string)) fail(`expected one of ${d.choices.join(', ')}`);
        out[name] = raw as string;
        break;
      case 'auto-int':
      case 'int': {
        if (d.kind === 'auto-int' && String(raw).trim() === 'auto') {
          out[name] = 'auto';
          break;
        }
        const v = Number(raw);
        if (!/^-?\d+$/.test(String(raw).trim()) || !Number.isSafeInteger(v))
          fail(d.kind === 'auto-int' ? 'expected auto or an integer' : 'expected an integer');
        if (d.min !== undefined && v < d.min) fail(`must be at least ${d.min}`);
        out[name] = v;
        break;
      }
      case 'float': {
        const v = Number(raw);
        if (String(raw).trim() === '' || !Number.isFinite(v)) fail('expected a number');
        if (d.min !== undefined && v < d.min) fail(`must be at least ${d.min}`);
        out[name] = v;
        break;
      }
      case 'list': {
        const parts = String(raw)
          .split(',')
          .filter((p) => p.trim() !== '')
          .map(Number);
        if (parts.some((v) => !Number.isFinite(v))) fail('expected comma-separated numbers, e.g. 1,2,2,2');
        out[name] = parts;
        break;
      }
    }
  }
  return { options: out, positionals };
}
