package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestRecordReserve is issue 19's disk reserve, on a real 64 MiB tmpfs with a reserve of
// 8 MiB (--record-min-free): a recording job is refused (507) while less is free; one
// started with room records until a filler file leaves it 1.5 MiB above the reserve,
// then its recording stops with an event and says why, while the live stream goes on:
// its playlists keep moving, every segment they and the clips name stays on disk, the
// recording no longer grows, and the window's cleanup deletes again what leaves the
// window (10 s here, and its 33 s of grace), so that the disk fills no further.
func TestRecordReserve(t *testing.T) {
	if testing.Short() {
		t.Skip("the disk reserve test runs for about two minutes")
	}
	out := mountTmpfs(t, 64<<20)
	profiles := t.TempDir()
	l := strings.Replace(string(readFile(t, "../../profiles/test.yaml")), "window: 2m", "window: 10s", 1)
	if err := os.WriteFile(filepath.Join(profiles, "test.yaml"), []byte(l), 0o644); err != nil {
		t.Fatal(err)
	}
	const reserve = 8 << 20
	d := startDaemon(t, profiles, func(c *Config) {
		c.Output, c.RecordMinFree, c.DiskCheck = out, "8MiB", 500*time.Millisecond
	})
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	body := `{"source":"` + src.URL + `","ladder":"test","id":"rec","record":true}`
	filler := filepath.Join(out, "filler")
	fill(t, filler, reserve-(1<<20))
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs", body, &e); code != http.StatusInsufficientStorage || !strings.Contains(e["error"], "reserve 8.3 MB") {
		t.Errorf("a recording job under the reserve: %d %v, want 507 naming the reserve", code, e)
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}

	v := d.create(t, body)
	dir := filepath.Join(out, v.ID)
	d.pollServed(t, dir, v.ID, 2*time.Minute, "8 s recorded", recorded(8))
	var early job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/rec/clips", `{"id":"early","from_s":1,"to_s":6}`, &early); code != http.StatusCreated {
		t.Fatalf("POST clip: %d", code)
	}
	since := time.Now()
	fill(t, filler, reserve+(3<<19))
	v = d.pollServed(t, dir, v.ID, time.Minute, "the recording stopped", func(v job.View) bool {
		return v.Recording != nil && v.Recording.Stopped != ""
	})
	time.Sleep(2 * time.Second) // the runner carries the stop out at its next segment
	v, stoppedAt := d.job(t, v.ID), time.Now()
	t.Logf("recording stopped after %v: %+v", stoppedAt.Sub(since).Round(time.Millisecond), *v.Recording)
	if ev := d.events(t, v.ID, since); !slices.ContainsFunc(ev, func(e job.Event) bool {
		return e.Type == "recording" && strings.Contains(e.Message, "recording stopped") && strings.Contains(e.Message, "reserve")
	}) {
		t.Errorf("no recording event says it stopped: %v", ev)
	}
	// The whole recording, as a clip: every segment of it must stay.
	var whole job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/rec/clips", fmt.Sprintf(`{"id":"whole","from_s":0,"to_s":%.3f}`, v.Recording.Duration-0.5), &whole); code != http.StatusCreated {
		t.Fatalf("POST clip of the whole recording: %d", code)
	}

	live := filepath.Join(dir, "180p", manifest.MediaName)
	seq := mediaSequence(t, live)
	after := d.pollServed(t, dir, v.ID, 2*time.Minute, "75 s of live after the stop", func(job.View) bool {
		return time.Since(stoppedAt) > 75*time.Second
	})
	if now := mediaSequence(t, live); now < seq+60 {
		t.Errorf("the live playlist's media sequence went from %d to %d in 75 s: want the live stream going on", seq, now)
	}
	if after.Recording.Segments != v.Recording.Segments || after.Recording.Stopped == "" {
		t.Errorf("recording after the stop: %+v, at the stop %+v: want it no longer growing", *after.Recording, *v.Recording)
	}
	for _, c := range []job.Clip{early, whole} {
		for _, r := range []string{"180p", "aac"} {
			for _, run := range playlistRuns(t, filepath.Join(dir, "clips", c.ID, r, manifest.MediaName)) {
				for _, f := range run {
					if _, err := os.Stat(f); err != nil {
						t.Errorf("clip %s names %s: %v", c.ID, f, err)
					}
				}
			}
		}
	}
	// Without the cleanup, the 75 s since the stop would all be on disk.
	segs, _ := filepath.Glob(filepath.Join(dir, "180p", "seg_*.m4s"))
	recordedSegs := int(whole.Tracks["180p"][1]-whole.Tracks["180p"][0]) + 1
	t.Logf("180p: %d segments on disk, %d of them the recording's", len(segs), recordedSegs)
	if len(segs) > recordedSegs+60 {
		t.Errorf("180p holds %d segments, the recording %d: the window's cleanup deletes nothing after the stop", len(segs), recordedSegs)
	}
}

// mediaSequence reads the EXT-X-MEDIA-SEQUENCE of a media playlist.
func mediaSequence(t *testing.T, path string) int {
	t.Helper()
	for line := range strings.Lines(string(readFile(t, path))) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "#EXT-X-MEDIA-SEQUENCE:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: media sequence %q", path, v)
			}
			return n
		}
	}
	t.Fatalf("%s has no media sequence", path)
	return 0
}
