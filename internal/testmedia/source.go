package testmedia

import (
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
// as 48 kHz stereo AAC.
type SourceOptions struct {
	// Width and Height of the picture; 640x360 when both are zero.
	Width, Height int
	// FPS is the frame rate and the GOP length in frames; 30 when zero.
	FPS int
	// Rate is the pace the stream is sent at, as a multiple of real time; 1 when zero.
	// Below 1 it stands for a source whose network cannot keep up (ffmpeg's -readrate,
	// ffmpeg 5.0 and later).
	Rate float64
	// Sync makes the content a flash and a beep once a second (see BeepLength) with the
	// audio starting AudioOffset after the video (before it when negative).
	Sync        bool
	AudioOffset time.Duration
}

func (o SourceOptions) withDefaults() SourceOptions {
	if o.Width == 0 && o.Height == 0 {
		o.Width, o.Height = 640, 360
	}
	if o.FPS == 0 {
		o.FPS = 30
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
	inputs := slices.Concat(
		pace, []string{"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=%d", o.Width, o.Height, o.FPS)},
		pace, []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"})
	if o.Sync {
		inputs = syncInputs(pace, o.Width, o.Height, o.FPS, o.AudioOffset, "")
	}
	return slices.Concat(
		[]string{"-nostdin", "-hide_banner", "-nostats", "-loglevel", "error"},
		inputs,
		[]string{
			"-map", "0:v", "-map", "1:a",
			"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-pix_fmt", "yuv420p",
			"-g", fps, "-keyint_min", fps, "-bf", "0",
			"-c:a", "aac", "-b:a", "64k", "-ar", "48000", "-ac", "2",
		},
	)
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

// freeTCPPort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freeTCPPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
