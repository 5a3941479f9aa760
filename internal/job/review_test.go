package job

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// TestStoppedRecordingKeepsInits: after a recording stopped (kept), the window prune
// deletes no init segment, even one of a run the index no longer lists (after a
// restart it keeps only its newest unbroken run of numbers): the recording's clips
// still need it.
func TestStoppedRecordingKeepsInits(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "v")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, run := range []uint64{1, 2} {
		if err := os.WriteFile(filepath.Join(dir, manifest.InitName(run)), []byte("init"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name    string
		kept    map[string]uint64
		deleted bool
	}{
		{"recording stopped", map[string]uint64{"v": 10}, false},
		{"not a recording", nil, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := newIndex(true, time.Second, time.Minute, time.Now)
			x.kept = c.kept
			tr := x.addTrack("v", manifest.Video, dir, "", 0)
			tr.inits, tr.initRun = []uint64{1, 2}, 2
			tr.Segments = []manifest.Segment{{Number: 20, Run: 2}}
			if errs := x.pruneInits(tr); len(errs) > 0 {
				t.Fatal(errs)
			}
			_, err := os.Stat(filepath.Join(dir, manifest.InitName(1)))
			if gone := os.IsNotExist(err); gone != c.deleted {
				t.Errorf("run 1's init deleted: %v, want %v", gone, c.deleted)
			}
		})
	}
}

// TestRetentionKeepsLiveInits: retention keeps the init segment of a run whose segments
// the final live playlists name, though none of the recording's segments of that run
// is kept (a recording stopped, then the live window went on in the same run).
func TestRetentionKeepsLiveInits(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "v"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, "v", name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(manifest.InitName(7))
	write(manifest.SegmentName(7, 1))
	write(manifest.SegmentName(7, 9)) // in the live window, not the recording's
	if err := os.WriteFile(filepath.Join(dir, "v", manifest.MediaName), []byte("#EXTM3U\n"+manifest.SegmentName(7, 9)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &manifest.Presentation{Video: []manifest.Track{{Name: "v", Kind: manifest.Video, Segments: []manifest.Segment{{Number: 1, Run: 7}}}}}
	keep, liveRuns, err := namedSegments(dir, p, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, errs := removeUnnamed(dir, p, keep, liveRuns); len(errs) > 0 {
		t.Fatal(errs)
	}
	if _, err := os.Stat(filepath.Join(dir, "v", manifest.SegmentName(7, 1))); !os.IsNotExist(err) {
		t.Errorf("the recorded segment no one names is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "v", manifest.InitName(7))); err != nil {
		t.Errorf("the init of the run the final live playlist names was deleted: %v", err)
	}
}

// TestReserveWhileLow: a recording job is refused while the watcher last saw free
// space below the reserve, though it is back above the reserve (not yet by the
// margin): the recordings it stopped are still stopped.
func TestReserveWhileLow(t *testing.T) {
	m := &Manager{cfg: Config{Output: t.TempDir(), RecordMinFree: 1}}
	if err := m.checkReserve(true); err != nil {
		t.Fatalf("room, not low: %v", err)
	}
	m.diskLow.Store(true)
	if err := m.checkReserve(true); err == nil {
		t.Error("a recording job was accepted while the watcher says free space is low")
	}
	if err := m.checkReserve(false); err != nil {
		t.Errorf("a job that does not record was refused: %v", err)
	}
}
