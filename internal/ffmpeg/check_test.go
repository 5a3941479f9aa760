package ffmpeg

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckRealFFmpeg(t *testing.T) {
	needTool(t, "ffmpeg")
	needTool(t, "ffprobe")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	version, err := Check(ctx, "", "")
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	if version == "" || version[0] < '0' || version[0] > '9' {
		// Distribution builds start with a digit ("5.1.6-0+deb12u1"); git
		// builds with "N-" or "n", which this project does not test on.
		t.Errorf("version = %q, want it to start with a digit", version)
	}
}

// fakeFFmpeg writes a shell script that answers -version, -encoders and
// -muxers like an ffmpeg built without libx264 and without the hls muxer.
const fakeFFmpeg = `#!/bin/sh
case "$2" in
-version) echo "ffmpeg version 9.9-fake Copyright (c) the FFmpeg developers" ;;
-encoders) printf 'Encoders:\n V..... = Video\n ------\n V....D mpeg4                MPEG-4 part 2\n A....D aac                  AAC (Advanced Audio Coding)\n' ;;
-muxers) printf 'File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n  E mp4             MP4 (MPEG-4 Part 14)\n' ;;
*) exit 1 ;;
esac
`

func TestCheckProblems(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	fakeDir := t.TempDir()
	fake := filepath.Join(fakeDir, "ffmpeg")
	if err := os.WriteFile(fake, []byte(fakeFFmpeg), 0o755); err != nil {
		t.Fatal(err)
	}
	emptyDir := t.TempDir()

	tests := []struct {
		name        string
		path        string // PATH for the test
		ffmpeg      string
		ffprobe     string
		wantVersion string
		want        []string
		notFound    bool
	}{
		{
			name: "no ffmpeg in PATH", path: emptyDir, ffprobe: ffprobe, notFound: true,
			want: []string{"ffmpeg not found in PATH: install it, e.g. `sudo apt-get install ffmpeg` on Debian/Ubuntu"},
		},
		{
			name: "neither in PATH", path: emptyDir, notFound: true,
			want: []string{"ffmpeg not found in PATH", "ffprobe not found in PATH"},
		},
		{
			name: "configured path missing", path: emptyDir, ffmpeg: filepath.Join(emptyDir, "bin", "ffmpeg"), ffprobe: ffprobe, notFound: true,
			want: []string{"ffmpeg not found at " + filepath.Join(emptyDir, "bin", "ffmpeg") + ": install it"},
		},
		{
			name: "build without libx264 or hls", path: fakeDir, ffprobe: ffprobe, wantVersion: "9.9-fake",
			want: []string{"has no libx264 encoder: install an ffmpeg built with --enable-gpl --enable-libx264", "has no hls muxer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("PATH", tt.path)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			version, err := Check(ctx, tt.ffmpeg, tt.ffprobe)
			if err == nil {
				t.Fatalf("Check succeeded with version %q", version)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "aac encoder") {
				t.Errorf("error %q complains about aac, which the fake has", err)
			}
			if got := errors.Is(err, exec.ErrNotFound) || errors.Is(err, os.ErrNotExist); got != tt.notFound {
				t.Errorf("error is not-found = %v, want %v (%v)", got, tt.notFound, err)
			}
			if version != tt.wantVersion {
				t.Errorf("version = %q, want %q", version, tt.wantVersion)
			}
		})
	}
}

