package cluster

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Cost is what a job needs of a box, in the single box's own terms: cores under the
// CPU cap (cpucap.Cost, the estimate a box admits a live job on) and one encoder
// session per hardware rung (as gpu.Service.Admit holds them).
type Cost struct {
	// Cores is the job with every rung on x264 (cpucap.Estimate).
	Cores float64 `json:"cores"`
	// HWCores is the job with its hardware rungs on a GPU, each at its CPU share
	// (cpucap.Cost with cpucap.HardwareShare); 0 when no rung asks for hardware.
	HWCores float64 `json:"hw_cores,omitempty"`
	// Sessions is the number of rungs that ask for hardware: a GPU must have that
	// many free encoder sessions.
	Sessions int `json:"sessions,omitempty"`
	// Encoder is what those rungs ask for (auto, nvenc, qsv, vaapi, vce, amf).
	Encoder string `json:"encoder,omitempty"`
	// Fallback says the job may run on x264 when no GPU fits: encoder auto, or a
	// ladder with fallback x264 (the default), as on one box.
	Fallback bool `json:"fallback,omitempty"`
}

// CostOf is the cost of plan p of ladder l: the plan of the probed source, or of a
// nominal one before the probe.
func CostOf(l *ladder.Ladder, p ladder.Plan) Cost {
	c := Cost{Cores: cpucap.Estimate(p, l.Video.Preset)}
	wants := func(v ladder.PlannedVideo) bool { return gpu.Wanted(l, v.Name) != encoder.X264 }
	for _, v := range p.Video {
		if w := gpu.Wanted(l, v.Name); w != encoder.X264 {
			c.Sessions++
			if c.Encoder == "" || c.Encoder == encoder.Auto {
				c.Encoder = w
			}
		}
	}
	if c.Sessions > 0 {
		c.HWCores = cpucap.Cost(p, l.Video.Preset, wants, 0)
		c.Fallback = c.Encoder == encoder.Auto || l.Fallback != "none"
	}
	return c
}

// Candidate is one box as the scheduler sees it when it places a job.
type Candidate struct {
	Node     Node
	Draining bool // its record, or a drain mark, says so
	Stale    bool // its record has not changed for a TTL by the scheduler's own clock
	Reserved Usage
}

// Usage is what the assignments to a box reserve.
type Usage struct {
	Cores    float64
	Sessions map[string]int // by GPU id
}

func (u *Usage) add(r Reserve, gpu string) {
	u.Cores += r.Cores
	if r.Sessions > 0 {
		if u.Sessions == nil {
			u.Sessions = map[string]int{}
		}
		u.Sessions[gpu] += r.Sessions
	}
}

// Request is one job to place.
type Request struct {
	Cost Cost
	// Live jobs must keep up with real time: they need their cores free, as on one box.
	// File jobs are not admitted under the cap there and reserve no cores here.
	Live bool
	// Prefer wins ties (the box that last ran the job); Avoid is never chosen (the box
	// it leaves).
	Prefer, Avoid string
}

// Choice is where a job goes.
type Choice struct {
	Box     string
	GPU     string
	Reserve Reserve
}

// eps absorbs float error in core sums.
const eps = 1e-9

