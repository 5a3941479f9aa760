package testmedia

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestSourceOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      SourceOptions
		want    SourceOptions
		wantErr string
	}{
		{name: "zero value gets defaults", in: SourceOptions{}, want: SourceOptions{Width: 640, Height: 360, FPS: 30, AudioTracks: 1}},
		{name: "given values kept", in: SourceOptions{Width: 320, Height: 180, FPS: 15, AudioTracks: 2}, want: SourceOptions{Width: 320, Height: 180, FPS: 15, AudioTracks: 2}},
		{name: "too many audio tracks", in: SourceOptions{AudioTracks: 9}, wantErr: "9 audio tracks"},
		{name: "odd width", in: SourceOptions{Width: 321, Height: 180}, wantErr: "even"},
		{name: "height missing", in: SourceOptions{Width: 320}, wantErr: "even"},
		{name: "negative fps", in: SourceOptions{FPS: -1}, wantErr: "fps"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			err := got.validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("validate() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate() = %v", err)
			}
			if got != tt.want {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStartRTMP(t *testing.T) {
	RequireFFmpeg(t)
	const w, h = 320, 180
	var src *Source
	t.Run("serve", func(t *testing.T) {
		src = StartRTMP(t, SourceOptions{Width: w, Height: h, FPS: 15})
		// ffprobe reads a live FLV stream for up to 5 s by default; 1 s is
		// plenty for these streams and keeps the test short.
		fast := []string{"-analyzeduration", "1000000"}
		if !strings.HasPrefix(src.URL, "rtmp://127.0.0.1:") || !strings.HasSuffix(src.URL, "/live/key") {
			t.Fatalf("URL = %q, want rtmp://127.0.0.1:<port>/live/key", src.URL)
		}
		// One client after another: each gets its own ffmpeg, the port never closes.
		for i := 1; i <= 2; i++ {
			res, err := ffprobe(src.URL, fast...)
			if err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
			if err := checkLive(res, w, h); err != nil {
				t.Fatalf("client %d: %v", i, err)
			}
		}
		// Two clients at once.
		probeConcurrently(t, src.URL, w, h, fast, fast)

		src.Pause()
		addr := strings.TrimSuffix(strings.TrimPrefix(src.URL, "rtmp://"), "/live/key")
		if conn, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			conn.Close()
			t.Fatalf("paused source still accepts connections on %s", addr)
		}
		if left := childFFmpegs(t); len(left) > 0 {
			t.Fatalf("ffmpeg children left while paused: %v", left)
		}
		src.Pause() // a second Pause does nothing

		src.Resume()
		res, err := ffprobe(src.URL, fast...)
		if err != nil {
			t.Fatalf("after Resume: %v", err)
		}
		if err := checkLive(res, w, h); err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	})
	if src == nil {
		return
	}
	pids := src.impl.pids()
	if len(pids) < 5 {
		t.Fatalf("source started %d ffmpegs for 5 clients, want 5", len(pids))
	}
	requireGone(t, pids)
}

func TestStartRTSP(t *testing.T) {
	RequireFFmpeg(t)
	var src *Source
	t.Run("serve", func(t *testing.T) {
		src = StartRTSP(t, SourceOptions{}) // defaults: 640x360 at 30 fps
		if !strings.HasPrefix(src.URL, "rtsp://127.0.0.1:") || !strings.HasSuffix(src.URL, "/cam") {
			t.Fatalf("URL = %q, want rtsp://127.0.0.1:<port>/cam", src.URL)
		}
		if got := childFFmpegs(t); len(got) != 1 {
			t.Fatalf("ffmpeg children while publishing: %v, want exactly the publisher", got)
		}
		// Two readers at once: one lets ffmpeg try UDP first and fall back
		// to TCP, the other asks for TCP.
		probeConcurrently(t, src.URL, 640, 360, nil, []string{"-rtsp_transport", "tcp"})

		wrongPath := strings.TrimSuffix(src.URL, "/cam") + "/other"
		if _, err := ffprobe(wrongPath, "-rtsp_transport", "tcp"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("ffprobe %s = %v, want 404", wrongPath, err)
		}

		src.Pause()
		if _, err := ffprobe(src.URL, "-rtsp_transport", "tcp"); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("ffprobe on paused source = %v, want 404", err)
		}
		if left := childFFmpegs(t); len(left) > 0 {
			t.Fatalf("ffmpeg children left while paused: %v", left)
		}

		src.Resume()
		res, err := ffprobe(src.URL, "-rtsp_transport", "tcp")
		if err != nil {
			t.Fatalf("after Resume: %v", err)
		}
		if err := checkLive(res, 640, 360); err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	})
	if src == nil {
		return
	}
	pids := src.impl.pids()
	if len(pids) < 2 {
		t.Fatalf("source started %d publishers, want at least 2 (before and after Pause)", len(pids))
	}
	requireGone(t, pids)
}

// TestStartRTSPUDP: the server refuses RTP over TCP with 461, as VLC's does, and
// serves it over UDP, to two readers at once (each with its own ports); after a
// Pause and Resume it serves again.
func TestStartRTSPUDP(t *testing.T) {
	RequireFFmpeg(t)
	var src *Source
	t.Run("serve", func(t *testing.T) {
		src = StartRTSPUDP(t, SourceOptions{Width: 320, Height: 180, FPS: 25})
		if _, err := ffprobe(src.URL, "-rtsp_transport", "tcp"); err == nil || !strings.Contains(err.Error(), "method SETUP failed: 461") {
			t.Errorf("ffprobe over tcp = %v, want 461", err)
		}
		probeConcurrently(t, src.URL, 320, 180, []string{"-rtsp_transport", "udp"}, nil)
		src.Pause()
		src.Resume()
		res, err := ffprobe(src.URL, "-rtsp_transport", "udp")
		if err == nil {
			err = checkLive(res, 320, 180)
		}
		if err != nil {
			t.Fatalf("after Resume: %v", err)
		}
	})
	if src != nil {
		requireGone(t, src.impl.pids())
	}
}

// TestStartRTSPAudioTracks serves a stream with two audio tracks over RTSP: a reader
// sees both.
func TestStartRTSPAudioTracks(t *testing.T) {
	RequireFFmpeg(t)
	src := StartRTSP(t, SourceOptions{Width: 320, Height: 180, FPS: 15, AudioTracks: 2})
	res, err := ffprobe(src.URL, "-rtsp_transport", "tcp")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkLive(res, 320, 180); err != nil {
		t.Error(err)
	}
	var audio int
	for _, s := range res.Streams {
		if s.CodecType == "audio" {
			audio++
		}
	}
	if audio != 2 {
		t.Errorf("%d audio streams, want 2: %+v", audio, res.Streams)
	}
}

// probeConcurrently runs two ffprobes on url at once, with extra input
// options a and b, and checks what both see.
func probeConcurrently(t *testing.T, url string, width, height int, a, b []string) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, extra := range [][]string{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := ffprobe(url, extra...)
			if err == nil {
				err = checkLive(res, width, height)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent reader %d: %v", i+1, err)
		}
	}
}
