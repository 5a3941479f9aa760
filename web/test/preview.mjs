// Drives transcoderd's preview page (GET /) in headless Chromium as a person would:
// the ladder list loads, a job started from the form appears in the job list and plays
// in the page's player with hls.js and then dash.js, its row shows its speed and frame
// rate (progress.speed and progress.fps), the rung selector lists every rung
// and switches to the chosen one, and "now playing" shows what is on screen.
//
//   node preview.mjs '{"base":"http://127.0.0.1:8080","source":"rtmp://…","ladder":"test","id":"form","out":"result.json"}'
//
// Optional keys: token (the daemon's API token: the page must ask for it), heights (the
// rung heights the selector must list), file ({source, ladder, id} of a file job to start
// from the form first: its row must show a progress bar while it runs, that never goes
// back and reads 100 % once the job has finished), screenshot (a PNG of the page at the
// end), clip ({id, seconds, segment}: the job is started with "record" ticked, and a
// clip of about seconds is cut from the page while hls.js plays it, by clicking Mark in,
// Mark out and Cut clip; the clip must appear in the page's clip list lasting the
// marked span widened by less than a segment at each end, and play from that list to
// its end).
// The result is {steps: [{name, ok, detail, seconds}], blocked: [...], screenshot}; the exit
// code is 0 when every step passed.
import { writeFileSync } from 'node:fs';
import { launch, log, sleep } from './lib.mjs';

const cfg = JSON.parse(process.argv[2] || '{}');
const out = { steps: [], blocked: [], seconds: 0, pageErrors: [] };
const began = Date.now();

class StepError extends Error {}

async function step(name, fn) {
  const t = Date.now();
  try {
    const detail = await fn();
    out.steps.push({ name, ok: true, detail: detail || '', seconds: (Date.now() - t) / 1000 });
    log('ok:', name, detail || '');
  } catch (e) {
    const detail = e instanceof StepError ? e.message : `${e.name}: ${e.message}`;
    out.steps.push({ name, ok: false, detail, seconds: (Date.now() - t) / 1000 });
    log('FAILED:', name, detail);
    throw e;
  }
}

// until polls fn in the page until it returns something truthy.
async function until(page, what, fn, arg, timeout = 30e3) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const v = await page.evaluate(fn, arg);
    if (v) return v;
    if (Date.now() > deadline) {
      const msg = await page.evaluate(() => document.querySelector('#player-message').textContent + ' ' +
        document.querySelector('#form-message').textContent + ' ' + document.querySelector('#jobs-error').textContent);
      throw new StepError(`no ${what} after ${timeout / 1000}s (page says: ${msg.trim() || 'nothing'})`);
    }
    await sleep(250);
  }
}

// plays waits for the page's video to move on by secs.
async function plays(page, secs, what) {
  const from = await until(page, `${what}: first frames`, () => {
    const v = document.querySelector('#video');
    return v.readyState >= 2 && v.currentTime > 0 && !v.paused ? v.currentTime : 0;
  }, null, 60e3);
  const to = await until(page, `${what}: ${secs}s of playback`, (t) => {
    const v = document.querySelector('#video');
    return v.currentTime >= t ? v.currentTime : 0;
  }, from + secs);
  return `currentTime ${from.toFixed(2)}s → ${to.toFixed(2)}s`;
}

// wall reads a mark the page shows ("in: 10:20:30.456Z") as milliseconds of the day.
function wall(text) {
  const m = text.match(/(\d\d):(\d\d):(\d\d\.\d+)Z$/);
  if (!m) throw new StepError(`no wall-clock time in the mark "${text}"`);
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000;
}

