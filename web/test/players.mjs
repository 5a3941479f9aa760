// Plays a live job and a VOD job of a running transcoderd in headless Chromium with
// hls.js (master.m3u8), dash.js (manifest.mpd) and Shaka (both), and checks what a
// viewer would notice: playback starts and goes on, every rung is listed and plays when
// forced, live latency stays small, seeking works, and a stopped live stream ends.
//
//   node players.mjs '{"base":"http://127.0.0.1:8080","live":"live","vod":"vod","out":"result.json"}'
//
// Keys: base (the daemon), live and vod (job ids; either may be left out), langs (ids of
// jobs with audio in several languages, live or finished: each player lists the
// languages and switches to the second and back), out (where the JSON result goes;
// stdout when empty), only (optional list of "player manifest" names to run, e.g.
// ["hls.js master.m3u8"]), clips (clips of recording jobs, as POST /v1/jobs/{id}/clips
// answered them, each with its "job" and its "gap": seconds of outage inside it, which
// an HLS player's timeline leaves out; each clip is played in every player from start
// to end, see runClip). The live job is stopped (DELETE /v1/jobs/{id}) once every
// live session is ready to check the end. The exit code is 0 when every check
// passed, 1 when one failed, 2 when the run itself could not happen.
import { writeFileSync } from 'node:fs';
import { api, launch, log, sleep } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const base = cfg.base;

const combos = [
  ['hls.js', 'master.m3u8'],
  ['dash.js', 'manifest.mpd'],
  ['shaka', 'master.m3u8'],
  ['shaka', 'manifest.mpd'],
];

// Limits. Segment durations come from the job's ladder.
const PLAY_SECONDS = 10;     // each session plays at least this much before anything else
const SWITCH_PLAY = 1.5;     // seconds played after each forced switch
const START_TIMEOUT = 30e3;  // load to first frame moving
const STEP_TIMEOUT = 25e3;   // any single step
const END_TIMEOUT = 45e3;    // live stop to 'ended'
const SEEK_BACK = 30;        // seconds behind the live playhead
const END_SLACK = 0.15;      // how close to the end a stopped player has reached it (see ends)
const DURATION_SLACK = 0.3;  // a clip's duration, as players see it, past its segments' (audio ends later than video)

// The players whose own live latency figure is checked: hls.js (latency) and dash.js
// (getCurrentLiveLatency()). A player's latency is its own target (3 segments for hls.js,
// the MPD's suggestedPresentationDelay for dash.js), plus its start-up (no player makes it
// up by default), plus how old the manifest was when it joined: transcoderd owns that last
// part, at most one segment when manifests are published as each segment closes. The check
// is that part: latency - target - start-up under one segment + LATENCY_SLACK (the test
// samples start-up every 250 ms). Shaka's figure (getStats().liveLatency)
// is reported only: for DASH it is taken against the device clock while Shaka plays by
// the clock it synchronised from the MPD's UTCTiming, whose http-head source has the
// one-second precision of the Date header, so it reads up to 1 s more than Shaka's own
// delay target and start-up account for.
const LATENCY_CHECKED = new Set(['hls.js', 'dash.js']);
const LATENCY_SLACK = 0.5;

class StepError extends Error {}

// Session is one player playing one manifest of one job in its own page.
class Session {
  constructor(browser, job, player, manifest, kind = job.live ? 'live' : 'vod') {
    this.browser = browser;
    this.job = job;
    this.player = player;
    this.manifest = manifest;
    this.url = `${base}/out/${job.id}/${manifest}`;
    this.name = `${player} ${kind === 'vod' ? 'VOD' : kind} ${manifest}`;
    this.measured = () => {};
    this.started = () => {};
    this.result = {
      player, manifest, url: this.url, job: job.id, kind,
      ok: true, steps: [], latency: null, utcHeadRequests: 0, version: '',
    };
  }

