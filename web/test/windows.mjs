// Checks that pages opened side by side (lib.mjs newWindow) are each drawn: every page
// plays the same video file and counts its requestVideoFrameCallback calls against the
// frames the element presented. A page that is not drawn (a tab behind another in the
// same window) plays and presents every frame, but its frame callbacks come once a
// second, which starves a reader of the displayed frames (latency.mjs).
//
//   node windows.mjs '{"base":"http://127.0.0.1:8080","video":"/clip.mp4","pages":2,"seconds":8,"out":"result.json"}'
//
// The result: {"pages":[{"callbacks":N,"presented":N,"time":S}, ...]}, over the last
// seconds of playback. Exit code 0 when it measured, 2 when it could not.
import { writeFileSync } from 'node:fs';
import { launch, log, sleep } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const PAGES = cfg.pages ?? 2;
const SECONDS = cfg.seconds ?? 8;

// watch loads the harness page into page (as latency.mjs does: a page that navigated
// is one a tab in front can hide), plays the video in its element and counts its frame
// callbacks.
async function watch(page) {
  await page.goto(`${cfg.base}/__harness/harness.html`);
  await page.evaluate(async (src) => {
    const v = document.getElementById('video');
    v.src = src;
    window.counts = { callbacks: 0, presented: 0 };
    const onFrame = (now, meta) => {
      window.counts.callbacks++;
      window.counts.presented = meta.presentedFrames;
      v.requestVideoFrameCallback(onFrame);
    };
    v.requestVideoFrameCallback(onFrame);
    await v.play();
  }, cfg.base + cfg.video);
}

const counts = (page) => page.evaluate(() => ({ ...window.counts, time: document.getElementById('video').currentTime }));

async function main() {
  if (!cfg.base || !cfg.video) throw new Error('no "base" or "video" in the configuration');
  const browser = await launch(cfg.base);
  const out = { pages: [] };
  try {
    const pages = [];
    for (let i = 0; i < PAGES; i++) pages.push(await browser.newWindow());
    await Promise.all(pages.map(watch));
    await sleep(1000); // past the start
    const before = await Promise.all(pages.map(counts));
    await sleep(SECONDS * 1000);
    const after = await Promise.all(pages.map(counts));
    out.pages = after.map((a, i) => ({
      callbacks: a.callbacks - before[i].callbacks,
      presented: a.presented - before[i].presented,
      time: +(a.time - before[i].time).toFixed(2),
    }));
    for (const [i, p] of out.pages.entries()) log(`page ${i}: ${p.callbacks} frame callbacks, ${p.presented} frames presented in ${p.time}s of media`);
  } finally {
    await browser.close();
  }
  const json = JSON.stringify(out, null, 2);
  if (cfg.out) writeFileSync(cfg.out, json); else process.stdout.write(json + '\n');
  return 0;
}

main().then((code) => process.exit(code), (e) => {
  log('windows.mjs:', e.stack || e);
  process.exit(2);
});
