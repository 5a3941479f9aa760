// Package encoder owns what transcoderd knows about its video encoder backends
// (x264, nvenc, qsv, vaapi and amf): one registry row per backend (its ffmpeg
// encoder, the hardware frames it reads and how ffmpeg opens, fills and scales
// them, the GPU vendors it runs on), each backend's encoder options, and the
// filter graph that brings one decoded picture to every rung's encoder. It
// builds argv pieces only: internal/ffmpeg assembles the command, and
// internal/gpu finds which backends work on this machine.
package encoder

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Backend names, as PlannedVideo.Encoder holds them once a plan is admitted.
const (
	X264  = "x264"
	NVENC = "nvenc"
	QSV   = "qsv"
	VAAPI = "vaapi"
	AMF   = "amf"
)

// Names a ladder may use besides the backends'. Admission (internal/gpu)
// resolves both against the probe; neither reaches the argv.
const (
	// Auto is the best working backend on this machine.
	Auto = "auto"
	// VCE is AMD's encoder: whichever of the backends that run on AMD GPUs
	// works (see OnVendor).
	VCE = "vce"
)

// GPU vendors, as the probe names them and registry rows list them.
const (
	VendorNVIDIA  = "nvidia"
	VendorIntel   = "intel"
	VendorAMD     = "amd"
	VendorUnknown = "unknown"
)

// Encoder is the part of a backend that differs from one to the next: the
// options that configure its ffmpeg encoder for one rung (preset, profile,
// rate control and keyframe placement), written after the -c:v that the
// registry row adds. preset is the ladder's x264-style preset name ("" lets the
// encoder choose), mapped to the backend's own scale; gop is the GOP length in
// frames and segSeconds the segment duration, on whose boundaries every
// keyframe must fall. A rung it cannot encode is an error naming every problem.
// r.Tune is one of libx264's tunes; TuneNote says how the backend applies it.
type Encoder interface {
	Options(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error)
	TuneNote(tune string) string
}

// ErrUnavailable is wrapped when a rung names a hardware encoder that the job
// cannot use: the job has no device of the right kind, or the name ("vce") must be
// resolved against the probe first.
var ErrUnavailable = errors.New("hardware encoder not available")

// Resolve returns the registry row of an encoder name. Auto and "" mean x264
// here: choosing hardware needs the probe, which admission consults.
func Resolve(name string) (Backend, error) {
	if name == "" || name == Auto {
		name = X264
	}
	for _, b := range registry {
		if b.Name == name {
			return b, nil
		}
	}
	if name == VCE {
		amd := names(OnVendor(VendorAMD))
		slices.Sort(amd)
		return Backend{}, fmt.Errorf("encoder %q must be resolved against the hardware probe to %s first: %w", name, strings.Join(amd, " or "), ErrUnavailable)
	}
	return Backend{}, fmt.Errorf("unknown encoder %q: want %s, %s or %s", name, Auto, strings.Join(names(registry), ", "), VCE)
}

// names returns the names of bs.
func names(bs []Backend) []string {
	n := make([]string, len(bs))
	for i, b := range bs {
		n[i] = b.Name
	}
	return n
}

// IsHardware reports whether backend name encodes on a GPU.
func IsHardware(name string) bool {
	b, err := Resolve(name)
	return err == nil && b.IsHardware()
}

// OnVendor returns the hardware backends that run on GPUs of vendor, in the
// order Auto prefers them: those the probe tries on such a GPU.
func OnVendor(vendor string) []Backend {
	var bs []Backend
	for _, b := range registry {
		if slices.Contains(b.Vendors, vendor) {
			bs = append(bs, b)
		}
	}
	return bs
}

// Bits writes a rate or size for ffmpeg's options: "2800k" when it is a whole
// number of kilobits, else plain bits.
func Bits(b int64) string {
	if b%1000 == 0 {
		return strconv.FormatInt(b/1000, 10) + "k"
	}
	return strconv.FormatInt(b, 10)
}
