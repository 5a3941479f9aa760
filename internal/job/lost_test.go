package job

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/supervise"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestTruncatedSegment has ffmpeg (played by feeds) leave a video segment cut short:
// the runner tries it maxSegmentTries times, then gives it up, counts it, and stops
// ffmpeg; the next run goes on at the lost number, so the playlists and the MPD stay
// gapless (a discontinuity, a new Period) and every segment they name is on disk.
func TestTruncatedSegment(t *testing.T) {
	src := readySegments(t, 20)
	dir := t.TempDir()
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r := publishRunner(t, dir, clock)
	feeds := feedTracks(r, src, dir)
	stopped := false
	c := &child{proc: &supervise.Process{Pid: 1}, stop: func() { stopped = true }, stopping: make(chan struct{})}
	step := func(k int, cut bool) {
		now = now.Add(time.Second)
		for _, name := range []string{"a", "v"} {
			feeds[name].emit(t, k)
			if cut && name == "v" {
				feeds[name].truncate(t)
			}
			r.onWake(c)
			checkServed(t, dir, "a segment")
		}
	}
	next := r.idx.beginAttempt()
	firstRun := r.idx.run
	for name, f := range feeds {
		f.begin(t, r.idx.run, next[name])
	}
	for k := range 6 {
		step(k, false)
	}
	step(6, true) // video segment 6 is cut short: one failed try
	for try := 2; try <= maxSegmentTries; try++ {
		if stopped {
			t.Fatalf("ffmpeg stopped after %d tries, want %d", try-1, maxSegmentTries)
		}
		r.onWake(c) // a poll with no new segment, as at a beat
	}
	if !stopped {
		t.Fatalf("ffmpeg not stopped after %d failed tries: the track is frozen at %d", maxSegmentTries, r.idx.tracks[0].last)
	}
	if v := r.j.View(); v.SegmentsLost != 1 {
		t.Errorf("segments lost: %d, want 1", v.SegmentsLost)
	}
	lost := false
	for _, e := range r.j.Events() {
		lost = lost || e.Type == "lost" && strings.Contains(e.Message, "segment 6")
	}
	if !lost {
		t.Errorf("no event says segment 6 was lost: %+v", r.j.Events())
	}
	// ffmpeg exits on the SIGINT; the refresh after it tries the lost segment once more
	// (and fails): that must not stop the next run, which goes on at the lost number.
	if err := r.onExit(context.Background(), c, supervise.Result{}); !errors.Is(err, errSegmentLost) {
		t.Errorf("the run ended with %v, want a lost segment", err)
	}
	// The next run, as runner.attempt starts it.
	next = r.idx.beginAttempt()
	if next["v"] != 6 {
		t.Errorf("the next run writes video from %d, want the lost 6", next["v"])
	}
	for name, f := range feeds {
		f.begin(t, r.idx.run, next[name])
	}
	c = &child{proc: &supervise.Process{Pid: 2}, stop: func() { t.Error("the next run stopped too") }, stopping: make(chan struct{})}
	now = now.Add(3 * time.Second)
	for k := range 5 {
		step(k, false)
	}
	if v := r.j.View(); v.SegmentsLost != 1 {
		t.Errorf("segments lost after the next run: %d, want 1", v.SegmentsLost)
	}
	pl := string(readFile(t, filepath.Join(dir, "v", manifest.MediaName)))
	if !strings.Contains(pl, manifest.SegmentName(firstRun, 5)+"\n#EXT-X-DISCONTINUITY\n") || !strings.Contains(pl, manifest.SegmentName(r.idx.run, 10)) {
		t.Errorf("video playlist:\n%s", pl)
	}
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
	if mpd := string(readFile(t, filepath.Join(dir, manifest.MPDName))); strings.Count(mpd, "<Period") != 2 {
		t.Errorf("MPD with %d Periods, want 2:\n%s", strings.Count(mpd, "<Period"), mpd)
	}
}

// TestTruncatedInit has a run of ffmpeg (played by feeds) write its init segment cut
// short, as on a full disk: the runner must read each run's init again and give the
// run up, so that ffmpeg writes it again, rather than list segments no player can
// decode.
func TestTruncatedInit(t *testing.T) {
	src := readySegments(t, 20)
	dir := t.TempDir()
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	r := publishRunner(t, dir, func() time.Time { return now })
	feeds := feedTracks(r, src, dir)
	stopped := false
	c := &child{proc: &supervise.Process{Pid: 1}, stop: func() { stopped = true }, stopping: make(chan struct{})}
	for run := range 2 {
		next := r.idx.beginAttempt()
		for name, f := range feeds {
			f.begin(t, r.idx.run, next[name])
		}
		if run == 1 {
			if err := os.Truncate(filepath.Join(dir, ffmpeg.PrivateInit("v")), 100); err != nil {
				t.Fatal(err)
			}
		}
		for k := range 3 {
			now = now.Add(time.Second)
			for _, f := range feeds {
				f.emit(t, k)
			}
			r.onWake(c)
		}
		if stopped != (run == 1) {
			t.Fatalf("run %d: ffmpeg stopped %v", run, stopped)
		}
	}
}
