package encoder

// amf is AMD's Advanced Media Framework encoder, ffmpeg's h264_amf, where the
// ffmpeg build has it (Debian's does not) and the AMF runtime is installed. On
// Linux it reads frames in system memory. Rate control is CBR or
// peak-constrained VBR; no B-frames, which many AMD encoders lack for H.264.
// Tune zerolatency is AMF's low-latency usage instead of transcoding.
var amf = h264{
	tunes:        map[string][]string{"": {"-usage", "transcoding"}, zeroLatency: {"-usage", "lowlatency"}},
	presetOption: "-quality", presets: amfQuality, unknownPreset: "unknown preset %q for " + AMF,
	profiles:    constrainedBaseline,
	rateControl: "-rc", cbr: "cbr", vbr: "vbr_peak",
	keyframes: func(bool) []string { return []string{"-bf", "0"} },
}

// amfQuality maps x264 presets to h264_amf's -quality.
var amfQuality = map[string]string{
	"ultrafast": "speed", "superfast": "speed", "veryfast": "speed", "faster": "balanced", "fast": "balanced",
	"medium": "balanced", "slow": "quality", "slower": "quality", "veryslow": "quality", "placebo": "quality",
}
