// transcoderd preview page: the job list (polled from /v1/jobs), a player for the chosen
// job (hls.js on master.m3u8 or dash.js on manifest.mpd, with a rung selector), a
// recording job's clips (listed, played, and cut by marking in and out points on the
// player), and a form that starts a job. Everything comes from this daemon; nothing from elsewhere.
'use strict';

(function () {
  const $ = (sel) => document.querySelector(sel);
  const video = $('#video');
  const ui = {
    jobs: $('#jobs tbody'),
    jobsError: $('#jobs-error'),
    engine: $('#engine'),
    rung: $('#rung'),
    nowPlaying: $('#now-playing'),
    playingJob: $('#playing-job'),
    message: $('#player-message'),
    links: $('#links'),
    form: $('#new-job'),
    formMessage: $('#form-message'),
    ladder: $('#ladder'),
  };
  const state = {
    jobs: [],
    selected: '',    // id of the job in the player
    playing: null,   // what the player plays: {job, what: 'job'|'recording'|'clip', clip}
    marks: {},       // in and out: {at (a Date: wall clock), offset (s into the recording)}
    player: null,    // {kind, destroy(), rungs(), select(id), current(), latency()}
    loading: 0,      // bumped on every play(), so that a stale wait gives up
  };

  // The API may need a bearer token (transcoderd --api-token); the page and the streams
  // do not. The token is kept for this browser tab only.
  const tokenInput = $('#token');
  tokenInput.value = sessionStorage.getItem('transcoderd-token') || '';
  tokenInput.addEventListener('change', () => {
    sessionStorage.setItem('transcoderd-token', tokenInput.value.trim());
    $('#auth-message').textContent = '';
    loadLadders();
    refresh();
  });

  async function api(method, path, body) {
    const headers = body ? { 'Content-Type': 'application/json' } : {};
    const token = tokenInput.value.trim();
    if (token) headers.Authorization = 'Bearer ' + token;
    const res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
    let data = null;
    try { data = await res.json(); } catch (e) { /* not JSON */ }
    if (res.status === 401) {
      $('#auth-message').textContent = token ? 'the API refused this token' : 'this daemon needs its API token';
    }
    return { ok: res.ok, status: res.status, data };
  }

  // el builds an element; text is set with textContent, never parsed as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === 'class') e.className = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v);
    }
    for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    return e;
  }

  const kbps = (bps) => `${Math.round(bps / 1000)} kbit/s`;

  // Ladders for the form: the valid ones can be chosen, broken ones show why not.
  async function loadLadders() {
    const r = await api('GET', '/v1/ladders');
    if (!r.ok) {
      ui.formMessage.textContent = 'cannot list ladders: ' + (r.data && r.data.error || r.status);
      ui.formMessage.className = 'error';
      return;
    }
    const chosen = ui.ladder.value; // a reload (after the token is entered) keeps the user's choice
    ui.ladder.replaceChildren();
    for (const l of r.data.ladders) {
      const o = el('option', { value: l.name }, l.valid ? l.name : `${l.name} (invalid)`);
      if (!l.valid) {
        o.disabled = true;
        o.title = (l.problems || []).join('\n');
      } else if (l.ladder && l.ladder.description) {
        o.title = l.ladder.description;
      }
      ui.ladder.append(o);
    }
    const pick = (name) => [...ui.ladder.options].find((o) => o.value === name && !o.disabled);
    const sel = pick(chosen) || pick('default');
    if (sel) sel.selected = true;
  }

  // seconds writes a duration for people: "45 s", "3 min 05 s", "1 h 02 min".
  function seconds(s) {
    s = Math.round(s);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
    return `${Math.floor(s / 3600)} h ${String(Math.floor(s / 60) % 60).padStart(2, '0')} min`;
  }

  // fileProgress is a file job's progress bar: how much of the source is encoded
  // (progress.percent), and the time left at its recent speed (progress.eta).
  function fileProgress(j) {
    const p = j.progress || {};
    if (j.live || typeof p.percent !== 'number') return null;
    let text = `${p.percent.toFixed(p.percent === 100 ? 0 : 1)} %`;
    if (typeof p.eta === 'number' && p.percent < 100) text += ` · ${seconds(p.eta)} left`;
    return el('div', { class: 'file-progress', 'data-percent': String(p.percent) },
      el('progress', { max: '100', value: String(p.percent) }),
      el('span', { class: 'detail' }, text));
  }

  function renditionsText(j) {
    return (j.renditions || []).map((r) => r.kind === 'video'
      ? `${r.name} ${r.width}x${r.height} ${kbps(r.bitrate)}`
      : `${r.name} ${kbps(r.bitrate)}`).join(', ');
  }

  // ingestLines is where an encoder (OBS: Settings → Stream → Service: Custom) publishes
  // a push job: the server URLs and the stream key. The API shows the key only when it
  // makes one (the job's creation, a rotation): elsewhere it is masked, and the page
  // says where to get a new one.
  function ingestLines(ing, key) {
    const line = (label, value) => el('div', { class: 'detail ingest' }, label + ' ', el('code', {}, value));
    const out = [];
    if (ing.rtmp_url) out.push(line('Server', ing.rtmp_url));
    if (ing.rtmps_url) out.push(line('Server (TLS)', ing.rtmps_url));
    if (key) out.push(line('Stream key', key));
    else out.push(el('div', { class: 'detail ingest' }, 'Stream key ', el('code', {}, '••••••••'),
      ' (shown once, at creation; Rotate key makes a new one)'));
    if (ing.srt_url) out.push(line('SRT', (key || ing.srt_url.includes('streamid=')) ? ing.srt_url : ing.srt_url + '?streamid=publish:KEY'));
    const p = ing.publisher;
    if (p) out.push(el('div', { class: 'detail ingest' }, `publisher: ${p.protocol} from ${p.remote_addr}` +
      (p.width ? `, ${p.width}x${p.height}` : '') + (p.bitrate ? `, ${kbps(p.bitrate)}` : '')));
    return out;
  }

  // showKey shows a push job's new stream key under the form, the one place it appears.
  function showKey(view, what) {
    ui.formMessage.className = 'ok';
    ui.formMessage.replaceChildren(`${what} ${view.id}: paste these into the encoder now, the key is not shown again`,
      ...ingestLines(view.ingest, view.ingest.stream_key));
  }

  async function rotate(id, button) {
    if (!confirm(`Give ${id} a new stream key? Encoders with the old one are refused from now on.`)) return;
    button.disabled = true;
    const r = await api('POST', '/v1/jobs/' + encodeURIComponent(id) + '/ingest/rotate');
    button.disabled = false;
    if (!r.ok) {
      ui.jobsError.textContent = `rotate ${id}: ` + (r.data && r.data.error || r.status);
      return;
    }
    showKey(r.data, 'new stream key for');
  }

  function renderJobs() {
    const rows = state.jobs.map((j) => {
      const stateCell = el('td', { class: 'state-' + j.state }, j.state);
      const bar = fileProgress(j);
      if (bar) stateCell.append(bar);
      if (j.error) stateCell.append(el('div', { class: 'detail' }, j.error));
      const actions = el('td', {},
        el('button', { class: 'play', type: 'button', onclick: () => play(j.id) }, 'Play'));
      if (j.state !== 'finished' && j.state !== 'stopped' && j.state !== 'failed') {
        actions.append(' ', el('button', { class: 'stop', type: 'button', onclick: (e) => stop(j.id, e.target) }, 'Stop'));
        if (j.ingest) actions.append(' ', el('button', { class: 'rotate', type: 'button', onclick: (e) => rotate(j.id, e.target) }, 'Rotate key'));
      }
      const speed = j.state === 'running' ? `${(j.progress.speed || 0).toFixed(2)}x, ${(j.progress.fps || 0).toFixed(0)} fps` : '';
      return el('tr', { 'data-id': j.id, 'data-state': j.state, class: j.id === state.selected ? 'selected' : '' },
        el('td', {}, j.id, el('div', { class: 'detail' }, j.live ? 'live' : 'VOD')),
        stateCell,
        el('td', {}, j.source, ...(j.ingest ? ingestLines(j.ingest, '') : [])),
        el('td', {}, j.ladder),
        el('td', {}, renditionsText(j)),
        el('td', {}, String(j.segments || 0)),
        el('td', { class: 'speed' }, speed),
        el('td', {}, String(j.restarts || 0)),
        actions);
    });
    if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 9, class: 'muted' }, 'no jobs yet')));
    ui.jobs.replaceChildren(...rows);
  }

  async function refresh() {
    try {
      const r = await api('GET', '/v1/jobs');
      if (!r.ok) throw new Error(r.data && r.data.error || 'HTTP ' + r.status);
      state.jobs = r.data.jobs || [];
      ui.jobsError.textContent = '';
      renderJobs();
    } catch (e) {
      ui.jobsError.textContent = 'cannot list jobs: ' + e.message;
    }
  }

  async function stop(id, button) {
    button.disabled = true;
    button.textContent = 'Stopping…';
    const r = await api('DELETE', '/v1/jobs/' + encodeURIComponent(id));
    if (!r.ok) ui.jobsError.textContent = `stop ${id}: ` + (r.data && r.data.error || r.status);
    refresh();
  }

  ui.form.addEventListener('submit', async (e) => {
    e.preventDefault();
    const body = { source: $('#source').value.trim(), ladder: ui.ladder.value };
    const id = $('#job-id').value.trim();
    if (id) body.id = id;
    if ($('#record').checked) body.record = true;
    ui.formMessage.className = 'muted';
    ui.formMessage.textContent = 'starting…';
    const r = await api('POST', '/v1/jobs', body);
    if (!r.ok) {
      ui.formMessage.className = 'error';
      ui.formMessage.textContent = (r.data && r.data.error) || 'HTTP ' + r.status;
      return;
    }
    ui.formMessage.className = 'ok';
    ui.formMessage.textContent = `started job ${r.data.id}`;
    if (r.data.ingest && r.data.ingest.stream_key) showKey(r.data, 'push job');
    await refresh();
    play(r.data.id);
  });

  // The player. play() (re)starts it on the selected job with the chosen engine.
  function destroyPlayer() {
    if (state.player) {
      try { state.player.destroy(); } catch (e) { /* already gone */ }
      state.player = null;
    }
    video.removeAttribute('src');
    video.load();
    ui.rung.replaceChildren(el('option', { value: 'auto' }, 'auto'));
    ui.rung.disabled = true;
    ui.nowPlaying.textContent = '';
  }

  // play plays a job: its recording once a recording job has ended (the live
  // manifests then hold only the window), else its own manifests.
  async function play(id) {
    const job = state.jobs.find((j) => j.id === id);
    if (!job) return;
    const rec = job.recording && job.recording.hls ? job.recording : null;
    const base = rec ? job.id + '/' : '';
    state.selected = id;
    renderJobs();
    await load({ job: id, what: rec ? 'recording' : 'job' }, `${id} (${rec ? 'recording' : job.live ? 'live' : 'VOD'})`,
      base + (rec ? rec.hls : job.hls), base + (rec ? rec.dash : job.dash), !rec && !job.live);
    showClipTools(job);
  }

  // load (re)starts the player on the manifests hls and dash (paths under /out/);
  // vod says a missing MPD is one not written yet.
  async function load(playing, label, hls, dash, vod) {
    const token = ++state.loading;
    destroyPlayer();
    state.playing = playing;
    const engine = ui.engine.value;
    const url = '/out/' + (engine === 'hls' ? hls : dash);
    ui.playingJob.textContent = label;
    ui.links.replaceChildren('HLS ', el('a', { href: '/out/' + hls }, '/out/' + hls),
      ' · DASH ', el('a', { href: '/out/' + dash }, '/out/' + dash));
    // The manifests appear with the first segments; a VOD job's MPD when it has finished.
    for (let i = 0; ; i++) {
      const res = await fetch(url, { method: 'HEAD', cache: 'no-store' }).catch(() => null);
      if (token !== state.loading) return;
      if (res && res.ok) break;
      if (i > 600) {
        ui.message.textContent = `${url} did not appear`;
        return;
      }
      ui.message.textContent = engine === 'dash' && vod
        ? 'waiting for manifest.mpd: a VOD job writes it when it has finished'
        : 'waiting for the first segments…';
      await new Promise((r) => setTimeout(r, 500));
    }
    ui.message.textContent = '';
    try {
      state.player = engine === 'hls' ? hlsPlayer(url) : dashPlayer(url);
    } catch (e) {
      ui.message.textContent = e.message;
    }
  }

  // Clips (a recording job's). A mark is the player's position as a wall-clock time
  // (the program date-time hls.js reads from the playlists, dash.js's time as UTC on a
  // live MPD), else as an offset into the recording: playing the recording, its
  // current time; playing a clip, the clip's offset plus its current time.
  const clipTools = $('#clip-tools');
  const clock = (d) => d.toISOString().slice(11, 23) + 'Z';

  function showClipTools(job) {
    clipTools.hidden = !job.recording;
    state.marks = {};
    $('#in-at').textContent = 'in: not marked';
    $('#out-at').textContent = 'out: not marked';
    $('#clip-message').textContent = '';
    if (job.recording) {
      $('#clips-of').textContent = `of ${job.id}`;
      loadClips(job.id);
    }
  }

  function mark(which) {
    const p = state.player, pl = state.playing;
    if (!p || !pl) return;
    let at = null;
    try { at = p.wallClock(); } catch (e) { /* not playing yet */ }
    const t = video.currentTime;
    const offset = pl.what === 'recording' ? t : pl.what === 'clip' ? pl.clip.offset + t : null;
    if (!at && offset === null) {
      $('#clip-message').className = 'error';
      $('#clip-message').textContent = 'the player knows no wall-clock time here: play the recording';
      return;
    }
    state.marks[which] = { at, offset };
    $(`#${which}-at`).textContent = `${which}: ` + (at ? clock(at) : `${offset.toFixed(1)} s`);
  }
  $('#mark-in').addEventListener('click', () => mark('in'));
  $('#mark-out').addEventListener('click', () => mark('out'));

  $('#cut').addEventListener('click', async () => {
    const { in: a, out: b } = state.marks;
    const msg = $('#clip-message');
    const job = state.playing && state.playing.job;
    msg.className = 'error';
    if (!job || !a || !b) {
      msg.textContent = 'mark in and out first';
      return;
    }
    const body = { id: $('#clip-id').value.trim() };
    if (a.at && b.at) {
      body.from = a.at.toISOString();
      body.to = b.at.toISOString();
    } else if (a.offset !== null && b.offset !== null) {
      body.from_s = a.offset;
      body.to_s = b.offset;
    } else {
      msg.textContent = 'in and out were marked on different timelines: mark both again';
      return;
    }
    msg.className = 'muted';
    msg.textContent = 'cutting…';
    const r = await api('POST', '/v1/jobs/' + encodeURIComponent(job) + '/clips', body);
    if (!r.ok) {
      msg.className = 'error';
      msg.textContent = (r.data && r.data.error) || 'HTTP ' + r.status;
      return;
    }
    msg.className = 'ok';
    msg.textContent = `clip ${r.data.id}: ${r.data.duration.toFixed(1)} s`;
    loadClips(job);
  });

  async function loadClips(id) {
    const r = await api('GET', '/v1/jobs/' + encodeURIComponent(id) + '/clips');
    if (!r.ok || state.selected !== id) return;
    const time = (s) => clock(new Date(s));
    const rows = (r.data.clips || []).map((c) => el('tr', { 'data-clip': c.id },
      el('td', {}, c.id), el('td', {}, time(c.from)), el('td', {}, time(c.to)),
      el('td', { class: 'duration' }, `${c.duration.toFixed(1)} s`),
      el('td', {}, `${c.rendition} ${c.first_segment}–${c.last_segment}` + (c.discontinuities ? `, ${c.discontinuities} restart(s)` : '')),
      el('td', { class: 'clip-actions' }, el('button', { class: 'play-clip', type: 'button', onclick: () => playClip(id, c) }, 'Play'))));
    if (!rows.length) rows.push(el('tr', { class: 'empty' }, el('td', { colspan: 6, class: 'muted' }, 'no clips yet')));
    $('#clips tbody').replaceChildren(...rows);
  }

  function playClip(id, c) {
    load({ job: id, what: 'clip', clip: c }, `${id}: clip ${c.id}`, `${id}/${c.hls}`, `${id}/${c.dash}`, false);
  }

  function fillRungs() {
    const p = state.player;
    if (!p) return;
    const rungs = p.rungs().slice().sort((a, b) => b.height - a.height);
    ui.rung.replaceChildren(el('option', { value: 'auto' }, 'auto'),
      ...rungs.map((r) => el('option', { value: r.id }, `${r.height}p · ${r.width}x${r.height} · ${kbps(r.bitrate)}`)));
    ui.rung.disabled = rungs.length === 0;
  }

  ui.rung.addEventListener('change', () => {
    if (state.player) state.player.select(ui.rung.value);
  });
  ui.engine.addEventListener('change', () => {
    const pl = state.playing;
    if (pl && pl.what === 'clip') playClip(pl.job, pl.clip);
    else if (state.selected) play(state.selected);
  });

  function startVideo() {
    const p = video.play();
    if (p && p.catch) p.catch(() => { /* autoplay refused: the controls are there */ });
  }

  function hlsPlayer(url) {
    if (!window.Hls || !Hls.isSupported()) throw new Error('hls.js cannot play in this browser');
    // Live: two target durations behind the newest segment (hls.js's default is three),
    // which is where the MPD's suggestedPresentationDelay puts dash.js too; up to 10 %
    // faster playback makes up for a slow start, and a player more than six behind
    // (after a stall) jumps back to that point.
    const hls = new Hls({ liveSyncDurationCount: 2, liveMaxLatencyDurationCount: 6, maxLiveSyncPlaybackRate: 1.1 });
    hls.on(Hls.Events.MANIFEST_PARSED, () => { fillRungs(); startVideo(); });
    hls.on(Hls.Events.ERROR, (_, d) => {
      if (d.fatal) ui.message.textContent = `hls.js: ${d.type} ${d.details}`;
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    return {
      destroy: () => hls.destroy(),
      rungs: () => hls.levels.map((l, i) => ({ id: String(i), width: l.width, height: l.height, bitrate: l.bitrate })),
      select: (id) => { hls.currentLevel = id === 'auto' ? -1 : Number(id); },
      current: () => {
        const l = hls.levels[hls.currentLevel];
        return l ? { bitrate: l.bitrate, name: `${l.height}p` } : null;
      },
      latency: () => (hls.levels[hls.currentLevel] && hls.levels[hls.currentLevel].details &&
        hls.levels[hls.currentLevel].details.live ? hls.latency : NaN),
      wallClock: () => hls.playingDate || null,
    };
  }

  function dashPlayer(url) {
    if (!window.dashjs) throw new Error('dash.js did not load');
    const p = dashjs.MediaPlayer().create();
    // Clock sync comes from the MPD's UTCTiming; should that fail, ask this server rather
    // than dash.js's default time server on the internet.
    // Live: dash.js keeps to the MPD's suggestedPresentationDelay, and its catch-up
    // (off by default without a ServiceDescription) plays up to 10 % faster or slower to
    // stay there after a slow start or a stall.
    p.updateSettings({
      streaming: {
        utcSynchronization: { defaultTimingSource: { scheme: 'urn:mpeg:dash:utc:http-head:2014', value: new URL(url, location.href).href } },
        liveCatchup: { enabled: true, playbackRate: { min: -0.1, max: 0.1 } },
      },
    });
    const ev = dashjs.MediaPlayer.events;
    p.on(ev.STREAM_INITIALIZED, fillRungs);
    p.on(ev.ERROR, (e) => { ui.message.textContent = 'dash.js: ' + ((e.error && e.error.message) || 'error'); });
    p.initialize(video, url, true);
    return {
      destroy: () => p.destroy(),
      rungs: () => p.getRepresentationsByType('video').map((r) => ({ id: r.id, width: r.width, height: r.height, bitrate: r.bandwidth })),
      select: (id) => {
        const auto = id === 'auto';
        p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: auto } } } });
        if (!auto) p.setRepresentationForTypeById('video', id, true);
      },
      current: () => {
        const r = p.getCurrentRepresentationForType('video');
        return r ? { bitrate: r.bandwidth, name: r.id } : null;
      },
      latency: () => (p.isDynamic() ? p.getCurrentLiveLatency() : NaN),
      wallClock: () => (p.isDynamic() ? new Date(p.timeAsUTC() * 1000) : null),
    };
  }

  // What is on screen now: the decoded size, and the rung and bitrate the player chose.
  setInterval(() => {
    const p = state.player;
    if (!p || !video.videoWidth) return;
    let cur = null, lat = NaN;
    try { cur = p.current(); lat = p.latency(); } catch (e) { /* starting */ }
    const parts = [`${video.videoWidth}x${video.videoHeight}`];
    if (cur) parts.push(cur.name, kbps(cur.bitrate));
    if (Number.isFinite(lat) && lat > 0) parts.push(`latency ${lat.toFixed(1)} s`);
    ui.nowPlaying.textContent = parts.join(' · ');
  }, 500);

  api('GET', '/healthz').then((r) => {
    if (r.ok && r.data) $('#health').textContent = 'version ' + r.data.version;
  });
  loadLadders();
  refresh();
  setInterval(refresh, 2000);
})();
