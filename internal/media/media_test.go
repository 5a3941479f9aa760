package media

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// rendition is one ffmpeg output: an init segment and its media segments.
type rendition struct {
	init     string
	segments []string
}

// lavfiInputs are 3 s of test video and audio.
var lavfiInputs = []string{
	"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=3",
	"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=3",
}

// x264 encodes with a keyframe every second, on the second.
var x264 = []string{
	"-map", "0:v", "-c:v", "libx264", "-preset", "ultrafast",
	"-g", "30", "-keyint_min", "30", "-sc_threshold", "0", "-force_key_frames", "expr:gte(t,n_forced*1)",
}

var aacStereo = []string{"-map", "1:a", "-c:a", "aac", "-b:a", "64k", "-ac", "2", "-ar", "48000"}

// hlsFMP4 returns output options that make ffmpeg's hls muxer write 1 s
// fMP4 segments into dir.
func hlsFMP4(dir string) []string {
	return []string{
		"-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", "-hls_segment_type", "fmp4",
		"-hls_fmp4_init_filename", "init.mp4", "-hls_segment_filename", filepath.Join(dir, "seg_%d.m4s"),
		filepath.Join(dir, ".ffmpeg.m3u8"),
	}
}

// dashFragmented returns output options that make ffmpeg's dash muxer write
// 1 s segments of four 250 ms moof/mdat fragments each into dir.
func dashFragmented(dir string) []string {
	return []string{
		"-f", "dash", "-seg_duration", "1", "-frag_type", "duration", "-frag_duration", "0.25",
		"-init_seg_name", "init.mp4", "-media_seg_name", "seg_$Number$.m4s",
		filepath.Join(dir, "out.mpd"),
	}
}

// encode runs ffmpeg on lavfiInputs with output options out (which write
// into dir) and returns the rendition it wrote.
func encode(t testing.TB, dir string, out ...string) rendition {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	args := append([]string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error", "-y"}, lavfiInputs...)
	cmd := exec.CommandContext(ctx, "ffmpeg", append(args, out...)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, msg)
	}
	paths, err := filepath.Glob(filepath.Join(dir, "seg_*.m4s"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("ffmpeg wrote no segments into %s (%v)", dir, err)
	}
	num := func(p string) int {
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "seg_"), ".m4s"))
		return n
	}
	sort.Slice(paths, func(i, j int) bool { return num(paths[i]) < num(paths[j]) })
	return rendition{init: filepath.Join(dir, "init.mp4"), segments: paths}
}

// probeStream is what `ffprobe -show_streams` says about a stream.
type probeStream struct {
	CodecName  string `json:"codec_name"`
	CodecType  string `json:"codec_type"`
	Profile    string `json:"profile"`
	Level      int    `json:"level"`
	Width      int    `json:"width"`
	Height     int    `json:"height"`
	TimeBase   string `json:"time_base"`
	SampleRate string `json:"sample_rate"`
	Channels   int    `json:"channels"`
}

// probePacket is what `ffprobe -show_packets` says about a packet.
type probePacket struct {
	DTS      *int64 `json:"dts"`
	Duration *int64 `json:"duration"` // nil when ffprobe says N/A
	Flags    string `json:"flags"`
}

