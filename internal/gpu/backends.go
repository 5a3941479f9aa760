package gpu

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// The hardware backends. Each maps the ladder's x264 preset names and H.264
// profiles to its encoder's own, sets rate control from bitrate, maxrate and
// bufsize, and pins keyframes the way the x264 rungs do, so every rung of a ladder
// cuts its segments at the same instants: a fixed GOP (-g), no scene-cut
// keyframes, and a keyframe forced on every segment boundary that the encoder
// writes as an IDR frame. Whether a device really honours that is checked by the
// probe's trial encode, since some hardware ignores forced keyframes.

// NVENC is NVIDIA's H.264 encoder, ffmpeg's h264_nvenc, fed CUDA frames scaled
// with scale_cuda (or scale_npp).
type NVENC struct{}

// Name implements Encoder.
func (NVENC) Name() string { return BackendNVENC }

// Frames implements Encoder.
func (NVENC) Frames() string { return FramesCUDA }

// Scale implements Encoder.
func (NVENC) Scale(w, h int, hw Hardware) (string, error) {
	return hardwareScale(BackendNVENC, FramesCUDA, w, h, hw)
}

// nvencPresets maps x264 presets to NVENC's p1 (fastest) .. p7 (slowest); medium
// is p4 in both, ffmpeg's default.
var nvencPresets = map[string]string{
	"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
	"medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}

var h264Profiles = map[string]string{"baseline": "baseline", "main": "main", "high": "high"}

// VideoArgs implements Encoder. Rate control is CBR when maxrate equals the
// bitrate, else VBR capped at maxrate. -forced-idr makes each forced keyframe an
// IDR frame (ffmpeg flags only IDR frames from NVENC as keyframes, and the HLS
// muxer cuts only there); -no-scenecut keeps look-ahead from adding I-frames.
// Baseline has no B-frames; main and high use two.
func (NVENC) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	rc, err := checkRung(BackendNVENC, r, preset, gop, segSeconds, nvencPresets, h264Profiles)
	if err != nil {
		return nil, err
	}
	args := []string{"-c:v", "h264_nvenc"}
	if preset != "" {
		args = append(args, "-preset", nvencPresets[preset])
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", r.Profile)
	}
	mode := "vbr"
	if rc.maxRate == r.Bitrate {
		mode = "cbr"
	}
	args = append(args, "-rc", mode)
	args = append(args, rc.args()...)
	args = append(args, gopArgs(gop)...)
	return append(args,
		"-bf", bFrames(r.Profile),
		"-forced-idr", "1",
		"-no-scenecut", "1",
		"-force_key_frames", forceKeyFrames(segSeconds),
	), nil
}

// QSV is Intel Quick Sync, ffmpeg's h264_qsv, fed QSV frames scaled with vpp_qsv.
type QSV struct{}

// Name implements Encoder.
func (QSV) Name() string { return BackendQSV }

// Frames implements Encoder.
func (QSV) Frames() string { return FramesQSV }

// Scale implements Encoder.
func (QSV) Scale(w, h int, hw Hardware) (string, error) {
	return hardwareScale(BackendQSV, FramesQSV, w, h, hw)
}

// qsvPresets maps x264 presets to h264_qsv's, which run from veryfast to veryslow.
var qsvPresets = map[string]string{
	"ultrafast": "veryfast", "superfast": "veryfast", "veryfast": "veryfast", "faster": "faster", "fast": "fast",
	"medium": "medium", "slow": "slow", "slower": "slower", "veryslow": "veryslow", "placebo": "veryslow",
}

// VideoArgs implements Encoder. h264_qsv chooses CBR when maxrate equals the
// bitrate and VBR otherwise. -forced_idr makes forced keyframes IDR frames and
// -adaptive_i 0 stops it placing I-frames of its own at scene cuts.
func (QSV) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	rc, err := checkRung(BackendQSV, r, preset, gop, segSeconds, qsvPresets, h264Profiles)
	if err != nil {
		return nil, err
	}
	args := []string{"-c:v", "h264_qsv"}
	if preset != "" {
		args = append(args, "-preset", qsvPresets[preset])
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", r.Profile)
	}
	args = append(args, rc.args()...)
	args = append(args, gopArgs(gop)...)
	return append(args,
		"-bf", bFrames(r.Profile),
		"-forced_idr", "1",
		"-adaptive_i", "0",
		"-force_key_frames", forceKeyFrames(segSeconds),
	), nil
}

// VAAPI is the Video Acceleration API encoder, ffmpeg's h264_vaapi, on Intel
// (iHD, i965) or AMD (Mesa) drivers, fed VAAPI frames scaled with scale_vaapi.
type VAAPI struct{}

// Name implements Encoder.
func (VAAPI) Name() string { return BackendVAAPI }

// Frames implements Encoder.
func (VAAPI) Frames() string { return FramesVAAPI }

// Scale implements Encoder.
func (VAAPI) Scale(w, h int, hw Hardware) (string, error) {
	return hardwareScale(BackendVAAPI, FramesVAAPI, w, h, hw)
}