  async open() {
    this.page = await this.browser.context.newPage();
    this.requests = []; // every URL the page asked for, with when
    this.page.on('request', (r) => {
      if (r.method() === 'HEAD' && r.url().endsWith('/manifest.mpd')) this.result.utcHeadRequests++;
      this.requests.push({ at: Date.now(), url: r.url() });
    });
    // Every HTTP error or failed request the page sees, for the report.
    this.result.httpErrors = [];
    const httpError = (what) => {
      if (this.result.httpErrors.length < 20) this.result.httpErrors.push(what);
      log(this.name, 'HTTP:', what);
    };
    this.page.on('response', (r) => { if (r.status() >= 400) httpError(`${r.status()} ${r.request().method()} ${r.url()}`); });
    this.page.on('requestfailed', (r) => httpError(`${r.failure() && r.failure().errorText} ${r.method()} ${r.url()}`));
    this.page.on('console', (m) => {
      if (m.type() === 'error') this.consoleErrors = [...(this.consoleErrors || []), m.text()].slice(-5);
    });
    await this.page.goto(`${base}/__harness/harness.html`);
    this.result.version = await this.page.evaluate(([p, u, o]) => window.harness.start(p, u, o), [this.player, this.url, { dvrWindow: this.job.windowSeconds }]);
    log(this.name, 'loading', this.url, 'with', this.player, this.result.version);
  }

  state() { return this.page.evaluate(() => window.harness.state()); }

  // until polls the player until cond(state) is true (or a string, which is also true and
  // becomes the step's detail). A fatal player error ends the wait at once.
  async until(what, cond, timeout = STEP_TIMEOUT) {
    const deadline = Date.now() + timeout;
    let s;
    for (;;) {
      s = await this.state();
      if (s.fatal.length) throw new StepError(`fatal player error while waiting for ${what}: ${s.fatal.join(' | ')}`);
      const v = cond(s);
      if (v) return s;
      if (Date.now() > deadline) {
        throw new StepError(`no ${what} after ${timeout / 1000}s: time ${s.time.toFixed(2)}, paused ${s.paused}, ` +
          `readyState ${s.readyState}, ${s.width}x${s.height}, window ${JSON.stringify(s.window && s.window.map((x) => +x.toFixed(2)))}, seekable ${JSON.stringify(s.seekable.map((r) => r.map((x) => +x.toFixed(2))))}, ` +
          `buffered ${JSON.stringify(s.buffered.map((r) => r.map((x) => +x.toFixed(2))))}` +
          (s.warningCount ? `; ${s.warningCount} recoverable errors, last: ${s.warnings.join(' | ')}` : ''));
      }
      await sleep(200);
    }
  }

  // step runs one check. A failed check ends the session unless soft: the later checks
  // do not depend on a soft one.
  async step(name, fn, soft = false) {
    const began = Date.now();
    try {
      const detail = await fn();
      this.result.steps.push({ name, ok: true, detail: detail || '', seconds: (Date.now() - began) / 1000 });
      log(this.name, 'ok:', name, detail || '');
    } catch (e) {
      const detail = e instanceof StepError ? e.message : `${e.name}: ${e.message}`;
      this.result.steps.push({ name, ok: false, detail, seconds: (Date.now() - began) / 1000 });
      this.result.ok = false;
      this.result.manifestAtFailure = await fetch(this.url).then((r) => r.text()).catch((e) => String(e));
      log(this.name, 'FAILED:', name, detail);
      if (!soft) throw e;
    }
  }

  // playsFor waits until the playhead has moved on by secs from where it is now.
  async playsFor(what, secs, timeout = STEP_TIMEOUT) {
    const from = (await this.state()).time;
    return this.until(what, (s) => s.time >= from + secs && !s.paused, timeout);
  }

  async start() {
    await this.step('start', async () => {
      const began = Date.now();
      const s = await this.until('first frames', (s) => s.time > 0.2 && s.readyState >= 2 && !s.paused, START_TIMEOUT);
      this.result.startup = (Date.now() - began) / 1000;
      return `playing at ${s.time.toFixed(2)}s, ${s.width}x${s.height}`;
    });
  }