// probe runs ffprobe on the concatenation of an init and a media segment.
func probe(t *testing.T, initPath, segPath string) (probeStream, []probePacket) {
	t.Helper()
	initData, err := os.ReadFile(initPath)
	if err != nil {
		t.Fatal(err)
	}
	segData, err := os.ReadFile(segPath)
	if err != nil {
		t.Fatal(err)
	}
	joined := filepath.Join(t.TempDir(), "joined.mp4")
	if err := os.WriteFile(joined, append(initData, segData...), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ffprobe", "-v", "error", "-show_streams", "-show_packets",
		"-show_entries", "packet=dts,duration,flags", "-of", "json", joined).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", segPath, err)
	}
	var res struct {
		Streams []probeStream `json:"streams"`
		Packets []probePacket `json:"packets"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatalf("ffprobe json: %v", err)
	}
	if len(res.Streams) != 1 {
		t.Fatalf("ffprobe sees %d streams in %s, want 1", len(res.Streams), segPath)
	}
	return res.Streams[0], res.Packets
}

// h264ProfileIDC maps ffprobe's H.264 profile names to profile_idc.
var h264ProfileIDC = map[string]int{
	"Baseline": 66, "Constrained Baseline": 66, "Main": 77, "Extended": 88, "High": 100,
}

// hevcProfileIDC maps ffprobe's HEVC profile names to general_profile_idc.
var hevcProfileIDC = map[string]int{"Main": 1, "Main 10": 2, "Main Still Picture": 3, "Rext": 4}

// aacObjectType maps ffprobe's AAC profile names to the audio object type.
var aacObjectType = map[string]int{"LC": 2, "HE-AAC": 5, "HE-AACv2": 29}

// checkCodecs checks an RFC 6381 codecs string against ffprobe's profile and level.
func checkCodecs(t *testing.T, got string, s probeStream) {
	t.Helper()
	switch s.CodecName {
	case "h264":
		idc, ok := h264ProfileIDC[s.Profile]
		if !ok {
			t.Fatalf("unknown h264 profile %q from ffprobe", s.Profile)
		}
		m := regexp.MustCompile(`^avc1\.([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$`).FindStringSubmatch(got)
		if m == nil {
			t.Fatalf("Codecs = %q, want avc1.PPCCLL in lower-case hex", got)
		}
		wantProfile, wantLevel := fmt.Sprintf("%02x", idc), fmt.Sprintf("%02x", s.Level)
		if m[1] != wantProfile || m[3] != wantLevel {
			t.Errorf("Codecs = %q, ffprobe says %s (profile_idc %s) level %d (%s)", got, s.Profile, wantProfile, s.Level, wantLevel)
		}
		constraints, _ := strconv.ParseUint(m[2], 16, 8)
		if s.Profile == "Constrained Baseline" && constraints&0x40 == 0 {
			t.Errorf("Codecs = %q: constraint_set1_flag (0x40) not set for Constrained Baseline", got)
		}
	case "hevc":
		idc, ok := hevcProfileIDC[s.Profile]
		if !ok {
			t.Fatalf("unknown hevc profile %q from ffprobe", s.Profile)
		}
		want := fmt.Sprintf(`^hvc1\.%d\.[0-9A-F]+\.L%d(\.[0-9A-F]{1,2})*$`, idc, s.Level)
		if !regexp.MustCompile(want).MatchString(got) {
			t.Errorf("Codecs = %q, ffprobe says %s level %d: want match for %s", got, s.Profile, s.Level, want)
		}
	case "aac":
		aot, ok := aacObjectType[s.Profile]
		if !ok {
			t.Fatalf("unknown aac profile %q from ffprobe", s.Profile)
		}
		if want := fmt.Sprintf("mp4a.40.%d", aot); got != want {
			t.Errorf("Codecs = %q, ffprobe says %s: want %q", got, s.Profile, want)
		}
	default:
		t.Fatalf("no codecs check for %s", s.CodecName)
	}
}

func TestParseRealRenditions(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	tests := []struct {
		name string
		// out returns ffmpeg's output options for dir.
		out          func(dir string) []string
		video        bool
		wantPTOffset bool // B-frames: presentation starts after decode
	}{
		{
			name:  "h264 constrained baseline, hls",
			out:   func(dir string) []string { return append(append([]string{}, x264...), hlsFMP4(dir)...) },
			video: true,
		},
		{
			name: "h264 main with b-frames, dash with 4 fragments a segment",
			out: func(dir string) []string {
				return append(append(append([]string{}, x264...), "-profile:v", "main", "-bf", "2"), dashFragmented(dir)...)
			},
			video: true, wantPTOffset: true,
		},
		{
			name: "hevc, hls",
			out: func(dir string) []string {
				return append([]string{"-map", "0:v", "-c:v", "libx265", "-preset", "ultrafast", "-tag:v", "hvc1",
					"-x265-params", "keyint=30:min-keyint=30:scenecut=0:bframes=0:log-level=error",
					"-force_key_frames", "expr:gte(t,n_forced*1)"}, hlsFMP4(dir)...)
			},
			video: true,
		},
		{
			name: "aac-lc stereo, hls",
			out:  func(dir string) []string { return append(append([]string{}, aacStereo...), hlsFMP4(dir)...) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			r := encode(t, dir, tt.out(dir)...)
			in, err := ParseInitFile(r.init)
			if err != nil {
				t.Fatalf("ParseInitFile: %v", err)
			}
			t.Logf("init: %+v", in)
			stream, _ := probe(t, r.init, r.segments[0])
			checkInit(t, in, stream, tt.video)

			if len(r.segments) < 3 {
				t.Fatalf("ffmpeg wrote %d segments for 3 s, want at least 3", len(r.segments))
			}
			var prev Segment
			var offset int64
			for i, path := range r.segments {
				seg, err := ParseSegmentFile(path, &in)
				if err != nil {
					t.Fatalf("segment %d: %v", i, err)
				}
				last := i == len(r.segments)-1
				checkSegment(t, i, seg, in, path, last)
				if i == 0 && seg.BaseDecodeTime != 0 {
					t.Errorf("segment 0 starts at %d, want 0", seg.BaseDecodeTime)
				}
				if i > 0 && seg.BaseDecodeTime != prev.End() {
					t.Errorf("segment %d starts at %d, want %d (end of segment %d): not contiguous",
						i, seg.BaseDecodeTime, prev.End(), i-1)
				}
				if tt.video && !seg.FirstIsKeyframe {
					t.Errorf("segment %d does not start with a keyframe", i)
				}
				// Each segment starts with an IDR picture, so its earliest
				// presentation sits a fixed distance after its decode start.
				off := seg.EarliestPresentation - int64(seg.BaseDecodeTime)
				switch {
				case i == 0:
					offset = off
				case tt.video && off != offset:
					t.Errorf("segment %d: presentation offset %d, segment 0 had %d", i, off, offset)
				}
				if tt.wantPTOffset != (off > 0) {
					t.Errorf("segment %d: presentation offset %d, want >0: %v", i, off, tt.wantPTOffset)
				}
				_, packets := probe(t, r.init, path)
				checkAgainstPackets(t, i, seg, packets, tt.video)
				prev = seg
			}
		})
	}
}

func checkInit(t *testing.T, in Init, s probeStream, video bool) {
	t.Helper()
	if in.Video != video {
		t.Errorf("Video = %v, want %v", in.Video, video)
	}
	checkCodecs(t, in.Codecs, s)
	if want := "1/" + strconv.FormatUint(uint64(in.Timescale), 10); s.TimeBase != want {
		t.Errorf("Timescale = %d, ffprobe time_base %s", in.Timescale, s.TimeBase)
	}
	if in.TrackID != 1 {
		t.Errorf("TrackID = %d, want 1", in.TrackID)
	}
	if video {
		if in.Width != s.Width || in.Height != s.Height || in.Width != 320 || in.Height != 180 {
			t.Errorf("size %dx%d, ffprobe %dx%d, want 320x180", in.Width, in.Height, s.Width, s.Height)
		}
		if in.Channels != 0 || in.SampleRate != 0 {
			t.Errorf("video has audio fields: %+v", in)
		}
		return
	}
	if strconv.Itoa(in.SampleRate) != s.SampleRate || in.Channels != s.Channels || in.SampleRate != 48000 || in.Channels != 2 {
		t.Errorf("audio %d Hz %d ch, ffprobe %s Hz %d ch, want 48000 Hz 2 ch", in.SampleRate, in.Channels, s.SampleRate, s.Channels)
	}
	if in.Width != 0 || in.Height != 0 {
		t.Errorf("audio has a picture size: %+v", in)
	}
}

// checkSegment checks a segment's duration (about 1 s, the last one at most
// that) and size.
func checkSegment(t *testing.T, i int, seg Segment, in Init, path string, last bool) {
	t.Helper()
	secs := float64(seg.Duration) / float64(in.Timescale)
	if secs > 1.1 || secs <= 0 || (!last && secs < 0.9) {
		t.Errorf("segment %d lasts %.3f s, want about 1 s", i, secs)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if seg.Size != st.Size() {
		t.Errorf("segment %d: Size = %d, file has %d bytes", i, seg.Size, st.Size())
	}
}

// checkAgainstPackets compares a segment with ffprobe's packets for it.
func checkAgainstPackets(t *testing.T, i int, seg Segment, packets []probePacket, video bool) {
	t.Helper()
	if seg.Samples != len(packets) {
		t.Errorf("segment %d: %d samples, ffprobe sees %d packets", i, seg.Samples, len(packets))
	}
	// ffprobe leaves the duration of an fMP4 segment's first audio packet
	// N/A; the distance to the next packet's dts stands in for it.
	var dur int64
	known := true
	for j, p := range packets {
		switch {
		case p.Duration != nil:
			dur += *p.Duration
		case j+1 < len(packets) && p.DTS != nil && packets[j+1].DTS != nil:
			dur += *packets[j+1].DTS - *p.DTS
		default:
			known = false
		}
	}
	if known && seg.Duration != uint64(dur) {
		t.Errorf("segment %d: samples last %d, ffprobe's packets %d", i, seg.Duration, dur)
	}
	if len(packets) > 0 && seg.FirstIsKeyframe != strings.Contains(packets[0].Flags, "K") {
		t.Errorf("segment %d: FirstIsKeyframe = %v, ffprobe flags of first packet %q", i, seg.FirstIsKeyframe, packets[0].Flags)
	}
	if video {
		keys := 0
		for _, p := range packets {
			if strings.Contains(p.Flags, "K") {
				keys++
			}
		}
		if keys != 1 {
			t.Errorf("segment %d has %d keyframes, want 1 (one GOP a segment)", i, keys)
		}
	}
}

// TestParseSegmentSeveralFragments joins whole real segments into one
// buffer: the fragments add up and the first tfdt wins.
func TestParseSegmentSeveralFragments(t *testing.T) {
	dir := t.TempDir()
	r := encode(t, dir, append(append([]string{}, x264...), hlsFMP4(dir)...)...)
	in, err := ParseInitFile(r.init)
	if err != nil {
		t.Fatal(err)
	}
	var joined []byte
	var want Segment
	for i, path := range r.segments[:2] {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		seg, err := ParseSegment(data, &in)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			want = seg
		} else {
			want.Duration += seg.Duration
			want.Samples += seg.Samples
			want.Size += seg.Size
		}
		joined = append(joined, data...)
	}
	got, err := ParseSegment(joined, &in)
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("ParseSegment(seg_0+seg_1) = %+v, want %+v", got, want)
	}
}

// BenchmarkParseSegment times indexing one segment of a live job's: a 1 s segment of
// H.264 from ffmpeg, read from memory.
func BenchmarkParseSegment(b *testing.B) {
	dir := b.TempDir()
	r := encode(b, dir, append(append([]string{}, x264...), hlsFMP4(dir)...)...)
	in, err := ParseInitFile(r.init)
	if err != nil {
		b.Fatal(err)
	}
	data, err := os.ReadFile(r.segments[0])
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseSegment(data, &in); err != nil {
			b.Fatal(err)
		}
	}
}