// cutClip cuts a clip from the page with real clicks while hls.js plays the live job,
// then plays it from the page's clip list to its end.
async function cutClip(page, clip) {
  let marked;
  await step('a clip is cut with Mark in, Mark out and Cut clip', async () => {
    await page.selectOption('#engine', 'hls');
    await plays(page, 1, 'hls.js before the in point');
    await page.click('#mark-in');
    await plays(page, clip.seconds, 'hls.js between the marks');
    await page.click('#mark-out');
    const [a, b] = [await page.textContent('#in-at'), await page.textContent('#out-at')];
    marked = (wall(b) - wall(a)) / 1000;
    await page.fill('#clip-id', clip.id);
    await page.click('#cut');
    const msg = await until(page, 'an answer to Cut clip', () => {
      const m = document.querySelector('#clip-message');
      return m.className !== 'muted' && m.textContent ? m.className + ': ' + m.textContent : '';
    });
    if (!msg.startsWith('ok')) throw new StepError(`Cut clip says ${msg} (${a}, ${b})`);
    const row = await until(page, `clip ${clip.id} in the clip list`, (id) => {
      const tr = document.querySelector(`#clips tr[data-clip="${id}"]`);
      return tr && tr.innerText.replace(/\s+/g, ' ');
    }, clip.id);
    const d = parseFloat(await page.textContent(`#clips tr[data-clip="${clip.id}"] td.duration`));
    const what = `${a}, ${b} (${marked.toFixed(3)} s marked); ${msg}; row: ${row}`;
    if (!(d >= marked - 0.1 && d <= marked + 2 * clip.segment + 0.1)) throw new StepError(`the clip lasts ${d} s: ${what}`);
    return what;
  });
  await step('the clip plays from the clip list to its end', async () => {
    await page.click(`#clips tr[data-clip="${clip.id}"] button.play-clip`);
    const label = await until(page, 'the clip in the player', (id) => {
      const l = document.querySelector('#playing-job').textContent;
      return l.endsWith('clip ' + id) && l;
    }, clip.id);
    await plays(page, 1, 'the clip');
    const s = await until(page, "the clip's end", () => {
      const v = document.querySelector('#video');
      return v.ended && { time: v.currentTime, duration: v.duration, src: v.currentSrc };
    }, null, (marked + 2 * clip.segment + 30) * 1000);
    if (!(s.duration >= marked - 0.3 && s.duration <= marked + 2 * clip.segment + 0.3)) {
      throw new StepError(`the player's duration is ${s.duration} s, ${marked.toFixed(3)} s marked`);
    }
    return `${label}: ended at ${s.time.toFixed(2)} s of ${s.duration.toFixed(2)} s`;
  });
}