func TestListed(t *testing.T) {
	out := []byte("File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n  E hls             Apple HTTP Live Streaming\n DE mov,mp4,m4a     QuickTime / MOV\n")
	got := listed(out)
	for _, n := range []string{"hls", "mov", "mp4", "m4a"} {
		if !got[n] {
			t.Errorf("%q not listed in %v", n, got)
		}
	}
	for _, n := range []string{"=", "Demuxing", "formats:"} {
		if got[n] {
			t.Errorf("legend word %q listed as a name", n)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "debian", in: "ffmpeg version 5.1.6-0+deb12u1 Copyright (c) 2000-2024 the FFmpeg developers\nbuilt with gcc 12\n", want: "5.1.6-0+deb12u1"},
		{name: "git build", in: "ffmpeg version N-112233-gabcdef Copyright\n", want: "N-112233-gabcdef"},
		{name: "unexpected", in: "something else\n", want: "something else"},
		{name: "empty", in: "", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := parseVersion([]byte(tt.in)); got != tt.want {
				t.Errorf("parseVersion = %q, want %q", got, tt.want)
			}
		})
	}
}

// fakeFFmpegOf returns a fake ffmpeg with everything BuildArgs needs, whose -version
// says version and whose RTSP demuxer documents -timeout as rtspTimeout.
func fakeFFmpegOf(version, rtspTimeout string) string {
	return `#!/bin/sh
case "$2" in
-version) echo "ffmpeg version ` + version + ` Copyright (c) the FFmpeg developers" ;;
-encoders) printf 'Encoders:\n V..... = Video\n ------\n V....D libx264              H.264\n A....D aac                  AAC\n' ;;
-muxers) printf 'File formats:\n D. = Demuxing supported\n .E = Muxing supported\n --\n  E hls             Apple HTTP Live Streaming\n' ;;
-h) printf 'Demuxer rtsp [RTSP input]:\nRTSP demuxer AVOptions:\n  -listen_timeout    <int>        .D.......\n  -timeout           <int64>      .D....... ` + rtspTimeout + `\n' ;;
*) exit 1 ;;
esac
`
}

func TestCheckVersion(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	const (
		socket = "set timeout (in microseconds) of socket I/O operations"
		listen = "set maximum timeout (in seconds) to wait for incoming connections (-1 is infinite, imply flag listen)"
	)
	tests := []struct {
		name, version, rtsp string
		refused             bool
	}{
		{name: "debian 12", version: "5.1.6-0+deb12u1", rtsp: socket},
		{name: "5.0 exactly", version: "5.0", rtsp: socket},
		{name: "release tag", version: "n7.1", rtsp: socket},
		{name: "ubuntu 22.04", version: "4.4.2-0ubuntu0.22.04.1", rtsp: listen, refused: true},
		{name: "old release whatever its help says", version: "4.4", rtsp: socket, refused: true},
		{name: "git build, new rtsp", version: "N-112233-gabcdef", rtsp: socket},
		{name: "git build, old rtsp", version: "N-47683-g0e8eb07980-static", rtsp: listen, refused: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fake := filepath.Join(t.TempDir(), "ffmpeg")
			if err := os.WriteFile(fake, []byte(fakeFFmpegOf(tt.version, tt.rtsp)), 0o755); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			version, err := Check(ctx, fake, ffprobe)
			if version != tt.version {
				t.Errorf("version = %q, want %q", version, tt.version)
			}
			if !tt.refused {
				if err != nil {
					t.Fatalf("Check refused ffmpeg %s: %v", tt.version, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Check accepted ffmpeg %s", tt.version)
			}
			for _, w := range []string{"ffmpeg " + tt.version + " at " + fake + " is older than 5.0", "install ffmpeg 5.0 or newer"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestParseReleaseVersion(t *testing.T) {
	tests := []struct {
		in   string
		want Version
		ok   bool
	}{
		{"5.1.6-0+deb12u1", Version{5, 1}, true},
		{"4.4.2-0ubuntu0.22.04.1", Version{4, 4}, true},
		{"n6.1.1", Version{6, 1}, true},
		{"7.1", Version{7, 1}, true},
		{"6.0-static", Version{6, 0}, true},
		{"N-112233-gabcdef", Version{}, false},
		{"git-2024-01-01-abcdef", Version{}, false},
		{"5.", Version{}, false},
		{"", Version{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseVersion(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
