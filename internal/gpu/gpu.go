// Package gpu owns the video encoder backends and the machine's hardware: it probes
// the GPUs for real (sysfs, nvidia-smi, the ffmpeg build, the VAAPI driver, a trial
// encode per device and encoder, and the number of encoder sessions a device opens at
// once), decides per rung which backend encodes it (x264, nvenc, qsv, vaapi or amf),
// keeps encoder sessions as a budget, turns each backend into its ffmpeg filter chain
// and encoder arguments, and reads ffmpeg's errors to tell when a hardware encoder
// failed so that a job can move the rung to software, or fail, as its ladder says.
// Nothing here falls back silently: every rung placed on software although its ladder
// asked for hardware comes with the reason.
package gpu

import (
	"errors"
	"fmt"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Backend names, as PlannedVideo.Encoder holds them once a plan is admitted. A ladder
// may also say "auto" (the best working backend) or "vce" (AMD: vaapi or amf,
// whichever works); those two are resolved by Admit and never reach BuildArgs.
const (
	BackendX264  = "x264"
	BackendNVENC = "nvenc"
	BackendQSV   = "qsv"
	BackendVAAPI = "vaapi"
	BackendAMF   = "amf"
)

// Encoder is one video encoder backend. It turns a planned rung into the ffmpeg
// filter chain that feeds the encoder and the output options that select and
// configure it: codec, preset, profile, rate control and keyframe placement. The
// caller adds the -map before and the muxer options after.
type Encoder interface {
	// Name is the backend name, e.g. "x264" or "nvenc".
	Name() string
	// Frames is the hardware frame type the encoder reads ("cuda", "qsv",
	// "vaapi"), or "" when it reads frames in system memory.
	Frames() string
	// Scale returns the filter chain from one branch of the job's shared picture
	// to this encoder's input at w x h with square pixels. The branch holds
	// frames in system memory when hw.Type is "", else frames on hw's device.
	Scale(w, h int, hw Hardware) (string, error)
	// VideoArgs returns the encoder options for rung r. preset is the ladder's
	// x264-style preset name ("" lets the encoder choose), mapped to the
	// backend's own scale; gop is the GOP length in frames and segSeconds the
	// segment duration, on whose boundaries every keyframe must fall.
	VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error)
}

// ErrUnavailable is wrapped when a rung names a hardware encoder that the job
// cannot use: the job has no device of the right kind, or the name ("vce") must be
// resolved against the probe first.
var ErrUnavailable = errors.New("hardware encoder not available")

// Resolve returns the encoder backend for an encoder name. "auto" and "" mean
// x264 here: choosing hardware needs the probe, which Admit consults.
func Resolve(name string) (Encoder, error) {
	switch name {
	case "", "auto", BackendX264:
		return X264{}, nil
	case BackendNVENC:
		return NVENC{}, nil
	case BackendQSV:
		return QSV{}, nil
	case BackendVAAPI:
		return VAAPI{}, nil
	case BackendAMF:
		return AMF{}, nil
	case "vce":
		return nil, fmt.Errorf("encoder %q must be resolved against the hardware probe to amf or vaapi first: %w", name, ErrUnavailable)
	default:
		return nil, fmt.Errorf("unknown encoder %q: want auto, x264, nvenc, qsv, vce, vaapi or amf", name)
	}
}

// IsHardware reports whether backend name encodes on a GPU.
func IsHardware(name string) bool {
	switch name {
	case BackendNVENC, BackendQSV, BackendVAAPI, BackendAMF:
		return true
	}
	return false
}
