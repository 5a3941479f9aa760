package export

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestMP4 exports a clip of two runs of the daemon's own encode (the test ladder's top
// rung and its audio, 1 s segments) and checks the file with ffprobe and against the
// segments' trun boxes: both tracks, the duration of the two runs, the moov before the
// mdat, every video and audio sample copied as it was (same sizes, same order), each
// run's samples at the same distance from each other as in the segments, audio and
// video shifted alike (in sync), and the second run right after the first.
//
// The second run's media times are as the daemon's restart writes them (starting again
// at ffmpeg.TimeOffset), or rewritten to continue the first run's, or to continue after
// a 5 s gap: the file is the same in all three cases.
func TestMP4(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	p := testPlan(t)
	v1, a1 := encodeRun(t, dir, p, 1, 0, 6*time.Second)
	v2, a2 := encodeRun(t, dir, p, 2, uint64(len(v1.Segments)+1), 4*time.Second)

	for _, tc := range []struct {
		name  string
		shift float64 // seconds added to the second run's media times: -1 for "to the end of the first"
		gap   float64
	}{
		{name: "restart", shift: 0},
		{name: "continuing", shift: -1},
		{name: "continuing-after-gap", shift: -1, gap: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			caseDir := t.TempDir()
			_, _, end := samples(t, v1)
			shift := tc.shift
			if shift < 0 {
				shift = end - 0.2 + tc.gap // 0.2: ffmpeg.TimeOffset, where the second run starts
			}
			c := Clip{
				Video: Track{Runs: []Run{v1, shiftedRun(t, caseDir, v2, shift)}},
				Audio: Track{Runs: []Run{a1, shiftedRun(t, caseDir, a2, shift)}},
			}
			out := filepath.Join(caseDir, "out", "talk-03.mp4")
			if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
				t.Fatal(err)
			}
			var calls int
			var last, total time.Duration
			err := MP4(context.Background(), "", c, out, func(d, tot time.Duration) { calls, last, total = calls+1, d, tot })
			if err != nil {
				t.Fatal(err)
			}
			checkExport(t, c, out)
			if last != total || calls == 0 {
				t.Errorf("progress: %d calls, last %v of %v: want the last at the total", calls, last, total)
			}
			pr := probe(t, out)
			dur, _ := strconv.ParseFloat(pr.Format.Duration, 64)
			t.Logf("%s: %d progress calls, total %v, ffprobe duration %.3f s", tc.name, calls, total, dur)
			if math.Abs(dur-total.Seconds()) > 0.1 {
				t.Errorf("ffprobe duration %.3f s, progress total %v", dur, total)
			}
		})
	}
}

// checkExport checks the MP4 at out against the clip c it was made from.
func checkExport(t *testing.T, c Clip, out string) {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Dir(out))
	if len(entries) != 1 || entries[0].Name() != filepath.Base(out) {
		t.Errorf("output folder holds %v, want only %s", entries, filepath.Base(out))
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o644 {
		t.Errorf("stat %s: %v, %v: want mode 0644", out, st, err)
	}
	boxes := topBoxes(t, out)
	if moov, mdat := slices.Index(boxes, "moov"), slices.Index(boxes, "mdat"); moov < 0 || mdat < 0 || moov > mdat {
		t.Errorf("top-level boxes %v: want the moov before the mdat (faststart)", boxes)
	}
	pr := probe(t, out)
	var kinds []string
	for _, s := range pr.Streams {
		kinds = append(kinds, s.CodecType+"/"+s.CodecName)
	}
	if !slices.Equal(kinds, []string{"video/h264", "audio/aac"}) {
		t.Fatalf("streams %v, want video/h264 and audio/aac", kinds)
	}
	var want float64 // the runs' durations, by their video
	for _, r := range c.Video.Runs {
		_, times, end := samples(t, r)
		want += end - times[0]
	}
	if dur, _ := strconv.ParseFloat(pr.Format.Duration, 64); math.Abs(dur-want) > 1 {
		t.Errorf("duration %.3f s, want %.3f ± 1 s (one segment)", dur, want)
	}
	vOffsets := checkTrack(t, "video", pr, 0, c.Video)
	aOffsets := checkTrack(t, "audio", pr, 1, c.Audio)
	for k := range vOffsets {
		if math.Abs(vOffsets[k]-aOffsets[k]) > 0.002 {
			t.Errorf("run %d: video moved by %.4f s, audio by %.4f s: out of sync", k+1, vOffsets[k], aOffsets[k])
		}
	}
}

