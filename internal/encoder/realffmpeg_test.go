package encoder

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"maps"
	"math"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// These tests run the real ffmpeg. This machine has no GPU, so they check what can
// be checked without one: that the filter graphs run, on a software Vulkan device
// (lavapipe) standing in for a GPU, and that this ffmpeg knows every option and
// value the backends and the scalers write.

// realFFmpeg returns the ffmpeg on PATH; without it (or ffprobe) the test skips,
// or fails under CI.
func realFFmpeg(t *testing.T) string {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	p, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal(err)
	}
	return p
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
	frameTypes["vulkan"] = &frameType{decode: true, scalers: []string{"scale_vulkan"}}
	t.Cleanup(func() { delete(frameTypes, "vulkan") })
}

// testSource is one second of a 30 fps test picture.
func testSource(w, h int) string { return fmt.Sprintf("testsrc2=size=%dx%d:rate=30:duration=1", w, h) }

// runFFmpeg runs ff with args and fails the test with its output when it fails.
func runFFmpeg(t *testing.T, ff string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"-hide_banner", "-nostdin", "-loglevel", "warning", "-y"}, args...)
	if out, err := exec.CommandContext(ctx, ff, args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// videoPackets returns the number of video packets in file and the frame
// numbers (at 30 fps, from the first frame's time) of its keyframes, as ffprobe
// reads them.
func videoPackets(t *testing.T, file string) (frames int, keys []int) {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,flags", "-of", "csv=p=0", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var pts, keyPTS []float64
	for _, line := range strings.Fields(string(out)) {
		at, flags, _ := strings.Cut(line, ",")
		sec, err := strconv.ParseFloat(at, 64)
		if err != nil {
			t.Fatalf("ffprobe line %q: %v", line, err)
		}
		pts = append(pts, sec)
		if strings.HasPrefix(flags, "K") {
			keyPTS = append(keyPTS, sec)
		}
	}
	if len(pts) == 0 {
		return 0, nil
	}
	first := slices.Min(pts)
	for _, sec := range keyPTS {
		keys = append(keys, int(math.Round((sec-first)*30)))
	}
	slices.Sort(keys)
	return len(pts), keys
}

// TestFilterGraphVulkanRealFFmpeg runs the argv pieces a job gets for a GPU
// (InputArgs, the graph and the encoders' options from Rungs) on a Vulkan
// device: every rung must come out whole, with keyframes on the segment
// boundaries, through one upload and a scaler and hwdownload per x264 rung.
func TestFilterGraphVulkanRealFFmpeg(t *testing.T) {
	ff := realFFmpeg(t)
	vulkanFrames(t, ff)
	tmp := t.TempDir()
	clip := filepath.Join(tmp, "clip.mp4")
	runFFmpeg(t, ff, "-f", "lavfi", "-i", testSource(320, 180), "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "15", clip)
	rung := func(name string, w, h int) ladder.PlannedVideo {
		br := int64(w*h*30/10/1000) * 1000
		return ladder.PlannedVideo{Name: name, Width: w, Height: h, Bitrate: br, MaxRate: br, BufSize: 2 * br, Profile: "main", Encoder: X264}
	}
	rungs := []ladder.PlannedVideo{rung("a", 320, 180), rung("b", 160, 90)}
	tests := []struct {
		name  string
		hw    Hardware
		input []string
		rungs []ladder.PlannedVideo
	}{
		{name: "upload once", hw: Hardware{Type: "vulkan", Device: "0"}, input: []string{"-f", "lavfi", "-i", testSource(320, 180)}, rungs: rungs},
		// ffmpeg 5.1 cannot decode on Vulkan: -hwaccel falls back to software
		// decoding and the graph uploads, as with a codec NVDEC lacks.
		{name: "hwaccel falls back", hw: Hardware{Type: "vulkan", Device: "0", Decode: true}, input: []string{"-i", clip}, rungs: rungs},
		{name: "one rung", hw: Hardware{Type: "vulkan", Device: "0", Decode: true}, input: []string{"-i", clip}, rungs: rungs[1:]},
	}
	for n, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			graph, outputs, err := Rungs("30", tt.rungs, tt.hw, "veryfast", 15, 0.5)
			if err != nil {
				t.Fatal(err)
			}
			args := append(tt.hw.InputArgs(), tt.input...)
			args = append(args, "-filter_complex", graph)
			for i, o := range outputs {
				args = append(append(args, o...), "-an", filepath.Join(tmp, fmt.Sprintf("%d-%d.nut", n, i)))
			}
			runFFmpeg(t, ff, args...)
			for i, r := range tt.rungs {
				frames, keys := videoPackets(t, filepath.Join(tmp, fmt.Sprintf("%d-%d.nut", n, i)))
				if frames != 30 || !slices.Equal(keys, []int{0, 15}) {
					t.Errorf("rung %s: %d frames, keyframes at %v; want 30 frames, keyframes at 0 and 15", r.Name, frames, keys)
				}
			}
			argv := strings.Join(args, " ")
			for _, want := range []string{"format=nv12|vulkan,hwupload", "scale_vulkan=w=160:h=90:format=nv12,hwdownload,format=nv12,setsar=1,format=yuv420p"} {
				if !strings.Contains(argv, want) {
					t.Errorf("argv lacks %q: %s", want, argv)
				}
			}
		})
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
	for _, name := range []string{NVENC, QSV, VAAPI} {
		enc := mustResolve(t, name)
		t.Run(enc.Name, func(t *testing.T) {
			help := encoderHelp(t, ff, "encoder="+enc.FFmpeg)
			for _, profile := range []string{"", "baseline", "main", "high"} {
				for _, preset := range append(slices.Sorted(maps.Keys(nvencPresets)), "") {
					for _, tune := range append(slices.Sorted(maps.Keys(x264Tunes)), "") {
						for _, maxRate := range []int64{2_000_000, 2_500_000} {
							r := rung
							r.Profile, r.Tune, r.MaxRate = profile, tune, maxRate
							args, err := enc.VideoArgs(r, preset, 60, 2)
							if err != nil {
								t.Fatal(err)
							}
							checkOptions(t, help, enc.FFmpeg, args)
						}
					}
				}
			}
		})
	}
}

// checkOptions checks that every option in args, and each named value, is one
// that help (encoderHelp of encoder) lists.
func checkOptions(t *testing.T, help map[string][]string, encoder string, args []string) {
	t.Helper()
	for i := 0; i+1 < len(args); i += 2 {
		name, val := strings.TrimPrefix(args[i], "-"), args[i+1]
		if genericOptions[name] {
			continue
		}
		name = strings.TrimSuffix(name, ":v")
		values, ok := help[name]
		if !ok {
			t.Errorf("%s: option -%s is not an option of this ffmpeg's %s", strings.Join(args, " "), name, encoder)
			continue
		}
		if len(values) > 0 && !slices.Contains(values, val) && !isInt(val) {
			t.Errorf("-%s %s: not one of %q", name, val, values)
		}
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
			chain := tt.hw.scale(640, 360)
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
