package encoder

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// h264 is the Encoder of the H.264 backends. They share how a rung becomes
// options and differ in the rest, which each backend's file sets: how presets
// and profiles are named, how rate control is chosen and what pins keyframes.
// Every backend pins them the same way, so every rung of a ladder cuts its
// segments at the same instants: a fixed GOP (-g and -keyint_min), no
// keyframes of its own at scene cuts, and a keyframe forced on every segment
// boundary by time, written as an IDR frame. Whether a device really honours
// that is checked by the probe's trial encode, since some hardware ignores
// forced keyframes.
type h264 struct {
	// tunes are the options right after -c:v for each ladder tune (libx264's
	// names) the backend honours; tunes[""] holds them for no tune and for a
	// tune it lacks, which TuneNote says it ignores.
	tunes         map[string][]string
	presetOption  string            // the option a preset maps to: -preset, -quality
	presets       map[string]string // the ladder's x264 preset names to the backend's values
	unknownPreset string            // the error for a preset it lacks, with %q for the preset
	profiles      map[string]string // H.264 profiles to the backend's names
	// rateControl is the option that picks CBR (cbr) when maxrate equals
	// the bitrate, else VBR capped at maxrate (vbr); "" lets the encoder
	// decide from maxrate.
	rateControl, cbr, vbr string
	// keyframes returns the options after the GOP that keep the encoder from
	// placing keyframes of its own and set its B-frames: none unless reorder.
	keyframes func(reorder bool) []string
}

// zeroLatency is the tune that asks for no frame reordering (no B-frames) and
// no look-ahead: each frame leaves the encoder as soon as it is encoded.
const zeroLatency = "zerolatency"

// Options implements Encoder.
func (e h264) Options(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	rc, err := e.check(r, preset, gop, segSeconds)
	if err != nil {
		return nil, err
	}
	tune, honoured := e.tunes[r.Tune]
	if !honoured {
		tune = e.tunes[""]
	}
	args := append([]string(nil), tune...)
	if preset != "" {
		args = append(args, e.presetOption, e.presets[preset])
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", e.profiles[r.Profile])
	}
	if e.rateControl != "" {
		mode := e.vbr
		if rc.maxRate == r.Bitrate {
			mode = e.cbr
		}
		args = append(args, e.rateControl, mode)
	}
	g := strconv.Itoa(gop)
	args = append(args, "-b:v", Bits(rc.bitrate), "-maxrate", Bits(rc.maxRate), "-bufsize", Bits(rc.bufSize), "-g", g, "-keyint_min", g)
	// Baseline has no B-frames, nor does a zero-latency encoder.
	reorder := r.Profile != "baseline" && !(honoured && r.Tune == zeroLatency)
	args = append(args, e.keyframes(reorder)...)
	return append(args, "-force_key_frames", "expr:gte(t,n_forced*"+strconv.FormatFloat(segSeconds, 'f', -1, 64)+")"), nil
}

// rate is a rung's resolved rate control.
type rate struct {
	bitrate, maxRate, bufSize int64
}

// check validates rung r for e, reporting every problem at once, and resolves
// its rate control: maxrate defaults to the bitrate, bufsize to twice maxrate.
func (e h264) check(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) (rate, error) {
	var errs []error
	if _, ok := e.presets[preset]; preset != "" && !ok {
		errs = append(errs, fmt.Errorf("rung %q: "+e.unknownPreset, r.Name, preset))
	}
	if _, ok := x264Tunes[r.Tune]; r.Tune != "" && !ok {
		errs = append(errs, fmt.Errorf("rung %q: unknown tune %q: want one of libx264's", r.Name, r.Tune))
	}
	if _, ok := e.profiles[r.Profile]; r.Profile != "" && !ok {
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
		return rate{}, err
	}
	rc := rate{bitrate: r.Bitrate, maxRate: r.MaxRate, bufSize: r.BufSize}
	if rc.maxRate == 0 {
		rc.maxRate = r.Bitrate
	}
	if rc.bufSize == 0 {
		rc.bufSize = 2 * rc.maxRate
	}
	return rc, nil
}

// h264Profiles are the H.264 profiles a ladder may ask for, under their own
// names.
var h264Profiles = identity("baseline", "main", "high")

// constrainedBaseline names the profiles for h264_vaapi and h264_amf, which
// encode constrained baseline only.
var constrainedBaseline = map[string]string{"baseline": "constrained_baseline", "main": "main", "high": "high"}

// bFrames sets the B-frame count: two where frames may be reordered, else none.
func bFrames(reorder bool) []string {
	if reorder {
		return []string{"-bf", "2"}
	}
	return []string{"-bf", "0"}
}

// TuneNote says how the backend applies a ladder's tune, for the job's encoder
// notes: mapped to its own options, or ignored when it has none. It is "" for
// no tune and for x264, whose tunes they are.
func (e h264) TuneNote(tune string) string {
	opts, ok := e.tunes[tune]
	switch {
	case tune == "" || slices.Equal(opts, []string{"-tune", tune}):
		return ""
	case !ok:
		return "tune " + tune + " applies to x264 only: ignored"
	}
	return "tune " + tune + " as " + strings.Join(opts, " ") + " and no B-frames"
}

// identity maps each name to itself.
func identity(names ...string) map[string]string {
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[n] = n
	}
	return m
}
