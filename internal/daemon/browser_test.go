package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// webTest is the folder of the browser test scripts and their pinned npm packages.
const webTest = "../../web/test"

// requireBrowser skips the test when node, the npm packages of web/test or Chromium are
// missing (scripts/test installs them), or fails it when CI is set.
func requireBrowser(t *testing.T) {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing []string
	if _, err := exec.LookPath("node"); err != nil {
		missing = append(missing, "node (Debian package nodejs)")
	}
	if _, err := os.Stat(filepath.Join(webTest, "node_modules", "playwright-core")); err != nil {
		missing = append(missing, "web/test/node_modules (run: cd web/test && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci)")
	}
	if _, err := os.Stat(chromium); err != nil {
		missing = append(missing, chromium+" (Debian package chromium)")
	}
	if len(missing) == 0 {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("browser test needs %s (CI is set, so this is a failure, not a skip)", strings.Join(missing, ", "))
	}
	t.Skipf("browser test needs %s; skipping (set CI to make this fail)", strings.Join(missing, ", "))
}

// browserStep is one check of one player session, as players.mjs reports it.
type browserStep struct {
	Name    string  `json:"name"`
	OK      bool    `json:"ok"`
	Detail  string  `json:"detail"`
	Seconds float64 `json:"seconds"`
}

type browserSession struct {
	Player   string        `json:"player"`
	Manifest string        `json:"manifest"`
	URL      string        `json:"url"`
	Kind     string        `json:"kind"`
	OK       bool          `json:"ok"`
	Version  string        `json:"version"`
	Steps    []browserStep `json:"steps"`
	Latency  *struct {
		Max, Mean, Limit float64
		Samples          int
		Series           []float64
	} `json:"latency"`
	UTCHeadRequests int `json:"utcHeadRequests"`
	Final           *struct {
		Time         float64  `json:"time"`
		Warnings     int      `json:"warnings"`
		LastWarnings []string `json:"lastWarnings"`
		Fatal        []string `json:"fatal"`
		Notes        []string `json:"notes"`
	} `json:"final"`
	HTTPErrors        []string `json:"httpErrors"`
	ConsoleErrors     []string `json:"consoleErrors"`
	Error             string   `json:"error"`
	ManifestAtFailure string   `json:"manifestAtFailure"`
}

type browserResult struct {
	Sessions []browserSession `json:"sessions"`
	Blocked  []string         `json:"blocked"`
	Seconds  float64          `json:"seconds"`
	Error    string           `json:"error"` // the script itself failed
	Stop     *struct {
		State   string  `json:"state"`
		Seconds float64 `json:"seconds"`
		Error   string  `json:"error"`
	} `json:"stop"`
}

// runNode runs a script of web/test with a JSON configuration, and returns what it
// wrote to the file named by the configuration's "out", decoded into result. Its
// progress lines go to the test log.
func runNode(t *testing.T, limit time.Duration, script string, cfg map[string]any, result any) error {
	t.Helper()
	out := filepath.Join(t.TempDir(), "result.json")
	cfg["out"] = out
	arg, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "node", script, string(arg))
	cmd.Dir = webTest
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1")
	// SIGTERM first: playwright-core then closes the browser it started (in a process
	// group of its own, which killing node would leave behind).
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 15 * time.Second
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = &stderr
	runErr := cmd.Run()
	for _, line := range strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n") {
		t.Log(line)
	}
	if ctx.Err() != nil {
		return fmt.Errorf("node %s: no result after %v", script, limit)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		return fmt.Errorf("node %s: %v; no result: %w", script, runErr, err)
	}
	if err := json.Unmarshal(data, result); err != nil {
		return fmt.Errorf("node %s: result: %w", script, err)
	}
	var ee *exec.ExitError
	if runErr != nil && !errors.As(runErr, &ee) {
		return fmt.Errorf("node %s: %w", script, runErr)
	}
	return nil
}

