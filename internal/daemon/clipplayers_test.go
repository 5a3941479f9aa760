package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// recordWithRestart runs a live job with record: true on the test ladder (1 s
// segments), kills its ffmpeg once killAt seconds are recorded, and returns once total
// seconds are: a recording with a restart inside it (a discontinuity, a new Period).
func recordWithRestart(t *testing.T, d *daemon, id string, killAt, total float64) job.View {
	t.Helper()
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"`+id+`","record":true}`)
	recorded := func(s float64) func(job.View) bool {
		return func(v job.View) bool {
			return v.State == job.Running && v.Recording != nil && v.Recording.Duration >= s
		}
	}
	d.waitFor(t, id, 2*time.Minute, "recorded before the kill", recorded(killAt))
	if err := syscall.Kill(ffmpegPID(t, filepath.Join(d.out, id)), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	v = d.waitFor(t, id, 2*time.Minute, "recorded after the restart", recorded(total))
	if v.Restarts < 1 {
		t.Fatalf("restarts %d, want the kill's", v.Restarts)
	}
	return v
}

// clipFor cuts the clip body asks for of job id and returns what the players are given
// of it: the clip, its job, and its outage (the seconds of its timeline without
// media, which an HLS timeline leaves out).
func clipFor(t *testing.T, d *daemon, id, body string) (job.Clip, map[string]any) {
	t.Helper()
	var c job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/"+id+"/clips", body, &c); code != http.StatusCreated {
		t.Fatalf("POST clip %s: %d", body, code)
	}
	pl := filepath.Join(d.out, id, "clips", c.ID, c.Rendition, manifest.MediaName)
	media, first := playlistSeconds(t, pl), firstRun(t, pl)
	t.Logf("clip %+v: %.3f s of media, %.3f s before the first discontinuity", c, media, first)
	return c, map[string]any{
		"job": id, "id": c.ID, "hls": c.HLS, "dash": c.DASH, "asked": c.Asked, "duration": c.Duration,
		"periods": c.Periods, "discontinuities": c.Discontinuities, "gap": max(0, c.Duration-media), "firstRun": first,
	}
}

// firstRun sums the EXTINF durations of a media playlist before its first
// discontinuity; 0 when it has none.
func firstRun(t *testing.T, path string) float64 {
	t.Helper()
	data := string(readFile(t, path))
	before, _, ok := strings.Cut(data, "#EXT-X-DISCONTINUITY\n")
	if !ok {
		return 0
	}
	tmp := filepath.Join(t.TempDir(), "first.m3u8")
	if err := os.WriteFile(tmp, []byte(before), 0o644); err != nil {
		t.Fatal(err)
	}
	return playlistSeconds(t, tmp)
}

// TestClipPlayers is issue 19's player rule on a short recording: hls.js, dash.js and
// Shaka in Chromium play a clip cut while the job is live, and one cut across a
// restart (ffmpeg killed inside its range), from start to end: the duration each
// player sees is the asked range within one segment at each end, a seek inside the
// clip plays, and playback goes through the discontinuity (HLS) or the Period change
// (DASH) to 'ended'. See runClip in web/test/players.mjs.
func TestClipPlayers(t *testing.T) {
	requireBrowser(t)
	began := time.Now()
	d := startDaemon(t, "")
	recordWithRestart(t, d, "rec", 14, 34)
	c1, talk := clipFor(t, d, "rec", `{"id":"talk","from_s":2.5,"to_s":11.5}`)
	c2, across := clipFor(t, d, "rec", `{"id":"across","from_s":6.5,"to_s":28.5}`)
	if c1.Periods != 1 || c1.Discontinuities != 0 {
		t.Errorf("clip talk, before the restart: %d periods, %d discontinuities", c1.Periods, c1.Discontinuities)
	}
	if c2.Periods < 2 || c2.Discontinuities < 1 {
		t.Errorf("clip across the restart: %d periods, %d discontinuities", c2.Periods, c2.Discontinuities)
	}
	var v job.View
	if code := d.call(t, http.MethodDelete, "/v1/jobs/rec", "", &v); code != http.StatusOK {
		t.Fatalf("DELETE job: %d", code)
	}
	t.Logf("recording ready after %v", time.Since(began).Round(100*time.Millisecond))

	cfg := map[string]any{"base": d.api, "clips": []map[string]any{talk, across}}
	if only := os.Getenv("PLAYERS_ONLY"); only != "" {
		cfg["only"] = strings.Split(only, ",")
	}
	var res browserResult
	if err := runNode(t, 4*time.Minute, "players.mjs", cfg, &res); err != nil {
		t.Fatal(err)
	}
	reportSessions(t, res)
	if len(res.Sessions) != 2*4 && os.Getenv("PLAYERS_ONLY") == "" {
		t.Errorf("%d sessions, want 4 players for each of 2 clips", len(res.Sessions))
	}
	t.Logf("browser run %.1fs; whole test %v", res.Seconds, time.Since(began).Round(100*time.Millisecond))
}
