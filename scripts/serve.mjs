// A tiny static file server for the browser demo (`npm run demo`): serves the repository root (so
// /dist-web/ and /models/mnist/ are both reachable) with correct MIME types for .wasm and .mjs, and with
// the COOP/COEP headers that make the page cross-origin isolated (multi-threaded wasm).
// Usage: node scripts/serve.mjs [--port 8080] [--host 127.0.0.1]   (also imported by test/web.test.ts)
import { createReadStream, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

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

/** Resolve a URL path under a folder; null if it escapes it. */
function under(base, urlPath) {
  const p = resolve(base, `.${urlPath}`);
  return p === base || p.startsWith(base + sep) ? p : null;
}

/**
 * Serve `root`; `mounts` maps URL prefixes ('/x/') to other folders. port 0 picks a free one.
 * Resolves to { url, port, close() }.
 */
export function startServer({ root = ROOT, port = 0, host = '127.0.0.1', mounts = {}, log = false } = {}) {
  const bases = [
    ...Object.entries(mounts).map(([prefix, dir]) => [
      prefix.endsWith('/') ? prefix : `${prefix}/`,
      resolve(dir),
    ]),
    ['/', resolve(root)],
  ];
  const server = createServer((req, res) => {
    const send = (code, msg) => {
      res.writeHead(code, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(req.method === 'HEAD' ? undefined : `${msg}\n`);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(405, 'method not allowed');
    let path;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    } catch {
      return send(400, 'bad URL');
    }
    if (path.split('/').some((seg) => seg.startsWith('.'))) return send(403, 'forbidden'); // .git, .cache, ..
    if (path === '/') {
      res.writeHead(302, { location: '/dist-web/' });
      return res.end();
    }
    const [prefix, base] = bases.find(([pre]) => path.startsWith(pre));
    let file = under(base, `/${path.slice(prefix.length)}`);
    if (!file) return send(403, 'forbidden');
    let st;
    try {
      st = statSync(file);
      if (st.isDirectory()) {
        if (!path.endsWith('/')) {
          res.writeHead(301, { location: `${path}/` });
          return res.end();
        }
        file = join(file, 'index.html');
        st = statSync(file);
      }
    } catch {
      if (log) console.log(`404 ${path}`);
      return send(404, `not found: ${path}`);
    }
    res.writeHead(200, {
      'content-type': MIME[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': st.size,
      'cache-control': 'no-cache',
      'cross-origin-opener-policy': 'same-origin',
      'cross-origin-embedder-policy': 'require-corp',
      'cross-origin-resource-policy': 'same-origin',
    });
    if (log) console.log(`200 ${path}`);
    if (req.method === 'HEAD') return res.end();
    createReadStream(file).pipe(res);
  });
  return new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, () => {
      const p = server.address().port;
      ok({
        port: p,
        url: `http://${host === '127.0.0.1' || host === '::1' ? 'localhost' : host}:${p}`,
        close: () => new Promise((done) => server.close(() => done())),
      });
    });
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const arg = (name, def) => {
    const i = process.argv.indexOf(name);
    return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : def;
  };
  const s = await startServer({
    port: Number(arg('--port', '8080')),
    host: arg('--host', '127.0.0.1'),
    log: true,
  });
  console.log(`serving ${ROOT} at ${s.url}/  (demo: ${s.url}/dist-web/ , ?model=/path/to/model/folder/)`);
}
