// The browser demo's server (`npm run demo`): serves only the built page (dist-web/, at /dist-web/) and
// the chosen model folder (at /model/; default models/mnist), nothing else of the repository. Symbolic
// links that leave those folders, dotfiles and `..` are refused; only GET and HEAD without a body, URLs
// and headers of bounded size, and a bounded number of files in flight (503 beyond it). Every response
// carries the COOP/COEP headers that make the page cross-origin isolated (multi-threaded wasm).
// Usage: node scripts/serve.mjs [--port 8080 | --port 0 (any free port)] [--host 127.0.0.1]
//                               [--model models/mnist] [--web dist-web]
// (startServer is also imported by test/web.test.ts and test/serve.test.ts)
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

export const MIME = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.gif': 'image/gif',
  '.svg': 'image/svg+xml',
  '.txt': 'text/plain; charset=utf-8',
  '.md': 'text/plain; charset=utf-8',
  '.safetensors': 'application/octet-stream',
};

/** Longest request URL accepted (414 beyond). */
export const MAX_URL = 2048;
/** Largest request header block accepted (431 beyond; Node's own limit). */
export const MAX_HEADER_BYTES = 8192;

/** The real path of a URL path under a folder whose real path is realBase; null if it escapes it. */
function under(base, realBase, urlPath) {
  const p = resolve(base, `.${urlPath}`);
  if (p !== base && !p.startsWith(base + sep)) return null;
  let real;
  try {
    real = realpathSync(p);
  } catch {
    return p; // missing: a 404 later
  }
  return real === realBase || real.startsWith(realBase + sep) ? real : null;
}

/** A folder's real path, or an error naming what it is for and what to do. */
function folder(dir, what, hint) {
  let st;
  try {
    st = statSync(dir);
  } catch {
    throw new ServeError(`${what} ${dir} does not exist; ${hint}`);
  }
  if (!st.isDirectory()) throw new ServeError(`${what} ${dir} is not a folder; ${hint}`);
  return realpathSync(dir);
}

export class ServeError extends Error {}

/** Sent with every response, errors included: cross-origin isolation (COOP + COEP) for multi-threaded wasm. */
export const ISOLATION_HEADERS = {
  'cache-control': 'no-cache',
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
  'cross-origin-resource-policy': 'same-origin',
  'x-content-type-options': 'nosniff',
};

/**
 * Requests that Node's parser refuses (headers over the limit, malformed) get their 431 / 400 here, with the
 * same headers as every other response, instead of Node's bare reply.
 */
