package job

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/testmedia"
	"github.com/transcoderd/transcoderd/profiles"
)

// nvencBox is the GPU service of a box with one NVIDIA GPU whose NVENC passed its trial
// encode, as the probe reports it (internal/gpu's fake probe makes the same), with
// cpuPerMpx the CPU its trial measured (0: none). There is no GPU here: a job's ffmpeg
// fails to open it, as on a box whose driver went away.
func nvencBox(cpuPerMpx float64) *gpu.Service {
	cuda := 0
	d := gpu.Device{ID: "renderD128", Vendor: encoder.VendorNVIDIA, Name: "NVIDIA GeForce RTX 3060 (fake)", RenderNode: "/dev/dri/renderD128", CUDAIndex: &cuda,
		Encoders: []gpu.EncoderResult{{Backend: encoder.NVENC, Encoder: "h264_nvenc", Working: true, Sessions: 8, CPUPerMpx: cpuPerMpx}}, Status: "encoder"}
	s := gpu.NewService(gpu.Prober{}, zerolog.Nop())
	s.SetCapabilities(gpu.Capabilities{Devices: []gpu.Device{d}, Auto: gpu.Choice{Encoder: encoder.NVENC, Device: d.ID},
		FFmpeg: gpu.Build{Encoders: []string{"libx264", "h264_nvenc"}, HWAccels: []string{"cuda"}, Filters: []string{"scale_cuda", "hwupload", "hwdownload"}}})
	return s
}

