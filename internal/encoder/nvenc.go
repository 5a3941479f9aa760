package encoder

// nvenc is NVIDIA's H.264 encoder, ffmpeg's h264_nvenc, fed CUDA frames scaled
// with scale_cuda (or scale_npp). Rate control is CBR when maxrate equals the
// bitrate, else VBR capped at maxrate. -forced-idr makes each forced keyframe an
// IDR frame (ffmpeg flags only IDR frames from NVENC as keyframes, and the HLS
// muxer cuts only there); -no-scenecut keeps look-ahead from adding I-frames.
// Baseline has no B-frames; main and high use two. Tune zerolatency is NVENC's
// low-latency tuning (-tune ll) with no reordering delay (-zerolatency 1) and no
// B-frames.
var nvenc = h264{
	tunes:        map[string][]string{zeroLatency: {"-tune", "ll", "-zerolatency", "1"}},
	presetOption: "-preset", presets: nvencPresets, unknownPreset: "unknown preset %q for " + NVENC,
	profiles:    h264Profiles,
	rateControl: "-rc", cbr: "cbr", vbr: "vbr",
	keyframes: func(reorder bool) []string {
		return append(bFrames(reorder), "-forced-idr", "1", "-no-scenecut", "1")
	},
}

// nvencPresets maps x264 presets to NVENC's p1 (fastest) .. p7 (slowest); medium
// is p4 in both, ffmpeg's default.
var nvencPresets = map[string]string{
	"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p3", "fast": "p4",
	"medium": "p4", "slow": "p5", "slower": "p6", "veryslow": "p7", "placebo": "p7",
}
