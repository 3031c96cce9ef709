// A one-line progress bar on stderr (redrawn in place on a terminal; a line every few seconds otherwise).

export function formatDuration(sec: number): string {
  if (!Number.isFinite(sec)) return '--:--';
  const s = Math.max(0, Math.round(sec));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(r).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

export class ProgressBar {
  private lastPrint = 0;
  private readonly tty = process.stderr.isTTY === true;
  constructor(private readonly label: string) {}

  update(done: number, total: number, extra = '', force = false): void {
    const now = Date.now();
    if (!force && now - this.lastPrint < (this.tty ? 100 : 5000) && done < total) return;
    this.lastPrint = now;
    const width = 24;
    const filled = Math.round((width * done) / Math.max(total, 1));
    const bar = `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`;
    const line = `${this.label} ${bar} ${done}/${total} ${extra}`;
    if (this.tty)
      process.stderr.write(`\r${line.padEnd(process.stderr.columns ? process.stderr.columns - 1 : 100)}`);
    else process.stderr.write(`${line}\n`);
  }

  /** Print a message above the bar. */
  log(message: string): void {
    process.stderr.write(this.tty ? `\r\x1b[K${message}\n` : `${message}\n`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\n');
  }
}
