package encoder

// qsv is Intel Quick Sync, ffmpeg's h264_qsv, fed QSV frames scaled with
// vpp_qsv. It chooses CBR when maxrate equals the bitrate and VBR otherwise.
// -forced_idr makes forced keyframes IDR frames and -adaptive_i 0 stops it
// placing I-frames of its own at scene cuts. Tune zerolatency keeps one frame in
// flight (-async_depth 1) and no B-frames; its -low_delay_brc is not a latency
// option (it holds each frame to the average size), so it stays at its default.
var qsv = h264{
	tunes:        map[string][]string{zeroLatency: {"-async_depth", "1"}},
	presetOption: "-preset", presets: qsvPresets, unknownPreset: "unknown preset %q for " + QSV,
	profiles: h264Profiles,
	keyframes: func(reorder bool) []string {
		return append(bFrames(reorder), "-forced_idr", "1", "-adaptive_i", "0")
	},
}

// qsvPresets maps x264 presets to h264_qsv's, which run from veryfast to veryslow.
var qsvPresets = map[string]string{
	"ultrafast": "veryfast", "superfast": "veryfast", "veryfast": "veryfast", "faster": "faster", "fast": "fast",
	"medium": "medium", "slow": "slow", "slower": "slower", "veryslow": "veryslow", "placebo": "veryslow",
}
