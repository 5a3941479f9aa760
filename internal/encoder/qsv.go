package encoder

// qsv is Intel Quick Sync, ffmpeg's h264_qsv, fed QSV frames scaled with
// vpp_qsv. It chooses CBR when maxrate equals the bitrate and VBR otherwise.
// -forced_idr makes forced keyframes IDR frames and -adaptive_i 0 stops it
// placing I-frames of its own at scene cuts.
var qsv = h264{
	presetOption: "-preset", presets: qsvPresets, unknownPreset: "unknown preset %q for " + QSV,
	profiles: h264Profiles,
	keyframes: func(profile string) []string {
		return append(bFrames(profile), "-forced_idr", "1", "-adaptive_i", "0")
	},
}

// qsvPresets maps x264 presets to h264_qsv's, which run from veryfast to veryslow.
var qsvPresets = map[string]string{
	"ultrafast": "veryfast", "superfast": "veryfast", "veryfast": "veryfast", "faster": "faster", "fast": "fast",
	"medium": "medium", "slow": "slow", "slower": "slower", "veryslow": "veryslow", "placebo": "veryslow",
}
