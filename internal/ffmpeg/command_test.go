package ffmpeg

import (
	"context"
	"errors"
	"flag"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

const jobDir = "/var/lib/transcoderd/jobs/j1"

func rung(name string, w, h int, bitrate int64, profile string) ladder.PlannedVideo {
	return ladder.PlannedVideo{Name: name, Width: w, Height: h, Bitrate: bitrate, MaxRate: bitrate, BufSize: 2 * bitrate, Profile: profile, Encoder: "x264"}
}

var stereo = ladder.Audio{Name: "aac", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000}

// goldenJobs are the jobs whose full argv is kept in testdata/golden/<name>.args.
var goldenJobs = []struct {
	name string
	job  Job
}{
	{
		name: "default-4-rung-file",
		job: Job{
			Source: "/media/talks/keynote.mp4", Kind: source.File, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{
					rung("1080p", 1920, 1080, 5_000_000, "high"),
					rung("720p", 1280, 720, 2_800_000, "main"),
					rung("480p", 854, 480, 1_400_000, "main"),
					rung("360p", 640, 360, 800_000, "baseline"),
				},
				Audio: []ladder.Audio{stereo}, AudioOnly: true,
			},
		},
	},
	{
		name: "rtmp-live-2-rung",
		job: Job{
			Source: "rtmp://127.0.0.1:1935/live/cam", Kind: source.RTMP, Live: true, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 30000.0 / 1001, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{
					{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_800_000, MaxRate: 3_000_000, BufSize: 6_000_000, Profile: "main", Encoder: "x264"},
					rung("360p", 640, 360, 800_000, "main"),
				},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "rtsp-live",
		job: Job{
			Source: "rtsp://cam.local:554/stream1", Kind: source.RTSP, Live: true, Preset: "superfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_500_000, "main"), rung("360p", 640, 360, 700_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// The same source over UDP, for a server that refuses TCP (461): only
		// -rtsp_transport differs from rtsp-live.
		name: "rtsp-udp",
		job: Job{
			Source: "rtsp://cam.local:554/stream1", Kind: source.RTSP, Live: true, Preset: "superfast", Dir: jobDir, Transport: source.TransportUDP,
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_500_000, "main"), rung("360p", 640, 360, 700_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "hls-pull-live",
		job: Job{
			Source: "https://origin.example/live/master.m3u8", Kind: source.HTTP, Live: true, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 30, GOP: 45, SegmentDuration: 1500 * time.Millisecond,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main"), rung("360p", 640, 360, 800_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "push-pipe",
		job: Job{
			Source: source.PushInput, Kind: source.Push, Live: true, Preset: "veryfast", Dir: jobDir,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "srt-two-audio",
		job: Job{
			Source: "srt://0.0.0.0:9000?mode=listener&timeout=10000000", Kind: source.SRT, Live: true, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 50, GOP: 100, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 3_500_000, "high")},
				Audio: []ladder.Audio{stereo, {Name: "aac_mono", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 44100}},
			},
		},
	},
	{
		// A file with English and French audio, on a ladder with tracks: all at two
		// bitrates: each rendition maps its own source track.
		name: "two-languages-file",
		job: Job{
			Source: "/media/film.mkv", Kind: source.File, Preset: "veryfast", Dir: jobDir,
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main")},
				Audio: []ladder.Audio{
					{Name: "aac_0", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Track: 0, Language: "en", Label: "English", Group: "aac"},
					{Name: "aac_1", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français", Group: "aac"},
					{Name: "lo_0", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 0, Language: "en", Label: "English", Group: "lo"},
					{Name: "lo_1", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français", Group: "lo"},
				},
			},
		},
	},
	{
		// A camera's second audio track alone, labelled by the ladder.
		name: "rtsp-second-track",
		job: Job{
			Source: "rtsp://cam.local:554/stream1", Kind: source.RTSP, Live: true, Preset: "veryfast", Dir: jobDir,
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("360p", 640, 360, 800_000, "main")},
				Audio: []ladder.Audio{{Name: "fr", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français"}},
			},
		},
	},
	{
		name: "audio-only-source",
		job: Job{
			Source: "/media/podcast.m4a", Kind: source.File, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []ladder.Audio{stereo}, AudioOnly: true},
		},
	},
	{
		name: "video-only-source",
		job: Job{
			Source: "/media/screen capture.mkv", Kind: source.File, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 60, GOP: 120, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 4_000_000, "high"), rung("360p", 640, 360, 1_000_000, "main")},
			},
		},
	},
	{
		name: "one-rung",
		job: Job{
			Source: "/media/clip.mp4", Kind: source.File, Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 24000.0 / 1001, GOP: 96, SegmentDuration: 4 * time.Second,
				Video: []ladder.PlannedVideo{rung("360p", 640, 360, 800_000, "")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// profiles/lowlatency.yaml: 1 s segments, -tune zerolatency on every rung.
		name: "lowlatency-zerolatency",
		job: Job{
			Source: "rtmp://127.0.0.1:1935/live/cam", Kind: source.RTMP, Live: true, Preset: "superfast", Dir: jobDir,
			Plan: ladder.Plan{
				FPS: 30, GOP: 30, SegmentDuration: time.Second,
				Video: []ladder.PlannedVideo{
					{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_500_000, MaxRate: 2_700_000, BufSize: 5_400_000, Profile: "main", Encoder: "x264", Tune: "zerolatency"},
					{Name: "360p", Width: 640, Height: 360, Bitrate: 700_000, MaxRate: 700_000, BufSize: 1_400_000, Profile: "baseline", Encoder: "x264", Tune: "zerolatency"},
				},
				Audio: []ladder.Audio{{Name: "aac", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000}},
			},
		},
	},
	{
		name: "restart-start-57",
		job: Job{
			Source: "rtmp://127.0.0.1:1935/live/cam", Kind: source.RTMP, Live: true, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
			StartNumbers: map[string]uint64{"720p": 57, "360p": 57, "aac": 57},
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main"), rung("360p", 640, 360, 800_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
}

// TestBuildArgsGolden compares the full argv of each golden job with
// testdata/golden/<name>.args, one argument per line. Run with -update to
// rewrite the files after a deliberate change, and review the diff.
func TestBuildArgsGolden(t *testing.T) {
	for _, tt := range goldenJobs {
		t.Run(tt.name, func(t *testing.T) {
			argv, err := BuildArgs(tt.job)
			if err != nil {
				t.Fatalf("BuildArgs: %v", err)
			}
			got := strings.Join(argv, "\n") + "\n"
			path := filepath.Join("testdata", "golden", tt.name+".args")
			if *update {
				if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/ffmpeg -update to create it)", err)
			}
			if got != string(want) {
				t.Errorf("argv differs from %s (run with -update if the change is meant):\n%s", path, lineDiff(string(want), got))
			}
		})
	}
}

// TestGoldenFilesAreUsed fails when a golden file has no case, so a renamed
// case does not leave a stale file behind.
func TestGoldenFilesAreUsed(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "golden", "*.args"))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range goldenJobs {
		names[g.name] = true
	}
	for _, f := range files {
		if n := strings.TrimSuffix(filepath.Base(f), ".args"); !names[n] {
			t.Errorf("%s has no case in goldenJobs", f)
		}
	}
	if len(files) != len(goldenJobs) {
		t.Errorf("%d golden files for %d cases", len(files), len(goldenJobs))
	}
}

