package ffmpeg

import (
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// The hardware golden jobs run through TestBuildArgsGolden with the software ones;
// they are listed here so that the software cases stay as they were.
func init() {
	goldenJobs = append(goldenJobs, hwGoldenJobs...)
}

// tuned is r with tune zerolatency.
func tuned(r ladder.PlannedVideo) ladder.PlannedVideo {
	r.Tune = "zerolatency"
	return r
}

// hwRung is rung with another encoder.
func hwRung(enc, name string, w, h int, bitrate int64, profile string) ladder.PlannedVideo {
	r := rung(name, w, h, bitrate, profile)
	r.Encoder = enc
	return r
}

var (
	cuda0      = encoder.Hardware{Type: encoder.FramesCUDA, Device: "0", Decode: true}
	renderD128 = "/dev/dri/renderD128"
)

var hwGoldenJobs = []struct {
	name string
	job  Job
}{
	{
		// Tune zerolatency on NVENC: -tune ll -zerolatency 1 and no B-frames,
		// beside an x264 rung that takes -tune zerolatency as it is.
		name: "nvenc-zerolatency",
		job: Job{
			Source: "rtmp://127.0.0.1:1935/live/cam", Kind: source.RTMP, Live: true, Preset: "superfast", Dir: jobDir, HW: cuda0,
			Plan: ladder.Plan{
				FPS: 30, GOP: 30, SegmentDuration: time.Second,
				Video: []ladder.PlannedVideo{tuned(hwRung("nvenc", "720p", 1280, 720, 2_500_000, "main")), tuned(rung("360p", 640, 360, 700_000, "baseline"))},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// The whole ladder on an NVIDIA GPU: decoded, scaled and encoded there.
		name: "nvenc-4-rung-rtmp",
		job: Job{
			Source: "rtmp://127.0.0.1:1935/live/cam", Kind: source.RTMP, Live: true, Preset: "veryfast", Dir: jobDir, HW: cuda0,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{
					{Name: "1080p", Width: 1920, Height: 1080, Bitrate: 5_000_000, MaxRate: 5_350_000, BufSize: 10_700_000, Profile: "high", Encoder: "nvenc"},
					hwRung("nvenc", "720p", 1280, 720, 2_800_000, "main"),
					hwRung("nvenc", "480p", 854, 480, 1_400_000, "main"),
					hwRung("nvenc", "360p", 640, 360, 800_000, "baseline"),
				},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// A source codec the GPU was not proven to decode: software decode, one
		// upload, scale_npp on the second GPU, no preset.
		name: "nvenc-upload-scale-npp",
		job: Job{
			Source: "/media/talks/keynote.mkv", Kind: source.File, Dir: jobDir, Run: 1796500000,
			HW: encoder.Hardware{Type: encoder.FramesCUDA, Device: "1", Scaler: "scale_npp"},
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{hwRung("nvenc", "720p", 1280, 720, 2_500_000, ""), hwRung("nvenc", "360p", 640, 360, 700_000, "")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "nvenc-one-rung",
		job: Job{
			Source: "/media/clip.mp4", Kind: source.File, Preset: "slow", Dir: jobDir, HW: cuda0,
			Plan: ladder.Plan{
				FPS: 24000.0 / 1001, GOP: 96, SegmentDuration: 4 * time.Second,
				Video: []ladder.PlannedVideo{hwRung("nvenc", "360p", 640, 360, 800_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// Mixed: the ladder pins its smallest rung to x264; it is scaled on the
		// GPU and downloaded.
		name: "mixed-nvenc-x264",
		job: Job{
			Source: "srt://0.0.0.0:9000?mode=listener&timeout=10000000", Kind: source.SRT, Live: true, Preset: "veryfast", Dir: jobDir, HW: cuda0,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{
					hwRung("nvenc", "1080p", 1920, 1080, 5_000_000, "high"),
					hwRung("nvenc", "720p", 1280, 720, 2_800_000, "main"),
					rung("360p", 640, 360, 800_000, "baseline"),
				},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// A GPU without an encoder (A100, H100, H200): it decodes and scales,
		// x264 encodes every rung.
		name: "nvdec-x264",
		job: Job{
			Source: "/media/talks/keynote.mp4", Kind: source.File, Preset: "veryfast", Dir: jobDir, HW: cuda0,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{rung("720p", 1280, 720, 2_800_000, "main"), rung("360p", 640, 360, 800_000, "main")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "qsv-2-rung",
		job: Job{
			Source: "rtsp://cam.local:554/stream1", Kind: source.RTSP, Live: true, Preset: "superfast", Dir: jobDir, Run: 1796500000,
			HW: encoder.Hardware{Type: encoder.FramesQSV, Device: renderD128},
			Plan: ladder.Plan{
				FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{hwRung("qsv", "720p", 1280, 720, 2_500_000, "main"), hwRung("qsv", "360p", 640, 360, 700_000, "baseline")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		name: "vaapi-3-rung-decode",
		job: Job{
			Source: "https://origin.example/live/master.m3u8", Kind: source.HTTP, Live: true, Preset: "medium", Dir: jobDir, Run: 1796500000,
			HW: encoder.Hardware{Type: encoder.FramesVAAPI, Device: "/dev/dri/renderD129", Decode: true},
			Plan: ladder.Plan{
				FPS: 30, GOP: 45, SegmentDuration: 1500 * time.Millisecond,
				Video: []ladder.PlannedVideo{
					{Name: "1080p", Width: 1920, Height: 1080, Bitrate: 5_000_000, MaxRate: 6_000_000, BufSize: 12_000_000, Profile: "high", Encoder: "vaapi"},
					hwRung("vaapi", "720p", 1280, 720, 2_800_000, "main"),
					hwRung("vaapi", "360p", 640, 360, 800_000, "baseline"),
				},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
	{
		// AMF reads system memory: no device options, software scaling to nv12.
		name: "amf-2-rung",
		job: Job{
			Source: "/media/clip.mp4", Kind: source.File, Preset: "fast", Dir: jobDir, Run: 1796500000,
			Plan: ladder.Plan{
				FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []ladder.PlannedVideo{hwRung("amf", "720p", 1280, 720, 2_800_000, "main"), hwRung("amf", "360p", 640, 360, 800_000, "baseline")},
				Audio: []ladder.Audio{stereo},
			},
		},
	},
}

func TestBuildArgsHardwareErrors(t *testing.T) {
	tests := []struct {
		name        string
		edit        func(j *Job)
		wantErr     string
		unavailable bool
	}{
		{
			name: "nvenc rung on vaapi frames", unavailable: true,
			edit: func(j *Job) {
				j.HW = encoder.Hardware{Type: encoder.FramesVAAPI, Device: renderD128}
				j.Plan.Video[0].Encoder = "nvenc"
			},
			wantErr: `rung "720p": encoder nvenc needs cuda frames but the job has vaapi frames`,
		},
		{
			name: "qsv rung without device", unavailable: true,
			edit:    func(j *Job) { j.Plan.Video[1].Encoder = "qsv" },
			wantErr: `rung "360p": encoder qsv needs qsv frames but the job has no hardware device`,
		},
		{
			name: "vce not resolved", unavailable: true,
			edit:    func(j *Job) { j.Plan.Video[0].Encoder = "vce" },
			wantErr: `rung "720p": encoder "vce" must be resolved against the hardware probe to amf or vaapi first`,
		},
		{
			name:    "qsv cannot decode",
			edit:    func(j *Job) { j.HW = encoder.Hardware{Type: encoder.FramesQSV, Device: renderD128, Decode: true} },
			wantErr: "hardware: decoding on qsv frames is not supported",
		},
		{
			name:    "device breaks init_hw_device",
			edit:    func(j *Job) { j.HW = encoder.Hardware{Type: encoder.FramesCUDA, Device: "0,foo=bar"} },
			wantErr: `hardware: device "0,foo=bar" contains a character -init_hw_device cannot take`,
		},
		{
			name:    "unknown frame type",
			edit:    func(j *Job) { j.HW = encoder.Hardware{Type: "d3d11va", Device: "0"} },
			wantErr: `hardware: unknown frame type "d3d11va"`,
		},
		{
			name:    "hardware for audio only",
			edit:    func(j *Job) { j.HW = cuda0; j.Plan.Video = nil },
			wantErr: "hardware cuda is set but the plan has no video",
		},
		{
			name:    "bad nvenc preset",
			edit:    func(j *Job) { j.HW = cuda0; j.Plan.Video[0].Encoder = "nvenc"; j.Preset = "turbo" },
			wantErr: `rung "720p": unknown preset "turbo" for nvenc`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := buildError(t, tt.edit, tt.unavailable)
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %q does not contain %q", err, tt.wantErr)
			}
			if n := strings.Count(err.Error(), tt.wantErr); n > 1 {
				t.Errorf("error reports %q %d times", tt.wantErr, n)
			}
		})
	}
}

// TestSoftwareArgvUnchangedByZeroHardware pins the promise that a job without a
// GPU gets exactly the software argv: no device option anywhere.
func TestSoftwareArgvUnchangedByZeroHardware(t *testing.T) {
	for _, tt := range goldenJobs {
		if tt.job.HW != (encoder.Hardware{}) {
			continue
		}
		argv, err := BuildArgs(tt.job)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		for _, a := range argv {
			if strings.Contains(a, "hw") && (strings.HasPrefix(a, "-hwaccel") || strings.HasPrefix(a, "-init_hw_device") || strings.HasPrefix(a, "-filter_hw_device")) {
				t.Errorf("%s: software job has %q", tt.name, a)
			}
		}
	}
}