// checkTrack checks that stream i of the file holds the samples of tr, of the same
// sizes, each run moved by one offset, and each run after the one before it with no
// gap longer than a second. It returns each run's offset (file time - segment time).
func checkTrack(t *testing.T, kind string, pr probed, i int, tr Track) []float64 {
	t.Helper()
	sizes, times := pr.Stream(i)
	var wantSizes []int
	var offsets []float64
	n, prevEnd := 0, 0.0
	for k, r := range tr.Runs {
		s, segTimes, end := samples(t, r)
		wantSizes = append(wantSizes, s...)
		if len(times) < n+len(s) {
			break // the sizes' check below says so
		}
		off := times[n] - segTimes[0]
		for j := range s {
			if d := times[n+j] - segTimes[j] - off; math.Abs(d) > 0.001 {
				t.Errorf("%s run %d sample %d: at %.4f s in the file, %.4f s in its segment: %.4f s off its run's offset %.4f",
					kind, k+1, j, times[n+j], segTimes[j], d, off)
				break
			}
		}
		if k > 0 && (times[n] < prevEnd-0.001 || times[n] > prevEnd+1) {
			t.Errorf("%s run %d starts at %.3f s, the run before ends at %.3f s", kind, k+1, times[n], prevEnd)
		}
		offsets = append(offsets, off)
		prevEnd = end + off
		n += len(s)
	}
	if !slices.Equal(sizes, wantSizes) {
		t.Errorf("%s: %d packets in the file, %d samples in the segments, or their sizes differ: re-encoded?", kind, len(sizes), len(wantSizes))
	}
	return offsets
}

// shiftedRun copies r into dir with every tfdt moved by shift seconds.
func shiftedRun(t *testing.T, dir string, r Run, shift float64) Run {
	t.Helper()
	if shift == 0 {
		return r
	}
	in, _, err := readInit(r.Init)
	if err != nil {
		t.Fatal(err)
	}
	out := Run{Init: r.Init}
	sub := filepath.Join(dir, filepath.Base(filepath.Dir(r.Segments[0])))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, path := range r.Segments {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := shiftTfdt(data, int64(shift*float64(in.Timescale))); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(sub, filepath.Base(path))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		out.Segments = append(out.Segments, p)
	}
	return out
}

// TestMP4Cancel cancels an export while ffmpeg runs (a stand-in that reports progress
// and then hangs, so the cancel always comes mid-run): MP4 returns at once with the
// context's error and leaves no file, neither the output nor its temporary.
func TestMP4Cancel(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	v, a := encodeRun(t, dir, testPlan(t), 1, 0, 2*time.Second)
	fake := filepath.Join(dir, "ffmpeg")
	script := "#!/bin/sh\nfor last; do :; done\necho partial > \"$last\"\nprintf 'out_time_us=500000\\nprogress=continue\\n'\nexec sleep 60\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	outDir := filepath.Join(dir, "out")
	if err := os.Mkdir(outDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(outDir, "talk.mp4")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	begin := time.Now()
	err := MP4(ctx, fake, Clip{Video: Track{Runs: []Run{v}}, Audio: Track{Runs: []Run{a}}}, out,
		func(done, total time.Duration) { cancel() })
	took := time.Since(begin)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if took > 20*time.Second {
		t.Errorf("MP4 returned %v after the cancel: want ffmpeg killed, not waited for", took)
	}
	if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
		t.Errorf("output folder holds %v after a cancel, want nothing", entries)
	}
}

// TestMP4Errors: a clip that cannot be exported as one file gives an error, names why,
// and leaves no file.
func TestMP4Errors(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	p := testPlan(t)
	v1, a1 := encodeRun(t, dir, p, 1, 0, 3*time.Second)
	p.Video[0].Profile = "high" // another encoder's parameters, as after a fallback
	v2, a2 := encodeRun(t, dir, p, 2, 10, 2*time.Second)
	missing := Run{Init: v1.Init, Segments: slices.Clone(v1.Segments)}
	missing.Segments[1] += ".gone"

	for _, tc := range []struct {
		name string
		clip Clip
		is   error
		want string
	}{
		{name: "codec change", clip: Clip{Video: Track{Runs: []Run{v1, v2}}, Audio: Track{Runs: []Run{a1, a2}}}, is: ErrCodecChange, want: "video"},
		{name: "segment missing", clip: Clip{Video: Track{Runs: []Run{missing}}, Audio: Track{Runs: []Run{a1}}}, is: os.ErrNotExist, want: ".gone"},
		{name: "runs differ", clip: Clip{Video: Track{Runs: []Run{v1}}, Audio: Track{Runs: []Run{a1, a1}}}, want: "video has 1 runs, audio 2"},
		{name: "no track", clip: Clip{}, want: "no track"},
		{name: "run without segments", clip: Clip{Video: Track{Runs: []Run{{Init: v1.Init}}}}, want: "run 1 has no segments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			outDir := t.TempDir()
			err := MP4(context.Background(), "", tc.clip, filepath.Join(outDir, "x.mp4"), nil)
			if err == nil || (tc.is != nil && !errors.Is(err, tc.is)) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want one naming %q (is %v)", err, tc.want, tc.is)
			}
			if entries, _ := os.ReadDir(outDir); len(entries) != 0 {
				t.Errorf("output folder holds %v after a failure, want nothing", entries)
			}
		})
	}
}