// gpuLadders is the built-in ladders, and the default one with its encoder pinned to
// x264 (default-x264) or its 360p rung only (default-mixed).
func gpuLadders(t *testing.T) *ladder.Store {
	t.Helper()
	def, err := profiles.FS.ReadFile("default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for name, text := range map[string]string{
		"default-x264":  strings.Replace(string(def), "encoder: auto ", "encoder: x264 ", 1),
		"default-mixed": strings.Replace(string(def), "profile: baseline}", "profile: baseline, encoder: x264}", 1),
	} {
		if text == string(def) {
			t.Fatalf("%s: default.yaml changed; the test's edit no longer applies", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ladder.NewStore(dir, profiles.FS)
}

// TestGPUAdmission: a live job is costed on the encoders it will run on. On a box with
// NVENC, under a CPU limit that the default ladder on x264 (about 3.4 cores) would not
// fit in, the default ladder is admitted: its rungs cost their CPU share, as the trial
// measured it or by default, not an x264 encode. A ladder pinned to x264 is still
// refused, as is the default ladder on a box without a GPU; one with a rung on x264
// and the others on NVENC costs the sum. The job's view shows its reservation.
func TestGPUAdmission(t *testing.T) {
	const limit = 1.5
	ladders := gpuLadders(t)
	nominal := func(name string) ladder.Plan {
		l, err := ladders.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return nominalPlan(l)
	}
	def := nominal("default")
	x264 := cpucap.Estimate(def, "veryfast")
	if x264 <= limit {
		t.Fatalf("test setup: the default ladder on x264 costs %.2f cores, within the limit %.2f", x264, limit)
	}
	var hwMpx, allMpx float64 // of the rungs above 360p; of all
	for _, v := range def.Video {
		mpx := float64(v.Width*v.Height) * def.FPS / 1e6
		allMpx += mpx
		if v.Name != "360p" {
			hwMpx += mpx
		}
	}
	overhead := cpucap.Estimate(ladder.Plan{Audio: def.Audio}, "veryfast")
	lower := def
	lower.Video = def.Video[3:]
	tests := []struct {
		name   string
		gpu    *gpu.Service
		ladder string
		want   float64 // cores; 0: refused as it could never start
	}{
		{"nvenc, the trial's figure", nvencBox(0.004), "default", 0.004*allMpx + overhead},
		{"nvenc, unmeasured: the default share", nvencBox(0), "default", cpucap.HardwareShare*allMpx + overhead},
		{"nvenc, a ladder pinned to x264", nvencBox(0.004), "default-x264", 0},
		{"no GPU", nil, "default", 0},
		{"nvenc and one x264 rung: the sum", nvencBox(0.004), "default-mixed", 0.004*hwMpx + cpucap.Estimate(lower, "veryfast")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := testManager(t, Config{Ladders: ladders, CPU: cpucap.New(limit, t.TempDir()), GPU: tc.gpu})
			j, err := m.Create(context.Background(), Request{Source: "rtmp://127.0.0.1:1/live/x", Ladder: tc.ladder, ID: "cam"})
			if tc.want == 0 {
				if !errors.Is(err, cpucap.ErrOverCapacity) || !strings.Contains(err.Error(), "could never start") {
					t.Fatalf("admitted, or refused otherwise: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			if v := j.View(); math.Abs(v.Cost-tc.want) > 1e-6 || v.State == Queued || v.State.Ended() {
				t.Errorf("cost %.4f cores (state %s), want %.4f (x264 would be %.2f)", v.Cost, v.State, tc.want, x264)
			}
		})
	}
}

// TestGPUFallbackRecost: a live job admitted on NVENC whose GPU fails when ffmpeg
// opens it (there is none here: ffmpeg cannot load libcuda) moves its rungs to x264,
// and its reservation is priced again as x264. That is over the CPU limit now: the job
// runs on, and says so; a live job that fitted beside it on NVENC is refused, and one
// that asks to queue waits.
func TestGPUFallbackRecost(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a live job")
	}
	ladders := gpuLadders(t)
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 1280, Height: 720, FPS: 30})
	def, _ := ladders.Get("default")
	plan, err := def.Plan(ladder.SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 30, HasAudio: true, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	small, _ := ladders.Get("test")
	other := cpucap.Estimate(nominalPlan(small), small.Video.Preset)
	onGPU := plan
	onGPU.Video = nil
	for _, v := range plan.Video {
		v.Encoder = encoder.NVENC
		onGPU.Video = append(onGPU.Video, v)
	}
	gpuCost := admissionCost(gpu.Admission{Plan: onGPU}, def.Video.Preset)
	x264 := cpucap.Estimate(plan, def.Video.Preset)
	limit := gpuCost + other + 0.1
	if x264 <= limit {
		t.Fatalf("test setup: on x264 the job costs %.2f cores, within the limit %.2f", x264, limit)
	}
	m := testManager(t, Config{Ladders: ladders, CPU: cpucap.New(limit, t.TempDir()), GPU: nvencBox(0)})
	ctx := context.Background()
	j, err := m.Create(ctx, Request{Source: src.URL, Ladder: "default", ID: "cam"})
	if err != nil {
		t.Fatalf("refused on NVENC (%.2f cores under %.2f): %v", gpuCost, limit, err)
	}
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(lastEvent(j, "cost"), "over its limit") {
		if time.Now().After(deadline) || j.View().State.Ended() {
			t.Fatalf("no reservation over the cap after the fallback: %+v\nevents: %+v", j.View(), j.Events())
		}
		time.Sleep(20 * time.Millisecond)
	}
	v := j.View()
	if math.Abs(v.Cost-x264) > 1e-6 || !hasEvent(j, "fallback") {
		t.Errorf("after the fallback: cost %.4f cores, want x264's %.4f; events %+v", v.Cost, x264, j.Events())
	}
	for _, r := range v.Renditions {
		if r.Kind == "video" && r.Encoder != encoder.X264 {
			t.Errorf("rendition %s on %s after the fallback", r.Name, r.Encoder)
		}
	}
	// The other job fitted beside the NVENC job; beside the x264 one it does not.
	_, err = m.Create(ctx, Request{Source: "rtmp://127.0.0.1:1/live/b", Ladder: "test", ID: "b"})
	if !errors.Is(err, cpucap.ErrOverCapacity) {
		t.Errorf("a job beside the job gone x264: %v, want refused", err)
	}
	q, err := m.Create(ctx, Request{Source: "rtmp://127.0.0.1:1/live/q", Ladder: "test", ID: "q", Queue: true})
	if err != nil || q.View().State != Queued {
		t.Errorf("a job that may queue: %v %+v", err, q)
	}
	waitView(t, j, time.Minute, "the job running on x264", func(v View) bool { return v.State == Running && v.Segments > 0 })
}

// lastEvent is the message of j's last event of type typ, "" when none.
func lastEvent(j *Job, typ string) string {
	msg := ""
	for _, e := range j.Events() {
		if e.Type == typ {
			msg = e.Message
		}
	}
	return msg
}
