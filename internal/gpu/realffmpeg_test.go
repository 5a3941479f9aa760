package gpu

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// These tests run the real ffmpeg. This machine has no GPU, so they check what can
// be checked without one: the trial machinery end to end on software frames and on
// a software Vulkan device (lavapipe), that this ffmpeg knows every option and
// value the backends write, and that a hardware trial gets as far as the device.

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
	tr := p.trial(context.Background(), Hardware{}, []ladder.PlannedVideo{
		trialRung(BackendX264, "a", 320, 180), trialRung(BackendX264, "b", 160, 90),
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
	rungs := []ladder.PlannedVideo{trialRung(BackendX264, "a", 160, 90)}
	out := tmp + "/k.crc"
	args, err := trialArgs(Hardware{}, rungs, lavfiInput(160, 90), []string{"framecrc", out})
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

// vulkanFrames registers Vulkan as a frame type for the test: ffmpeg 5.1 runs it
// on lavapipe, a CPU Vulkan driver, so the same graphs the GPUs get (one upload,
// a split of hardware frames, a scaler per rung, hwdownload for x264, -hwaccel
// falling back to software decoding and uploading) run for real here.
func vulkanFrames(t *testing.T, ff string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := exec.CommandContext(ctx, ff, "-hide_banner", "-v", "error", "-init_hw_device", "vulkan=hw:0",
		"-f", "lavfi", "-i", "nullsrc=s=64x64:d=0.04", "-f", "null", "-").CombinedOutput(); err != nil {
		testmedia.Missing(t, fmt.Sprintf("no Vulkan device (apt-get install mesa-vulkan-drivers, for lavapipe): %v\n%s", err, out))
	}
	frameTypes["vulkan"] = frameType{
		init: func(dev string) []string {
			return []string{"-init_hw_device", "vulkan=hw:" + dev, "-filter_hw_device", "hw"}
		},
		hwaccel: "vulkan",
		upload:  ",format=nv12|vulkan,hwupload",
		scale:   func(w, h int, _ string) string { return fmt.Sprintf("scale_vulkan=w=%d:h=%d:format=nv12", w, h) },
	}
	t.Cleanup(func() { delete(frameTypes, "vulkan") })
}

func TestTrialHardwareFramesRealFFmpeg(t *testing.T) {
	p := realProber(t)
	vulkanFrames(t, p.FFmpeg)
	tmp := t.TempDir()
	clip, err := p.clip(context.Background(), tmp)
	if err != nil {
		t.Fatal(err)
	}
	rungs := []ladder.PlannedVideo{trialRung(BackendX264, "a", 320, 180), trialRung(BackendX264, "b", 160, 90)}
	tests := []struct {
		name  string
		hw    Hardware
		input []string
	}{
		{name: "upload once", hw: Hardware{Type: "vulkan", Device: "0"}, input: lavfiInput(320, 180)},
		// ffmpeg 5.1 cannot decode on Vulkan: -hwaccel falls back to software
		// decoding and the graph uploads, as with a codec NVDEC lacks.
		{name: "hwaccel falls back", hw: Hardware{Type: "vulkan", Device: "0", Decode: true}, input: []string{"-i", clip}},
		{name: "one rung", hw: Hardware{Type: "vulkan", Device: "0", Decode: true}, input: []string{"-i", clip}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rs := rungs
			if tt.name == "one rung" {
				rs = rungs[1:]
			}
			tr := p.trial(context.Background(), tt.hw, rs, tt.input, tmp)
			if !tr.OK || tr.Frames != 30 || !slices.Equal(tr.Keyframes, []int{0, 15}) {
				t.Fatalf("trial = %+v", tr)
			}
			argv := strings.Join(tr.Args, " ")
			for _, want := range []string{"format=nv12|vulkan,hwupload", "scale_vulkan=w=160:h=90:format=nv12,hwdownload,format=nv12,setsar=1,format=yuv420p"} {
				if !strings.Contains(argv, want) {
					t.Errorf("argv lacks %q: %s", want, argv)
				}
			}
		})
	}
}

// TestHardwareTrialReachesTheDevice runs each backend's trial with the real
// ffmpeg. Without the hardware it must fail at the device or its library, with
// the line a user would see; with the hardware it passes.
func TestHardwareTrialReachesTheDevice(t *testing.T) {
	p := realProber(t)
	tests := []struct {
		backend string
		hw      Hardware
		kinds   []string
	}{
		{backend: BackendNVENC, hw: Hardware{Type: FramesCUDA, Device: "0"}, kinds: []string{KindNoLibrary, KindNoDevice, KindDriver, KindNoEncoder}},
		{backend: BackendQSV, hw: Hardware{Type: FramesQSV, Device: "/dev/dri/renderD128"}, kinds: []string{KindNoDevice, KindDriver, KindNoEncoder}},
		{backend: BackendVAAPI, hw: Hardware{Type: FramesVAAPI, Device: "/dev/dri/renderD128"}, kinds: []string{KindNoDevice, KindDriver, KindNoEncoder}},
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
	for _, enc := range []Encoder{NVENC{}, QSV{}} {
		for _, pp := range pairs {
			profile, preset := pp.profile, pp.preset
			r := rung
			r.Profile, r.Encoder = profile, enc.Name()
			if preset == "ultrafast" {
				r.MaxRate = r.Bitrate // CBR
			}
			name := enc.Name() + "/" + profile + "/" + preset
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
				if kind != KindNoLibrary && kind != KindDriver && kind != KindNoDevice {
					t.Errorf("ffmpeg stopped before the encoder's library: %s %q\n%s", kind, line, strings.Join(stderr, "\n"))
				}
			})
		}
	}
}

