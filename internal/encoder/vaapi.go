package encoder

// vaapi is the Video Acceleration API encoder, ffmpeg's h264_vaapi, on Intel
// (iHD, i965) or AMD (Mesa) drivers, fed VAAPI frames scaled with scale_vaapi.
// It writes each forced keyframe as an IDR frame and places no keyframes of its
// own beyond the GOP. Tune zerolatency keeps one frame in flight (-async_depth 1,
// where the driver can sync buffers) and no B-frames.
var vaapi = h264{
	tunes:        map[string][]string{zeroLatency: {"-async_depth", "1"}},
	presetOption: "-quality", presets: vaapiQuality, unknownPreset: "unknown preset %q for " + VAAPI,
	profiles:    constrainedBaseline,
	rateControl: "-rc_mode", cbr: "CBR", vbr: "VBR",
	keyframes: bFrames,
}

// vaapiQuality maps x264 presets to h264_vaapi's -quality, the driver's speed
// level: 1 is its best, 7 its fastest on Intel; a driver with a shorter range
// clamps it and says so.
var vaapiQuality = map[string]string{
	"ultrafast": "7", "superfast": "7", "veryfast": "7", "faster": "6", "fast": "5",
	"medium": "4", "slow": "3", "slower": "2", "veryslow": "1", "placebo": "1",
}