function onClientError(err, socket) {
  if (!socket.writable || err.code === 'ECONNRESET') return socket.destroy();
  const [code, text] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, 'Request Header Fields Too Large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'Request Timeout']
        : [400, 'Bad Request'];
  const head = Object.entries({ ...ISOLATION_HEADERS, 'content-type': 'text/plain; charset=utf-8' })
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  const body = `${text.toLowerCase()}\n`;
  socket.end(
    `HTTP/1.1 ${code} ${text}\r\n${head}content-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/**
 * Serve the built page `web` at /dist-web/ and the model folder `model` at /model/; `mounts` maps further
 * URL prefixes ('/x/') to folders. port 0 picks a free one. At most `maxActive` files are sent at once.
 * Resolves to { url, port, close() }; rejects with a ServeError (a busy port, a missing folder).
 */
export function startServer({
  web = join(ROOT, 'dist-web'),
  model = join(ROOT, 'models', 'mnist'),
  port = 0,
  host = '127.0.0.1',
  mounts = {},
  maxActive = 32,
  log = false,
} = {}) {
  let bases;
  try {
    bases = [
      ...Object.entries(mounts).map(([prefix, dir]) => [
        prefix.endsWith('/') ? prefix : `${prefix}/`,
        resolve(dir),
        folder(resolve(dir), 'folder', `check the mount ${prefix}`),
      ]),
      ['/model/', resolve(model), folder(resolve(model), 'model folder', 'pass --model FOLDER')],
      ['/dist-web/', resolve(web), folder(resolve(web), 'page folder', 'build it with npm run build:web')],
    ];
  } catch (e) {
    return Promise.reject(e);
  }
  let active = 0;
  const headers = ISOLATION_HEADERS;
  const server = createServer({ maxHeaderSize: MAX_HEADER_BYTES }, (req, res) => {
    const send = (code, msg, extra = {}) => {
      if (log) console.log(`${code} ${req.method} ${(req.url ?? '').slice(0, 200)}`);
      res.writeHead(code, { ...headers, 'content-type': 'text/plain; charset=utf-8', ...extra });
      res.end(req.method === 'HEAD' ? undefined : `${msg}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD')
      return send(405, 'method not allowed', { allow: 'GET, HEAD' });
    // Nothing here takes a body: refuse one rather than read it.
    if (Number(req.headers['content-length'] ?? 0) > 0 || req.headers['transfer-encoding'] !== undefined) {
      return send(413, 'request body not accepted', { connection: 'close' });
    }
    if ((req.url ?? '').length > MAX_URL) return send(414, `URL longer than ${MAX_URL} characters`);
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad URL');
    }
    if (path.includes('\0')) return send(400, 'bad URL');
    if (path.split('/').some((seg) => seg.startsWith('.'))) return send(403, 'forbidden'); // .git, ..
    if (path === '/' || path === '/dist-web') {
      res.writeHead(302, { ...headers, location: '/dist-web/?model=/model/' });
      return res.end();
    }
    const hit = bases.find(([pre]) => path.startsWith(pre) || `${path}/` === pre);
    if (!hit) return send(404, `not found: ${path} (this server serves /dist-web/ and /model/ only)`);
    const [prefix, base, realBase] = hit;
    let file = under(base, realBase, `/${path.slice(prefix.length)}`);
    if (!file) return send(403, 'forbidden: outside the served folders');
    let st;
    try {
      st = statSync(file);
      if (st.isDirectory()) {
        if (!path.endsWith('/')) {
          res.writeHead(301, { ...headers, location: `${path}/` });
          return res.end();
        }
        file = under(base, realBase, `/${join(path.slice(prefix.length), 'index.html')}`);
        if (!file) return send(403, 'forbidden: outside the served folders');
        st = statSync(file);
      }
      if (!st.isFile()) return send(403, 'forbidden: not a file');
    } catch {
      return send(404, `not found: ${path}`);
    }
    if (active >= maxActive)
      return send(503, 'busy: too many files in flight; retry', { 'retry-after': '1' });
    if (log) console.log(`200 ${req.method} ${path}`);
    res.writeHead(200, {
      ...headers,
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': st.size,
    });
    if (req.method === 'HEAD') return res.end();
    active++;
    let released = false;
    const release = () => {
      if (!released) active--;
      released = true;
    };
    res.on('close', release);
    const stream = createReadStream(file);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  });
  server.on('clientError', onClientError);
  server.headersTimeout = 20_000;
  server.requestTimeout = 60_000;
  server.maxConnections = 4 * maxActive;
  return new Promise((ok, fail) => {
    server.once('error', (e) => {
      switch (e.code) {
        case 'EADDRINUSE':
          return fail(
            new ServeError(
              `port ${port} on ${host} is already in use (another server, perhaps an earlier npm run demo); pass --port N for another port, or --port 0 for any free one`,
            ),
          );
        case 'EACCES':
          return fail(
            new ServeError(
              `no permission to listen on port ${port} (ports below 1024 need root); pass --port 8080 or --port 0`,
            ),
          );
        case 'EADDRNOTAVAIL':
          return fail(
            new ServeError(`cannot listen on ${host}: not an address of this machine; pass --host 127.0.0.1`),
          );
        default:
          return fail(new ServeError(`cannot listen on ${host}:${port}: ${e.message}`));
      }
    });
    server.listen(port, host, () => {
      const p = server.address().port;
      ok({
        port: p,
        url: `http://${host === '127.0.0.1' || host === '::1' ? 'localhost' : host}:${p}`,
        close: () =>
          new Promise((done) => {
            server.close(() => done());
            server.closeAllConnections();
          }),
      });
    });
  });
}

/** The command line: options checked, errors as one line (exit 2: usage, 1: cannot serve). */
async function cli(argv) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        port: { type: 'string', default: '8080' },
        host: { type: 'string', default: '127.0.0.1' },
        model: { type: 'string', default: join(ROOT, 'models', 'mnist') },
        web: { type: 'string', default: join(ROOT, 'dist-web') },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (e) {
    console.error(`serve: ${e.message.split('\n')[0]}; see node scripts/serve.mjs --help`);
    return 2;
  }
  if (values.help) {
    console.log(
      [
        'usage: node scripts/serve.mjs [options]   (npm run demo -- [options])',
        '',
        'Serve the browser demo: the built page at /dist-web/ and one model folder at /model/, nothing else.',
        '',
        '  --port N       port (default 8080; 0: any free port, printed)',
        '  --host H       address to listen on (default 127.0.0.1)',
        '  --model DIR    model folder (config.json + model.safetensors; default models/mnist)',
        '  --web DIR      built page (default dist-web, from npm run build:web)',
      ].join('\n'),
    );
    return 0;
  }
  const port = Number(values.port);
  if (!/^\d+$/.test(values.port) || port > 65535) {
    console.error(`serve: --port ${JSON.stringify(values.port)}: expected 0..65535 (0: any free port)`);
    return 2;
  }
  try {
    const s = await startServer({ port, host: values.host, model: values.model, web: values.web, log: true });
    console.log(
      `serving the demo at ${s.url}/  (page: ${resolve(values.web)}, model: ${resolve(values.model)})`,
    );
    return undefined;
  } catch (e) {
    if (!(e instanceof ServeError)) throw e;
    console.error(`serve: ${e.message}`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  const code = await cli(process.argv.slice(2));
  if (code !== undefined) process.exitCode = code;
}
