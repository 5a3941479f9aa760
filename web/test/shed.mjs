// Plays a live job with hls.js (master.m3u8), dash.js and Shaka (manifest.mpd), all left
// on automatic rung choice, and checks that viewers keep watching when the job's ffmpeg
// is restarted under them: because its ladder sheds the top rung they are on
// (video.shed_top_rung), or, with "restart": true, because it was killed, or, with
// "move": true, because the job moved to another box of a fleet (its box was killed).
//
//   node shed.mjs '{"base":"http://127.0.0.1:8080","job":"shed","ready":"/tmp/x","out":"result.json"}'
//
// Once every player shows the top rung, the script creates the file named by "ready":
// the Go test then takes CPU from the job's ffmpeg until it falls behind and sheds (or
// kills it). The script waits for the job to list the rung as shed and for the master
// to follow (or for the job to run again after a restart), then each player must play
// on for PLAY_AFTER seconds, with no fatal error, on a rung below the shed one. Exit code
// and result file as in players.mjs; the Go test decides which failures are known
// problems.
//
// Debugging aids, from the environment: SHED_TRACE=dir saves MPD snapshots, player traces
// and console logs; SHED_DASH_SETTINGS='{"streaming":{...}}' hands dash.js settings to
// updateSettings (for example {"streaming":{"gaps":{"enableStallFix":true}}}), to see what
// dash.js does past its "stuck inside its buffer" stall.
import { appendFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { api, launch, log, sleep } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const base = cfg.base;
const PLAY_AFTER = 8;        // seconds each player must play after the shed
const TOP_TIMEOUT = 40e3;    // to reach the top rung on automatic choice
const SHED_TIMEOUT = 150e3;  // from ready to the job listing the rung as shed
const AFTER_TIMEOUT = 60e3;  // from the shed to PLAY_AFTER seconds played (dash.js waits out the gap first)

const result = { sessions: [], blocked: [], seconds: 0 };
const stuckInBuffer = 'stuck inside its buffer';
const event = cfg.move ? 'move' : cfg.restart ? 'restart' : 'shed';
const anyRung = cfg.restart || cfg.move; // not a shed: any rung will do after it
const began = Date.now();
const traceDir = process.env.SHED_TRACE; // a folder for MPD snapshots, player traces and console logs
const dashSettings = process.env.SHED_DASH_SETTINGS ? JSON.parse(process.env.SHED_DASH_SETTINGS) : null;
if (traceDir) mkdirSync(traceDir, { recursive: true });

async function main() {
  const job = await api(base, 'GET', `/v1/jobs/${cfg.job}`);
  const video = job.renditions.filter((r) => r.kind === 'video');
  const top = Math.max(...video.map((r) => r.height));
  const browser = await launch(base);
  const sessions = [];
  try {
    for (const [player, manifest] of [['hls.js', 'master.m3u8'], ['dash.js', 'manifest.mpd'], ['shaka', 'manifest.mpd']]) {
      const page = await browser.context.newPage();
      const r = { player, manifest, kind: 'live', url: `${base}/out/${job.id}/${manifest}`, ok: true, steps: [], httpErrors: [] };
      page.on('response', (res) => { if (res.status() >= 400 && r.httpErrors.length < 20) r.httpErrors.push(`${res.status()} ${res.url()}`); });
      if (traceDir) page.on('console', (m) => appendFileSync(join(traceDir, `${player}.console`), `${((Date.now() - began) / 1000).toFixed(1)} ${m.type()} ${m.text()}\n`));
      await page.goto(`${base}/__harness/harness.html`);
      r.version = await page.evaluate(([p, u, debug, dashSettings]) => window.harness.start(p, u, { debug, dashSettings }),
        [player, r.url, !!traceDir, dashSettings]);
      sessions.push({ page, r });
      result.sessions.push(r);
    }
    const state = (s) => s.page.evaluate(() => window.harness.state());
    const step = (s, name, ok, detail) => {
      s.r.steps.push({ name, ok, detail });
      if (!ok) s.r.ok = false;
      log(s.r.player, ok ? 'ok:' : 'FAILED:', name, detail);
    };
    const until = async (s, what, cond, timeout) => {
      const deadline = Date.now() + timeout;
      for (;;) {
        const st = await state(s);
        if (st.fatal.length) throw new Error(`fatal player error while waiting for ${what}: ${st.fatal.join(' | ')}`);
        if (cond(st)) return st;
        if (Date.now() > deadline) {
          s.r.manifestAtFailure = await fetch(s.r.url).then((res) => res.text()).catch((e) => String(e));
          throw new Error(`no ${what} in ${timeout / 1000}s: time ${st.time.toFixed(2)}, ${st.width}x${st.height}, paused ${st.paused}, ` +
            `buffered ${JSON.stringify(st.buffered.map((r) => r.map((x) => +x.toFixed(2))))}, seekable ${JSON.stringify(st.seekable.map((r) => r.map((x) => +x.toFixed(2))))}` +
            (st.warningCount ? `; ${st.warningCount} recoverable errors, last: ${st.warnings.join(' | ')}` : ''));
        }
        await sleep(250);
      }
    };

    for (const s of sessions) {
      try {
        const st = await until(s, `frames of the top rung (${top}p)`, (st) => st.height === top && st.time > 1 && !st.paused, TOP_TIMEOUT);
        step(s, 'plays the top rung', true, `${st.width}x${st.height} at ${st.time.toFixed(2)}s`);
      } catch (e) {
        step(s, 'plays the top rung', false, e.message);
      }
    }
    if (!sessions.every((s) => s.r.ok)) return;
    if (traceDir) {
      let n = 0;
      setInterval(async () => {
        const at = ((Date.now() - began) / 1000).toFixed(1);
        const mpd = await fetch(`${base}/out/${job.id}/manifest.mpd`).then((res) => res.text()).catch(() => '');
        writeFileSync(join(traceDir, `mpd-${String(n++).padStart(4, '0')}-${at}.mpd`), mpd);
        for (const s of sessions) {
          const st = await state(s).catch(() => null);
          if (st) appendFileSync(join(traceDir, `${s.r.player}.trace`), JSON.stringify({ at, time: st.time, h: st.height, paused: st.paused, buffered: st.buffered, seekable: st.seekable, notes: st.notes.slice(-3) }) + '\n');
        }
      }, 1000).unref();
    }
    writeFileSync(cfg.ready, 'ready');
    log(`ready: the test now ${cfg.move ? 'kills the job\'s box' : cfg.restart ? 'kills the job\'s ffmpeg' : 'takes CPU from the job'}`);

    // The job sheds (or, with cfg.restart, its ffmpeg is killed and started again); the
    // new run's manifests follow.
    const deadline = Date.now() + SHED_TIMEOUT;
    let shedAt = 0;
    const restarts = job.restarts;
    for (;;) {
      let j;
      try {
        j = await api(base, 'GET', `/v1/jobs/${job.id}`);
      } catch (err) {
        // While the fleet fails over, its store can answer late: the API says 503 or
        // 504 until a new leader is elected. The players are what this test watches.
        if (!cfg.move || !/HTTP 50[34]/.test(String(err)) || Date.now() > deadline) throw err;
        log('api during the failover:', String(err).split('\n')[0]);
        await sleep(500);
        continue;
      }
      if (cfg.move && j.box && j.box !== job.box && j.state === 'running') {
        shedAt = Date.now();
        log('moved: from box', job.box, 'to box', j.box);
        break;
      }
      if (cfg.restart && j.restarts > restarts && j.state === 'running') {
        shedAt = Date.now();
        log('restarted: restarts', j.restarts);
        break;
      }
      if (!cfg.restart && j.shed && j.shed.length) {
        const master = await fetch(`${base}/out/${job.id}/master.m3u8`).then((res) => res.text());
        if (!master.includes(`${j.shed[0]}/`)) {
          shedAt = Date.now();
          log('shed', j.shed.join(','), `after ${((Date.now() - began) / 1000).toFixed(1)}s; master no longer lists it`);
          break;
        }
      }
      if (Date.now() > deadline) {
        for (const s of sessions) step(s, 'job sheds its top rung', false, `not shed in ${SHED_TIMEOUT / 1000}s: behind ${j.behind}, speed ${j.progress.speed}`);
        return;
      }
      await sleep(500);
    }
    result.shedSeconds = (shedAt - began) / 1000;

    for (const s of sessions) {
      try {
        const from = (await state(s)).time;
        const st = await until(s, `${PLAY_AFTER}s of playback after the ${anyRung ? event : `shed, below ${top}p`}`,
          (st) => st.time >= from + PLAY_AFTER && !st.paused && st.height > 0 && (anyRung || st.height < top), AFTER_TIMEOUT);
        step(s, `plays on after the ${event}`, true, `${(st.time - from).toFixed(2)}s more, now ${st.width}x${st.height}, ` +
          `${st.warningCount} recoverable errors${st.warnings.length ? ` (last: ${st.warnings.join(' | ')})` : ''}`);
      } catch (e) {
        // A player whose playhead does not move although its buffer goes on (by more
        // than dash.js's gap threshold of 0.3 s) is stuck in the media element, not
        // waiting for anything the server has yet to send: say so, for the Go test to
        // tell this failure from the others.
        const before = await state(s);
        await sleep(3000);
        const st = await state(s);
        const stuck = st.time === before.time && !st.paused && st.buffered.some(([a, b]) => a <= st.time && b - st.time > 0.3);
        step(s, `plays on after the ${event}`, false, (stuck ? `${stuckInBuffer}; ` : '') + e.message);
      }
    }
  } finally {
    result.blocked = browser.blocked;
    await browser.close();
  }
}

let code = 0;
try {
  await main();
  if (!result.sessions.length || !result.sessions.every((s) => s.ok) || result.blocked.length) code = 1;
} catch (e) {
  result.error = `${e.name}: ${e.message}`;
  log('error:', result.error);
  code = 2;
}
result.seconds = (Date.now() - began) / 1000;
const text = JSON.stringify(result, null, 2);
if (cfg.out) writeFileSync(cfg.out, text); else process.stdout.write(text + '\n');
process.exit(code);
