package encoder

// x264 is the software H.264 encoder, ffmpeg's libx264. The GOP is closed and
// fixed: -sc_threshold 0 stops scene cuts from adding keyframes and +cgop closes
// every GOP.
var x264 = h264{
	presetOption: "-preset", presets: x264Presets, unknownPreset: "unknown x264 preset %q",
	profiles:  h264Profiles,
	keyframes: func(string) []string { return []string{"-sc_threshold", "0", "-flags", "+cgop"} },
}

// x264Presets are libx264's presets, the names every ladder uses and each
// hardware backend maps to its own scale.
var x264Presets = identity("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")
