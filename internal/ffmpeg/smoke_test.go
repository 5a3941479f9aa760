package ffmpeg

import (
	"bufio"
	"bytes"
	"context"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestSmokeEncode runs the real ffmpeg with BuildArgs on a 3 s file: two video
// rungs and one audio rendition cut into 1 s segments, then a restart that
// carries on numbering where the first run stopped.
func TestSmokeEncode(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	ffprobe := needTool(t, "ffprobe")
	tmp := t.TempDir()
	src := makeMedia(t, tmp, "in.mp4",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-ac", "2")

	job := Job{
		Source: src, Kind: source.File, Preset: "veryfast", Dir: filepath.Join(tmp, "job"), Run: 1,
		Plan: ladder.Plan{
			FPS: 30, GOP: 30, SegmentDuration: time.Second,
			Video: []ladder.PlannedVideo{rung("240p", 320, 240, 400_000, "main"), rung("120p", 160, 120, 150_000, "baseline")},
			Audio: []ladder.Audio{stereo},
		},
	}
	for _, d := range OutputDirs(job) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	last := runFFmpeg(t, ff, job)
	if !last.End || last.OutTime < 2900*time.Millisecond {
		t.Errorf("last progress block = %+v, want End after about 3 s", last)
	}

	next := uint64(0)
	for _, v := range job.Plan.Video {
		segs := checkRendition(t, filepath.Join(job.Dir, v.Name), 1, 0)
		if len(segs) != 3 {
			t.Errorf("%s: %d segments, want 3", v.Name, len(segs))
		}
		checkKeyframeStarts(t, ffprobe, filepath.Join(job.Dir, v.Name), 1, segs)
		next = max(next, segs[len(segs)-1].number+1)
	}
	for _, a := range job.Plan.Audio {
		segs := checkRendition(t, filepath.Join(job.Dir, a.Name), 1, 0)
		next = max(next, segs[len(segs)-1].number+1)
	}
	if t.Failed() {
		return
	}

	// A restart (the next run) writes into the same folders, numbering on from next.
	job.StartNumbers = map[string]uint64{"240p": next, "120p": next, "aac": next}
	job.Run = 2
	runFFmpeg(t, ff, job)
	for _, d := range renditionDirs(job) {
		segs := checkRendition(t, d, 2, next)
		if len(segs) < 3 {
			t.Errorf("%s after restart: %d segments, want at least 3", d, len(segs))
		}
		if _, err := os.Stat(filepath.Join(d, manifest.SegmentName(1, 0))); err != nil {
			t.Errorf("%s: the first run's segments are gone after the restart: %v", d, err)
		}
	}
}

// runFFmpeg runs one encode of job and returns the last progress block.
// TestSmokeAudioTracks runs the real ffmpeg with BuildArgs on a file with two audio
// tracks, a loud one and one 20 dB quieter, and a plan that encodes the second first:
// each rendition must carry its own source track, which the loudness tells apart.
func TestSmokeAudioTracks(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	tmp := t.TempDir()
	src := makeMedia(t, tmp, "in.mkv",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=2",
		"-f", "lavfi", "-i", "sine=frequency=660:sample_rate=48000:duration=2,volume=0.1",
		"-map", "0:a", "-map", "1:a", "-c:a", "aac", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fra")
	job := Job{
		Source: src, Kind: source.File, Dir: filepath.Join(tmp, "job"),
		Plan: ladder.Plan{
			FPS: 30, GOP: 30, SegmentDuration: time.Second,
			Audio: []ladder.Audio{
				{Name: "fr", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr"},
				{Name: "en", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 0, Language: "en"},
			},
		},
	}
	for _, d := range OutputDirs(job) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runFFmpeg(t, ff, job)
	vol := map[string]float64{}
	for _, a := range job.Plan.Audio {
		checkRendition(t, filepath.Join(job.Dir, a.Name), job.Run, 0)
		vol[a.Name] = testmedia.MeanVolume(t, ff, playable(t, job.Dir, a.Name))
	}
	if d := vol["en"] - vol["fr"]; d < 17 || d > 23 {
		t.Errorf("mean volume: en %.1f dB, fr %.1f dB; want fr 20 dB below en (its own source track)", vol["en"], vol["fr"])
	}
}

// playable writes a playlist of rendition name of the job in dir that ffmpeg can decode:
// ffmpeg's own, with its init segment (in the private folder) and the segments (in the
// rendition folder) named by their absolute paths.
func playable(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, PrivatePlaylist(name)))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(data), "\n") {
		switch {
		case strings.HasPrefix(l, "#EXT-X-MAP:"):
			l = `#EXT-X-MAP:URI="` + filepath.Join(dir, PrivateInit(name)) + `"`
		case l != "" && !strings.HasPrefix(l, "#"):
			l = filepath.Join(dir, name, filepath.Base(l))
		}
		out = append(out, l)
	}
	pl := filepath.Join(t.TempDir(), name+".m3u8")
	if err := os.WriteFile(pl, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return pl
}

func runFFmpeg(t *testing.T, ff string, job Job) Progress {
	t.Helper()
	argv, err := BuildArgs(job)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ff, argv...)
	stderr := supervise.NewTail(20)
	cmd.Stderr = stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var last Progress
	blocks := 0
	if err := ReadProgress(stdout, func(p Progress) { last = p; blocks++ }); err != nil {
		t.Errorf("read progress: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(argv, " "), err, strings.Join(stderr.Lines(), "\n"))
	}
	if blocks == 0 {
		t.Error("ffmpeg wrote no progress blocks")
	}
	return last
}

type listedSegment struct {
	number   uint64
	duration float64
}

// checkRendition checks one rendition folder after run: the init segment in the
// private folder (PrivateInit) and none in the served one (the job moves it there), the
// private playlist starting at start, 1 s segments of the run (the last may be shorter),
// every listed segment on disk and no temporary file left.
func checkRendition(t *testing.T, dir string, run, start uint64) []listedSegment {
	t.Helper()
	name := filepath.Base(dir)
	if fi, err := os.Stat(filepath.Join(filepath.Dir(dir), PrivateInit(name))); err != nil || fi.Size() == 0 {
		t.Errorf("%s: no %s: %v", name, PrivateInit(name), err)
	}
	if inits, _ := filepath.Glob(filepath.Join(dir, "*.mp4")); len(inits) > 0 {
		t.Errorf("%s: ffmpeg wrote into the served folder: %q", name, inits)
	}
	data, err := os.ReadFile(filepath.Join(filepath.Dir(dir), PrivatePlaylist(name)))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var segs []listedSegment
	var dur float64
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"):
			if got := strings.TrimPrefix(line, "#EXT-X-MEDIA-SEQUENCE:"); got != strconv.FormatUint(start, 10) {
				t.Errorf("%s: media sequence %s, want %d", name, got, start)
			}
		case strings.HasPrefix(line, "#EXTINF:"):
			dur, err = strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(line, "#EXTINF:"), ","), 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", name, line, err)
			}
		case line != "" && !strings.HasPrefix(line, "#"):
			r, n, ok := manifest.ParseSegmentName(line)
			if !ok || r != run {
				t.Fatalf("%s: segment %q does not match %s", name, line, SegmentPattern(run))
			}
			segs = append(segs, listedSegment{number: n, duration: dur})
			if _, err := os.Stat(filepath.Join(dir, line)); err != nil {
				t.Errorf("%s: listed segment missing: %v", name, err)
			}
		}
	}
	if len(segs) == 0 {
		t.Fatalf("%s: playlist lists no segments:\n%s", name, data)
	}
	for i, s := range segs {
		if s.number != start+uint64(i) {
			t.Errorf("%s: segment %d is seg_%d, want seg_%d", name, i, s.number, start+uint64(i))
		}
		if i < len(segs)-1 && math.Abs(s.duration-1) > 0.05 {
			t.Errorf("%s: seg_%d lasts %.3f s, want 1.000 ± 0.05", name, s.number, s.duration)
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*.tmp"))
	private, _ := filepath.Glob(filepath.Join(filepath.Dir(dir), PrivateDir, name+".m3u8.tmp"))
	if leftovers = append(leftovers, private...); len(leftovers) > 0 {
		t.Errorf("%s: temporary files left: %q", name, leftovers)
	}
	return segs
}

// checkKeyframeStarts checks that each video segment of run, read after its init
// segment, starts with a keyframe whose decode time (from tfdt) is the segment's start
// on the run's timeline.
func checkKeyframeStarts(t *testing.T, ffprobe, dir string, run uint64, segs []listedSegment) {
	t.Helper()
	initData, err := os.ReadFile(filepath.Join(filepath.Dir(dir), PrivateInit(filepath.Base(dir))))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range segs {
		seg, err := os.ReadFile(filepath.Join(dir, manifest.SegmentName(run, s.number)))
		if err != nil {
			t.Fatal(err)
		}
		joined := filepath.Join(t.TempDir(), "joined.mp4")
		if err := os.WriteFile(joined, append(append([]byte{}, initData...), seg...), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(ffprobe, "-v", "error", "-select_streams", "v:0", "-read_intervals", "%+#1",
			"-show_entries", "packet=dts_time,flags", "-of", "csv=p=0", joined).Output()
		if err != nil {
			t.Fatalf("ffprobe %s: %v", joined, err)
		}
		first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		dts, flags, _ := strings.Cut(first, ",")
		if !strings.HasPrefix(flags, "K") {
			t.Errorf("%s seg_%d: first packet flags %q, want a keyframe", filepath.Base(dir), s.number, flags)
		}
		// The run's timeline begins at TimeOffset (syncOutput).
		if d, err := strconv.ParseFloat(dts, 64); err != nil || math.Abs(d-float64(i)-TimeOffset.Seconds()) > 0.05 {
			t.Errorf("%s seg_%d: first decode time %q, want %.3f ± 0.05", filepath.Base(dir), s.number, dts, float64(i)+TimeOffset.Seconds())
		}
	}
}

// TestSmokeHLSPull pulls an HLS stream over HTTP with the HTTP input options
// (reconnect, live start index), probing it first as a job does.
func TestSmokeHLSPull(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	ffprobe := needTool(t, "ffprobe")
	srcDir := t.TempDir()
	makeMedia(t, srcDir, "index.m3u8",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=3",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-c:a", "aac",
		"-f", "hls", "-hls_time", "1", "-hls_list_size", "0")
	srv := httptest.NewServer(http.FileServer(http.Dir(srcDir)))
	defer srv.Close()
	src := srv.URL + "/index.m3u8"

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	info, err := Probe(ctx, ffprobe, src, source.HTTP)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasVideo || !info.HasAudio || info.Width != 320 || info.Height != 180 || info.FPS != 25 || info.Duration < 2900*time.Millisecond {
		t.Errorf("probe over HTTP = %+v", info)
	}

	job := Job{
		Source: src, Kind: source.HTTP, Live: true, Preset: "veryfast", Dir: t.TempDir(), Run: 3,
		Plan: ladder.Plan{
			FPS: 25, GOP: 25, SegmentDuration: time.Second,
			Video: []ladder.PlannedVideo{rung("180p", 320, 180, 300_000, "main")},
			Audio: []ladder.Audio{stereo},
		},
	}
	for _, d := range OutputDirs(job) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runFFmpeg(t, ff, job)
	for _, d := range renditionDirs(job) {
		if segs := checkRendition(t, d, 3, 0); len(segs) < 3 {
			t.Errorf("%s: %d segments, want at least 3", d, len(segs))
		}
	}
}
