// Type checks of parsed JSON (config files, file headers) before use (browser-safe): each failure names the
// file, the key, the value found and what was expected, so no JavaScript TypeError reaches a user.

/** A JSON value as a message shows it: `"abc" (a string)`, `null`, `[1,2] (an array)`. */
export function describeJson(v: unknown): string {
  if (v === undefined) return 'missing';
  if (v === null) return 'null';
  let text: string;
  try {
    text = JSON.stringify(v);
  } catch {
    text = Array.isArray(v) ? '[[[...' : '{...'; // nested too deeply for JSON.stringify (a hostile file)
  }
  const short = text.length > 40 ? `${text.slice(0, 37)}...` : text;
  const kind = Array.isArray(v) ? 'an array' : typeof v === 'object' ? 'an object' : `a ${typeof v}`;
  return `${short} (${kind})`;
}

/** A config-file reader's checks: each failure names the file, the key and what was expected. */
export class JsonChecker {
  constructor(readonly source: string) {}

  fail(key: string, value: unknown, expected: string): never {
    const got = value === undefined ? 'is missing' : `is ${describeJson(value)}`;
    throw new Error(`${this.source}: ${key ? `"${key}"` : 'the file'} ${got}; expected ${expected}`);
  }

  object(v: unknown, key: string, expected = 'a JSON object'): Record<string, unknown> {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) this.fail(key, v, expected);
    return v as Record<string, unknown>;
  }

  int(o: Record<string, unknown>, key: string, path: string, min = 1): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min)
      this.fail(path, v, min === 1 ? 'a positive integer' : `an integer >= ${min}`);
    return v as number;
  }

  num(o: Record<string, unknown>, key: string, path: string, lo: number, hi: number, hiOpen = false): number {
    const v = o[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || v < lo || (hiOpen ? v >= hi : v > hi))
      this.fail(path, v, `a number in [${lo}, ${hi}${hiOpen ? ')' : ']'}`);
    return v as number;
  }

  ints(o: Record<string, unknown>, key: string, path: string, nonEmpty: boolean): number[] {
    const v = o[key];
    const ok =
      Array.isArray(v) && (!nonEmpty || v.length > 0) && v.every((x) => Number.isSafeInteger(x) && x >= 1);
    if (!ok)
      this.fail(path, v, `${nonEmpty ? 'a non-empty' : 'an'} array of positive integers, e.g. [1, 2, 2]`);
    return v as number[];
  }

  choice<T extends string>(o: Record<string, unknown>, key: string, path: string, choices: readonly T[]): T {
    const v = o[key];
    if (typeof v !== 'string' || !choices.includes(v as T))
      this.fail(path, v, `one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    return v as T;
  }
}

/** A JSON object (not null, not an array). */
export function isJsonObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
