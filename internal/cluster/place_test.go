package cluster

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

func cpuBox(id string, limit, used float64) Candidate {
	return Candidate{Node: Node{Box: id, CPULimit: limit, CPUUsed: used}}
}

func gpuBox(id string, limit float64, gpus ...GPU) Candidate {
	c := cpuBox(id, limit, 0)
	c.Node.GPUs = gpus
	return c
}

func nvenc(id string, sessions, used int) GPU {
	return GPU{ID: id, Vendor: "nvidia", Encoders: []string{"nvenc"}, Sessions: sessions, Used: used}
}

func reserved(c Candidate, cores float64, sessions map[string]int) Candidate {
	c.Reserved = Usage{Cores: cores, Sessions: sessions}
	return c
}

func TestPlace(t *testing.T) {
	x264 := Request{Cost: Cost{Cores: 1.5}, Live: true}
	hw := func(sessions int, enc string, fallback bool) Request {
		return Request{Cost: Cost{Cores: 3, HWCores: 0.3, Sessions: sessions, Encoder: enc, Fallback: fallback}, Live: true}
	}
	draining := cpuBox("d", 8, 0)
	draining.Draining = true
	stale := cpuBox("b", 8, 0)
	stale.Stale = true
	for _, tc := range []struct {
		name    string
		req     Request
		boxes   []Candidate
		box     string
		gpu     string
		why     string // a substring of the reason, when it must not fit
		reserve Reserve
	}{
		{name: "x264 on the most free cpu", req: x264,
			boxes: []Candidate{cpuBox("a", 4, 1), cpuBox("b", 4, 0.5), cpuBox("c", 2, 0)}, box: "b", reserve: Reserve{Cores: 1.5}},
		{name: "reservations count when above the measured use", req: x264,
			boxes: []Candidate{reserved(cpuBox("a", 4, 0.5), 3, nil), cpuBox("b", 4, 1)}, box: "b", reserve: Reserve{Cores: 1.5}},
		{name: "measured use counts when above the reservations", req: x264,
			boxes: []Candidate{reserved(cpuBox("a", 4, 3), 1, nil), cpuBox("b", 4, 2)}, box: "b", reserve: Reserve{Cores: 1.5}},
		{name: "tie goes to the lowest box id", req: x264,
			boxes: []Candidate{cpuBox("c", 4, 0), cpuBox("b", 4, 0)}, box: "b", reserve: Reserve{Cores: 1.5}},
		{name: "tie goes to the preferred box", req: Request{Cost: x264.Cost, Live: true, Prefer: "c"},
			boxes: []Candidate{cpuBox("b", 4, 0), cpuBox("c", 4, 0)}, box: "c", reserve: Reserve{Cores: 1.5}},
		{name: "draining and stale boxes are left out", req: x264,
			boxes: []Candidate{draining, stale, cpuBox("c", 2, 0)}, box: "c", reserve: Reserve{Cores: 1.5}},
		{name: "the box it leaves is left out", req: Request{Cost: x264.Cost, Live: true, Avoid: "a"},
			boxes: []Candidate{cpuBox("a", 8, 0), cpuBox("c", 2, 0)}, box: "c", reserve: Reserve{Cores: 1.5}},
		{name: "live job that fits nowhere waits with the reason", req: x264,
			boxes: []Candidate{cpuBox("a", 2, 1), draining}, why: "no box fits: d: draining; a: 1.00 cores free, 1.50 needed"},
		{name: "empty fleet", req: x264, why: "no box in the fleet"},
		{name: "file jobs need no free cores and reserve none", req: Request{Cost: Cost{Cores: 5}},
			boxes: []Candidate{cpuBox("a", 2, 1.9), cpuBox("b", 2, 1)}, box: "b"},
		{name: "gpu best fit: fewest free sessions that still fit", req: hw(2, "nvenc", false),
			boxes: []Candidate{
				gpuBox("a", 4, nvenc("g0", 8, 1)),                    // 7 free
				gpuBox("b", 4, nvenc("g0", 3, 0), nvenc("g1", 8, 6)), // 3 and 2 free
				gpuBox("c", 4, nvenc("g0", 3, 2)),                    // 1 free: does not fit
			}, box: "b", gpu: "g1", reserve: Reserve{Cores: 0.3, Sessions: 2}},
		{name: "gpu sessions reserved by assignments count", req: hw(2, "nvenc", false),
			boxes: []Candidate{
				reserved(gpuBox("a", 4, nvenc("g0", 4, 0)), 0, map[string]int{"g0": 3}), // 1 free
				gpuBox("b", 4, nvenc("g0", 8, 0)),
			}, box: "b", gpu: "g0", reserve: Reserve{Cores: 0.3, Sessions: 2}},
		{name: "unlimited sessions fit last", req: hw(1, "nvenc", false),
			boxes: []Candidate{gpuBox("a", 4, nvenc("g0", -1, 0)), gpuBox("b", 4, nvenc("g0", 5, 0))}, box: "b", gpu: "g0",
			reserve: Reserve{Cores: 0.3, Sessions: 1}},
		{name: "the gpu box also needs the cores beside the gpu", req: hw(1, "nvenc", false),
			boxes: []Candidate{gpuBox("a", 0.2, nvenc("g0", 2, 0)), gpuBox("b", 4, nvenc("g0", 8, 0))}, box: "b", gpu: "g0",
			reserve: Reserve{Cores: 0.3, Sessions: 1}},
		{name: "an encoder the gpu lacks", req: hw(1, "qsv", false),
			boxes: []Candidate{gpuBox("a", 4, nvenc("g0", 8, 0))}, why: "a: no GPU with qsv"},
		{name: "auto takes any gpu", req: hw(1, "auto", true),
			boxes: []Candidate{cpuBox("a", 8, 0), gpuBox("b", 4, GPU{ID: "d128", Encoders: []string{"vaapi"}, Sessions: -1})},
			box:   "b", gpu: "d128", reserve: Reserve{Cores: 0.3, Sessions: 1}},
		{name: "vce takes an amd gpu only", req: hw(1, "vce", false),
			boxes: []Candidate{gpuBox("a", 4, GPU{ID: "i", Vendor: "intel", Encoders: []string{"vaapi"}, Sessions: -1}),
				gpuBox("b", 4, GPU{ID: "r", Vendor: "amd", Encoders: []string{"amf"}, Sessions: -1})},
			box: "b", gpu: "r", reserve: Reserve{Cores: 0.3, Sessions: 1}},
		{name: "no gpu fits: fallback goes to the cpu at the x264 cost", req: hw(2, "nvenc", true),
			boxes: []Candidate{gpuBox("a", 4, nvenc("g0", 1, 0)), cpuBox("b", 3.5, 0)}, box: "a", reserve: Reserve{Cores: 3}},
		{name: "no gpu fits and fallback none: waits", req: hw(2, "nvenc", false),
			boxes: []Candidate{gpuBox("a", 4, nvenc("g0", 3, 2)), cpuBox("b", 8, 0)},
			why:   "no GPU fits: a/g0: 1 sessions free, 2 needed; b: no GPU with nvenc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, why := Place(tc.req, tc.boxes)
			if tc.why != "" {
				if c.Box != "" || !strings.Contains(why, tc.why) {
					t.Fatalf("placed on %+v, why %q; want no box and a reason with %q", c, why, tc.why)
				}
				return
			}
			if c.Box != tc.box || c.GPU != tc.gpu || why != "" {
				t.Fatalf("placed on %q gpu %q (why %q), want %q gpu %q", c.Box, c.GPU, why, tc.box, tc.gpu)
			}
			if math.Abs(c.Reserve.Cores-tc.reserve.Cores) > 1e-9 || c.Reserve.Sessions != tc.reserve.Sessions {
				t.Fatalf("reserve %+v, want %+v", c.Reserve, tc.reserve)
			}
		})
	}
}

