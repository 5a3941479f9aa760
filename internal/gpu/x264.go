package gpu

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// X264 is the software H.264 encoder, ffmpeg's libx264.
type X264 struct{}

// Name implements Encoder.
func (X264) Name() string { return BackendX264 }

// Frames implements Encoder: libx264 reads system memory.
func (X264) Frames() string { return "" }

// Scale implements Encoder. From software frames it is the chain the software
// path always had; from hardware frames the GPU scales and x264 gets the small
// picture downloaded.
func (X264) Scale(w, h int, hw Hardware) (string, error) {
	return softwareScale(w, h, hw, "yuv420p"), nil
}

var x264Presets = map[string]bool{
	"ultrafast": true, "superfast": true, "veryfast": true, "faster": true, "fast": true,
	"medium": true, "slow": true, "slower": true, "veryslow": true, "placebo": true,
}

var x264Profiles = map[string]bool{"baseline": true, "main": true, "high": true}

// VideoArgs implements Encoder. The GOP is closed and fixed: -g and -keyint_min
// pin its length, -sc_threshold 0 stops scene cuts from adding keyframes, and
// -force_key_frames puts a keyframe on every segment boundary by time, so every
// rendition cuts its segments at the same instants.
func (X264) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	var errs []error
	if preset != "" && !x264Presets[preset] {
		errs = append(errs, fmt.Errorf("rung %q: unknown x264 preset %q", r.Name, preset))
	}
	if r.Profile != "" && !x264Profiles[r.Profile] {
		errs = append(errs, fmt.Errorf("rung %q: unknown H.264 profile %q: want baseline, main or high", r.Name, r.Profile))
	}
	if r.Bitrate <= 0 {
		errs = append(errs, fmt.Errorf("rung %q: bitrate must be greater than zero", r.Name))
	}
	if r.MaxRate < 0 || r.BufSize < 0 {
		errs = append(errs, fmt.Errorf("rung %q: maxrate and bufsize must not be negative", r.Name))
	}
	if gop <= 0 {
		errs = append(errs, fmt.Errorf("rung %q: gop must be greater than zero", r.Name))
	}
	if !(segSeconds > 0) {
		errs = append(errs, fmt.Errorf("rung %q: segment duration must be greater than zero", r.Name))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	maxRate := r.MaxRate
	if maxRate == 0 {
		maxRate = r.Bitrate
	}
	bufSize := r.BufSize
	if bufSize == 0 {
		bufSize = 2 * maxRate
	}
	g := strconv.Itoa(gop)
	args := []string{"-c:v", "libx264"}
	if preset != "" {
		args = append(args, "-preset", preset)
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", r.Profile)
	}
	return append(args,
		"-b:v", bits(r.Bitrate),
		"-maxrate", bits(maxRate),
		"-bufsize", bits(bufSize),
		"-g", g,
		"-keyint_min", g,
		"-sc_threshold", "0",
		"-flags", "+cgop",
		"-force_key_frames", "expr:gte(t,n_forced*"+strconv.FormatFloat(segSeconds, 'f', -1, 64)+")",
	), nil
}

// bits writes a rate or size for ffmpeg: "2800k" when it is a whole number of
// kilobits, else plain bits. (internal/ffmpeg has the same rule for audio.)
func bits(b int64) string {
	if b%1000 == 0 {
		return strconv.FormatInt(b/1000, 10) + "k"
	}
	return strconv.FormatInt(b, 10)
}
