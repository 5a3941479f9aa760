package gpu

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/encoder"
)

// Failure kinds: why a hardware encoder, device or decoder did not work, as
// EncoderResult.Kind, Trial.Kind and Failure.Kind say it. They come from
// ffmpeg's own lines (see knownLines) or from the probe's checks.
const (
	kindNotInBuild   = "not-in-build"  // this ffmpeg lacks the encoder or a filter it needs
	kindNoLibrary    = "no-library"    // the driver's user-space library is missing (libcuda, AMF runtime)
	kindNoDevice     = "no-device"     // the device node or display cannot be opened
	kindDriver       = "driver"        // the driver is too old, the wrong one, or failed to initialise
	kindNoEncoder    = "no-encoder"    // the GPU has no such encoder (A100/H100/H200, GT 710, a VAAPI driver without H.264 encode)
	kindSessionLimit = "session-limit" // no encoder session left (consumer NVENC caps)
	kindFrames       = "frames"        // frames did not reach the device (filter negotiation)
	kindDecode       = "decode"        // the hardware decoder could not be set up
	kindRuntime      = "runtime"       // the encoder or device failed mid-stream
	kindKeyframes    = "keyframes"     // the encoder ignored the keyframes it was asked for
	kindNoFrames     = "no-frames"     // ffmpeg succeeded but too few frames came out
	kindTimeout      = "timeout"       // the trial did not finish in time
	kindOther        = "other"         // ffmpeg failed for a reason not recognised here
)

// knownLine is a substring of an ffmpeg error line and what it means.
type knownLine struct {
	text string
	kind string
}

// knownLines are the lines ffmpeg 5.1 prints when hardware cannot be used, most
// specific first. testdata/ffmpeg holds them as printed, with where each came from.
var knownLines = []knownLine{
	{"OpenEncodeSessionEx failed: out of memory (10)", kindSessionLimit},
	{"OpenEncodeSessionEx failed: incompatible client key (21)", kindSessionLimit},
	{"OpenEncodeSessionEx failed: unsupported device (2)", kindNoEncoder},
	{"No capable devices found", kindNoEncoder},
	{"No NVENC capable devices found", kindNoEncoder},
	{"Provided device doesn't support required NVENC features", kindNoEncoder},
	{"No usable encoding entrypoint found", kindNoEncoder},
	{"No usable encoding profile found", kindNoEncoder},
	{"Cannot load libcuda.so", kindNoLibrary},
	{"Could not dynamically load CUDA", kindNoLibrary},
	{"Cannot load libnvidia-encode.so", kindNoLibrary},
	{"libamfrt64.so", kindNoLibrary}, // h264_amf: "DLL libamfrt64.so.1 failed to open"
	{"Driver does not support the required nvenc API version", kindDriver},
	{"The minimum required Nvidia driver for nvenc is", kindDriver},
	{"Failed to initialise VAAPI connection", kindDriver},
	{"Error initializing an internal MFX session", kindDriver},
	{"Error initializing an MFX session", kindDriver},
	{"hwaccel requested for input stream", kindDecode},
	{"hwaccel initialisation returned error", kindDecode},
	{"Device setup failed for decoder", kindDecode},
	{"No device available for decoder", kindDecode},
	{"No VA display found", kindNoDevice},
	{"Cannot open a VA display", kindNoDevice},
	{"Cannot open DRM render node", kindNoDevice},
	{"as DRM device node", kindNoDevice},
	{"Device creation failed", kindNoDevice},
	{"CUDA_ERROR_", kindRuntime},
	{"EncodePicture failed", kindRuntime},
	{"Failed locking bitstream buffer", kindRuntime},
	{"Failed to sync to picture", kindRuntime},
	{"Failed to end picture encode issue", kindRuntime},
	{"Failed to upload encode parameters", kindRuntime},
	{"Impossible to convert between the formats", kindFrames},
	{"Function not implemented", kindFrames},
	{"Failed to inject frame into filter network", kindFrames},
}

// hwPrefix matches the "[h264_nvenc @ 0x55d6b2c591c0]"-style prefix of a line
// logged by a hardware component: a hardware encoder of the registry, the
// device (AVHWDeviceContext), or a filter of a graph that moves or scales
// hardware frames ("Parsed_scale_cuda_3": hwupload, hwdownload and the
// registry's scalers).
var hwPrefix = func() *regexp.Regexp {
	names := []string{"AVHWDeviceContext", "hwupload", "hwdownload"}
	filters := []string{"hwupload", "hwdownload"}
	for _, be := range encoder.Backends() {
		if be.IsHardware() {
			names = append(names, be.FFmpeg)
		}
		filters = append(filters, be.Scalers()...)
	}
	for _, f := range filters {
		names = append(names, "Parsed_"+f+`_\d+`)
	}
	return regexp.MustCompile(`^\[(` + strings.Join(names, "|") + `) @ `)
}()