// TestPlayers plays a live job (RTMP source) and a VOD job (a generated file), both on
// the test ladder, in headless Chromium with hls.js, dash.js and Shaka. See
// web/test/players.mjs for the checks; each player and manifest is reported as a subtest.
func TestPlayers(t *testing.T) {
	requireBrowser(t)
	began := time.Now()
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	live := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"live"}`)
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "vod.mp4"), testmedia.SampleOptions{
		Width: 640, Height: 360, FPS: 30, Duration: 30 * time.Second,
	})
	vod := d.create(t, `{"source":"vod.mp4","ladder":"test","id":"vod"}`)
	d.waitFor(t, vod.ID, 3*time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	d.waitFor(t, live.ID, time.Minute, "3 segments per rendition", func(v job.View) bool {
		_, err := os.Stat(filepath.Join(d.out, live.ID, manifest.MPDName))
		return v.State == job.Running && err == nil && v.Segments >= 3*len(v.Renditions)
	})
	t.Logf("jobs ready after %v", time.Since(began).Round(100*time.Millisecond))

	cfg := map[string]any{"base": d.api, "live": live.ID, "vod": vod.ID}
	if only := os.Getenv("PLAYERS_ONLY"); only != "" { // e.g. "hls.js master.m3u8,shaka manifest.mpd"
		cfg["only"] = strings.Split(only, ",")
	}
	var res browserResult
	if err := runNode(t, 4*time.Minute, "players.mjs", cfg, &res); err != nil {
		t.Fatal(err)
	}
	reportSessions(t, res)
	v := d.job(t, live.ID)
	if v.State != job.Finished {
		t.Errorf("live job is %s after the players' run, want finished (stopped by players.mjs): %+v", v.State, res.Stop)
	}
	if v.Restarts > 0 {
		t.Logf("the live job's ffmpeg restarted %d times during the run", v.Restarts)
	}
	t.Logf("browser run %.1fs; whole test %v", res.Seconds, time.Since(began).Round(100*time.Millisecond))
}

// reportSessions turns each session into a subtest named after its player, kind and
// manifest, failing with the step and the player's own error.
func reportSessions(t *testing.T, res browserResult) {
	t.Helper()
	if len(res.Sessions) == 0 {
		t.Fatal("the browser run reported no sessions")
	}
	for _, u := range res.Blocked {
		t.Errorf("the page tried to reach another host: %s", u)
	}
	for _, s := range res.Sessions {
		t.Run(s.Player+" "+s.Kind+" "+s.Manifest, func(t *testing.T) {
			t.Logf("%s %s playing %s", s.Player, s.Version, s.URL)
			for _, st := range s.Steps {
				if st.OK {
					t.Logf("ok   %-32s %5.1fs  %s", st.Name, st.Seconds, st.Detail)
				} else {
					t.Errorf("%s playing %s: %s: %s", s.Player, s.URL, st.Name, st.Detail)
				}
			}
			if s.Latency != nil {
				t.Logf("latency samples (s): %v", s.Latency.Series)
			}
			if s.Player == "dash.js" && s.Kind == "live" {
				t.Logf("dash.js sent %d HEAD requests to manifest.mpd (UTCTiming http-head)", s.UTCHeadRequests)
			}
			if s.Final != nil && s.Final.Warnings > 0 {
				t.Logf("%d recoverable player errors, last: %s", s.Final.Warnings, strings.Join(s.Final.LastWarnings, " | "))
			}
			for _, e := range s.HTTPErrors {
				t.Logf("HTTP error seen by the page: %s", e)
			}
			if !s.OK && s.Final != nil && len(s.Final.Notes) > 0 {
				t.Logf("player events: %s", strings.Join(s.Final.Notes, " | "))
			}
			if s.ManifestAtFailure != "" {
				t.Logf("%s when the step failed:\n%s", s.Manifest, s.ManifestAtFailure)
			}
			if !s.OK && len(s.ConsoleErrors) > 0 {
				t.Logf("console errors: %s", strings.Join(s.ConsoleErrors, " | "))
			}
			if s.Error != "" {
				t.Errorf("%s playing %s: the test script failed: %s", s.Player, s.URL, s.Error)
			} else if !s.OK && (len(s.Steps) == 0 || s.Steps[len(s.Steps)-1].OK) {
				t.Errorf("%s playing %s: the session failed without a failed step (see the log)", s.Player, s.URL)
			}
		})
	}
}

// TestPreviewPage opens the preview page (GET /) in headless Chromium on a daemon whose
// API needs a token, gives the page the token it asks for, starts a file job from its
// form and follows the job's progress bar to 100 %, starts a live job from the form and
// plays it in the page with hls.js and dash.js, choosing a rung; the live job records
// ("record" ticked in the form), and a clip is cut from the page (Mark in, Mark out, Cut
// clip) and played from its clip list (issue 19). See web/test/preview.mjs.
func TestPreviewPage(t *testing.T) {
	requireBrowser(t)
	began := time.Now()
	const token = "preview-page-test-token-0123456789"
	d := startDaemon(t, "", func(c *Config) { c.APIToken = token })
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	// The page starts a file job, for its progress bar: big enough to run a while on the
	// default ladder.
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "clip.mp4"), testmedia.SampleOptions{Width: 1280, Height: 720, FPS: 30, Duration: 20 * time.Second, Noise: true})
	var res struct {
		Steps      []browserStep `json:"steps"`
		Blocked    []string      `json:"blocked"`
		PageErrors []string      `json:"pageErrors"`
		Error      string        `json:"error"`
		Seconds    float64       `json:"seconds"`
	}
	shot := os.Getenv("PREVIEW_SCREENSHOT") // where to keep a screenshot of the page, for a person to look at
	if shot == "" {
		shot = filepath.Join(t.TempDir(), "preview.png")
	}
	err := runNode(t, 3*time.Minute, "preview.mjs", map[string]any{
		"base": d.api, "source": src.URL, "ladder": "test", "id": "form", "heights": []int{360, 180}, "screenshot": shot, "token": token,
		"file": map[string]string{"source": "clip.mp4", "ladder": "default", "id": "file"},
		"clip": map[string]any{"id": "page-cut", "seconds": 5, "segment": testSegment.Seconds()},
	}, &res)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range res.Steps {
		if st.OK {
			t.Logf("ok   %-40s %5.1fs  %s", st.Name, st.Seconds, st.Detail)
		} else {
			t.Errorf("preview page: %s: %s (screenshot: %s)", st.Name, st.Detail, shot)
		}
	}
	if len(res.Steps) == 0 || res.Error != "" {
		t.Errorf("preview page: the test script failed: %s", res.Error)
	}
	for _, e := range res.PageErrors {
		t.Errorf("preview page: script error in the page: %s", e)
	}
	for _, u := range res.Blocked {
		t.Errorf("preview page: the page tried to reach another host: %s", u)
	}
	if v := d.job(t, "form"); !v.Live || v.Ladder != "test" {
		t.Errorf("the job started from the form is %+v", v)
	}
	var clips struct{ Clips []job.Clip }
	if code := d.call(t, http.MethodGet, "/v1/jobs/form/clips", "", &clips); code != http.StatusOK || len(clips.Clips) != 1 || clips.Clips[0].ID != "page-cut" {
		t.Errorf("the clips of the job started from the form: %d %+v", code, clips)
	} else if c := clips.Clips[0]; c.Duration < 5 || c.Duration > 5+3*testSegment.Seconds() {
		t.Errorf("the clip cut from the page lasts %.3f s, about 5 s were marked: %+v", c.Duration, c)
	}
	if v := d.job(t, "file"); v.Live || v.State != job.Finished || v.Progress.Percent == nil || *v.Progress.Percent != 100 {
		t.Errorf("the file job started from the form is %s, %+v", v.State, v.Progress)
	}
	t.Logf("browser run %.1fs; whole test %v", res.Seconds, time.Since(began).Round(100*time.Millisecond))
}
