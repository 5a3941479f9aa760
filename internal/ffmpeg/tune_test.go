package ffmpeg

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/profiles"
)

// TestSmokeLowLatencyNoBFrames encodes 2 s of a 720p picture with the shipped
// lowlatency ladder's argv and checks that no rung holds a B-frame: its main
// profile 720p rung would have them from x264 without -tune zerolatency.
func TestSmokeLowLatencyNoBFrames(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	ffprobe := needTool(t, "ffprobe")
	data, err := fs.ReadFile(profiles.FS, "lowlatency.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ladder.Parse("lowlatency", "lowlatency.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	src := makeMedia(t, tmp, "in.mkv", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30:duration=2", "-c:v", "ffv1")
	plan, err := l.Plan(ladder.SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 30})
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Video) != 2 || plan.Video[0].Profile != "main" {
		t.Fatalf("plan = %+v, want the 720p main rung and the 360p one", plan.Video)
	}
	job := Job{Source: src, Kind: source.File, Preset: l.Video.Preset, Plan: plan, Dir: filepath.Join(tmp, "job")}
	for _, d := range OutputDirs(job) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runFFmpeg(t, ff, job)
	for _, v := range plan.Video {
		types := pictureTypes(t, ffprobe, job.Dir, v.Name, job.Run)
		if len(types) != 60 || strings.Contains(types, "B") {
			t.Errorf("%s (%s profile, tune %q): %d pictures %s; want 60 and no B", v.Name, v.Profile, v.Tune, len(types), types)
		}
	}
}

// pictureTypes returns the picture type of every frame of run's video of rendition
// name in job folder jobDir, in order, as a string of I, P and B.
func pictureTypes(t *testing.T, ffprobe, jobDir, name string, run uint64) string {
	t.Helper()
	dir := filepath.Join(jobDir, name)
	joined, err := os.ReadFile(filepath.Join(jobDir, PrivateInit(name)))
	if err != nil {
		t.Fatal(err)
	}
	segs, err := filepath.Glob(filepath.Join(dir, "seg_*.m4s"))
	if err != nil || len(segs) == 0 {
		t.Fatalf("%s: no segments (%v)", dir, err)
	}
	for i := range segs {
		seg, err := os.ReadFile(filepath.Join(dir, manifest.SegmentName(run, uint64(i))))
		if err != nil {
			t.Fatal(err)
		}
		joined = append(joined, seg...)
	}
	file := filepath.Join(t.TempDir(), "joined.mp4")
	if err := os.WriteFile(file, joined, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pict_type", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	// One line per frame; a frame with side data ends its line with a comma.
	return strings.Map(func(r rune) rune {
		if strings.ContainsRune("IPB", r) {
			return r
		}
		return -1
	}, string(out))
}