// vaapiQuality maps x264 presets to h264_vaapi's -quality, the driver's speed
// level: 1 is its best, 7 its fastest on Intel; a driver with a shorter range
// clamps it and says so.
var vaapiQuality = map[string]string{
	"ultrafast": "7", "superfast": "7", "veryfast": "7", "faster": "6", "fast": "5",
	"medium": "4", "slow": "3", "slower": "2", "veryslow": "1", "placebo": "1",
}

// vaapiProfiles maps profiles to h264_vaapi's names: VAAPI encodes constrained
// baseline only.
var vaapiProfiles = map[string]string{"baseline": "constrained_baseline", "main": "main", "high": "high"}

// VideoArgs implements Encoder. h264_vaapi writes each forced keyframe as an IDR
// frame and places no keyframes of its own beyond the GOP.
func (VAAPI) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	rc, err := checkRung(BackendVAAPI, r, preset, gop, segSeconds, vaapiQuality, vaapiProfiles)
	if err != nil {
		return nil, err
	}
	args := []string{"-c:v", "h264_vaapi"}
	if preset != "" {
		args = append(args, "-quality", vaapiQuality[preset])
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", vaapiProfiles[r.Profile])
	}
	mode := "VBR"
	if rc.maxRate == r.Bitrate {
		mode = "CBR"
	}
	args = append(args, "-rc_mode", mode)
	args = append(args, rc.args()...)
	args = append(args, gopArgs(gop)...)
	return append(args,
		"-bf", bFrames(r.Profile),
		"-force_key_frames", forceKeyFrames(segSeconds),
	), nil
}

// AMF is AMD's Advanced Media Framework encoder, ffmpeg's h264_amf, where the
// ffmpeg build has it (Debian's does not) and the AMF runtime is installed. On
// Linux it reads frames in system memory.
type AMF struct{}

// Name implements Encoder.
func (AMF) Name() string { return BackendAMF }

// Frames implements Encoder.
func (AMF) Frames() string { return "" }

// Scale implements Encoder.
func (AMF) Scale(w, h int, hw Hardware) (string, error) {
	return softwareScale(w, h, hw, "nv12"), nil
}

// amfQuality maps x264 presets to h264_amf's -quality.
var amfQuality = map[string]string{
	"ultrafast": "speed", "superfast": "speed", "veryfast": "speed", "faster": "balanced", "fast": "balanced",
	"medium": "balanced", "slow": "quality", "slower": "quality", "veryslow": "quality", "placebo": "quality",
}

var amfProfiles = map[string]string{"baseline": "constrained_baseline", "main": "main", "high": "high"}

// VideoArgs implements Encoder. Rate control is CBR or peak-constrained VBR; no
// B-frames, which many AMD encoders lack for H.264.
func (AMF) VideoArgs(r ladder.PlannedVideo, preset string, gop int, segSeconds float64) ([]string, error) {
	rc, err := checkRung(BackendAMF, r, preset, gop, segSeconds, amfQuality, amfProfiles)
	if err != nil {
		return nil, err
	}
	args := []string{"-c:v", "h264_amf", "-usage", "transcoding"}
	if preset != "" {
		args = append(args, "-quality", amfQuality[preset])
	}
	if r.Profile != "" {
		args = append(args, "-profile:v", amfProfiles[r.Profile])
	}
	mode := "vbr_peak"
	if rc.maxRate == r.Bitrate {
		mode = "cbr"
	}
	args = append(args, "-rc", mode)
	args = append(args, rc.args()...)
	args = append(args, gopArgs(gop)...)
	return append(args,
		"-bf", "0",
		"-force_key_frames", forceKeyFrames(segSeconds),
	), nil
}

// rate is a rung's resolved rate control.
type rate struct {
	bitrate, maxRate, bufSize int64
}

func (rc rate) args() []string {
	return []string{"-b:v", bits(rc.bitrate), "-maxrate", bits(rc.maxRate), "-bufsize", bits(rc.bufSize)}
}

// checkRung validates a rung for a hardware backend, reporting every problem at
// once, and resolves its rate control as x264 does.
func checkRung(backend string, r ladder.PlannedVideo, preset string, gop int, segSeconds float64, presets, profiles map[string]string) (rate, error) {
	var errs []error
	if _, ok := presets[preset]; preset != "" && !ok {
		errs = append(errs, fmt.Errorf("rung %q: unknown preset %q for %s", r.Name, preset, backend))
	}
	if _, ok := profiles[r.Profile]; r.Profile != "" && !ok {
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

func gopArgs(gop int) []string {
	g := strconv.Itoa(gop)
	return []string{"-g", g, "-keyint_min", g}
}

func forceKeyFrames(segSeconds float64) string {
	return "expr:gte(t,n_forced*" + strconv.FormatFloat(segSeconds, 'f', -1, 64) + ")"
}

// bFrames is the B-frame count for a profile: baseline has none.
func bFrames(profile string) string {
	if profile == "baseline" {
		return "0"
	}
	return "2"
}
