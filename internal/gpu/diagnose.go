package gpu

import (
	"regexp"
	"strconv"
	"strings"
)

// Failure kinds: why a hardware encoder, device or decoder did not work. They come
// from ffmpeg's own lines (see knownLines) or from the probe's checks.
const (
	KindNotInBuild   = "not-in-build"  // this ffmpeg lacks the encoder or a filter it needs
	KindNoLibrary    = "no-library"    // the driver's user-space library is missing (libcuda, AMF runtime)
	KindNoDevice     = "no-device"     // the device node or display cannot be opened
	KindDriver       = "driver"        // the driver is too old, the wrong one, or failed to initialise
	KindNoEncoder    = "no-encoder"    // the GPU has no such encoder (A100/H100/H200, GT 710, a VAAPI driver without H.264 encode)
	KindSessionLimit = "session-limit" // no encoder session left (consumer NVENC caps)
	KindFrames       = "frames"        // frames did not reach the device (filter negotiation)
	KindDecode       = "decode"        // the hardware decoder could not be set up
	KindRuntime      = "runtime"       // the encoder or device failed mid-stream
	KindKeyframes    = "keyframes"     // the encoder ignored the keyframes it was asked for
	KindNoFrames     = "no-frames"     // ffmpeg succeeded but too few frames came out
	KindTimeout      = "timeout"       // the trial did not finish in time
	KindOther        = "other"         // ffmpeg failed for a reason not recognised here
)

// knownLine is a substring of an ffmpeg error line and what it means.
type knownLine struct {
	text string
	kind string
}

// knownLines are the lines ffmpeg 5.1 prints when hardware cannot be used, most
// specific first. testdata/ffmpeg holds them as printed, with where each came from.
var knownLines = []knownLine{
	{"OpenEncodeSessionEx failed: out of memory (10)", KindSessionLimit},
	{"OpenEncodeSessionEx failed: incompatible client key (21)", KindSessionLimit},
	{"OpenEncodeSessionEx failed: unsupported device (2)", KindNoEncoder},
	{"No capable devices found", KindNoEncoder},
	{"No NVENC capable devices found", KindNoEncoder},
	{"Provided device doesn't support required NVENC features", KindNoEncoder},
	{"No usable encoding entrypoint found", KindNoEncoder},
	{"No usable encoding profile found", KindNoEncoder},
	{"Cannot load libcuda.so", KindNoLibrary},
	{"Could not dynamically load CUDA", KindNoLibrary},
	{"Cannot load libnvidia-encode.so", KindNoLibrary},
	{"libamfrt64.so", KindNoLibrary}, // h264_amf: "DLL libamfrt64.so.1 failed to open"
	{"Driver does not support the required nvenc API version", KindDriver},
	{"The minimum required Nvidia driver for nvenc is", KindDriver},
	{"Failed to initialise VAAPI connection", KindDriver},
	{"Error initializing an internal MFX session", KindDriver},
	{"Error initializing an MFX session", KindDriver},
	{"hwaccel requested for input stream", KindDecode},
	{"hwaccel initialisation returned error", KindDecode},
	{"Device setup failed for decoder", KindDecode},
	{"No device available for decoder", KindDecode},
	{"No VA display found", KindNoDevice},
	{"Cannot open a VA display", KindNoDevice},
	{"Cannot open DRM render node", KindNoDevice},
	{"as DRM device node", KindNoDevice},
	{"Device creation failed", KindNoDevice},
	{"CUDA_ERROR_", KindRuntime},
	{"EncodePicture failed", KindRuntime},
	{"Failed locking bitstream buffer", KindRuntime},
	{"Failed to sync to picture", KindRuntime},
	{"Failed to end picture encode issue", KindRuntime},
	{"Failed to upload encode parameters", KindRuntime},
	{"Impossible to convert between the formats", KindFrames},
	{"Function not implemented", KindFrames},
	{"Failed to inject frame into filter network", KindFrames},
}

// hwPrefix matches the "[h264_nvenc @ 0x55d6b2c591c0]"-style prefix of a line
// logged by a hardware encoder, device or hardware filter.
var hwPrefix = regexp.MustCompile(`^\[(h264_(nvenc|qsv|vaapi|amf)|hevc_(nvenc|qsv|vaapi|amf)|AVHWDeviceContext|Parsed_(scale_cuda|scale_npp|vpp_qsv|scale_vaapi|hwupload|hwdownload)_\d+|hwupload|hwdownload) @ `)

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
			return strings.TrimSpace(l), KindOther, true
		}
	}
	if len(stderr) > 0 {
		return strings.TrimSpace(stderr[len(stderr)-1]), KindOther, false
	}
	return "", KindOther, false
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
