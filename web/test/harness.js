// Player drivers for players.mjs: one page plays one manifest with one player, and the
// test drives it through window.harness. Every driver offers the same calls, so the test
// steps are written once for hls.js, dash.js and Shaka.
'use strict';

(function () {
  const video = document.getElementById('video');
  const H = {
    player: '',
    url: '',
    fatal: [],     // errors that stop playback, as "what: detail"
    warnings: [],  // recoverable errors, last 20
    warningCount: 0,
    endedEvent: false,
    driver: null,
    notes: [],     // player events worth knowing when something fails, last 20
  };
  const note = (msg) => {
    H.notes.push(video.currentTime.toFixed(2) + 's ' + String(msg).slice(0, 300));
    if (H.notes.length > 20) H.notes.shift();
  };

  const fatal = (msg) => { if (H.fatal.length < 20) H.fatal.push(String(msg).slice(0, 500)); };
  const warn = (msg) => {
    H.warningCount++;
    H.warnings.push(String(msg).slice(0, 300));
    if (H.warnings.length > 20) H.warnings.shift();
  };
  window.addEventListener('error', (e) => fatal('page error: ' + e.message));
  window.addEventListener('unhandledrejection', (e) => fatal('unhandled rejection: ' + (e.reason && (e.reason.message || e.reason.code) || e.reason)));
  video.addEventListener('error', () => {
    const e = video.error;
    fatal('media element error: code ' + (e && e.code) + ' ' + (e && e.message));
  });
  video.addEventListener('ended', () => { H.endedEvent = true; });

  const play = () => {
    video.muted = true;
    const p = video.play();
    if (p && p.catch) p.catch((e) => warn('play(): ' + e.message));
  };

  // hls.js: levels are the video variants (it drops the audio-only one when there is
  // video), audioTracks the EXT-X-MEDIA renditions.
  function hlsDriver(url) {
    if (!window.Hls || !Hls.isSupported()) throw new Error('hls.js is not supported in this browser');
    const hls = new Hls();
    hls.on(Hls.Events.ERROR, (_, d) => {
      const what = d.type + '/' + d.details + (d.error ? ': ' + d.error.message : '') +
        (d.frag ? ' (' + d.frag.url + ')' : d.url ? ' (' + d.url + ')' : '') +
        (d.response && d.response.code ? ' HTTP ' + d.response.code : '');
      if (d.fatal) fatal(what); else warn(what);
    });
    hls.on(Hls.Events.MANIFEST_PARSED, play);
    hls.loadSource(url);
    hls.attachMedia(video);
    return {
      version: Hls.version,
      rungs: () => ({
        video: hls.levels.map((l, i) => ({ id: String(i), width: l.width, height: l.height, bitrate: l.bitrate })),
        audio: hls.audioTracks.map((a) => a.name),
      }),
      current: () => {
        const l = hls.levels[hls.currentLevel];
        return l ? { id: String(hls.currentLevel), height: l.height } : null;
      },
      select: (id) => { hls.currentLevel = Number(id); },
      // The EXT-X-MEDIA renditions of the current variant's group, one per language.
      audio: () => ({
        langs: hls.audioTracks.map((a) => a.lang || ''),
        names: hls.audioTracks.map((a) => a.name),
        current: hls.audioTracks[hls.audioTrack] ? hls.audioTracks[hls.audioTrack].lang || '' : null,
      }),
      selectAudio: (lang) => {
        const i = hls.audioTracks.findIndex((a) => a.lang === lang);
        if (i < 0) throw new Error('hls.js lists no audio track of language ' + lang);
        hls.audioTrack = i;
      },
      latency: () => hls.latency,
      target: () => hls.targetLatency,
      live: () => {
        const l = hls.levels[hls.currentLevel] || hls.levels[0];
        return !!(l && l.details && l.details.live);
      },
      liveEdge: () => hls.liveSyncPosition,
      window: () => {
        const l = hls.levels[hls.currentLevel] || hls.levels[0];
        const d = l && l.details;
        return d && d.fragments.length ? [d.fragments[0].start, d.edge] : null;
      },
    };
  }

  // dash.js: representations per type; a forced switch replaces the buffer.
  function dashDriver(url, opts) {
    if (!window.dashjs) throw new Error('dash.js did not load');
    const p = dashjs.MediaPlayer().create();
    const ev = dashjs.MediaPlayer.events;
    p.on(ev.ERROR, (e) => {
      const err = e.error || {};
      fatal('dash.js error ' + err.code + ': ' + err.message);
    });
    p.on(ev.PLAYBACK_ERROR, (e) => fatal('dash.js playback error: ' + JSON.stringify(e.error || e).slice(0, 300)));
    p.on(ev.PLAYBACK_ENDED, () => { H.endedEvent = true; });
    if (opts.debug) p.updateSettings({ debug: { logLevel: dashjs.Debug.LOG_LEVEL_INFO } });
    // Each page is a viewer of its own. dash.js keeps the last audio language chosen in
    // localStorage, which the pages of one browser share: a page starting while another
    // had just switched to French started in French (TestPlayersLanguages).
    p.updateSettings({ streaming: { lastMediaSettingsCachingInfo: { enabled: false } } });
    // Settings for investigating (shed.mjs, SHED_DASH_SETTINGS): the tests play with dash.js's defaults otherwise.
    if (opts.dashSettings) p.updateSettings(opts.dashSettings);
    p.initialize(video, url, true);
    p.setMute(true);
    return {
      version: p.getVersion(),
      rungs: () => ({
        video: p.getRepresentationsByType('video').map((r) => ({ id: r.id, width: r.width, height: r.height, bitrate: r.bandwidth })),
        audio: p.getRepresentationsByType('audio').map((r) => r.id),
      }),
      current: () => {
        const r = p.getCurrentRepresentationForType('video');
        return r ? { id: r.id, height: r.height } : null;
      },
      select: (id) => {
        p.updateSettings({ streaming: { abr: { autoSwitchBitrate: { video: false } } } });
        p.setRepresentationForTypeById('video', id, true);
      },
      // The audio AdaptationSets, one per language.
      audio: () => {
        const tracks = p.getTracksFor('audio');
        const cur = p.getCurrentTrackFor('audio');
        return {
          langs: tracks.map((t) => t.lang || ''),
          names: tracks.map((t) => (t.labels && t.labels[0] && t.labels[0].text) || ''),
          current: cur ? cur.lang || '' : null,
        };
      },
      selectAudio: (lang) => {
        const t = p.getTracksFor('audio').find((t) => t.lang === lang);
        if (!t) throw new Error('dash.js lists no audio track of language ' + lang);
        p.setCurrentTrack(t);
      },
      latency: () => p.getCurrentLiveLatency(),
      target: () => p.getTargetLiveDelay(),
      live: () => p.isDynamic(),
      liveEdge: () => {
        const w = p.getDvrWindow();
        return w ? w.end - p.getTargetLiveDelay() : NaN;
      },
      window: () => {
        const w = p.getDvrWindow();
        return w ? [w.start, w.end] : null;
      },
      // dash.js reads the playhead in presentation time, which is what the element shows.
    };
  }

  // Shaka: variants pair a video and an audio stream; a forced switch clears the buffer.
  function shakaDriver(url, opts) {
    if (!window.shaka) throw new Error('Shaka did not load');
    shaka.polyfill.installAll();
    if (!shaka.Player.isBrowserSupported()) throw new Error('Shaka: browser not supported');
    const p = new shaka.Player();
    // Shaka's ABR bans a rung for a while when too many frames are dropped. On a test
    // machine with two cores and no GPU that measures the machine, not the stream, and a
    // banned rung vanishes from the track list: turn the heuristic off.
    p.configure({ abr: { droppedFrames: false } });
    // Shaka's HLS parser sizes its live seek range from the playlists it has loaded (and
    // keeps the stale length of a playlist it stopped refreshing), unless the app states
    // the DVR window, as an app that offers seeking in live HLS does.
    if (opts.dvrWindow && /\.m3u8(\?|$)/.test(url)) p.configure({ manifest: { availabilityWindowOverride: opts.dvrWindow } });
    p.addEventListener('error', (e) => {
      const d = e.detail || {};
      const what = d.code !== undefined
        ? 'Shaka error ' + d.code + ' (category ' + d.category + ', severity ' + d.severity + '): ' + JSON.stringify(d.data || []).slice(0, 300)
        : 'Shaka error event: ' + String(d.message || d).slice(0, 300);
      if (d.severity === 2) fatal(what); else warn(what);
    });
    (async () => {
      try {
        await p.attach(video);
        await p.load(url);
        play();
      } catch (e) {
        fatal('Shaka load: error ' + e.code + ' (category ' + e.category + '): ' + JSON.stringify(e.data || e.message || '').slice(0, 300));
      }
    })();
    const videoTracks = () => p.getVariantTracks().filter((t) => t.height);
    p.addEventListener('trackschanged', () => note('Shaka trackschanged: video heights ' + videoTracks().map((t) => t.height).join(',')));
    p.addEventListener('variantchanged', () => note('Shaka variantchanged'));
    let lastWidth = -1;
    setInterval(() => {
      if (!p.isLive()) return;
      const r = p.seekRange();
      const w = Math.round(r.end - r.start);
      if (Math.abs(w - lastWidth) > 5 && (w < lastWidth || lastWidth < 0)) note('Shaka seek range ' + r.start.toFixed(1) + '..' + r.end.toFixed(1));
      lastWidth = w;
    }, 1000);
    return {
      version: shaka.Player.version,
      rungs: () => {
        const seen = new Map();
        for (const t of videoTracks()) {
          if (!seen.has(t.height)) seen.set(t.height, { id: String(t.height), width: t.width, height: t.height, bitrate: t.videoBandwidth || t.bandwidth });
        }
        const audio = new Set(p.getVariantTracks().filter((t) => t.audioCodec).map((t) => t.label || t.language + ' #' + t.audioId));
        return { video: [...seen.values()], audio: [...audio].map(String) };
      },
      current: () => {
        const t = p.getVariantTracks().find((t) => t.active);
        return t ? { id: String(t.height), height: t.height } : null;
      },
      select: (id) => {
        p.configure({ abr: { enabled: false } });
        const t = videoTracks().find((t) => String(t.height) === id);
        if (!t) throw new Error('no variant of height ' + id);
        p.selectVariantTrack(t, true);
      },
      // Shaka 5's audio tracks (getAudioLanguages and selectAudioLanguage of Shaka 4 are
      // gone): one per language and label.
      audio: () => {
        const tracks = p.getAudioTracks();
        const active = tracks.find((t) => t.active);
        return { langs: tracks.map((t) => t.language), names: tracks.map((t) => t.label || ''), current: active ? active.language : null };
      },
      selectAudio: (lang) => {
        const t = p.getAudioTracks().find((t) => t.language === lang);
        if (!t) throw new Error('Shaka lists no audio track of language ' + lang);
        p.selectAudioTrack(t);
      },
      latency: () => p.getStats().liveLatency,
      target: () => {
        const m = p.getManifest();
        return m && m.presentationTimeline ? m.presentationTimeline.getDelay() : null;
      },
      live: () => p.isLive(),
      liveEdge: () => p.seekRange().end,
      window: () => {
        const r = p.seekRange();
        return [r.start, r.end];
      },
    };
  }

  // Glass to glass: every displayed frame (requestVideoFrameCallback; else a frame
  // sampled every 100 ms) has the top of its picture drawn to a canvas, and the clock
  // the test source burnt into it (clock.js) is read off; its latency is the wall-clock
  // time the frame is shown minus the time it was made. Stalls: each 'waiting' after
  // the first frame played, and how long until playback moved on.
  const G = {
    samples: [], unreadable: 0, stalls: 0, stallMs: 0, stalledAt: 0, playing: false,
    frames: 0,        // frame callbacks (or 100 ms samples)
    presented: 0,     // frames the compositor presented (rVFC presentedFrames), for missed callbacks
    skipped: 0,       // callbacks while paused or with no picture
    unreadableBy: {}, // unreadable frames by height
  };
  function watchGlass() {
    const canvas = document.createElement('canvas');
    const ctx = canvas.getContext('2d', { willReadFrequently: true });
    const read = (shownMs) => {
      G.frames++;
      const w = video.videoWidth, h = video.videoHeight;
      if (!w || !h || video.paused) { G.skipped++; return; }
      const strip = Math.ceil(2 * h / 9);
      if (canvas.width !== w || canvas.height !== strip) { canvas.width = w; canvas.height = strip; }
      ctx.drawImage(video, 0, 0, w, strip, 0, 0, w, strip);
      const v = window.transcoderdClock.readClock(ctx.getImageData(0, 0, w, strip).data, w, h);
      if (v < 0) { G.unreadable++; G.unreadableBy[h] = (G.unreadableBy[h] || 0) + 1; return; }
      G.samples.push([Date.now(), window.transcoderdClock.clockLatency(v, shownMs), h]);
      if (G.samples.length > 5000) G.samples.shift();
    };
    if (video.requestVideoFrameCallback) {
      const onFrame = (now, meta) => {
        G.presented = meta.presentedFrames;
        read(performance.timeOrigin + (meta.expectedDisplayTime || now));
        video.requestVideoFrameCallback(onFrame);
      };
      video.requestVideoFrameCallback(onFrame);
    } else {
      setInterval(() => read(Date.now()), 100);
    }
    const resume = () => {
      if (G.stalledAt) { G.stallMs += Date.now() - G.stalledAt; G.stalledAt = 0; }
    };
    video.addEventListener('playing', () => { G.playing = true; resume(); });
    video.addEventListener('timeupdate', () => { if (!video.paused && video.readyState >= 3) resume(); });
    video.addEventListener('waiting', () => {
      if (!G.playing || G.stalledAt) return;
      G.stalls++;
      G.stalledAt = Date.now();
      note('waiting (stall ' + G.stalls + ')');
    });
  }

  const drivers = { 'hls.js': hlsDriver, 'dash.js': dashDriver, shaka: shakaDriver };

  window.harness = {
    // start plays url with player; opts.dvrWindow is the stream's live window in seconds;
    // opts.glass measures glass-to-glass latency and stalls (see glass).
    start(player, url, opts = {}) {
      H.player = player;
      H.url = url;
      if (opts.glass) watchGlass();
      try {
        H.driver = drivers[player](url, opts);
      } catch (e) {
        fatal(player + ': ' + e.message);
      }
      return H.driver ? H.driver.version : '';
    },
    state() {
      const d = H.driver;
      const ranges = (r) => Array.from({ length: r.length }, (_, i) => [r.start(i), r.end(i)]);
      let latency = NaN, target = NaN, current = null, live = false, seekWindow = null;
      try { seekWindow = d ? d.window() : null; } catch (e) { /* not yet */ }
      try { latency = d ? Number(d.latency()) : NaN; } catch (e) { /* not yet */ }
      try { target = d ? Number(d.target()) : NaN; } catch (e) { /* not yet */ }
      try { current = d ? d.current() : null; } catch (e) { /* not yet */ }
      try { live = d ? d.live() : false; } catch (e) { /* not yet */ }
      return {
        time: video.currentTime,
        paused: video.paused,
        ended: video.ended,
        endedEvent: H.endedEvent,
        readyState: video.readyState,
        width: video.videoWidth,
        height: video.videoHeight,
        duration: Number.isFinite(video.duration) ? video.duration : -1,
        seekable: ranges(video.seekable),
        window: seekWindow, // the player's own seek range, [start, end]
        buffered: ranges(video.buffered),
        latency: Number.isFinite(latency) ? latency : null,
        targetLatency: Number.isFinite(target) ? target : null,
        current,
        live,
        fatal: H.fatal.slice(),
        warnings: H.warnings.slice(-5),
        warningCount: H.warningCount,
        notes: H.notes.slice(),
      };
    },
    // glass returns the glass-to-glass samples read since fromMs (Unix milliseconds):
    // [when, latency ms, frame height] each, how many frames did not read, and the
    // stalls so far (a stall still going on counts up to now).
    glass(fromMs = 0) {
      const q = video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality() : {};
      return {
        samples: G.samples.filter((x) => x[0] >= fromMs),
        unreadable: G.unreadable,
        unreadableBy: Object.assign({}, G.unreadableBy),
        frames: G.frames,
        presented: G.presented,
        skipped: G.skipped,
        decoded: q.totalVideoFrames || 0,
        dropped: q.droppedVideoFrames || 0,
        mediaTime: video.currentTime,
        visibility: document.visibilityState,
        stalls: G.stalls,
        stallSeconds: (G.stallMs + (G.stalledAt ? Date.now() - G.stalledAt : 0)) / 1000,
      };
    },
    // watch measures glass to glass (see glass) on a page whose own player plays the
    // video element #video: the preview page, with this file loaded into it.
    watch() { watchGlass(); },
    rungs() { return H.driver ? H.driver.rungs() : { video: [], audio: [] }; },
    select(id) { H.driver.select(id); },
    audio() { return H.driver ? H.driver.audio() : { langs: [], names: [], current: null }; },
    selectAudio(lang) { H.driver.selectAudio(lang); },
    liveEdge() { return H.driver.liveEdge(); },
    seek(t) { video.currentTime = t; },
    play,
  };
})();