  async playAndMeasure() {
    const seg = this.job.segmentSeconds;
    await this.step(`plays ${PLAY_SECONDS}s`, async () => {
      const s0 = await this.state();
      const samples = [];
      const began = Date.now();
      let s;
      for (;;) {
        s = await this.state();
        if (s.fatal.length) throw new StepError(`fatal player error: ${s.fatal.join(' | ')}`);
        if (this.job.live && s.latency != null && Date.now() - began > 2000) samples.push(s.latency);
        if (s.time >= s0.time + PLAY_SECONDS) break;
        if (Date.now() - began > (PLAY_SECONDS + 15) * 1000) {
          throw new StepError(`played only ${(s.time - s0.time).toFixed(2)}s of ${PLAY_SECONDS}s in ${PLAY_SECONDS + 15}s (paused ${s.paused}, readyState ${s.readyState})`);
        }
        await sleep(250);
      }
      if (this.job.live) {
        const max = Math.max(...samples);
        const mean = samples.reduce((a, b) => a + b, 0) / samples.length;
        const target = s.targetLatency == null ? 3 * seg : s.targetLatency;
        const limit = target + this.result.startup + seg + LATENCY_SLACK;
        this.result.latency = { samples: samples.length, max: +max.toFixed(3), mean: +mean.toFixed(3), limit: +limit.toFixed(3), target: s.targetLatency,
          series: samples.map((x) => +x.toFixed(2)) };
      }
      return `${(s.time - s0.time).toFixed(2)}s played in ${((Date.now() - began) / 1000).toFixed(1)}s, ${s.warningCount} recoverable errors`;
    });
    if (this.job.live) {
      await this.step('live latency', async () => {
        const l = this.result.latency;
        if (!l || !l.samples) throw new StepError(`${this.player} reported no live latency`);
        const what = `${this.player} latency max ${l.max.toFixed(2)}s, mean ${l.mean.toFixed(2)}s over ${l.samples} samples ` +
          `(limit ${l.limit.toFixed(2)}s = the player's target ${l.target == null ? '? (3 segments)' : l.target.toFixed(2) + 's'} ` +
          `+ its start-up ${this.result.startup.toFixed(1)}s + 1 segment + ${LATENCY_SLACK}s)`;
        if (!LATENCY_CHECKED.has(this.player)) return `reported, not checked: ${what}`;
        if (l.max >= l.limit) throw new StepError(what);
        return what;
      }, true);
    }
  }

  async rungs() {
    let list;
    await this.step('lists every rung', async () => {
      const r = await this.page.evaluate(() => window.harness.rungs());
      const got = r.video.map((v) => v.height).sort((a, b) => a - b);
      const want = this.job.video.map((v) => v.height).sort((a, b) => a - b);
      const what = `video ${JSON.stringify(r.video.map((v) => `${v.width}x${v.height}@${v.bitrate}`))}, audio ${JSON.stringify(r.audio)}`;
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new StepError(`video rung heights ${JSON.stringify(got)}, ladder has ${JSON.stringify(want)}: ${what}`);
      if (r.audio.length !== this.job.audio.length) throw new StepError(`${r.audio.length} audio renditions, ladder has ${this.job.audio.length}: ${what}`);
      list = r.video.slice().sort((a, b) => a.height - b.height);
      return what;
    });
    return list;
  }

  async switchAll(list) {
    // Lowest to highest and back down again.
    const order = [...list, ...list.slice(0, -1).reverse()];
    for (const r of order) {
      await this.step(`switch to ${r.height}p`, async () => {
        await this.page.evaluate((id) => window.harness.select(id), r.id);
        const s = await this.until(`${r.height}p frames`, (s) => s.height === r.height && s.current && s.current.height === r.height && !s.paused);
        const at = s.time;
        const s2 = await this.playsFor(`playback after the switch to ${r.height}p`, SWITCH_PLAY);
        if (s2.height !== r.height) throw new StepError(`switched to ${r.height}p but now shows ${s2.height}p`);
        return `${r.height}p shown at ${at.toFixed(2)}s, playing on to ${s2.time.toFixed(2)}s`;
      });
    }
  }

