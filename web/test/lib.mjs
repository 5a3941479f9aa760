// What players.mjs and preview.mjs share: Debian's Chromium driven by playwright-core,
// the harness served on the daemon's origin, and a guard that fails any request that
// would leave this machine.
import { chromium } from 'playwright-core';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

export const here = dirname(fileURLToPath(import.meta.url));

// Chromium's own background traffic is refused by a closed network, and a browser
// download is never wanted: the Debian package at /usr/bin/chromium is driven as it is.
export const chromiumArgs = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
  // Pages play side by side and only one is in front: without these, Chromium throttles
  // the others' timers and video frame callbacks to once a second, which starves a
  // player's scheduling (stalls) and a page's measurements.
  '--disable-background-timer-throttling',
  '--disable-backgrounding-occluded-windows',
  '--disable-renderer-backgrounding',
];

const types = { '.html': 'text/html', '.js': 'text/javascript', '.css': 'text/css', '.map': 'application/json' };

// launch starts Chromium with a fresh profile folder. Requests to the harness path of
// base are answered from this folder; requests to any other host than base's are
// aborted and listed in blocked.
export async function launch(base) {
  const profile = mkdtempSync(join(tmpdir(), 'transcoderd-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: chromiumArgs,
    viewport: { width: 1280, height: 900 },
    handleSIGINT: false,
    handleSIGTERM: false,
  });
  // A test that runs out of time gets SIGTERM: close the browser (it runs in a process
  // group of its own, so it would outlive node) and remove its profile, then exit.
  for (const sig of ['SIGINT', 'SIGTERM']) {
    process.once(sig, async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
      process.exit(1);
    });
  }
  const origin = new URL(base).origin;
  const blocked = [];
  let opening = Promise.resolve();
  await context.route(() => true, async (route) => {
    const url = new URL(route.request().url());
    if (url.origin !== origin) {
      if (url.protocol !== 'data:' && url.protocol !== 'blob:') {
        blocked.push(route.request().method() + ' ' + url.href);
        return route.abort('blockedbyclient');
      }
      return route.continue();
    }
    if (!url.pathname.startsWith('/__harness/')) return route.continue();
    const file = resolve(here, decodeURIComponent(url.pathname.slice('/__harness/'.length)));
    if (!file.startsWith(here + sep)) return route.fulfill({ status: 404, body: 'outside the harness' });
    try {
      return route.fulfill({ status: 200, body: readFileSync(file), contentType: types[extname(file)] || 'application/octet-stream' });
    } catch (e) {
      return route.fulfill({ status: 404, body: String(e) });
    }
  });
  return {
    context,
    blocked,
    // newWindow opens a page in a browser window of its own, for pages that play side
    // by side and are measured frame by frame. context.newPage() opens a tab in the one
    // window, and only the front tab is drawn: a video in a tab behind it still plays
    // and presents every frame, but its requestVideoFrameCallback fires once a second
    // (the glass-to-glass reader saw 20 frames of 600, the flags above do not change it).
    // Windows open one at a time, so that each call gets the page it opened.
    newWindow() {
      const open = async () => {
        const opener = context.pages()[0] || await context.newPage();
        const cdp = await context.newCDPSession(opener);
        try {
          const [page] = await Promise.all([
            context.waitForEvent('page'),
            cdp.send('Target.createTarget', { url: 'about:blank', newWindow: true }),
          ]);
          return page;
        } finally {
          await cdp.detach().catch(() => {});
        }
      };
      const page = opening.then(open);
      opening = page.catch(() => {});
      return page;
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// log writes a progress line to stderr, which the Go test shows when it fails.
const began = Date.now();
export function log(...args) {
  process.stderr.write(`[${((Date.now() - began) / 1000).toFixed(1)}s] ${args.join(' ')}\n`);
}

export async function api(base, method, path, body) {
  const res = await fetch(base + path, {
    method,
    headers: body ? { 'Content-Type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await res.text();
  let data;
  try { data = JSON.parse(text); } catch { data = text; }
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status}: ${text.slice(0, 300)}`);
  return data;
}
