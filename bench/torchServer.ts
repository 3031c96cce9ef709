// Client of the PyTorch reference benchmark server (reference/torch_server.sh -> torch_server.py):
// one JSON command per line on its stdin, one JSON answer per line on its stdout. Its stderr is kept
// (the last lines) to explain a failure.

import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const SCRIPT = join(REPO_ROOT, 'reference', 'torch_server.sh');
const OPENBLAS_DIR = '/usr/lib/x86_64-linux-gnu/openblas-pthread';
export const INSTALL_HINT = 'apt-get install -y python3-torch libopenblas0-pthread';

export type Answer = { ok: boolean; error?: string } & Record<string, unknown>;

/**
 * PyTorch's intra-op (OpenMP) threads and OpenBLAS's own pool. Both default to the core count, and on top of
 * each other they oversubscribe the cores: the harness picks the pair by measurement (bench/index.ts).
 */
export interface TorchThreads {
  readonly torch: number;
  readonly blas: number;
}

export const threadsLabel = (t: TorchThreads) => `torch ${t.torch} + OpenBLAS ${t.blas}`;

/** The server could not start or is not usable; the message says what to install. */
export class TorchUnavailable extends Error {}

export class TorchServer {
  private readonly proc: ChildProcessWithoutNullStreams;
  private readonly waiting: { resolve: (a: Answer) => void; reject: (e: Error) => void }[] = [];
  private stderrTail: string[] = [];
  private exited: string | null = null;

  private constructor(threads: TorchThreads) {
    this.proc = spawn('/bin/sh', [SCRIPT], {
      cwd: REPO_ROOT,
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        TORCH_THREADS: String(threads.torch),
        OMP_NUM_THREADS: String(threads.torch),
        OPENBLAS_NUM_THREADS: String(threads.blas),
      },
    });
    createInterface({ input: this.proc.stdout }).on('line', (line) => {
      const w = this.waiting.shift();
      if (!w) return;
      try {
        w.resolve(JSON.parse(line) as Answer);
      } catch {
        w.reject(new Error(`torch server: not a JSON answer: ${line.slice(0, 200)}`));
      }
    });
    createInterface({ input: this.proc.stderr }).on('line', (line) => {
      this.stderrTail.push(line);
      if (this.stderrTail.length > 40) this.stderrTail = this.stderrTail.slice(-20);
    });
    const fail = (why: string) => {
      this.exited = why;
      for (const w of this.waiting.splice(0)) w.reject(new Error(`torch server ${why}\n${this.stderr()}`));
    };
    this.proc.on('error', (e) => fail(`could not be started: ${e.message}`));
    this.proc.on('close', (code, signal) => fail(`exited (code ${code}, signal ${signal})`));
    this.proc.stdin.on('error', () => {}); // a dead server shows up as 'exit' above
  }

  /** Start the server with these thread settings and check that torch imports (the `info` command). */
  static async start(
    threads: TorchThreads = { torch: 2, blas: 1 },
  ): Promise<{ server: TorchServer; info: Answer }> {
    if (!existsSync('/usr/bin/python3')) {
      throw new TorchUnavailable(`/usr/bin/python3 not found: install it with \`${INSTALL_HINT}\``);
    }
    if (!existsSync(OPENBLAS_DIR)) {
      throw new TorchUnavailable(
        `${OPENBLAS_DIR} not found: the reference must run on OpenBLAS (pthreads); \`${INSTALL_HINT}\``,
      );
    }
    const server = new TorchServer(threads);
    try {
      const info = await server.request({ cmd: 'info' });
      return { server, info };
    } catch (e) {
      server.close();
      const msg = (e as Error).message;
      const hint = /No module named 'torch'|ModuleNotFoundError|ImportError/.test(msg)
        ? 'python3-torch is not installed'
        : 'the PyTorch reference server did not start';
      throw new TorchUnavailable(`${hint}: install with \`${INSTALL_HINT}\`\n${msg}`);
    }
  }

  stderr(): string {
    return this.stderrTail.map((l) => `  | ${l}`).join('\n');
  }

  /** Send one command; resolves with the answer, rejects if it says ok: false or the server died. */
  request(msg: Record<string, unknown>): Promise<Answer> {
    if (this.exited) return Promise.reject(new Error(`torch server ${this.exited}\n${this.stderr()}`));
    return new Promise<Answer>((resolve, reject) => {
      this.waiting.push({
        resolve: (a) =>
          a.ok ? resolve(a) : reject(new Error(`torch server: ${JSON.stringify(msg)} -> ${a.error}`)),
        reject,
      });
      this.proc.stdin.write(`${JSON.stringify(msg)}\n`);
    });
  }

  /** Ask the server to quit (it also exits when its stdin closes); kills it if it does not within 5 s. */
  async quit(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((r) => this.proc.once('close', () => r()));
    this.proc.stdin.end(`${JSON.stringify({ cmd: 'quit' })}\n`);
    const timer = setTimeout(() => this.close(), 5000);
    await done;
    clearTimeout(timer);
  }

  close(): void {
    if (!this.exited) this.proc.kill('SIGTERM');
  }
}