async function main() {
  const browser = await launch(cfg.base);
  out.blocked = browser.blocked;
  let page;
  try {
    page = await browser.context.newPage();
    page.on('pageerror', (e) => out.pageErrors.push(e.message));
    await step('page loads with the ladder list', async () => {
      await page.goto(cfg.base + '/');
      let asked = '';
      if (cfg.token) {
        // The page is open; the API is not: the page asks for the token.
        asked = await until(page, 'a request for the API token', () => document.querySelector('#auth-message').textContent);
        await page.fill('#token', cfg.token);
        await page.dispatchEvent('#token', 'change');
        asked = `asked: "${asked}"; `;
      }
      const ladders = await until(page, 'ladders in the form', () =>
        [...document.querySelectorAll('#ladder option')].map((o) => o.value).join(','));
      if (!ladders.split(',').includes(cfg.ladder)) throw new StepError(`ladder ${cfg.ladder} not offered: ${ladders}`);
      return `${asked}ladders ${ladders}`;
    });
    if (cfg.file) {
      await step('a file job started from the form shows its progress bar up to 100 %', async () => {
        const f = cfg.file;
        await page.fill('#source', f.source);
        await page.selectOption('#ladder', f.ladder);
        await page.fill('#job-id', f.id);
        await page.click('#start');
        const msg = await until(page, 'an answer to the form', () => document.querySelector('#form-message').className !== 'muted' &&
          document.querySelector('#form-message').textContent);
        if (!msg.includes(f.id)) throw new StepError(`form says: ${msg}`);
        // The job's bar, polled until the job has finished.
        const seen = [];
        const deadline = Date.now() + 120e3;
        for (;;) {
          const row = await page.evaluate((id) => {
            const tr = document.querySelector(`#jobs tr[data-id="${id}"]`);
            const bar = tr && tr.querySelector('.file-progress progress');
            return tr && { state: tr.dataset.state, value: bar ? bar.value : null, max: bar ? bar.max : null,
              text: bar ? tr.querySelector('.file-progress').innerText.trim() : '' };
          }, f.id);
          if (row && row.value !== null) {
            if (row.max !== 100) throw new StepError(`the bar's max is ${row.max}`);
            if (row.state === 'running' && !(row.value < 100 && /^\d+\.\d %/.test(row.text))) {
              throw new StepError(`running, the bar shows ${row.value} ("${row.text}")`);
            }
            const last = seen[seen.length - 1];
            if (last && row.value < last.value) throw new StepError(`the bar went back from ${last.value} to ${row.value}`);
            if (!last || last.value !== row.value) seen.push(row);
          }
          if (row && row.state === 'finished') {
            if (!row.text.startsWith('100 %') || row.value !== 100) throw new StepError(`finished, the bar shows ${row.value} ("${row.text}")`);
            const shown = seen.map((r) => `${r.state} "${r.text}"`).join(' → ');
            if (!seen.some((r) => r.state === 'running')) throw new StepError(`no bar while the job ran: ${shown}`);
            return shown;
          }
          if (row && row.state === 'failed') throw new StepError(`job ${f.id} failed`);
          if (Date.now() > deadline) throw new StepError(`job ${f.id}: ${row ? `${row.state}, bar ${row.value}` : 'not listed'} after 120 s`);
          await sleep(250);
        }
      });
    }
    await step('a job starts from the form', async () => {
      await page.fill('#source', cfg.source);
      await page.selectOption('#ladder', cfg.ladder);
      await page.fill('#job-id', cfg.id);
      if (cfg.clip) await page.check('#record');
      await page.click('#start');
      const msg = await until(page, 'an answer to the form', () => document.querySelector('#form-message').className !== 'muted' &&
        document.querySelector('#form-message').textContent);
      if (!msg.includes(cfg.id)) throw new StepError(`form says: ${msg}`);
      const st = await until(page, `job ${cfg.id} running in the job list`, (id) => {
        const row = document.querySelector(`#jobs tr[data-id="${id}"]`);
        return row && row.dataset.state === 'running' ? row.innerText.replace(/\s+/g, ' ') : '';
      }, cfg.id, 60e3);
      return `${msg}; row: ${st}`;
    });
    await step('hls.js plays it', async () => plays(page, 3, 'hls.js'));
    await step("the job list shows the running job's speed and frame rate", async () =>
      until(page, `speed and frame rate in ${cfg.id}'s row`, (id) => {
        const cell = document.querySelector(`#jobs tr[data-id="${id}"] td.speed`);
        const m = cell && cell.textContent.match(/^(\d+\.\d\d)x, (\d+) fps$/);
        return m && Number(m[1]) > 0 && Number(m[2]) > 0 ? cell.textContent : '';
      }, cfg.id));
    let rungs;
    await step('the rung selector lists every rung', async () => {
      rungs = await until(page, 'rungs in the selector', () => {
        const o = [...document.querySelectorAll('#rung option')].filter((x) => x.value !== 'auto');
        return o.length ? o.map((x) => ({ value: x.value, text: x.textContent })) : null;
      });
      const heights = rungs.map((r) => Number(r.text.split('p')[0])).sort((a, b) => a - b);
      const want = cfg.heights.slice().sort((a, b) => a - b);
      if (JSON.stringify(heights) !== JSON.stringify(want)) throw new StepError(`rungs ${JSON.stringify(rungs)}, want heights ${want}`);
      return rungs.map((r) => r.text).join(' | ');
    });
    for (const engine of ['hls', 'dash']) {
      if (engine === 'dash') {
        await step('dash.js plays it', async () => {
          await page.selectOption('#engine', 'dash');
          return plays(page, 3, 'dash.js');
        });
        await until(page, 'rungs from dash.js', () => document.querySelectorAll('#rung option').length > 1);
        rungs = await page.evaluate(() => [...document.querySelectorAll('#rung option')].filter((x) => x.value !== 'auto')
          .map((x) => ({ value: x.value, text: x.textContent })));
      }
      const lowest = rungs.slice().sort((a, b) => parseInt(a.text, 10) - parseInt(b.text, 10))[0];
      const h = parseInt(lowest.text, 10);
      await step(`${engine}: choosing ${h}p shows it`, async () => {
        await page.selectOption('#rung', lowest.value);
        const shown = await until(page, `${h}p on screen and in "now playing"`, (height) => {
          const v = document.querySelector('#video');
          const np = document.querySelector('#now-playing').textContent;
          return v.videoHeight === height && np.includes(`x${height}`) && np.includes('kbit/s') ? np : '';
        }, h);
        const p = await plays(page, 1.5, `${h}p`);
        return `now playing: ${shown}; ${p}`;
      });
    }
    if (cfg.clip) await cutClip(page, cfg.clip);
    out.screenshot = cfg.screenshot || '';
    if (cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true });
  } catch (e) {
    if (!(e instanceof StepError)) {
      out.error = e.stack || String(e);
      log('ERROR:', out.error);
    }
    if (page && cfg.screenshot) await page.screenshot({ path: cfg.screenshot, fullPage: true }).catch(() => {});
  } finally {
    await browser.close();
  }
  out.seconds = (Date.now() - began) / 1000;
  writeFileSync(cfg.out, JSON.stringify(out, null, 2));
  const failed = out.steps.some((s) => !s.ok) || out.error || out.blocked.length || out.pageErrors.length;
  log(`${out.steps.filter((s) => s.ok).length} passed, ${out.steps.filter((s) => !s.ok).length} failed in ${out.seconds.toFixed(1)}s`);
  return failed ? 1 : 0;
}

main().then((code) => process.exit(code), (e) => {
  log('preview.mjs:', e.stack || e);
  process.exit(2);
});
