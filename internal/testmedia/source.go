package testmedia

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// SourceOptions describes the live stream a Source serves: lavfi testsrc2
// video (libx264 ultrafast, zerolatency, one-second GOP) and a 440 Hz sine
// as 48 kHz stereo AAC, or several audio tracks (see AudioTracks).
type SourceOptions struct {
	// Width and Height of the picture; 640x360 when both are zero.
	Width, Height int
	// FPS is the frame rate and the GOP length in frames; 30 when zero.
	FPS int
	// Rate is the pace the stream is sent at, as a multiple of real time; 1 when zero.
	// Below 1 it stands for a source whose network cannot keep up (ffmpeg's -readrate,
	// ffmpeg 5.0 and later).
	Rate float64
	// Clock burns into every frame the wall-clock time it was made at (see
	// clock.go), for glass-to-glass latency.
	Clock bool
	// AudioTracks is how many audio tracks the stream carries; 1 when zero. Track k
	// is a sine of 440+220k Hz, 20k dB quieter than the first (see audioInputs), so
	// a test can tell the tracks apart by their loudness. RTSP carries several; RTMP
	// (FLV) only one.
	AudioTracks int
	// Sync makes the content a flash and a beep once a second (see BeepLength) with the
	// audio starting AudioOffset after the video (before it when negative).
	Sync        bool
	AudioOffset time.Duration
	// HEVC encodes the video with libx265 rather than libx264, its parameter sets
	// before every keyframe. ffmpeg 5.1 sends it over SRT (MPEG-TS) but not over RTMP:
	// Publish sends it as Enhanced RTMP with gortmplib's client (ertmp.go).
	HEVC bool
}

func (o SourceOptions) withDefaults() SourceOptions {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 640, 360
	}
	if o.FPS == 0 {
		o.FPS = 30
	}
	if o.AudioTracks == 0 {
		o.AudioTracks = 1
	}
	return o
}

func (o SourceOptions) validate() error {
	if o.Width <= 0 || o.Height <= 0 || o.Width%2 != 0 || o.Height%2 != 0 {
		return fmt.Errorf("size %dx%d: want positive even width and height", o.Width, o.Height)
	}
	if o.FPS <= 0 {
		return fmt.Errorf("fps %d: want positive", o.FPS)
	}
	if o.Rate < 0 {
		return fmt.Errorf("rate %v: want 0 (real time) or more", o.Rate)
	}
	if o.AudioTracks < 1 || o.AudioTracks > maxAudioTracks {
		return fmt.Errorf("%d audio tracks: want 1 to %d", o.AudioTracks, maxAudioTracks)
	}
	if o.Sync && (o.Clock || o.AudioTracks > 1) {
		return errors.New("sync content has its own picture and one audio track: not with a clock or more audio tracks")
	}
	return nil
}