  // languages checks that the player lists the job's audio languages, and returns them
  // in the order the job lists its audio renditions.
  async languages() {
    const want = [...new Set(this.job.audio.map((r) => r.language || ''))];
    await this.step('lists the audio languages', async () => {
      const a = await this.page.evaluate(() => window.harness.audio());
      const got = [...new Set(a.langs)].sort();
      if (JSON.stringify(got) !== JSON.stringify([...want].sort())) {
        throw new StepError(`audio languages ${JSON.stringify(a.langs)}, the job has ${JSON.stringify(want)} (names ${JSON.stringify(a.names)})`);
      }
      if (a.current !== want[0]) throw new StepError(`plays ${JSON.stringify(a.current)} first, want ${want[0]}, the first track of the source`);
      return `languages ${JSON.stringify(a.langs)}, names ${JSON.stringify(a.names)}, playing ${a.current}`;
    });
    return want;
  }

  // switchAudio selects lang and checks that the player reports it as current, fetches
  // segments of a rendition of that language (its folder holds nothing else) and plays
  // on.
  async switchAudio(lang) {
    await this.step(`switch audio to ${lang}`, async () => {
      const folders = this.job.audio.filter((r) => r.language === lang).map((r) => `/out/${this.job.id}/${r.name}/seg_`);
      const from = Date.now();
      const t0 = (await this.state()).time;
      await this.page.evaluate((l) => window.harness.selectAudio(l), lang);
      let fetched = '';
      const s = await this.until(`${lang} audio segments and playback`, (s) => {
        fetched = fetched || (this.requests.find((r) => r.at >= from && folders.some((f) => r.url.includes(f))) || {}).url || '';
        return fetched && !s.paused && s.time >= t0 + SWITCH_PLAY;
      });
      const a = await this.page.evaluate(() => window.harness.audio());
      if (a.current !== lang) throw new StepError(`switched to ${lang}, the player says it plays ${JSON.stringify(a.current)}`);
      const s2 = await this.playsFor(`playback in ${lang}`, SWITCH_PLAY);
      return `fetched ${fetched.slice(fetched.indexOf('/out/'))}, playing ${a.current} at ${s.time.toFixed(2)}s, on to ${s2.time.toFixed(2)}s`;
    });
  }

  async seekTo(name, target, window = 8) {
    await this.step(name, async () => {
      await this.page.evaluate((t) => window.harness.seek(t), target);
      const s = await this.until(`playback from ${target.toFixed(2)}s`, (s) => s.time >= target + SWITCH_PLAY && s.time < target + window && !s.paused);
      return `seeked to ${target.toFixed(2)}s, playing at ${s.time.toFixed(2)}s`;
    });
  }

  async liveSeekBack() {
    await this.step(`seek back ${SEEK_BACK}s`, async () => {
      // The job must have run long enough for the window to hold 30 s behind the playhead.
      // The window is the player's own seek range, not video.seekable, which some
      // players keep to what they have buffered.
      const s = await this.until(`${SEEK_BACK + 2}s of DVR window behind the playhead`,
        (s) => s.window && s.window[0] <= s.time - SEEK_BACK - 2, 60e3);
      const target = s.time - SEEK_BACK;
      await this.page.evaluate((t) => window.harness.seek(t), target);
      const s2 = await this.until(`playback from ${target.toFixed(2)}s`, (x) => x.time >= target + SWITCH_PLAY && x.time < target + 8 && !x.paused);
      return `window ${s.window[0].toFixed(1)}..${s.window[1].toFixed(1)}s, seeked from ${s.time.toFixed(2)}s to ${target.toFixed(2)}s, playing at ${s2.time.toFixed(2)}s`;
    });
    await this.step('back to the live edge', async () => {
      const edge = await this.page.evaluate(() => window.harness.liveEdge());
      if (!Number.isFinite(edge)) throw new StepError(`${this.player} reports no live edge (${edge})`);
      await this.page.evaluate((t) => window.harness.seek(t), edge);
      const s = await this.until(`playback near the live edge ${edge.toFixed(2)}s`, (x) => x.time >= edge + 1 && !x.paused);
      return `playing at ${s.time.toFixed(2)}s, latency ${s.latency == null ? '?' : s.latency.toFixed(2)}s`;
    });
  }