// lineDiff shows the lines of two argv listings that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := range max(len(w), len(g)) {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			b.WriteString("line " + strconv.Itoa(i+1) + ":\n  want " + wl + "\n  got  " + gl + "\n")
		}
	}
	return b.String()
}

func validJob() Job {
	return Job{
		Source: "/media/in.mp4", Kind: source.File, Preset: "veryfast", Dir: jobDir, Run: 1796500000,
		Plan: ladder.Plan{
			FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
			Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main"), rung("360p", 640, 360, 800_000, "main")},
			Audio: []ladder.Audio{stereo},
		},
	}
}

func TestBuildArgsErrors(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(j *Job)
		wantErr     []string
		unavailable bool
	}{
		{name: "relative dir", edit: func(j *Job) { j.Dir = "jobs/j1" }, wantErr: []string{`job folder "jobs/j1" is not an absolute path`}},
		{name: "percent in dir", edit: func(j *Job) { j.Dir = "/jobs/100%" }, wantErr: []string{`job folder "/jobs/100%" contains %`}},
		{name: "newline in dir", edit: func(j *Job) { j.Dir = "/jobs/a\nb" }, wantErr: []string{"job folder contains a control character"}},
		{name: "unknown kind", edit: func(j *Job) { j.Kind = "ftp" }, wantErr: []string{`unknown source kind "ftp"`}},
		{name: "empty source", edit: func(j *Job) { j.Source = "" }, wantErr: []string{"source is empty"}},
		{name: "nul in source", edit: func(j *Job) { j.Source = "/media/a\x00.mp4" }, wantErr: []string{"source contains a control character"}},
		{name: "nothing to encode", edit: func(j *Job) { j.Plan.Video, j.Plan.Audio = nil, nil }, wantErr: []string{"plan has neither video nor audio renditions"}},
		{name: "zero segment", edit: func(j *Job) { j.Plan.SegmentDuration = 0 }, wantErr: []string{"segment duration must be greater than zero"}},
		{name: "zero fps", edit: func(j *Job) { j.Plan.FPS = 0 }, wantErr: []string{"frame rate 0 must be greater than zero"}},
		{name: "nan fps", edit: func(j *Job) { j.Plan.FPS = math.NaN() }, wantErr: []string{"frame rate NaN must be greater than zero"}},
		{name: "zero gop", edit: func(j *Job) { j.Plan.GOP = 0 }, wantErr: []string{"gop 0 must be greater than zero"}},
		{name: "path in rung name", edit: func(j *Job) { j.Plan.Video[0].Name = "../etc" }, wantErr: []string{`rendition name "../etc" must match`}},
		{name: "empty rung name", edit: func(j *Job) { j.Plan.Video[0].Name = "" }, wantErr: []string{`rendition name "" must match`}},
		{name: "video and audio share a folder", edit: func(j *Job) { j.Plan.Audio[0].Name = "720p" }, wantErr: []string{`rendition name "720p" is used twice`}},
		{name: "odd width", edit: func(j *Job) { j.Plan.Video[1].Width = 639 }, wantErr: []string{`rung "360p": size 639x360 must be positive and even`}},
		{name: "audio codec", edit: func(j *Job) { j.Plan.Audio[0].Codec = "opus" }, wantErr: []string{`audio "aac": unsupported codec "opus": want aac`}},
		{name: "audio channels", edit: func(j *Job) { j.Plan.Audio[0].Channels = 0 }, wantErr: []string{`audio "aac": channels 0 must be 1 to 8`}},
		{name: "audio rate", edit: func(j *Job) { j.Plan.Audio[0].SampleRate = 0 }, wantErr: []string{`audio "aac": sample rate 0 must be greater than zero`}},
		{name: "audio bitrate", edit: func(j *Job) { j.Plan.Audio[0].Bitrate = 0 }, wantErr: []string{`audio "aac": bitrate must be greater than zero`}},
		{name: "audio track", edit: func(j *Job) { j.Plan.Audio[0].Track = -1 }, wantErr: []string{`audio "aac": source track -1 must not be negative`}},
		{name: "start number overflows ffmpeg", edit: func(j *Job) { j.StartNumbers = map[string]uint64{"360p": math.MaxUint64} }, wantErr: []string{`start number 18446744073709551615 of "360p" is too large`}},
		{
			name: "hardware encoder", edit: func(j *Job) { j.Plan.Video[1].Encoder = "nvenc" }, unavailable: true,
			wantErr: []string{`rung "360p": encoder nvenc needs cuda frames but the job has no hardware device: hardware encoder not available`},
		},
		{
			name: "auto is no run's transport", edit: func(j *Job) {
				j.Source, j.Kind, j.Live, j.Transport = "rtsp://cam/s", source.RTSP, true, source.TransportAuto
			},
			wantErr: []string{`rtsp transport "auto": a run is over tcp or udp`},
		},
		{
			name: "transport of another kind", edit: func(j *Job) {
				j.Source, j.Kind, j.Live, j.Transport = "rtmp://h/live", source.RTMP, true, source.TransportUDP
			},
			wantErr: []string{`transport "udp" is for rtsp sources only`},
		},
		{name: "bad preset", edit: func(j *Job) { j.Preset = "turbo" }, wantErr: []string{`rung "720p": unknown x264 preset "turbo"`, `rung "360p": unknown x264 preset "turbo"`}},
		{
			name:    "every problem at once",
			edit:    func(j *Job) { j.Dir = "rel"; j.Source = ""; j.Plan.GOP = 0 },
			wantErr: []string{"is not an absolute path", "source is empty", "gop 0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := buildError(t, tt.edit, tt.unavailable)
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// buildError applies edit to validJob, asserts that BuildArgs refuses it with an error
// wrapping ErrInvalidJob (and encoder.ErrUnavailable exactly when unavailable), and returns it.
func buildError(t *testing.T, edit func(*Job), unavailable bool) error {
	t.Helper()
	j := validJob()
	edit(&j)
	argv, err := BuildArgs(j)
	if err == nil {
		t.Fatalf("BuildArgs succeeded with %q", argv)
	}
	if !errors.Is(err, ErrInvalidJob) {
		t.Errorf("error %v does not wrap ErrInvalidJob", err)
	}
	if got := errors.Is(err, encoder.ErrUnavailable); got != unavailable {
		t.Errorf("errors.Is(err, encoder.ErrUnavailable) = %v, want %v", got, unavailable)
	}
	return err
}

func TestValidJobBuilds(t *testing.T) {
	if _, err := BuildArgs(validJob()); err != nil {
		t.Fatalf("the base job of TestBuildArgsErrors must build: %v", err)
	}
}

func TestOutputDirs(t *testing.T) {
	got := OutputDirs(validJob())
	want := []string{jobDir + "/720p", jobDir + "/360p", jobDir + "/aac", jobDir + "/.ffmpeg"}
	if !slices.Equal(got, want) {
		t.Errorf("OutputDirs = %q, want %q", got, want)
	}
}

func TestFormatFPS(t *testing.T) {
	tests := []struct {
		name string
		in   float64
		want string
	}{
		{name: "whole", in: 30, want: "30"},
		{name: "pal", in: 25, want: "25"},
		{name: "ntsc exact", in: 30000.0 / 1001, want: "30000/1001"},
		{name: "ntsc rounded", in: 29.97, want: "30000/1001"},
		{name: "film", in: 23.976, want: "24000/1001"},
		{name: "ntsc 60", in: 59.94, want: "60000/1001"},
		{name: "half", in: 12.5, want: "25/2"},
		{name: "not ntsc", in: 29.5, want: "59/2"},
		{name: "thousandths", in: 23.123, want: "23123/1000"},
		{name: "noise trimmed", in: 15.000000001, want: "15"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := FrameRate(tt.in); got != tt.want {
				t.Errorf("FrameRate(%v) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestNetworkInputOptionsAccepted runs the real ffmpeg with the argv of each
// network kind against a closed local port. ffmpeg must get as far as trying to
// connect: an input option this ffmpeg does not know would stop it earlier with
// "Option ... not found" instead of "Connection refused".
func TestNetworkInputOptionsAccepted(t *testing.T) {
	ff := needTool(t, "ffmpeg")
	addr := closedPort(t)
	tests := []struct {
		name      string
		source    string
		kind      source.Kind
		transport source.Transport
	}{
		{name: "rtmp", source: "rtmp://" + addr + "/live/cam", kind: source.RTMP},
		{name: "rtsp", source: "rtsp://" + addr + "/stream1", kind: source.RTSP},
		{name: "rtsp over udp", source: "rtsp://" + addr + "/stream1", kind: source.RTSP, transport: source.TransportUDP},
		{name: "hls pull", source: "http://" + addr + "/live/index.m3u8", kind: source.HTTP},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := validJob()
			j.Source, j.Kind, j.Live, j.Dir, j.Transport = tt.source, tt.kind, true, t.TempDir(), tt.transport
			argv, err := BuildArgs(j)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, ff, argv...)
			tail := supervise.NewTail(10)
			cmd.Stderr = tail
			err = cmd.Run()
			if err == nil {
				t.Fatal("ffmpeg succeeded against a closed port")
			}
			if !strings.Contains(tail.Last(), "Connection refused") {
				t.Errorf("ffmpeg stopped with %q, want a refused connection; stderr:\n%s", tail.Last(), strings.Join(tail.Lines(), "\n"))
			}
		})
	}
}