// liveArgs is ffmpeg's argv (without "ffmpeg") up to the output options:
// endless test video and audio at o.Rate (real time), encoded for live streaming.
func liveArgs(o SourceOptions) []string {
	fps := strconv.Itoa(o.FPS)
	pace := []string{"-re"}
	if o.Rate > 0 && o.Rate != 1 {
		pace = []string{"-readrate", strconv.FormatFloat(o.Rate, 'f', -1, 64)}
	}
	args := []string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"}
	if o.Sync {
		args = append(args, syncInputs(pace, o.Width, o.Height, o.FPS, o.AudioOffset, "")...)
	} else {
		args = slices.Concat(args, pace, []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", o.Width, o.Height, o.FPS)})
		for _, in := range audioInputs(o.AudioTracks, "") {
			args = slices.Concat(args, pace, []string{"-f", "lavfi", "-i", in})
		}
	}
	if o.Clock {
		args = append(args, "-filter_complex", clockFilter(o.Width, o.Height, o.FPS), "-map", "[v]")
	} else {
		args = append(args, "-map", "0:v")
	}
	for k := range o.AudioTracks {
		args = append(args, "-map", strconv.Itoa(k+1)+":a")
	}
	video := []string{"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
		"-g", fps, "-keyint_min", fps, "-bf", "0"}
	if o.HEVC {
		video = []string{"-c:v", "libx265", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-x265-params", "keyint=" + fps + ":min-keyint=" + fps + ":scenecut=0:bframes=0:repeat-headers=1:log-level=error"}
	}
	return slices.Concat(args, video, []string{"-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2"})
}

// maxAudioTracks bounds the audio tracks of a source or a sample.
const maxAudioTracks = 8

// audioInputs returns the lavfi sources of n audio tracks, each lasting duration
// (endless when ""): track k is a sine of 440+220k Hz at -20k dB from the first
// (which is a sine at full scale), far enough apart for ffmpeg's volumedetect to tell
// which track a rendition carries. The first is the sine the sources always had.
func audioInputs(n int, duration string) []string {
	var out []string
	for k := range n {
		in := fmt.Sprintf("sine=frequency=%d:sample_rate=48000", 440+220*k)
		if duration != "" {
			in += ":duration=" + duration
		}
		if k > 0 {
			in += fmt.Sprintf(",volume=%gdB", -20*float64(k))
		}
		out = append(out, in)
	}
	return out
}

// Source is a live stream served on 127.0.0.1 for the length of a test.
// Pause takes it away and Resume brings it back, for fault tests. Call
// Pause and Resume from the test's goroutine; the test's cleanup stops
// everything the Source started.
type Source struct {
	// URL is where readers pull the stream from.
	URL string

	t       testing.TB
	impl    sourceImpl
	mu      sync.Mutex
	running bool
}

// sourceImpl is what StartRTMP and StartRTSP plug into a Source.
type sourceImpl interface {
	// start serves the stream and returns once readers can pull it.
	start() error
	// stop stops serving and returns once every child process has exited.
	stop()
	// pids lists every process started so far.
	pids() []int
}

// newSource starts impl and registers its clean-up (Pause, then closeFn
// when not nil) with t.
func newSource(t testing.TB, url string, impl sourceImpl, closeFn func()) *Source {
	t.Helper()
	s := &Source{URL: url, t: t, impl: impl}
	t.Cleanup(func() {
		s.Pause()
		if closeFn != nil {
			closeFn()
		}
	})
	s.Resume()
	return s
}

// Pause stops serving: readers are cut off, the stream's ffmpeg is killed,
// and new readers are refused (the RTMP port is closed; the RTSP server
// answers 404) until Resume. It returns once no child process is left.
// Pausing a paused Source does nothing.
func (s *Source) Pause() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running {
		return
	}
	s.impl.stop()
	s.running = false
}

// Resume serves the stream again and returns once it can be read. It fails
// the test when the stream cannot be brought back. Resuming a running Source
// does nothing.
func (s *Source) Resume() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.running {
		return
	}
	if err := s.impl.start(); err != nil {
		s.impl.stop()
		s.t.Fatalf("testmedia: start %s: %v", s.URL, err)
		return
	}
	s.running = true
}

// ResumeAs serves the stream again with other options (another size, frame rate): a
// camera or an encoder that comes back reconfigured. The Source must be paused, and
// an RTMP one (StartRTMP).
func (s *Source) ResumeAs(opts SourceOptions) {
	s.t.Helper()
	opts = opts.withDefaults()
	if err := opts.validate(); err != nil {
		s.t.Fatalf("testmedia: resume %s: %v", s.URL, err)
		return
	}
	r, ok := s.impl.(*rtmpServer)
	s.mu.Lock()
	running := s.running
	if ok && !running {
		r.opts = opts // no client is served while paused
	}
	s.mu.Unlock()
	if !ok || running {
		s.t.Fatalf("testmedia: ResumeAs needs a paused RTMP source")
		return
	}
	s.Resume()
}

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