  // ends waits for the 'ended' event. A player that stops within END_SLACK of the
  // presentation's end without firing it has still reached the end for its viewer (the
  // last frame is shown); that passes too, and the step says so. Shaka on a stopped live
  // MPD did this once in several runs: the audio track ends a few tens of milliseconds
  // after the video one, and the playhead stopped between the two. With elementOnly, an
  // 'ended' event counts only with the element ended (say, at the end): Chromium fires
  // one where the playhead meets a gap (an outage) in an ended MediaSource, which dash.js
  // then jumps to play on (a clip across a restart: its MPD has 1.2 s between Periods).
  async ends(what, timeout, elementOnly = false) {
    await this.step(what, async () => {
      let stuckSince = 0;
      let early = '';
      const s = await this.until('the end of the presentation (ended event)', (s) => {
        if (elementOnly && s.endedEvent && !s.ended && !early) early = `; an 'ended' event at ${s.time.toFixed(2)}s, played on`;
        if ((s.endedEvent && !elementOnly) || s.ended) return true;
        const atEnd = s.duration > 0 && s.duration - s.time < END_SLACK;
        stuckSince = atEnd ? (stuckSince || Date.now()) : 0;
        return atEnd && Date.now() - stuckSince > 5000;
      }, timeout);
      if (!s.ended && !(s.endedEvent && !elementOnly)) {
        return `stopped at ${s.time.toFixed(2)}s, ${(s.duration - s.time).toFixed(3)}s before the end (duration ${s.duration.toFixed(2)}s), for 5s, without an ended event${early}`;
      }
      return `ended at ${s.time.toFixed(2)}s (duration ${s.duration.toFixed(2)}s)${early}`;
    });
  }

  // crashed records an error that was not a failed check (a step already recorded those).
  crashed(e) {
    if (e instanceof StepError) return;
    this.result.ok = false;
    this.result.error = e.stack || String(e);
    log(this.name, 'ERROR:', this.result.error);
  }

  async close() {
    try {
      const s = await this.state();
      this.result.final = { time: s.time, warnings: s.warningCount, lastWarnings: s.warnings, fatal: s.fatal, notes: s.notes };
    } catch { /* page gone */ }
    if (this.consoleErrors) this.result.consoleErrors = this.consoleErrors;
    if (this.page) await this.page.close().catch(() => {});
  }
}

async function runVOD(sess) {
  try {
    await sess.open();
    await sess.start();
    await sess.playAndMeasure();
    const list = await sess.rungs();
    await sess.switchAll(list);
    const d = (await sess.state()).duration;
    await sess.seekTo('seek to the middle', d / 2);
    await sess.seekTo('seek near the end', d - 4);
    await sess.ends('reaches the end', 15e3);
  } catch (e) {
    sess.crashed(e);
  } finally {
    await sess.close();
  }
}

