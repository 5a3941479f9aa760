package encoder

// x264 is the software H.264 encoder, ffmpeg's libx264. The GOP is closed and
// fixed: -sc_threshold 0 stops scene cuts from adding keyframes and +cgop closes
// every GOP. A ladder's tune is libx264's own -tune; its profile and tune choose
// its B-frames.
var x264 = h264{
	tunes:        x264Tunes,
	presetOption: "-preset", presets: x264Presets, unknownPreset: "unknown x264 preset %q",
	profiles:  h264Profiles,
	keyframes: func(bool) []string { return []string{"-sc_threshold", "0", "-flags", "+cgop"} },
}

// x264Presets are libx264's presets, the names every ladder uses and each
// hardware backend maps to its own scale.
var x264Presets = identity("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")

// x264Tunes are libx264's tunes, the names a ladder's video.tune may take, each
// passed on as -tune.
var x264Tunes = func() map[string][]string {
	m := map[string][]string{}
	for _, t := range []string{"film", "animation", "grain", "stillimage", "fastdecode", zeroLatency, "psnr", "ssim"} {
		m[t] = []string{"-tune", t}
	}
	return m
}()
