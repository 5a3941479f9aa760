package job

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/media"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestRunNumbers: every ffmpeg run gets a number of its own, which grows from run to
// run: the wall-clock second, or one more than the run before when that is later, and
// a restored index goes on from the newest stored run.
func TestRunNumbers(t *testing.T) {
	now := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	x := newIndex(true, time.Second, time.Minute, func() time.Time { return now })
	x.addTrack("v", manifest.Video, "", "", 1000)
	want := uint64(now.Unix())
	for i, step := range []time.Duration{0, 0, 0, time.Minute} {
		now = now.Add(step)
		if step > 0 {
			want = uint64(now.Unix())
		}
		x.beginAttempt()
		if x.run != want {
			t.Errorf("run %d: number %d, want %d", i+1, x.run, want)
		}
		want++
	}
}

// TestInitPerRun: each run's init segment is moved out of ffmpeg's private folder into
// the rendition folder under the run's own name, so that the segments of an earlier run
// (here 160x90, before a run at 320x180, as after an encoder fallback) keep the init
// segment they were encoded with; it is deleted with the last of them.
func TestInitPerRun(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	now := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	job := t.TempDir()
	dir := filepath.Join(job, "v")
	x := newIndex(true, time.Second, time.Second, func() time.Time { return now })
	x.grace = 0
	tr := x.addTrack("v", manifest.Video, dir, filepath.Join(job, ffmpeg.PrivatePlaylist("v")), 0)

	var runs []uint64
	for _, size := range []string{"160x90", "320x180"} {
		start := x.beginAttempt()["v"]
		runs = append(runs, x.run)
		encodeRun(t, job, x.run, start, size)
		if _, err := x.poll(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(job, ffmpeg.PrivateInit("v"))); !os.IsNotExist(err) {
			t.Errorf("run %d: the private init segment is still there: %v", x.run, err)
		}
		now = now.Add(10 * time.Second)
	}
	if runs[0] == runs[1] {
		t.Fatalf("two runs numbered %d", runs[0])
	}
	for i, want := range []int{160, 320} {
		in, err := media.ParseInitFile(filepath.Join(dir, manifest.InitName(runs[i])))
		if err != nil || in.Width != want {
			t.Errorf("init segment of run %d: width %d, %v; want %d", runs[i], in.Width, err, want)
		}
	}
	for _, s := range tr.Segments {
		if _, err := os.Stat(filepath.Join(dir, manifest.SegmentName(s.Run, s.Number))); err != nil || s.Run != runs[0] && s.Run != runs[1] {
			t.Errorf("segment %d of run %d: %v", s.Number, s.Run, err)
		}
	}
	if tr.Width != 320 || tr.Segments[0].Run != runs[0] || tr.Segments[len(tr.Segments)-1].Run != runs[1] {
		t.Fatalf("track %dx%d, segments of runs %d..%d", tr.Width, tr.Height, tr.Segments[0].Run, tr.Segments[len(tr.Segments)-1].Run)
	}

	// The first run's segments leave the window (1 s), and so the manifests, as written
	// (publish renders before it prunes): its init segment goes with them.
	p := x.presentation(false)
	x.nameInMPD(p)
	for i := range p.Video {
		x.name(p.Video[i].Name, namedByPlaylist, &p.Video[i])
	}
	if errs := x.prune(); len(errs) > 0 {
		t.Fatal(errs)
	}
	if tr.Segments[0].Run != runs[1] {
		t.Fatalf("after prune the first segment is of run %d", tr.Segments[0].Run)
	}
	if _, err := os.Stat(filepath.Join(dir, manifest.InitName(runs[0]))); !os.IsNotExist(err) {
		t.Errorf("init segment of the pruned run: %v, want it deleted", err)
	}
	if _, err := os.Stat(filepath.Join(dir, manifest.InitName(runs[1]))); err != nil {
		t.Errorf("init segment of the current run: %v", err)
	}
}

// TestOldEpochWriter: in a fleet, the ffmpeg of an earlier epoch, left running on a box
// cut off from the others, writes into the shared job folder after the new owner's
// ffmpeg has begun. Its private playlist and init segment carry its own run, so the
// current run's index still finds its own segments, with its own init segment (160x90,
// not the late writer's 320x180).
func TestOldEpochWriter(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	now := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	job := t.TempDir()
	dir := filepath.Join(job, "v")
	x := newIndex(true, time.Second, time.Minute, func() time.Time { return now })
	tr := x.addTrack("v", manifest.Video, dir, filepath.Join(job, ffmpeg.PrivatePlaylist("v")), 0)
	x.epoch = 1
	x.beginAttempt()
	old := x.run
	x.epoch = 2 // the job moved to another box
	start := x.beginAttempt()["v"]
	encodeInto(t, job, x.run, start, "160x90")
	encodeInto(t, job, old, 0, "320x180") // the late writer, after the current run's ffmpeg
	if _, err := x.poll(); err != nil {
		t.Fatal(err)
	}
	if len(tr.Segments) < 2 || tr.Segments[0].Run != x.run {
		t.Fatalf("indexed %d segments (%v); want those of run %d", len(tr.Segments), tr.Segments, x.run)
	}
	if tr.init == nil || tr.init.Width != 160 || tr.initRun != x.run {
		t.Fatalf("init segment %+v of run %d; want the current run's, 160 wide", tr.init, tr.initRun)
	}
}

