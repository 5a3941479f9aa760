package export

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
	"github.com/transcoderd/transcoderd/internal/testmedia"
	"github.com/transcoderd/transcoderd/profiles"
)

// testPlan is the shipped test ladder planned for a 640x360 30 fps source with stereo
// audio, cut to its top rung (the one an export takes by default) and its audio.
func testPlan(t testing.TB) ladder.Plan {
	t.Helper()
	data, err := profiles.FS.ReadFile("test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ladder.Parse("test", "test.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	p, err := l.Plan(ladder.SourceInfo{
		HasVideo: true, Width: 640, Height: 360, FPS: 30, VideoCodec: "h264",
		HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Video) == 0 || len(p.Audio) == 0 {
		t.Fatalf("test ladder plan %+v: want video and audio", p)
	}
	p.Video, p.Audio = p.Video[:1], p.Audio[:1]
	return p
}

// encodeRun encodes a src.mp4 of d (made once per folder) with the daemon's own argv
// (ffmpeg.BuildArgs) as run number run of a job in dir, numbering segments from start,
// and returns the run of each track (video first) as MP4 takes them: the init segment
// where ffmpeg wrote it and the run's segments in order.
func encodeRun(t testing.TB, dir string, p ladder.Plan, run, start uint64, d time.Duration) (video, audio Run) {
	t.Helper()
	src := filepath.Join(dir, "src-"+strconv.FormatUint(run, 10)+".mp4")
	testmedia.WriteSample(t, src, testmedia.SampleOptions{Width: 640, Height: 360, Duration: d})
	job := ffmpeg.Job{
		Source: src, Kind: source.File, Plan: p, Dir: filepath.Join(dir, "job"), Run: run,
		StartNumbers: map[string]uint64{p.Video[0].Name: start, p.Audio[0].Name: start},
	}
	for _, d := range ffmpeg.OutputDirs(job) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	args, err := ffmpeg.BuildArgs(job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if r := supervise.Run(ctx, supervise.Spec{Path: "ffmpeg", Args: args}); r.Err != nil {
		t.Fatalf("encode run %d: %v\n%v", run, r.Err, r.Tail)
	}
	return runOf(t, job, p.Video[0].Name), runOf(t, job, p.Audio[0].Name)
}

// runOf lists the init and segments of job's run for rendition name.
func runOf(t testing.TB, job ffmpeg.Job, name string) Run {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(job.Dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var numbers []uint64
	for _, e := range entries {
		if run, n, ok := manifest.ParseSegmentName(e.Name()); ok && run == job.Run {
			numbers = append(numbers, n)
		}
	}
	slices.Sort(numbers)
	// As the job does, the init moves into the rendition folder under the run's name:
	// the next run writes its own where this one was.
	r := Run{Init: filepath.Join(job.Dir, name, manifest.InitName(job.Run))}
	if err := os.Rename(filepath.Join(job.Dir, ffmpeg.PrivateInitOf(name, job.Run)), r.Init); err != nil {
		t.Fatal(err)
	}
	for _, n := range numbers {
		r.Segments = append(r.Segments, filepath.Join(job.Dir, name, manifest.SegmentName(job.Run, n)))
	}
	if len(r.Segments) == 0 {
		t.Fatalf("run %d of %s wrote no segments", job.Run, name)
	}
	return r
}

// samples returns the size and the decode time (in seconds) of every sample of the
// run's segments, as their trun boxes give them, and the end of the last one.
func samples(t testing.TB, r Run) (sizes []int, times []float64, end float64) {
	t.Helper()
	return testmedia.Samples(t, r.Init, r.Segments)
}

// probed is what ffprobe says of an exported file.
type probed = testmedia.Probed

func probe(t testing.TB, path string) probed { t.Helper(); return testmedia.Probe(t, path) }

// topBoxes returns the types of the top-level boxes of the file at path.
func topBoxes(t testing.TB, path string) []string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	if err := eachBox(data, func(typ string, _ []byte) error { types = append(types, typ); return nil }); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return types
}
