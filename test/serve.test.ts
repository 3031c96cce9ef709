// The demo server (scripts/serve.mjs, `npm run demo`) with real HTTP requests on 127.0.0.1: it serves the
// built page and the chosen model folder and nothing else of the repository, refuses symbolic links out of
// them, sends the cross-origin isolation headers, bounds request sizes and files in flight, takes --port
// (0: any free port, printed) and says in one line when the port is busy.

import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MAX_URL, startServer } from '../scripts/serve.mjs';
import { ddpmIn, ROOT, startDdpm } from './ddpmProcess.js';

const SERVE = join(ROOT, 'scripts', 'serve.mjs');
const TMP = mkdtempSync(join(tmpdir(), 'ddpm-serve-'));
const WEB = join(TMP, 'web');
const MODEL = join(TMP, 'model');
const SECRET = join(TMP, 'secret.txt');
const BIG = 16 * 1024 * 1024;

interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One raw HTTP request (no URL normalisation on our side: the path goes out as written). */
function http(port: number, path: string, opts: { method?: string; body?: string } = {}): Promise<Reply> {
  return new Promise((ok, fail) => {
    const headers = opts.body === undefined ? {} : { 'content-length': Buffer.byteLength(opts.body) };
    const req = request({ host: '127.0.0.1', port, path, method: opts.method ?? 'GET', headers }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (d) => {
        body += d;
      });
      res.on('end', () => ok({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', fail);
    req.end(opts.body);
  });
}

/** Start scripts/serve.mjs ARGS; resolves with the child and the port it printed. */
function startServe(
  args: readonly string[],
): Promise<{ child: ChildProcess; port: number; out: () => string }> {
  const child = spawn(process.execPath, [SERVE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  return new Promise((ok, fail) => {
    const onData = (d: Buffer) => {
      out += d;
      const m = /serving the demo at http:\/\/localhost:(\d+)\//.exec(out);
      if (m) ok({ child, port: Number(m[1]), out: () => out });
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('close', (code) => fail(new Error(`serve exited ${code}: ${out}`)));
  });
}

/** Run scripts/serve.mjs ARGS to its exit. */
function runServe(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [SERVE, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((ok) =>
    child.on('close', (code) => {
      clearTimeout(timer);
      ok({ code, stdout, stderr });
    }),
  );
}

describe('demo server', () => {
  let server: { child: ChildProcess; port: number; out: () => string };
  before(async () => {
    mkdirSync(join(WEB, 'ort'), { recursive: true });
    mkdirSync(MODEL);
    writeFileSync(join(WEB, 'index.html'), '<!doctype html><title>demo</title>');
    writeFileSync(join(WEB, 'ort', 'x.wasm'), 'wasm');
    writeFileSync(join(WEB, 'big.bin'), Buffer.alloc(BIG));
    writeFileSync(join(MODEL, 'config.json'), '{"format":"ddpm-ts/model/v1"}');
    writeFileSync(SECRET, 'secret');
    symlinkSync(SECRET, join(WEB, 'leak.txt')); // a link out of the page folder
    symlinkSync(TMP, join(MODEL, 'up')); // a folder link out of the model folder
    symlinkSync(join(WEB, 'index.html'), join(WEB, 'same.html')); // a link that stays inside
    server = await startServe(['--port', '0', '--web', WEB, '--model', MODEL]);
  });
  after(() => {
    server?.child.kill('SIGTERM');
    rmSync(TMP, { recursive: true, force: true });
  });

  it('serves the page and the model folder with the cross-origin isolation headers', async () => {
    const root = await http(server.port, '/');
    assert.equal(root.status, 302);
    assert.equal(root.headers.location, '/dist-web/?model=/model/');
    for (const [path, type] of [
      ['/dist-web/', 'text/html'],
      ['/dist-web/ort/x.wasm', 'application/wasm'],
      ['/model/config.json', 'application/json'],
      ['/dist-web/same.html', 'text/html'],
    ] as const) {
      const r = await http(server.port, path);
      assert.equal(r.status, 200, path);
      assert.ok(String(r.headers['content-type']).startsWith(type), `${path}: ${r.headers['content-type']}`);
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', path);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', path);
    }
  });

  it('serves nothing else: not the repository, no dotfiles, no way out through .. or links', async () => {
    for (const path of [
      '/package.json',
      '/src/cli/main.ts',
      '/runs/',
      '/models/mnist/config.json',
      '/scripts/serve.mjs',
    ]) {
      const r = await http(server.port, path);
      assert.equal(r.status, 404, path);
    }
    // The URL's own .. (also as %2e%2e) resolves to /secret.txt, which is nowhere.
    for (const path of ['/dist-web/../secret.txt', '/dist-web/%2e%2e/secret.txt']) {
      assert.equal((await http(server.port, path)).status, 404, path);
    }
    for (const path of [
      '/dist-web/leak.txt',
      '/model/up/secret.txt',
      '/model/%2E%2E%2Fsecret.txt',
      '/dist-web/.hidden',
    ]) {
      const r = await http(server.port, path);
      assert.equal(r.status, 403, path);
      assert.doesNotMatch(r.body, /secret/, path);
    }
  });

  it('bounds request sizes: no bodies, no methods but GET and HEAD, no huge URLs or headers', async () => {
    assert.equal((await http(server.port, '/dist-web/', { method: 'POST', body: 'x' })).status, 405);
    assert.equal(
      (await http(server.port, '/dist-web/', { method: 'GET', body: 'x'.repeat(1000) })).status,
      413,
    );
    assert.equal((await http(server.port, `/dist-web/${'a'.repeat(MAX_URL)}`)).status, 414);
    const huge = await new Promise<number>((ok, fail) => {
      const req = request(
        {
          host: '127.0.0.1',
          port: server.port,
          path: '/dist-web/',
          headers: { 'x-big': 'b'.repeat(20_000) },
        },
        (res) => {
          res.resume();
          ok(res.statusCode!);
        },
      );
      req.on('error', fail);
      req.end();
    });
    assert.equal(huge, 431);
  });

  it('sends the cross-origin isolation headers with every response, errors and redirects included', async () => {
    const isolated = (r: { headers: Reply['headers'] }, what: string) => {
      assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', what);
      assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', what);
    };
    const cases: [string, { method?: string; body?: string }, number][] = [
      ['/', {}, 302],
      ['/dist-web/ort', {}, 301],
      ['/dist-web/nope.js', {}, 404],
      ['/package.json', {}, 404],
      ['/dist-web/leak.txt', {}, 403],
      ['/dist-web/%zz', {}, 400],
      ['/dist-web/', { method: 'POST', body: 'x' }, 405],
      ['/dist-web/', { method: 'GET', body: 'x' }, 413],
      [`/dist-web/${'a'.repeat(MAX_URL)}`, {}, 414],
      ['/dist-web/', { method: 'HEAD' }, 200],
    ];
    for (const [path, opts, status] of cases) {
      const r = await http(server.port, path, opts);
      assert.equal(r.status, status, `${opts.method ?? 'GET'} ${path.slice(0, 40)}`);
      isolated(r, `${status} ${path.slice(0, 40)}`);
    }
    // Refused by Node's parser before any handler runs (431: headers over the limit; 400: a malformed request).
    for (const [raw, status] of [
      [`GET /dist-web/ HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(20_000)}\r\n\r\n`, 431],
      ['GET /dist-web/ HTTP/1.1\r\nHost x\r\n\r\n', 400],
    ] as const) {
      const reply = await new Promise<string>((ok, fail) => {
        const sock = connect(server.port, '127.0.0.1', () => sock.end(raw));
        let text = '';
        sock.setEncoding('latin1');
        sock.on('data', (d) => {
          text += d;
        });
        sock.on('close', () => ok(text));
        sock.on('error', fail);
      });
      assert.match(reply, new RegExp(`^HTTP/1\\.1 ${status} `), reply.slice(0, 80));
      assert.match(reply, /\r\ncross-origin-opener-policy: same-origin\r\n/i, reply.slice(0, 300));
      assert.match(reply, /\r\ncross-origin-embedder-policy: require-corp\r\n/i, reply.slice(0, 300));
    }
    const s = await startServer({ web: WEB, model: MODEL, port: 0, maxActive: 0 });
    try {
      const busy = await http(s.port, '/dist-web/');
      assert.equal(busy.status, 503);
      isolated(busy, '503');
    } finally {
      await s.close();
    }
  });

  it('bounds the files in flight (503 beyond them) and serves again once they are done', async () => {
    const s = await startServer({ web: WEB, model: MODEL, port: 0, maxActive: 1 });
    try {
      // A client that does not read a 16 MB file keeps it in flight.
      const slow = await new Promise<{ destroy(): void }>((ok, fail) => {
        const req = request({ host: '127.0.0.1', port: s.port, path: '/dist-web/big.bin' }, (res) => {
          res.pause();
          ok(req);
        });
        req.on('error', () => {});
        req.on('timeout', fail);
        req.end();
      });
      const busy = await http(s.port, '/dist-web/');
      assert.equal(busy.status, 503);
      assert.equal(busy.headers['retry-after'], '1');
      slow.destroy();
      let again = 0;
      for (let i = 0; i < 50 && again !== 200; i++) {
        await new Promise((r) => setTimeout(r, 50));
        again = (await http(s.port, '/dist-web/')).status;
      }
      assert.equal(again, 200);
    } finally {
      await s.close();
    }
  });

  it('--port 0 prints the URL; a busy port is one clear line, not a stack trace', async () => {
    assert.match(server.out(), /serving the demo at http:\/\/localhost:\d+\//);
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await runServe(['--port', String(port), '--web', WEB, '--model', MODEL]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`port ${port} on 127.0.0.1 is already in use.*--port 0`));
      assert.doesNotMatch(r.stderr, /\n\s+at /);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    } finally {
      blocker.close();
    }
    const bad = await runServe(['--port', '80x']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--port "80x": expected 0\.\.65535/);
    const missing = await runServe(['--port', '0', '--web', WEB, '--model', join(TMP, 'nope')]);
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /model folder .*nope does not exist; pass --model FOLDER/);
  });
});

describe('ddpm serve', () => {
  const ddpm = ddpmIn(ROOT);
  const DIR = mkdtempSync(join(tmpdir(), 'ddpm-serve-cli-'));
  const web = join(DIR, 'web');
  const model = join(DIR, 'model');
  before(() => {
    mkdirSync(web);
    mkdirSync(model);
    writeFileSync(join(web, 'index.html'), '<!doctype html><title>demo</title>');
    writeFileSync(join(model, 'config.json'), '{"format":"ddpm-ts/model/v1"}');
  });
  after(() => rmSync(DIR, { recursive: true, force: true }));

  it('is a ddpm command: listed, -h, did you mean', async () => {
    const top = await ddpm(['--help']);
    assert.match(top.stdout, /\n {2}serve +serve the browser demo/);
    const help = await ddpm(['serve', '-h']);
    assert.equal(help.code, 0, help.stderr);
    for (const opt of ['--model', '--port', '--host', '--web', '-h, --help'])
      assert.ok(help.stdout.includes(opt), `${opt} in:\n${help.stdout}`);
    assert.match(help.stdout, /0: any free port/);
    const typo = await ddpm(['serv']);
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /unknown command 'serv'.*did you mean 'serve'/);
    const opt = await ddpm(['serve', '--prot', '0']);
    assert.equal(opt.code, 2);
    assert.match(opt.stderr, /Unknown option '--prot'.*did you mean '--port'/);
    const bad = await ddpm(['serve', '--port', '70000']);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--port 70000: expected 0\.\.65535/);
  });

  it('--port 0 serves the page and the model over HTTP on 127.0.0.1, cross-origin isolated', async () => {
    const s = startDdpm(['serve', '--port', '0', '--web', web, '--model', model], { cwd: DIR });
    let out = '';
    s.child.stdout!.on('data', (d) => {
      out += d;
    });
    try {
      const port = await new Promise<number>((ok, fail) => {
        const timer = setTimeout(() => fail(new Error(`no URL printed: ${out}${s.stderr()}`)), 30_000);
        const poll = setInterval(() => {
          const m = /serving the demo at http:\/\/localhost:(\d+)\//.exec(out);
          if (m) {
            clearInterval(poll);
            clearTimeout(timer);
            ok(Number(m[1]));
          }
        }, 50);
        s.done.then((r) => fail(new Error(`ddpm serve exited ${r.code}: ${r.stderr}`)));
      });
      for (const [path, status] of [
        ['/dist-web/', 200],
        ['/model/config.json', 200],
        ['/package.json', 404],
      ] as const) {
        const r = await http(port, path);
        assert.equal(r.status, status, path);
        assert.equal(r.headers['cross-origin-opener-policy'], 'same-origin', path);
        assert.equal(r.headers['cross-origin-embedder-policy'], 'require-corp', path);
      }
      assert.match((await http(port, '/model/config.json')).body, /ddpm-ts\/model\/v1/);
    } finally {
      s.child.kill('SIGTERM');
      await s.done;
    }
  });

  it('a busy port or a missing folder is one line naming what to do, exit 1', async () => {
    const blocker = createServer();
    await new Promise<void>((ok) => blocker.listen(0, '127.0.0.1', ok));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await ddpm(['serve', '--port', String(port), '--web', web, '--model', model]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        new RegExp(`^ddpm serve: port ${port} on 127.0.0.1 is already in use.*--port 0`),
      );
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    } finally {
      blocker.close();
    }
    const m = await ddpm(['serve', '--port', '0', '--web', web, '--model', join(DIR, 'nope')]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /model folder .*nope does not exist; pass --model FOLDER/);
    const w = await ddpm(['serve', '--port', '0', '--web', join(DIR, 'noweb'), '--model', model]);
    assert.equal(w.code, 1);
    assert.match(w.stderr, /page folder .*noweb does not exist; build it with npm run build:web/);
  });
});