// encodeRun writes 3 s of video into job's rendition "v" as the job's ffmpeg run would:
// its init segment in the private folder, its segments named for run and numbered from
// start.
func encodeRun(t *testing.T, job string, run, start uint64, size string) {
	t.Helper()
	if err := os.RemoveAll(filepath.Join(job, ffmpeg.PrivateDir)); err != nil {
		t.Fatal(err)
	}
	encodeInto(t, job, run, start, size)
}

// encodeInto is encodeRun without clearing the private folder first: the private files
// are run's own (ffmpeg.PrivatePlaylistOf, PrivateInitOf), as BuildArgs names them.
func encodeInto(t *testing.T, job string, run, start uint64, size string) {
	t.Helper()
	for _, d := range []string{filepath.Join(job, "v"), filepath.Join(job, ffmpeg.PrivateDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size="+size+":rate=25:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
		"-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4", "-hls_list_size", "10",
		"-hls_fmp4_init_filename", filepath.Base(ffmpeg.PrivateInitOf("v", run)),
		"-hls_segment_filename", filepath.Join(job, "v", ffmpeg.SegmentPattern(run)),
		"-start_number", strconv.FormatUint(start, 10),
		"-hls_flags", "+independent_segments+temp_file", filepath.Join(job, ffmpeg.PrivatePlaylistOf("v", run))).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
}

// TestRestoreLegacyNames: a job stored by a version before run numbers (its segments of
// run 0: init.mp4, seg_<N>.m4s) is resumed after an upgrade: its segments are listed
// under their old names with the old init segment, and the next run, with names of its
// own, follows in a Period and after a discontinuity with its own init segment.
func TestRestoreLegacyNames(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	ast := time.Date(2026, 12, 5, 20, 0, 0, 0, time.UTC)
	now := ast.Add(time.Minute)
	job := t.TempDir()
	dir := filepath.Join(job, "v")
	// What the old version wrote: init.mp4 beside the segments.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=160x90:rate=25:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-sc_threshold", "0",
		"-f", "hls", "-hls_time", "1", "-hls_segment_type", "fmp4",
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "seg_%d.m4s"),
		filepath.Join(dir, "old.m3u8")).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	in, err := media.ParseInitFile(filepath.Join(dir, "init.mp4"))
	if err != nil {
		t.Fatal(err)
	}
	var stored []manifest.Segment
	for n, start := uint64(0), uint64(0); n < 3; n++ {
		info, err := media.ParseSegmentFile(filepath.Join(dir, "seg_"+strconv.FormatUint(n, 10)+".m4s"), &in)
		if err != nil {
			t.Fatal(err)
		}
		stored = append(stored, manifest.Segment{Number: n, Start: start, Duration: info.Duration, Size: info.Size, MediaTime: info.BaseDecodeTime,
			ProgramDate: ast.Add(time.Duration(start) * time.Second / time.Duration(in.Timescale))})
		start += info.Duration
	}

	x := newIndex(true, time.Second, 0, func() time.Time { return now })
	x.ast = ast
	tr := x.addTrack("v", manifest.Video, dir, filepath.Join(job, ffmpeg.PrivatePlaylist("v")), 100_000)
	if err := x.restoreTracks(map[string][]manifest.Segment{"v": stored}); err != nil {
		t.Fatal(err)
	}
	x.attempt = 1 // as resume does: the next run is a restart
	start := x.beginAttempt()["v"]
	encodeRun(t, job, x.run, start, "160x90")
	if _, err := x.poll(); err != nil {
		t.Fatal(err)
	}
	if n := len(tr.Segments); n < 5 || tr.Segments[0].Run != 0 || tr.Segments[n-1].Run != x.run {
		t.Fatalf("segments %+v", tr.Segments)
	}

	p := x.presentation(false)
	playlist, err := manifest.RenderMedia(p, &p.Video[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"#EXT-X-MAP:URI=\"init.mp4\"\n", "\nseg_0.m4s\n", "\nseg_2.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI=\"" + manifest.InitName(x.run) + "\"\n",
		"\n" + manifest.SegmentName(x.run, 3) + "\n",
	} {
		if !bytes.Contains(playlist, []byte(want)) {
			t.Errorf("playlist lacks %q:\n%s", want, playlist)
		}
	}
	mpd, err := manifest.RenderMPD(p)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`media="v/seg_$Number$.m4s" initialization="v/init.mp4"`,
		`media="v/` + manifest.SegmentTemplate(x.run, "$Number$") + `" initialization="v/` + manifest.InitName(x.run) + `"`,
	} {
		if !bytes.Contains(mpd, []byte(want)) {
			t.Errorf("MPD lacks %q:\n%s", want, mpd)
		}
	}
	testmedia.ValidateMPDBytes(t, mpd)
	for _, s := range tr.Segments {
		if _, err := os.Stat(filepath.Join(dir, manifest.SegmentName(s.Run, s.Number))); err != nil {
			t.Error(err)
		}
	}
}