// runClip plays a clip (issue 19): the player's duration is the asked range widened to
// whole segments, by less than one segment at each end (less the outage inside it,
// which an HLS timeline leaves out); it seeks inside the clip; then it plays from the
// start to the end without a seek, through any discontinuity or Period change the
// clip holds, and reaches 'ended'.
async function runClip(sess, clip) {
  const seg = sess.job.segmentSeconds;
  const asked = clip.asked[1] - clip.asked[0];
  try {
    await sess.open();
    await sess.start();
    let d;
    await sess.step('duration of the asked range', async () => {
      const s = await sess.until('a duration', (s) => s.duration > 0);
      d = s.duration;
      const hls = sess.manifest.endsWith('.m3u8');
      const lo = asked - (hls ? clip.gap : 0) - DURATION_SLACK;
      const hi = asked + 2 * seg + DURATION_SLACK;
      const what = `duration ${d.toFixed(3)}s, asked ${clip.asked[0]}..${clip.asked[1]}s (${asked.toFixed(3)}s), ` +
        `cut ${clip.duration.toFixed(3)}s of ${clip.periods} period(s), ${clip.discontinuities} discontinuity(ies), ` +
        `outage ${clip.gap.toFixed(3)}s; want ${lo.toFixed(3)}..${hi.toFixed(3)}s`;
      if (d < lo || d > hi) throw new StepError(what);
      return what;
    });
    // A seek forward inside the clip, before its first restart (firstRun: the seconds
    // of its first ffmpeg run), so that playing on to the end goes through the restart.
    await sess.seekTo('seek inside the clip', clip.firstRun ? Math.max(1, Math.min(d / 2, clip.firstRun - 3)) : d / 2);
    const t0 = (await sess.state()).time;
    const began = Date.now();
    await sess.ends('plays to the end', (d - t0) * 1000 + 30e3, true);
    // Played, not skipped: the wall-clock time it took is the media's, less at most the
    // outage (a player may jump a gap between Periods) and a segment.
    await sess.step('played through, not skipped', async () => {
      const s = await sess.state();
      const wall = (Date.now() - began) / 1000;
      const min = d - t0 - clip.gap - seg - 0.5;
      const what = `from ${t0.toFixed(2)}s to ${s.time.toFixed(2)}s of ${d.toFixed(2)}s in ${wall.toFixed(1)}s (at least ${min.toFixed(1)}s), ` +
        `${s.warningCount} recoverable errors${s.warningCount ? ', last: ' + s.warnings.join(' | ') : ''}`;
      if (wall < min) throw new StepError(`skipped part of the clip: ${what}`);
      return what;
    });
  } catch (e) {
    sess.crashed(e);
  } finally {
    await sess.close();
  }
}

// runLanguages plays a job with several audio languages: the player lists them, plays
// the first, switches to the second and back.
async function runLanguages(sess) {
  try {
    await sess.open();
    await sess.start();
    const langs = await sess.languages();
    if (langs.length < 2) throw new StepError(`the job has ${langs.length} audio language`);
    await sess.switchAudio(langs[1]);
    await sess.switchAudio(langs[0]);
  } catch (e) {
    sess.crashed(e);
  } finally {
    await sess.close();
  }
}

// runLive plays until the job may be stopped, says so through ready, waits for stopped,
// then checks that the player reaches the end.
async function runLive(sess, ready, stopped) {
  let ok = false;
  try {
    await sess.open();
    await sess.start();
    sess.started();
    await sess.playAndMeasure();
    sess.measured();
    const list = await sess.rungs();
    await sess.switchAll(list);
    await sess.liveSeekBack();
    ok = true;
  } catch (e) {
    sess.crashed(e);
  }
  sess.started();
  sess.measured();
  ready();
  try {
    await stopped;
    if (ok) await sess.ends('ends after the job is stopped', END_TIMEOUT);
  } catch (e) {
    sess.crashed(e);
  } finally {
    await sess.close();
  }
}