// encoderHelp reads `ffmpeg -h encoder=NAME`: its options and each option's
// named values.
func encoderHelp(t *testing.T, ff, what string) map[string][]string {
	t.Helper()
	out, err := exec.Command(ff, "-hide_banner", "-h", what).Output()
	if err != nil {
		t.Fatal(err)
	}
	opts := map[string][]string{}
	option := regexp.MustCompile(`^\s{2,3}-?([A-Za-z0-9_-]+)\s+<`)
	value := regexp.MustCompile(`^\s{5}([A-Za-z0-9_.]+)\s`)
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if m := option.FindStringSubmatch(l); m != nil {
			cur = m[1]
			opts[cur] = nil
		} else if m := value.FindStringSubmatch(l); m != nil && cur != "" {
			opts[cur] = append(opts[cur], m[1])
		}
	}
	if len(opts) == 0 {
		testmedia.Missing(t, fmt.Sprintf("ffmpeg -h %s lists no options: this ffmpeg was built without it (Debian's ffmpeg has it)", what))
	}
	return opts
}

// genericOptions are AVCodecContext options every encoder takes.
var genericOptions = map[string]bool{"c:v": true, "b:v": true, "maxrate": true, "bufsize": true, "g": true, "keyint_min": true, "bf": true, "force_key_frames": true}

func TestBackendOptionsKnownToFFmpeg(t *testing.T) {
	ff := realFFmpeg(t)
	rung := ladder.PlannedVideo{Name: "r", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_500_000, BufSize: 5_000_000}
	for _, enc := range []Encoder{NVENC{}, QSV{}, VAAPI{}} {
		t.Run(enc.Name(), func(t *testing.T) {
			help := encoderHelp(t, ff, "encoder=h264_"+enc.Name())
			for _, profile := range []string{"", "baseline", "main", "high"} {
				for _, preset := range append(slices.Sorted(maps.Keys(nvencPresets)), "") {
					for _, maxRate := range []int64{2_000_000, 2_500_000} {
						r := rung
						r.Profile, r.MaxRate = profile, maxRate
						args, err := enc.VideoArgs(r, preset, 60, 2)
						if err != nil {
							t.Fatal(err)
						}
						for i := 0; i+1 < len(args); i += 2 {
							name, val := strings.TrimPrefix(args[i], "-"), args[i+1]
							if genericOptions[name] {
								continue
							}
							name = strings.TrimSuffix(name, ":v")
							values, ok := help[name]
							if !ok {
								t.Errorf("%s: option -%s is not an option of this ffmpeg's h264_%s", strings.Join(args, " "), name, enc.Name())
								continue
							}
							if len(values) > 0 && !slices.Contains(values, val) && !isInt(val) {
								t.Errorf("-%s %s: not one of %q", name, val, values)
							}
						}
					}
				}
			}
		})
	}
}

func TestHardwareFilterOptionsKnownToFFmpeg(t *testing.T) {
	ff := realFFmpeg(t)
	for _, tt := range []struct {
		hw     Hardware
		filter string
	}{
		{hw: Hardware{Type: FramesCUDA, Device: "0"}, filter: "scale_cuda"},
		{hw: Hardware{Type: FramesVAAPI, Device: "/dev/dri/renderD128"}, filter: "scale_vaapi"},
		{hw: Hardware{Type: FramesQSV, Device: "/dev/dri/renderD128"}, filter: "vpp_qsv"},
	} {
		t.Run(tt.filter, func(t *testing.T) {
			help := encoderHelp(t, ff, "filter="+tt.filter)
			chain := tt.hw.hwScale(640, 360)
			name, opts, _ := strings.Cut(chain, "=")
			if name != tt.filter {
				t.Fatalf("chain %q does not use %s", chain, tt.filter)
			}
			for _, kv := range strings.Split(opts, ":") {
				k, _, _ := strings.Cut(kv, "=")
				if _, ok := help[k]; !ok {
					t.Errorf("%s has no option %q", tt.filter, k)
				}
			}
		})
	}
}

func isInt(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}