// reason picks the line of ffmpeg's stderr that says why hardware failed: the
// first line that matches a known failure, else the first line logged by a
// hardware component, else the last line. ok is false when no line is known or
// logged by hardware.
func reason(stderr []string) (line, kind string, ok bool) {
	for _, l := range stderr {
		for _, k := range knownLines {
			if strings.Contains(l, k.text) {
				return strings.TrimSpace(l), k.kind, true
			}
		}
	}
	for _, l := range stderr {
		if hwPrefix.MatchString(l) {
			return strings.TrimSpace(l), kindOther, true
		}
	}
	if len(stderr) > 0 {
		return strings.TrimSpace(stderr[len(stderr)-1]), kindOther, false
	}
	return "", kindOther, false
}

// failedOutput finds the output file ffmpeg could not open an encoder for:
// "Error initializing output stream 2:0 -- Error while opening encoder for output
// stream #2:0 ...". It returns -1 when no line says.
func failedOutput(stderr []string) int {
	for _, l := range stderr {
		for _, marker := range []string{"Error initializing output stream ", "Error while opening encoder for output stream #"} {
			i := strings.Index(l, marker)
			if i < 0 {
				continue
			}
			rest := l[i+len(marker):]
			file, _, ok := strings.Cut(rest, ":")
			if n, err := strconv.Atoi(file); ok && err == nil && n >= 0 {
				return n
			}
		}
	}
	return -1
}

// Failure is what a failed ffmpeg run said about the hardware.
type Failure struct {
	Kind string `json:"kind"` // one of the failure kinds: "session-limit", "driver"...
	Line string `json:"line"` // ffmpeg's own line
	// Rungs are the hardware rungs to move to x264.
	Rungs []string `json:"rungs,omitempty"`
	// NoDecode turns decoding on the GPU off; NoDevice drops the GPU from the
	// job altogether (it failed as a device). Neither needs the ladder's
	// consent: they change how frames travel, not which encoder encodes.
	NoDecode bool `json:"no_decode,omitempty"`
	NoDevice bool `json:"no_device,omitempty"`
}

// Diagnose reads the stderr tail of an ffmpeg run of admission a that failed,
// and tells whether the hardware caused it and what to change. ok is false when
// the run used no hardware or the failure is not the hardware's (a source that
// went away): retry as usual then.
//
// A session limit or an encoder that cannot open on output N moves the rung of
// output N and the later rungs of that backend (they were never tried, and would
// hit the same limit); a device, driver or mid-stream failure moves every
// hardware rung and drops the GPU; a hardware decoder that cannot start turns
// decoding on the GPU off.
func Diagnose(a Admission, stderr []string) (f Failure, ok bool) {
	hwRungs := a.hardwareRungs()
	if a.HW.Type == "" && len(hwRungs) == 0 {
		return Failure{}, false
	}
	line, kind, known := reason(stderr)
	if !known {
		return Failure{}, false
	}
	f = Failure{Kind: kind, Line: line}
	switch kind {
	case kindDecode:
		if a.HW.Decode {
			f.NoDecode = true
			return f, true
		}
		f.NoDevice, f.Rungs = true, hwRungs
	case kindSessionLimit, kindNoEncoder, kindOther:
		n := failedOutput(stderr)
		if n < 0 || n >= len(a.Plan.Video) || !encoder.IsHardware(a.Plan.Video[n].Encoder) {
			if kind == kindOther && n < 0 {
				// A hardware component logged something, but no encoder
				// failed to open: the device failed.
				f.NoDevice, f.Rungs = true, hwRungs
				break
			}
			f.Rungs = hwRungs
			break
		}
		backend := a.Plan.Video[n].Encoder
		for _, v := range a.Plan.Video[n:] {
			if v.Encoder == backend {
				f.Rungs = append(f.Rungs, v.Name)
			}
		}
	default: // no-library, no-device, driver, frames, runtime
		f.NoDevice, f.Rungs = true, hwRungs
	}
	return f, true
}