async function jobInfo(id) {
  const v = await api(base, 'GET', `/v1/jobs/${id}`);
  const l = await api(base, 'GET', `/v1/ladders/${v.ladder}`);
  const seg = l.ladder && l.ladder.segment_duration; // seconds
  const win = l.ladder && l.ladder.window;
  return {
    id,
    live: v.live,
    segmentSeconds: typeof seg === 'number' ? seg : 1,
    windowSeconds: typeof win === 'number' && win > 0 ? win : 0,
    video: v.renditions.filter((r) => r.kind === 'video'),
    audio: v.renditions.filter((r) => r.kind === 'audio'),
  };
}

async function main() {
  if (!base) throw new Error('no "base" in the configuration');
  const began = Date.now();
  const browser = await launch(base);
  const out = { sessions: [], blocked: browser.blocked, versions: {}, seconds: 0, stop: null };
  try {
    const selected = combos.filter(([p, m]) => !cfg.only || cfg.only.includes(`${p} ${m}`));
    const tasks = [];
    // The live sessions start first and measure latency on a quiet machine; the VOD
    // sessions start once every live session has measured it (or given up).
    let measured = Promise.resolve();
    if (cfg.live) {
      const job = await jobInfo(cfg.live);
      const live = selected.map(([p, m]) => new Session(browser, job, p, m));
      let left = live.length;
      let release;
      const stopped = new Promise((r) => { release = r; });
      const ready = async () => {
        if (--left > 0) return;
        log('every live session is ready: stopping job', job.id);
        const t = Date.now();
        try {
          const v = await api(base, 'DELETE', `/v1/jobs/${job.id}`);
          out.stop = { state: v.state, seconds: (Date.now() - t) / 1000 };
          log('job', job.id, 'is', v.state);
        } catch (e) {
          out.stop = { error: e.message };
        }
        release();
      };
      const marks = live.map((s) => new Promise((r) => { s.measured = r; }));
      measured = Promise.all(marks);
      // One viewer joins at a time: a player's start-up time adds to its latency (none of
      // them catches up by default), and four starting at once on two cores would measure
      // the machine rather than the stream.
      let joined = Promise.resolve();
      for (const s of live) {
        out.sessions.push(s.result);
        const prev = joined;
        let mark;
        joined = new Promise((r) => { mark = r; });
        s.started = mark;
        tasks.push(prev.then(() => runLive(s, ready, stopped)));
      }
    }
    if (cfg.vod) {
      const job = await jobInfo(cfg.vod);
      await measured;
      for (const [p, m] of selected) {
        const s = new Session(browser, job, p, m);
        out.sessions.push(s.result);
        tasks.push(runVOD(s));
      }
    }
    for (const id of cfg.langs || []) {
      const job = await jobInfo(id);
      await measured;
      for (const [p, m] of selected) {
        const s = new Session(browser, job, p, m);
        s.result.kind = `${job.live ? 'live' : 'VOD'} languages`;
        out.sessions.push(s.result);
        tasks.push(runLanguages(s));
      }
    }
    // Clips play once the rest has, one clip at a time in every player.
    for (const clip of cfg.clips || []) {
      await Promise.all(tasks);
      const job = await jobInfo(clip.job);
      const manifests = { 'master.m3u8': clip.hls, 'manifest.mpd': clip.dash };
      for (const [p, m] of selected) {
        const s = new Session(browser, job, p, manifests[m], 'clip');
        out.sessions.push(s.result);
        tasks.push(runClip(s, clip));
      }
    }
    await Promise.all(tasks);
    for (const s of out.sessions) out.versions[s.player] = s.version;
  } finally {
    await browser.close();
  }
  out.seconds = (Date.now() - began) / 1000;
  const json = JSON.stringify(out, null, 2);
  if (cfg.out) writeFileSync(cfg.out, json); else process.stdout.write(json + '\n');
  const failed = out.sessions.filter((s) => !s.ok);
  log(`${out.sessions.length - failed.length} passed, ${failed.length} failed in ${out.seconds.toFixed(1)}s`);
  return failed.length || out.blocked.length || (out.stop && out.stop.error) ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  log('players.mjs:', e.stack || e);
  process.exit(2);
});
