package job

import (
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestRestoreCatchUp checks that a restore indexes the segments that ffmpeg completed
// after the newest stored one (the store is written every few seconds), exactly as
// they were published, and stops at the first one that does not continue the run.
func TestRestoreCatchUp(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	ast := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return ast.Add(time.Minute) }
	run := uint64(clock().Unix()) // the number beginAttempt gives the run below
	job := t.TempDir()
	dir := filepath.Join(job, "v")
	playlist := filepath.Join(job, ffmpeg.PrivatePlaylist("v"))
	for _, d := range []string{dir, filepath.Dir(playlist)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=5",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
		"-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_list_size", "10",
		"-hls_fmp4_init_filename", filepath.Base(ffmpeg.PrivateInit("v")), "-hls_segment_filename", dir+"/"+ffmpeg.SegmentPattern(run),
		"-hls_flags", "+independent_segments+temp_file", playlist).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}

	// What the previous daemon indexed and published: every segment, in a run that
	// began 60 s into the presentation (a restart, so a Period of its own).
	prev := newIndex(true, time.Second, time.Minute, clock)
	prev.ast = ast
	prev.attempt = 1
	pt := prev.addTrack("v", manifest.Video, dir, playlist, 0)
	prev.produced = 1 // as if an earlier run had written segments
	prev.beginAttempt()
	if _, err := prev.poll(); err != nil {
		t.Fatal(err)
	}
	published := pt.Segments
	if len(published) < 4 {
		t.Fatalf("ffmpeg wrote %d segments, want 5", len(published))
	}
	if published[0].PeriodStart != time.Minute || published[0].Start == published[0].MediaTime {
		t.Fatalf("test setup: the run is not shifted: %+v", published[0])
	}

	tests := []struct {
		name   string
		stored []manifest.Segment
		want   []manifest.Segment
	}{
		{"two stored, the rest caught up", published[:2], published},
		{"all stored", published, published},
		{"the newest stored does not end where the next begins", withDuration(published[:2], 1), withDuration(published[:2], 1)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			x := newIndex(true, time.Second, time.Minute, clock)
			x.ast = ast
			tr := x.addTrack("v", manifest.Video, dir, playlist, 0)
			if err := x.restore(tr, tc.stored); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(tr.Segments, tc.want) {
				t.Errorf("restored\n%+v\nwant\n%+v", tr.Segments, tc.want)
			}
			added, _ := x.takeChanges()
			if got, want := len(added["v"]), len(tc.want)-len(tc.stored); got != want {
				t.Errorf("%d caught-up segments to store, want %d", got, want)
			}
		})
	}

	// The folder lacks the first two segments (another box wrote them, or the scratch
	// folder was cleaned): a job published remotely keeps them, the origin has them; one
	// that serves its folder cannot.
	for _, s := range published[:2] {
		if err := os.Remove(filepath.Join(dir, manifest.SegmentName(s.Run, s.Number))); err != nil {
			t.Fatal(err)
		}
	}
	for _, atOrigin := range []bool{false, true} {
		x := newIndex(true, time.Second, time.Minute, clock)
		x.ast, x.atOrigin = ast, atOrigin
		tr := x.addTrack("v", manifest.Video, dir, playlist, 0)
		if err := x.restore(tr, published); err != nil {
			t.Fatal(err)
		}
		want := published[2:]
		if atOrigin {
			want = published
		}
		if !reflect.DeepEqual(tr.Segments, want) {
			t.Errorf("at the origin %v: restored %d segments, want %d", atOrigin, len(tr.Segments), len(want))
		}
	}
}

// withDuration returns a copy of segs whose last segment is d ticks longer.
func withDuration(segs []manifest.Segment, d uint64) []manifest.Segment {
	out := append([]manifest.Segment(nil), segs...)
	out[len(out)-1].Duration += d
	return out
}
