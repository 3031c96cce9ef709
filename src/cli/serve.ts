// `ddpm serve`: the browser demo's server (scripts/serve.mjs, as `npm run demo`): the built page at
// /dist-web/ and one model folder at /model/, nothing else; cross-origin isolated (COOP same-origin, COEP
// require-corp on every response) so the page can run multi-threaded wasm. The page is built first (esbuild,
// scripts/build-web.mjs) when dist-web/ is missing or older than src/web; a page given with --web is served
// as it is.

import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { helpText, type OptTable, parseOptions, UsageError } from './args.js';
import { SHIPPED_MODEL } from './modelOption.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const DEFAULT_WEB = join(ROOT, 'dist-web');

export const SERVE_OPTIONS: OptTable = {
  model: {
    kind: 'string',
    help: 'model folder served at /model/ (config.json + model.safetensors; the page loads it)',
    default: SHIPPED_MODEL,
  },
  port: {
    kind: 'int',
    help: 'port to listen on; 0: any free port (the URL is printed)',
    default: 8080,
    min: 0,
  },
  host: { kind: 'string', help: 'address to listen on', default: '127.0.0.1' },
  web: {
    kind: 'string',
    help: 'the built page (default: dist-web/, built from src/web when missing or out of date)',
  },
};

/** Newest modification time (ms) of the files under dir (0 when there are none). */
function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/** Build dist-web/ (as npm run build:web) when it is missing or older than src/web; say so. */
async function ensurePage(web: string): Promise<void> {
  const main = join(web, 'main.js');
  const built = existsSync(main) && existsSync(join(web, 'index.html'));
  const srcWeb = join(ROOT, 'src', 'web');
  const stale = built && existsSync(srcWeb) && newest(srcWeb) > statSync(main).mtimeMs;
  if (built && !stale) return;
  let buildWeb: (opts?: { outdir?: string }) => Promise<{ bytes: number }>;
  try {
    ({ buildWeb } = await import(new URL('../../scripts/build-web.mjs', import.meta.url).href));
  } catch (e) {
    if (stale) {
      console.error(
        `ddpm serve: the page in ${web} is older than src/web and cannot be rebuilt here; serving it`,
      );
      return;
    }
    throw new Error(
      `the page is not built (no ${main}) and cannot be built here (${(e as Error).message.split('\n')[0]}); run 'npm install' and 'npm run build:web', or pass --web FOLDER`,
    );
  }
  console.log(
    `building the page (npm run build:web): ${built ? 'src/web changed since the last build' : `${main} is missing`}`,
  );
  const r = await buildWeb({ outdir: web });
  console.log(`built ${web} (${(r.bytes / 1024).toFixed(0)} KiB)`);
}

export async function serveCommand(argv: readonly string[]): Promise<void> {
  const o = parseOptions('serve', argv, SERVE_OPTIONS);
  if (o === 'help') {
    console.log(
      helpText(
        'serve',
        'Serve the browser demo: the built page at /dist-web/ and one model folder at /model/, nothing else ' +
          '(cross-origin isolated for multi-threaded wasm). Same server as npm run demo; Ctrl-C stops it.',
        SERVE_OPTIONS,
        [
          'ddpm serve                                  # http://localhost:8080/ with the shipped MNIST model',
          'ddpm serve --model runs/mnist/model --port 0  # any free port, printed',
        ],
      ),
    );
    return;
  }
  const port = o.port as number;
  if (port > 65535) throw new UsageError(`ddpm serve: --port ${port}: expected 0..65535 (0: any free port)`);
  const model = resolve(o.model as string);
  const web = resolve((o.web as string | undefined) ?? DEFAULT_WEB);
  if (o.web === undefined) await ensurePage(web);
  const { startServer, ServeError } = await import('../../scripts/serve.mjs');
  try {
    const s = await startServer({ port, host: o.host as string, model, web, log: true });
    console.log(`serving the demo at ${s.url}/  (page: ${web}, model: ${model}); Ctrl-C stops it`);
  } catch (e) {
    if (e instanceof ServeError) throw new Error(e.message);
    throw e;
  }
}
