// The README's pictures of the demo page: `npx tsx scripts/web-screenshots.ts [--out docs]` builds dist-web/,
// serves it with the demo server (cross-origin isolated: wasm on every core) and, in headless Chromium
// (Debian's /usr/bin/chromium, or CHROMIUM_PATH), draws 16 digits with the shipped MNIST model
// (DPM-Solver++(2M), 20 steps, seed 0) and trains the page's tiny default model for 60 steps, then saves
// the two sections as web-sample.png and web-train.png. It prints the page's own timing lines.

import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { buildWeb } from './build-web.mjs';
import { launchChromium } from './chromium.js';
import { startServer } from './serve.mjs';

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const outIdx = args.indexOf('--out');
  const out = resolve(outIdx >= 0 ? (args[outIdx + 1] ?? 'docs') : 'docs');
  mkdirSync(out, { recursive: true });
  await buildWeb();
  const server = await startServer();
  const browser = await launchChromium();
  try {
    const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
    await page.goto(`${server.url}/dist-web/?sampler=dpm%2B%2B2m&steps=20&n=16&seed=0`);
    await page.waitForFunction(() => window.ddpmTest !== undefined, undefined, { timeout: 60_000 });
    await page.waitForFunction(() => !(document.getElementById('sample') as HTMLButtonElement).disabled);
    await page.click('#sample');
    await page.waitForFunction(
      () => /^(Done|Stopped)|failed/.test(document.getElementById('status')!.textContent ?? ''),
      undefined,
      { timeout: 300_000 },
    );
    const text = (id: string) => page.evaluate((i) => document.getElementById(i)!.textContent ?? '', id);
    console.log(`sampling: ${await text('status')} ${await text('timing')}`);
    // From the drawing controls down to the progressive strip (Fig. 6).
    const top = await page.locator('#controls').boundingBox();
    const bottom = await page.locator('#progressFigure').boundingBox();
    if (!top || !bottom) throw new Error('the page has no #controls or #progressFigure');
    await page.screenshot({
      path: join(out, 'web-sample.png'),
      fullPage: true,
      clip: { x: 0, y: top.y, width: 1000, height: bottom.y + bottom.height - top.y + 8 },
    });

    await page.fill('#trainUntil', '60');
    await page.click('#trainStart');
    await page.waitForFunction(
      () => /^Done: step \d+/.test(document.getElementById('trainStatus')!.textContent ?? ''),
      undefined,
      { timeout: 600_000 },
    );
    console.log(`training: ${await text('trainStatus')} ${await text('trainStats')}`);
    await page.locator('#train').screenshot({ path: join(out, 'web-train.png') });
    console.log(`wrote ${join(out, 'web-sample.png')} and ${join(out, 'web-train.png')}`);
  } finally {
    await browser.close();
    await server.close();
  }
}

main().catch((e: unknown) => {
  console.error(`web-screenshots: ${e instanceof Error ? e.message : String(e)}`);
  process.exit(1);
});