// Place chooses a box for r among boxes: hardware jobs best-fit on the GPU with the
// fewest free encoder sessions that still fit (which packs sessions and keeps whole
// GPUs free), the others, or hardware jobs that may fall back, on the box with the
// most free cores (which spreads). Draining, stale and avoided boxes are left out.
// Ties go to Prefer, then to the lowest box id. When nothing fits, why says so, box
// by box, and Choice is zero.
func Place(r Request, boxes []Candidate) (c Choice, why string) {
	boxes = slices.Clone(boxes)
	sort.Slice(boxes, func(i, j int) bool { return boxes[i].Node.Box < boxes[j].Node.Box })
	var open []Candidate
	var reasons []string
	for _, b := range boxes {
		switch {
		case b.Node.Box == r.Avoid:
			reasons = append(reasons, b.Node.Box+": the box it leaves")
		case b.Draining:
			reasons = append(reasons, b.Node.Box+": draining")
		case b.Stale:
			reasons = append(reasons, b.Node.Box+": no heartbeat")
		default:
			open = append(open, b)
		}
	}
	if r.Cost.Sessions > 0 {
		c, gpuWhy := placeGPU(r, open)
		if c.Box != "" {
			return c, ""
		}
		if !r.Cost.Fallback {
			return Choice{}, "no GPU fits: " + strings.Join(append(reasons, gpuWhy...), "; ")
		}
		reasons = append(reasons, gpuWhy...)
	}
	c, cpuWhy := placeCPU(r, open)
	if c.Box != "" {
		return c, ""
	}
	if len(boxes) == 0 {
		return Choice{}, "no box in the fleet"
	}
	return Choice{}, "no box fits: " + strings.Join(append(reasons, cpuWhy...), "; ")
}

// freeCores is what a box's CPU cap has left: its limit less what its assignments
// reserve or what it measures, whichever is more.
func freeCores(b Candidate) float64 {
	return b.Node.CPULimit - math.Max(b.Reserved.Cores, b.Node.CPUUsed)
}

// freeSessions is what GPU g of box b has left; -1 sessions is not limited.
func freeSessions(b Candidate, g GPU) int {
	if g.Sessions < 0 {
		return math.MaxInt32
	}
	return g.Sessions - max(b.Reserved.Sessions[g.ID], g.Used)
}

func placeCPU(r Request, open []Candidate) (Choice, []string) {
	need := 0.0
	if r.Live {
		need = r.Cost.Cores
	}
	var best Choice
	bestFree := math.Inf(-1)
	var why []string
	for _, b := range open {
		free := freeCores(b)
		if free+eps < need {
			why = append(why, fmt.Sprintf("%s: %.2f cores free, %.2f needed", b.Node.Box, free, need))
			continue
		}
		if free > bestFree+eps || (math.Abs(free-bestFree) <= eps && b.Node.Box == r.Prefer) {
			best, bestFree = Choice{Box: b.Node.Box, Reserve: Reserve{Cores: need}}, free
		}
	}
	return best, why
}

func placeGPU(r Request, open []Candidate) (Choice, []string) {
	need := 0.0
	if r.Live {
		need = r.Cost.HWCores
	}
	var best Choice
	bestFree := math.MaxInt
	var why []string
	for _, b := range open {
		if free := freeCores(b); free+eps < need {
			why = append(why, fmt.Sprintf("%s: %.2f cores free, %.2f needed beside the GPU", b.Node.Box, free, need))
			continue
		}
		fits := false
		for _, g := range b.Node.GPUs {
			if !encodes(g, r.Cost.Encoder) {
				continue
			}
			free := freeSessions(b, g)
			if free < r.Cost.Sessions {
				why = append(why, fmt.Sprintf("%s/%s: %d sessions free, %d needed", b.Node.Box, g.ID, free, r.Cost.Sessions))
				continue
			}
			fits = true
			if free < bestFree || (free == bestFree && b.Node.Box == r.Prefer && best.Box != r.Prefer) {
				best, bestFree = Choice{Box: b.Node.Box, GPU: g.ID, Reserve: Reserve{Cores: need, Sessions: r.Cost.Sessions}}, free
			}
		}
		if !fits && !slices.ContainsFunc(b.Node.GPUs, func(g GPU) bool { return encodes(g, r.Cost.Encoder) }) {
			why = append(why, fmt.Sprintf("%s: no GPU with %s", b.Node.Box, r.Cost.Encoder))
		}
	}
	return best, why
}

// encodes reports whether GPU g has a working encoder for want: auto takes any, vce
// any on an AMD GPU.
func encodes(g GPU, want string) bool {
	switch want {
	case encoder.Auto:
		return len(g.Encoders) > 0
	case encoder.VCE:
		return g.Vendor == encoder.VendorAMD && len(g.Encoders) > 0
	}
	return slices.Contains(g.Encoders, want)
}
