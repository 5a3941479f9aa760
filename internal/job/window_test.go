package job

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestWindowEnforced runs a live job with a 3 s window and a 1 s grace period and checks
// that old segments leave the playlists and the MPD, then the disk, while new ones keep coming.
func TestWindowEnforced(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	profiles := t.TempDir()
	yaml := "segment_duration: 1s\nwindow: 3s\nvideo:\n  preset: ultrafast\n  renditions:\n    - {name: v180, height: 180, bitrate: 200k}\naudio:\n  - {name: aac, codec: aac, bitrate: 64k}\n"
	if err := os.WriteFile(filepath.Join(profiles, "short.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	m := testManager(t, Config{Output: out, Ladders: ladder.NewStore(profiles, nil)}, timing{segmentGrace: time.Second})
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	j, err := m.Create(context.Background(), Request{Source: src.URL, Ladder: "short", ID: "win"})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(out, "win")
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, err := os.Stat(filepath.Join(dir, "v180", "seg_0.m4s"))
		if j.View().Segments >= 2*10 && os.IsNotExist(err) {
			break
		}
		if time.Now().After(deadline) || j.View().State == Failed {
			t.Fatalf("seg_0.m4s not pruned: %+v", j.View())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, name := range []string{"v180", "aac"} {
		pl := string(readFile(t, filepath.Join(dir, name, manifest.MediaName)))
		n := strings.Count(pl, "#EXTINF:")
		if n < 3 || n > 5 {
			t.Errorf("%s lists %d segments for a 3 s window of 1 s segments:\n%s", name, n, pl)
		}
		if strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:0\n") {
			t.Errorf("%s: media sequence did not advance:\n%s", name, pl)
		}
		files, _ := filepath.Glob(filepath.Join(dir, name, "seg_*.m4s"))
		if len(files) > 3+2+3 { // window + grace + the segments being written or just listed
			t.Errorf("%s: %d segment files on disk for a 3 s window and 1 s grace", name, len(files))
		}
	}
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
	doc, err := mpd.ReadFromFile(filepath.Join(dir, manifest.MPDName))
	if err != nil {
		t.Fatal(err)
	}
	if doc.TimeShiftBufferDepth == nil || time.Duration(*doc.TimeShiftBufferDepth) != 3*time.Second {
		t.Errorf("timeShiftBufferDepth = %v, want PT3S", doc.TimeShiftBufferDepth)
	}
	for _, as := range doc.Periods[0].AdaptationSets {
		for _, rep := range as.Representations {
			var n int
			for _, s := range rep.SegmentTemplate.SegmentTimeline.S {
				n += 1 + s.R
			}
			if n < 3 || n > 5 || rep.SegmentTemplate.StartNumber == nil || *rep.SegmentTemplate.StartNumber == 0 {
				t.Errorf("%s: timeline of %d segments from startNumber %v", rep.Id, n, rep.SegmentTemplate.StartNumber)
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUntilBeat(t *testing.T) {
	base := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		now   time.Duration // after base
		every time.Duration
		want  time.Duration
	}{
		{0, time.Second, time.Second}, // on a beat: the next one
		{1, time.Second, time.Second - 1},
		{300 * time.Millisecond, time.Second, 700 * time.Millisecond},
		{999 * time.Millisecond, time.Second, time.Millisecond},
		{1250 * time.Millisecond, 100 * time.Millisecond, 50 * time.Millisecond},
	} {
		if got := untilBeat(base.Add(tc.now), tc.every); got != tc.want {
			t.Errorf("untilBeat(+%v, %v) = %v, want %v", tc.now, tc.every, got, tc.want)
		}
	}
}
