package gpu

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
)

// Capabilities is what a probe found: the ffmpeg build, every GPU with its driver,
// each backend's trial result with ffmpeg's own error line where it failed, the
// encoder sessions each device opens at once, and what "auto" resolves to.
type Capabilities struct {
	ProbedAt  time.Time `json:"probed_at"`
	TookMS    int64     `json:"took_ms"`
	FFmpeg    Build     `json:"ffmpeg"`
	NvidiaSMI string    `json:"nvidia_smi"` // "ok", "not found", or why it failed
	Devices   []Device  `json:"devices"`
	Auto      Choice    `json:"auto"`
	// Summary is one sentence per device and one for auto: what the log shows.
	Summary []string `json:"summary"`
	// Problems are errors of the probe itself (unreadable sysfs, a listing that
	// failed); the probe goes on without what they cost.
	Problems []string `json:"problems,omitempty"`
}

// Build is what the ffmpeg binary was built with, as far as hardware goes.
type Build struct {
	Encoders []string `json:"encoders"` // H.264 encoders listed: libx264 and the hardware ones
	HWAccels []string `json:"hwaccels"` // -hwaccels
	Filters  []string `json:"filters"`  // the hardware filters listed
}

// Choice is what a ladder's "auto" resolves to on this machine.
type Choice struct {
	Encoder string `json:"encoder"`          // a backend name; x264 when no GPU encoder works
	Device  string `json:"device,omitempty"` // Device.ID of the GPU it uses
	// DecodeOn is set when no encoder works but Device decodes and scales for
	// x264 (a datacenter GPU without NVENC).
	DecodeOn string `json:"decode_on,omitempty"`
	Reason   string `json:"reason"`
}

// EncoderResult is one backend tried on one device.
type EncoderResult struct {
	Backend string `json:"backend"` // nvenc, qsv, vaapi, amf
	Encoder string `json:"encoder"` // ffmpeg's name: h264_nvenc...
	Working bool   `json:"working"`
	// Error is ffmpeg's own line when the trial failed (or what the check
	// found: missing keyframes, too few frames), Kind what it means.
	Error string `json:"error,omitempty"`
	Kind  string `json:"kind,omitempty"`
	Trial *Trial `json:"trial,omitempty"`
	// Sessions is how many encoder sessions of this backend the device opened
	// at once (one ffmpeg, one output per session), measured with the others
	// that were open at the time (Device.SessionsInUse) still open.
	Sessions int `json:"sessions,omitempty"`
	// SessionsAtLeast is set when the search stopped at Prober.MaxSessions.
	SessionsAtLeast bool `json:"sessions_at_least,omitempty"`
	// SessionsError is ffmpeg's line that ended the search.
	SessionsError string `json:"sessions_error,omitempty"`
	// CPUPerMpx is the CPU a rung of this backend takes, in cores per megapixel
	// per second of its output: the trial encode's CPU time over the pixels it
	// encoded. It is ffmpeg's share of the work, the encode being on the GPU:
	// making the frames (a job decodes them), uploading them, muxing, and
	// starting up (which makes it err high). The CPU cap costs a job's hardware
	// rungs by it (cpucap.Cost); 0 when the trial did not measure it.
	CPUPerMpx float64 `json:"cpu_per_mpx,omitempty"`
}

// Trial is one trial encode.
type Trial struct {
	OK        bool     `json:"ok"`
	Error     string   `json:"error,omitempty"`
	Kind      string   `json:"kind,omitempty"`
	Frames    int      `json:"frames"`              // frames of the first output
	Keyframes []int    `json:"keyframes,omitempty"` // their frame numbers
	TookMS    int64    `json:"took_ms"`
	CPUMS     int64    `json:"cpu_ms"` // the CPU time ffmpeg used (user and system, from its rusage)
	Args      []string `json:"args"`   // ffmpeg's argv, to run it by hand
}

// summarize sets d's Status and Summary.
func summarize(d *Device) {
	var works, fails []string
	for _, r := range d.Encoders {
		if r.Working {
			s := r.Backend + " works"
			switch {
			case r.SessionsAtLeast:
				s += fmt.Sprintf(", at least %d sessions at once", r.Sessions)
			case r.Sessions > 0:
				s += fmt.Sprintf(", %d sessions at once", r.Sessions)
			default:
				s += ", no session free while probing: " + r.SessionsError
			}
			works = append(works, s)
		} else {
			fails = append(fails, r.Encoder+": "+r.Error)
		}
	}
	var b strings.Builder
	b.WriteString(describe(d))
	b.WriteString(": ")
	if len(works) > 0 {
		d.Status = statusEncoder
		b.WriteString(strings.Join(works, "; "))
		if len(fails) > 0 {
			b.WriteString("; not working: " + strings.Join(fails, "; "))
		}
	} else {
		d.Status = statusNoEncoder
		b.WriteString("GPU present, no encoder")
		if len(fails) > 0 {
			b.WriteString(": " + strings.Join(fails, "; "))
		}
		if d.Vendor == encoder.VendorNVIDIA && noNVENC.MatchString(d.Name) {
			b.WriteString(" (this model has no NVENC)")
		}
	}
	if d.Decode != nil {
		if d.Decode.OK {
			b.WriteString("; decoding and scaling on the GPU work")
		} else {
			b.WriteString("; decoding on the GPU failed: " + d.Decode.Error)
		}
	}
	d.Summary = b.String()
}

// describe names a device for people: "NVIDIA H100 80GB HBM3 (0000:19:00.0,
// renderD128)" or "intel 0x8086:0x46a6 (renderD128, Intel iHD)".
func describe(d *Device) string {
	name := d.Name
	if name == "" {
		name = d.Vendor + " " + d.VendorID + ":" + d.DeviceID
	}
	var parts []string
	for _, s := range []string{d.PCI, d.ID, d.Driver} {
		if s != "" && !slices.Contains(parts, s) {
			parts = append(parts, s)
		}
	}
	return name + " (" + strings.Join(parts, ", ") + ")"
}

// auto picks the best working backend, in the registry's order (nvenc, then
// qsv, vaapi and amf), on the first device where it works; else x264, using a
// GPU that decodes and scales when there is one.
func auto(devs []Device) Choice {
	for _, be := range encoder.Backends() {
		for _, d := range devs {
			if r := d.encoder(be.Name); r != nil && r.Working {
				return Choice{Encoder: r.Backend, Device: d.ID, Reason: describe(&d) + ": " + r.Encoder + " passed its trial encode"}
			}
		}
	}
	if len(devs) == 0 {
		return Choice{Encoder: encoder.X264, Reason: "no GPU found"}
	}
	for _, d := range devs {
		if d.Decode != nil && d.Decode.OK {
			return Choice{Encoder: encoder.X264, DecodeOn: d.ID,
				Reason: "no GPU encoder works; " + describe(&d) + " decodes and scales, x264 encodes"}
		}
	}
	return Choice{Encoder: encoder.X264, Reason: "no GPU encoder works (see devices)"}
}
