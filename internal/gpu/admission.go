package gpu

import (
	"strings"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Admission is how one job's plan runs on this machine.
type Admission struct {
	// Plan is the plan with every PlannedVideo.Encoder resolved to the backend
	// that encodes it: x264, nvenc, qsv, vaapi or amf.
	Plan ladder.Plan `json:"plan"`
	// HW is the GPU the job uses; pass it as ffmpeg.Job.HW. Zero for software.
	HW encoder.Hardware `json:"hardware"`
	// Device is the Device.ID of that GPU.
	Device string `json:"device,omitempty"`
	// Moved lists the rungs on x264 although their ladder asked for hardware,
	// with the reason: a job never falls back silently.
	Moved []Move `json:"moved,omitempty"`
	// Notes says how auto resolved and whether the GPU decodes.
	Notes []string `json:"notes,omitempty"`
	// CPUPerMpx is what a hardware rung of the job takes on the CPU, in cores
	// per megapixel per second: the trial's figure for its backend on its
	// device (EncoderResult.CPUPerMpx), the highest where rungs use several; 0
	// when the probe measured none, and the CPU cap's default holds.
	CPUPerMpx float64 `json:"cpu_per_mpx,omitempty"`
}

// Move is one rung put on software instead of the hardware its ladder asked for.
type Move struct {
	Rung   string `json:"rung"`
	Wanted string `json:"wanted"`         // what the ladder asked: auto, nvenc, vce...
	From   string `json:"from,omitempty"` // the backend it ran on, for a fallback after a failure
	To     string `json:"to"`             // x264
	Reason string `json:"reason"`         // with ffmpeg's own line where there is one
}

// Env is the environment ffmpeg needs on top of the daemon's for this admission.
func (a Admission) Env() []string { return a.HW.Env() }

// hardwareRungs returns the names of the rungs a hardware encoder encodes.
func (a Admission) hardwareRungs() []string {
	var names []string
	for _, v := range a.Plan.Video {
		if encoder.IsHardware(v.Encoder) {
			names = append(names, v.Name)
		}
	}
	return names
}

// Wanted returns the encoder the ladder asks for rung name: the rung's own, else
// the ladder's, else auto. (The fleet's scheduler costs a job with it too.)
func Wanted(l *ladder.Ladder, name string) string {
	for _, r := range l.Video.Renditions {
		if r.Name == name && r.Encoder != "" {
			return r.Encoder
		}
	}
	if l.Encoder != "" {
		return l.Encoder
	}
	return encoder.Auto
}

// String sums an admission up for a log line: "720p=nvenc 360p=x264 on renderD128 (cuda:0, decode)".
func (a Admission) String() string {
	parts := make([]string, 0, len(a.Plan.Video)+1)
	for _, v := range a.Plan.Video {
		parts = append(parts, v.Name+"="+v.Encoder)
	}
	s := strings.Join(parts, " ")
	if a.HW.Type != "" {
		s += " on " + a.Device + " (" + a.HW.Type + ":" + a.HW.Device
		if a.HW.Decode {
			s += ", decode"
		}
		s += ")"
	}
	return s
}

// shed takes off a what f says no longer works: decoding on the GPU, or the
// GPU itself; and the GPU when no rung needs its frames any more.
func (a *Admission) shed(f Failure) {
	if f.NoDecode || f.NoDevice {
		a.HW.Decode = false
		a.Notes = append(a.Notes, "decoding on the GPU turned off: "+f.Line)
	}
	if f.NoDevice {
		a.HW, a.Device = encoder.Hardware{}, ""
		a.Notes = append(a.Notes, "GPU dropped from the job: "+f.Line)
	}
	if a.HW.Type == "" {
		return
	}
	// Frames stay on the GPU only for rungs that read them there, or for x264
	// rungs when the GPU decodes.
	need := a.HW.Decode
	for _, v := range a.Plan.Video {
		if encoder.IsHardware(v.Encoder) && framesOf(v.Encoder) == a.HW.Type {
			need = true
		}
	}
	if !need {
		a.HW, a.Device = encoder.Hardware{}, ""
	}
}
