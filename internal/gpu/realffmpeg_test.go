package gpu

import (
	"context"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// These tests run the real ffmpeg. This machine has no GPU, so they check what can
// be checked without one: the trial machinery end to end on software frames, that
// this ffmpeg opens every hardware encoder with the options the backends write up
// to its library, and that a hardware trial gets as far as the device. (The
// filter graphs on a software Vulkan device, and the options and values the
// backends write, are internal/encoder's tests.)

func realFFmpeg(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("TRANSCODERD_REQUIRE_FFMPEG") != "" {
			t.Fatalf("ffmpeg is required: %v", err)
		}
		t.Skipf("ffmpeg not installed: %v", err)
	}
	return p
}

func realProber(t *testing.T) Prober {
	p := Prober{FFmpeg: realFFmpeg(t), Width: 320, Height: 180, Timeout: time.Minute}
	p.defaults()
	return p
}

func TestTrialSoftwareRealFFmpeg(t *testing.T) {
	p := realProber(t)
	tr := p.trial(context.Background(), encoder.Hardware{}, []ladder.PlannedVideo{
		trialRung(encoder.X264, "a", 320, 180), trialRung(encoder.X264, "b", 160, 90),
	}, lavfiInput(320, 180), t.TempDir())
	if !tr.OK || tr.Frames != 30 || !slices.Equal(tr.Keyframes, []int{0, 15}) {
		t.Fatalf("trial = %+v", tr)
	}
}

// TestTrialKeyframeCheckRealFFmpeg proves the keyframe check fails an encoder
// that ignores forced keyframes: libx264 with a 30-frame GOP and the forcing
// expression swallowed by a later option places no keyframe at frame 15.
func TestTrialKeyframeCheckRealFFmpeg(t *testing.T) {
	p := realProber(t)
	tmp := t.TempDir()
	rungs := []ladder.PlannedVideo{trialRung(encoder.X264, "a", 160, 90)}
	out := tmp + "/k.crc"
	args, err := trialArgs(encoder.Hardware{}, rungs, lavfiInput(160, 90), []string{"framecrc", out})
	if err != nil {
		t.Fatal(err)
	}
	// Replace the forcing and the GOP: what an encoder that ignores them does.
	for i, a := range args {
		switch a {
		case "-force_key_frames":
			args[i+1] = "expr:0"
		case "-g", "-keyint_min":
			args[i+1] = "30"
		}
	}
	if b, err := exec.Command(p.FFmpeg, args...).CombinedOutput(); err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	frames, keys, err := readFrameCRC(out)
	if err != nil || frames != 30 || !slices.Equal(keys, []int{0}) {
		t.Fatalf("frames %d keys %v err %v, want one keyframe", frames, keys, err)
	}
}

func TestHardwareTrialReachesTheDevice(t *testing.T) {
	p := realProber(t)
	tests := []struct {
		backend string
		hw      encoder.Hardware
		kinds   []string
	}{
		{backend: encoder.NVENC, hw: encoder.Hardware{Type: encoder.FramesCUDA, Device: "0"}, kinds: []string{kindNoLibrary, kindNoDevice, kindDriver, kindNoEncoder}},
		{backend: encoder.QSV, hw: encoder.Hardware{Type: encoder.FramesQSV, Device: "/dev/dri/renderD128"}, kinds: []string{kindNoDevice, kindDriver, kindNoEncoder}},
		{backend: encoder.VAAPI, hw: encoder.Hardware{Type: encoder.FramesVAAPI, Device: "/dev/dri/renderD128"}, kinds: []string{kindNoDevice, kindDriver, kindNoEncoder}},
	}
	for _, tt := range tests {
		t.Run(tt.backend, func(t *testing.T) {
			tr := p.trial(context.Background(), tt.hw, []ladder.PlannedVideo{trialRung(tt.backend, "a", 320, 180)}, lavfiInput(320, 180), t.TempDir())
			if tr.OK {
				t.Logf("%s works on this machine: %+v", tt.backend, tr)
				return
			}
			if !slices.Contains(tt.kinds, tr.Kind) {
				t.Errorf("%s trial failed with %s %q, want a missing device or driver", tt.backend, tr.Kind, tr.Error)
			}
		})
	}
}

// TestEncodersOpenUpToTheirLibrary gives h264_nvenc and h264_qsv frames in
// system memory with every option the backends write. ffmpeg sets the options
// before the encoder loads its library, so reaching "Cannot load libcuda.so.1" or
// the MFX session error proves this ffmpeg accepts every name and value.
func TestEncodersOpenUpToTheirLibrary(t *testing.T) {
	p := realProber(t)
	rung := ladder.PlannedVideo{Name: "r", Width: 320, Height: 180, Bitrate: 500_000, MaxRate: 600_000, BufSize: 1_200_000}
	pairs := []struct{ profile, preset string }{{"", ""}, {"baseline", "ultrafast"}, {"main", "veryfast"}, {"high", "medium"}, {"main", "placebo"}}
	for _, backend := range []string{encoder.NVENC, encoder.QSV} {
		enc, err := encoder.Resolve(backend)
		if err != nil {
			t.Fatal(err)
		}
		for _, pp := range pairs {
			profile, preset := pp.profile, pp.preset
			r := rung
			r.Profile, r.Encoder = profile, enc.Name
			if preset == "ultrafast" {
				r.MaxRate = r.Bitrate // CBR
			}
			name := enc.Name + "/" + profile + "/" + preset
			t.Run(name, func(t *testing.T) {
				v, err := enc.VideoArgs(r, preset, 15, 0.5)
				if err != nil {
					t.Fatal(err)
				}
				args := append([]string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=0.2", "-vf", "format=nv12"}, v...)
				args = append(args, "-f", "null", "-")
				ctx, cancel := context.WithTimeout(context.Background(), p.Timeout)
				defer cancel()
				_, stderr, err := run(ctx, p.FFmpeg, nil, args...)
				if err == nil {
					return // the hardware is here and encoded
				}
				line, kind, _ := reason(stderr)
				if kind != kindNoLibrary && kind != kindDriver && kind != kindNoDevice {
					t.Errorf("ffmpeg stopped before the encoder's library: %s %q\n%s", kind, line, strings.Join(stderr, "\n"))
				}
			})
		}
	}
}
