package daemon

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// playlistSeconds sums the EXTINF durations of a media playlist.
func playlistSeconds(t *testing.T, path string) float64 {
	t.Helper()
	var sum float64
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "#EXTINF:"); ok {
			f, err := strconv.ParseFloat(strings.TrimSuffix(v, ","), 64)
			if err != nil {
				t.Fatalf("%s: EXTINF %q", path, v)
			}
			sum += f
		}
	}
	return sum
}

// recorded is a condition of waitFor: the job runs and has recorded s seconds.
func recorded(s float64) func(job.View) bool {
	return func(v job.View) bool {
		return v.State == job.Running && v.Recording != nil && v.Recording.Duration >= s
	}
}

// TestRecordClips is issue 19's: a live job with record: true and a 1-minute window
// runs for 3 minutes, its ffmpeg killed half way: the live playlists hold 1 minute,
// the recording 3; a clip of 0:30 to 2:10 lasts 100 s within 2 segments, spans the
// restart (a discontinuity, a new Period), validates and decodes; once stopped, the
// whole recording is served as on-demand.
func TestRecordClips(t *testing.T) {
	if testing.Short() {
		t.Skip("the recording test runs for 3 minutes")
	}
	profiles := t.TempDir()
	ladder := strings.Replace(string(readFile(t, "../../profiles/test.yaml")), "window: 2m", "window: 1m\nrecord: true", 1)
	if err := os.WriteFile(filepath.Join(profiles, "test.yaml"), []byte(ladder), 0o644); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, profiles)
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"rec"}`)
	dir := filepath.Join(d.out, v.ID)
	d.waitFor(t, v.ID, 2*time.Minute, "95 s recorded", recorded(95))
	if err := syscall.Kill(ffmpegPID(t, dir), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	v = d.waitFor(t, v.ID, 3*time.Minute, "180 s recorded", recorded(180))
	t.Logf("recording %+v after %d restarts", *v.Recording, v.Restarts)
	if v.Restarts < 1 {
		t.Errorf("restarts %d, want the kill's", v.Restarts)
	}
	if live := playlistSeconds(t, filepath.Join(dir, "180p", manifest.MediaName)); live < 55 || live > 63 {
		t.Errorf("the live playlist holds %.1f s, want the 1-minute window", live)
	}

	var c job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/rec/clips", `{"id":"talk-03","from_s":30,"to_s":130}`, &c); code != http.StatusCreated {
		t.Fatalf("POST clip: %d", code)
	}
	t.Logf("clip %+v", c)
	if c.Duration < 100-2*testSegment.Seconds() || c.Duration > 100+2*testSegment.Seconds() {
		t.Errorf("clip lasts %.3f s, want 100 ± 2 segments", c.Duration)
	}
	if c.Periods < 2 || c.Discontinuities < 1 || c.HLS != "clips/talk-03/master.m3u8" || c.DASH != "clips/talk-03/manifest.mpd" {
		t.Errorf("clip across the restart: %d periods, %d discontinuities, %s, %s", c.Periods, c.Discontinuities, c.HLS, c.DASH)
	}
	checkClip(t, filepath.Join(dir, "clips", "talk-03"), c.Duration, c.Periods)

	var e map[string]string
	for _, bad := range []struct {
		body string
		code int
	}{
		{`{"id":"talk-03","from_s":10,"to_s":20}`, http.StatusConflict},
		{`{"id":"late","from_s":170,"to_s":400}`, http.StatusBadRequest},
		{`{"id":"early","from_s":-10,"to_s":20}`, http.StatusBadRequest},
		{`{"id":"both","from_s":10,"to_s":20,"from":"2026-01-01T00:00:00Z"}`, http.StatusBadRequest},
		{`{"id":"mp4","from_s":10,"to_s":20,"mp4":true,"rung":"720p"}`, http.StatusBadRequest},
	} {
		if code := d.call(t, http.MethodPost, "/v1/jobs/rec/clips", bad.body, &e); code != bad.code {
			t.Errorf("POST %s: %d %v, want %d", bad.body, code, e, bad.code)
		}
	}
	wall := `{"id":"wall","from":"` + v.Recording.From.Add(10*time.Second).Format(time.RFC3339Nano) +
		`","to":"` + v.Recording.From.Add(20*time.Second).Format(time.RFC3339Nano) + `"}`
	var w job.Clip
	if code := d.call(t, http.MethodPost, "/v1/jobs/rec/clips", wall, &w); code != http.StatusCreated ||
		w.From.After(v.Recording.From.Add(10*time.Second)) || w.To.Before(v.Recording.From.Add(20*time.Second)) || w.Duration > 12.5 {
		t.Errorf("POST %s: %d %+v", wall, code, w)
	}
	var list struct{ Clips []job.Clip }
	if d.call(t, http.MethodGet, "/v1/jobs/rec/clips", "", &list); len(list.Clips) != 2 {
		t.Errorf("GET clips: %+v", list)
	}
	if code := d.call(t, http.MethodDelete, "/v1/jobs/rec/clips/wall", "", &w); code != http.StatusOK {
		t.Errorf("DELETE clip: %d", code)
	}
	if _, err := os.Stat(filepath.Join(dir, "clips", "wall")); !os.IsNotExist(err) {
		t.Errorf("deleted clip's folder: %v", err)
	}

	if code := d.call(t, http.MethodDelete, "/v1/jobs/rec", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Fatalf("DELETE job: %d %s", code, v.State)
	}
	v = d.job(t, "rec")
	if v.Recording == nil || v.Recording.HLS != "recording/master.m3u8" {
		t.Fatalf("ended recording: %+v", v.Recording)
	}
	whole := playlistSeconds(t, filepath.Join(dir, "recording", "180p", manifest.MediaName))
	t.Logf("recording/ lists %.1f s", whole)
	if whole < 175 {
		t.Errorf("recording/ lists %.1f s, want the 3 minutes", whole)
	}
	checkClip(t, filepath.Join(dir, "recording"), v.Recording.Duration, 2)
	checkClip(t, filepath.Join(dir, "clips", "talk-03"), c.Duration, c.Periods) // the window's cleanup deleted none of it
}

// checkClip checks the on-demand manifests in dir: a VOD master and playlists whose
// segments ffmpeg decodes, lasting about duration, and a static MPD of periods
// Periods or more that passes the DASH schema and whose every segment conforms.
func checkClip(t *testing.T, dir string, duration float64, periods int) {
	t.Helper()
	for _, r := range []string{"180p", "aac"} {
		pl := filepath.Join(dir, r, manifest.MediaName)
		data := string(readFile(t, pl))
		if !strings.Contains(data, "#EXT-X-PLAYLIST-TYPE:VOD") || !strings.Contains(data, "#EXT-X-ENDLIST") {
			t.Errorf("%s: not a VOD playlist", pl)
		}
		if got := playlistSeconds(t, pl); got < duration-1.5 || got > duration+1.5 {
			t.Errorf("%s lists %.1f s, want %.1f", pl, got, duration)
		}
		decode(t, pl)
	}
	decode(t, filepath.Join(dir, manifest.MasterName))
	m := checkMPD(t, dir)
	if len(m.Periods) < periods || m.GetType() != "static" {
		t.Errorf("%s: %d periods, type %s", dir, len(m.Periods), m.GetType())
	}
}
