// Debian's Chromium (or CHROMIUM_PATH) headless through playwright-core, as the browser tests, the web bench
// and the README's screenshots start it: no sandbox (root), WebGPU allowed, no background network traffic
// (this machine's network is closed), never `playwright install`.

import { existsSync } from 'node:fs';
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Why Chromium cannot be started here (with what to do), or false when it can. */
export const noChromium: string | false = existsSync(CHROMIUM)
  ? false
  : `no Chromium at ${CHROMIUM} (install it: apt-get update && apt-get install -y chromium; or set CHROMIUM_PATH)`;

export function launchChromium(): Promise<Browser> {
  if (noChromium) return Promise.reject(new Error(noChromium));
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--enable-unsafe-webgpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--no-first-run',
    ],
    headless: true,
  });
}
