// Package gpu owns picking the video encoder backend for each rung of a ladder and
// turning a rung into that encoder's ffmpeg arguments. Today it knows software
// encoding only (libx264); the hardware names (nvenc, qsv, vce, vaapi) are reserved
// and refused with a clear message until their backends land.
package gpu

import (
	"errors"
	"fmt"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Encoder is one video encoder backend. It turns a planned rung into the ffmpeg
// output options that select and configure the encoder: codec, preset, profile,
// rate control and keyframe placement. The caller adds the -map before and the
// muxer options after.
type Encoder interface {
	// Name is the backend name as written in a ladder, e.g. "x264".
	Name() string
	// VideoArgs returns the encoder options for rung r. preset is the ladder's
	// x264-style preset name ("" lets the encoder choose); gop is the GOP length in
	// frames and segSeconds the segment duration, on whose boundaries every
	// keyframe must fall.
	VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error)
}

// ErrUnavailable is wrapped by Resolve for encoder names that are known but not
// built yet.
var ErrUnavailable = errors.New("hardware encoders come in a later release; use x264")

// Resolve returns the encoder backend for a ladder encoder name. "auto" and ""
// pick the best backend available, which today is always x264.
func Resolve(name string) (Encoder, error) {
	switch name {
	case "", "auto", "x264":
		return X264{}, nil
	case "nvenc", "qsv", "vce", "vaapi":
		return nil, fmt.Errorf("encoder %q is not available yet: %w", name, ErrUnavailable)
	default:
		return nil, fmt.Errorf("unknown encoder %q: want auto, x264, nvenc, qsv, vce or vaapi", name)
	}
}
