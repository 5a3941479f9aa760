// Measures glass-to-glass live latency and stalls of several live streams (systems) in
// headless Chromium with hls.js (the HLS master playlist), dash.js and Shaka (the MPD),
// each with its default settings. The streams' source burns its wall clock into every
// frame (internal/testmedia/clock.go); the harness reads it off each displayed frame
// (clock.js) and takes latency = time shown - time made.
//
//   node latency.mjs '{"base":"http://127.0.0.1:8080","systems":[{"name":"transcoderd",
//     "hls":"/out/live/master.m3u8","mpd":"/out/live/manifest.mpd"}, ...],"out":"result.json"}'
//
// Keys: base (the origin serving every stream and the harness), systems (name, hls and
// mpd paths, and job: the id of a transcoderd job, for preview), preview (also play
// each system that has a job in transcoderd's preview page, with hls.js and then
// dash.js as the page sets them up), settle and measure (seconds after the first frame
// before the measurement, and the measurement's length; 10 and 20 by default), out
// (where the JSON result goes).
// One player at a time plays every system at once, so that the systems are measured side
// by side, under the same load. Exit code 0 when every session measured, 1 when one did
// not, 2 when the run itself could not happen.
import { writeFileSync } from 'node:fs';
import { launch, log, sleep } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const SETTLE = (cfg.settle ?? 10) * 1000;
const MEASURE = (cfg.measure ?? 20) * 1000;
const START_TIMEOUT = 45e3;
const players = [['hls.js', 'hls'], ['dash.js', 'mpd'], ['shaka', 'mpd']];

const median = (xs) => {
  if (!xs.length) return null;
  const s = xs.slice().sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

// harnessPage plays url with player in the harness page, with the player's defaults.
async function harnessPage(page, player, url) {
  await page.goto(`${cfg.base}/__harness/harness.html`);
  return page.evaluate(([p, u]) => window.harness.start(p, u, { glass: true }), [player, url]);
}

// previewPage plays system.job in transcoderd's preview page with its own player settings
// (engine hls: hls.js, dash: dash.js), and loads the harness's reader into it to watch
// the page's video.
async function previewPage(page, player, system) {
  await page.goto(`${cfg.base}/`);
  await page.selectOption('#engine', player === 'hls.js' ? 'hls' : 'dash');
  await page.click(`tr[data-id="${system.job}"] button.play`);
  await page.addScriptTag({ url: `${cfg.base}/__harness/clock.js` });
  await page.addScriptTag({ url: `${cfg.base}/__harness/harness.js` });
  await page.evaluate(() => window.harness.watch());
  return page.evaluate(() => (window.Hls ? Hls.version : '') + (window.dashjs ? ' ' + dashjs.Version : ''));
}

// measure plays one system's stream with one player and returns its figures; with
// preview, in transcoderd's preview page rather than the harness.
async function measure(browser, system, player, kind, preview = false) {
  const url = cfg.base + system[kind];
  const r = { system: system.name, player, page: preview ? 'preview' : '', url, ok: false };
  const page = await browser.newWindow(); // each system's page is drawn, not a tab behind the other
  try {
    r.version = preview ? await previewPage(page, player, system) : await harnessPage(page, player, url);
    const began = Date.now();
    for (;;) {
      const s = await page.evaluate(() => window.harness.state());
      if (s.fatal.length) throw new Error(`fatal player error: ${s.fatal.join(' | ')}`);
      if (s.time > 0.2 && !s.paused && s.readyState >= 2) break;
      if (Date.now() - began > START_TIMEOUT) throw new Error(`no playback after ${START_TIMEOUT / 1000}s`);
      await sleep(200);
    }
    r.startup = (Date.now() - began) / 1000;
    await sleep(SETTLE);
    const from = Date.now();
    const g0 = await page.evaluate(() => window.harness.glass(Infinity));
    await sleep(MEASURE);
    const g = await page.evaluate((t) => window.harness.glass(t), from);
    const s = await page.evaluate(() => window.harness.state());
    if (s.fatal.length) throw new Error(`fatal player error: ${s.fatal.join(' | ')}`);
    const lat = g.samples.map((x) => x[1] / 1000);
    Object.assign(r, {
      samples: lat.length, unreadable: g.unreadable, stalls: g.stalls, stallSeconds: +g.stallSeconds.toFixed(2),
      median: median(lat), min: lat.length ? Math.min(...lat) : null, max: lat.length ? Math.max(...lat) : null,
      heights: [...new Set(g.samples.map((x) => x[2]))], playerLatency: s.latency, playerTarget: s.targetLatency,
      notes: s.notes, warnings: s.warningCount,
      // What the reader saw over the measurement: frame callbacks, frames presented,
      // callbacks skipped (paused, no picture), frames decoded and dropped by the media
      // element, and how far the media time moved.
      frames: g.frames - g0.frames, presented: g.presented - g0.presented, skipped: g.skipped - g0.skipped,
      decoded: g.decoded - g0.decoded, dropped: g.dropped - g0.dropped, played: +(g.mediaTime - g0.mediaTime).toFixed(2),
      visibility: g.visibility, unreadableBy: g.unreadableBy,
    });
    r.unreadable = g.unreadable - g0.unreadable;
    r.ok = lat.length > 0;
    if (!r.ok) r.error = `no frame read its clock (${g.unreadable} did not read)`;
    log(system.name, player + (preview ? ' (preview page)' : ''), `median ${r.median}s over ${r.samples} frames (${r.unreadable} unreadable), ${r.stalls} stalls (${r.stallSeconds}s), heights ${r.heights};`,
      `callbacks ${r.frames}, presented ${r.presented}, skipped ${r.skipped}, decoded ${r.decoded}, dropped ${r.dropped}, played ${r.played}s, ${r.visibility}`);
  } catch (e) {
    r.error = e.message;
    log(system.name, player + (preview ? ' (preview page)' : ''), 'ERROR:', e.message);
  } finally {
    await page.close().catch(() => {});
  }
  return r;
}

async function main() {
  if (!cfg.base || !cfg.systems) throw new Error('no "base" or "systems" in the configuration');
  const browser = await launch(cfg.base);
  const out = { sessions: [], blocked: browser.blocked };
  try {
    for (const [player, kind] of players) {
      out.sessions.push(...await Promise.all(cfg.systems.map((s) => measure(browser, s, player, kind))));
    }
    // The preview page's hls.js and dash.js, each on its own: it plays transcoderd's jobs.
    for (const system of cfg.preview ? cfg.systems.filter((s) => s.job) : []) {
      for (const [player, kind] of players.slice(0, 2)) out.sessions.push(await measure(browser, system, player, kind, true));
    }
  } finally {
    await browser.close();
  }
  const json = JSON.stringify(out, null, 2);
  if (cfg.out) writeFileSync(cfg.out, json); else process.stdout.write(json + '\n');
  return out.sessions.every((s) => s.ok) ? 0 : 1;
}

main().then((code) => process.exit(code), (e) => {
  log('latency.mjs:', e.stack || e);
  process.exit(2);
});