// TestCostOf: a job costs, in the fleet, what the CPU cap of one box admits it on
// (cpucap), and one session per rung that asks for hardware.
func TestCostOf(t *testing.T) {
	src := ladder.SourceInfo{HasVideo: true, Width: 1920, Height: 1080, FPS: 30, HasAudio: true, Channels: 2}
	lad := func(enc, fallback string, rungEnc ...string) *ladder.Ladder {
		l := &ladder.Ladder{Name: "t", SegmentDuration: 2 * time.Second, Encoder: enc, Fallback: fallback,
			Video: ladder.Video{Codec: "h264", Preset: "veryfast"}}
		for i, h := range []int{1080, 720, 360} {
			r := ladder.Rendition{Name: []string{"r1080", "r720", "r360"}[i], Height: h, Bitrate: int64(h) * 4000}
			if i < len(rungEnc) {
				r.Encoder = rungEnc[i]
			}
			l.Video.Renditions = append(l.Video.Renditions, r)
		}
		return l
	}
	plan := func(l *ladder.Ladder) ladder.Plan {
		p, err := l.Plan(src)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name     string
		l        *ladder.Ladder
		sessions int
		encoder  string
		fallback bool
	}{
		{name: "x264 ladder", l: lad("x264", "x264")},
		{name: "nvenc ladder, fallback none", l: lad("nvenc", "none"), sessions: 3, encoder: "nvenc"},
		{name: "auto falls back", l: lad("", "none"), sessions: 3, encoder: "auto", fallback: true},
		{name: "one nvenc rung of an x264 ladder", l: lad("x264", "x264", "nvenc"), sessions: 1, encoder: "nvenc", fallback: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := plan(tc.l)
			c := CostOf(tc.l, p)
			if want := cpucap.Estimate(p, "veryfast"); math.Abs(c.Cores-want) > 1e-9 || want <= 0 {
				t.Errorf("cores %v, want cpucap.Estimate %v", c.Cores, want)
			}
			if c.Sessions != tc.sessions || c.Encoder != tc.encoder || c.Fallback != tc.fallback {
				t.Errorf("cost %+v, want %d sessions of %q, fallback %v", c, tc.sessions, tc.encoder, tc.fallback)
			}
			if tc.sessions == 0 {
				if c.HWCores != 0 {
					t.Errorf("hw cores %v of an x264 job", c.HWCores)
				}
				return
			}
			onGPU := func(v ladder.PlannedVideo) bool { return gpu.Wanted(tc.l, v.Name) != "x264" }
			if want := cpucap.Cost(p, "veryfast", onGPU, 0); math.Abs(c.HWCores-want) > 1e-9 || c.HWCores >= c.Cores {
				t.Errorf("hw cores %v, want cpucap.Cost %v below the x264 cost %v", c.HWCores, want, c.Cores)
			}
		})
	}
}
