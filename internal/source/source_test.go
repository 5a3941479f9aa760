package source

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(root, "talks"), 0o755))
	must(t, os.WriteFile(filepath.Join(root, "talks", "keynote.mp4"), []byte("x"), 0o644))
	must(t, os.WriteFile(filepath.Join(outside, "secret.mp4"), []byte("x"), 0o644))
	must(t, os.Symlink(filepath.Join(outside, "secret.mp4"), filepath.Join(root, "escape.mp4")))
	must(t, os.Symlink(filepath.Join(root, "talks", "keynote.mp4"), filepath.Join(root, "alias.mp4")))

	tests := []struct {
		name    string
		in      string
		kind    Kind
		live    bool
		display string
		wantErr string
	}{
		{name: "rtmp", in: "rtmp://cam.example/live/key", kind: RTMP, live: true},
		{name: "rtmps", in: "rtmps://cam.example/live/key", kind: RTMP, live: true},
		{name: "rtsp with password is masked", in: "rtsp://admin:hunter2@10.0.0.9:554/stream1", kind: RTSP, live: true, display: "rtsp://admin:xxxxx@10.0.0.9:554/stream1"},
		{name: "rtsps", in: "rtsps://cam.example/s", kind: RTSP, live: true},
		{name: "srt", in: "srt://127.0.0.1:9000?mode=caller", kind: SRT, live: true},
		{name: "hls pull", in: "https://origin.example/live/master.m3u8", kind: HTTP, live: true},
		{name: "upper-case scheme", in: "RTMP://cam.example/live", kind: RTMP, live: true},
		{name: "file", in: "talks/keynote.mp4", kind: File, display: "talks/keynote.mp4"},
		{name: "push", in: "push", kind: Push, live: true, display: "push"},
		{name: "push over rtmp", in: "push:rtmp", kind: Push, live: true, display: "push:rtmp"},
		{name: "push over srt", in: "push:srt", kind: Push, live: true, display: "push:srt"},
		{name: "push over another protocol", in: "push:rtsp", wantErr: `scheme "push" is not allowed`},
		{name: "push in upper case", in: "PUSH", wantErr: "does not exist"},
		{name: "symlink inside root", in: "alias.mp4", kind: File},
		{name: "empty", in: "", wantErr: "empty"},
		{name: "file scheme", in: "file:///etc/passwd", wantErr: `scheme "file" is not allowed`},
		{name: "concat", in: "concat:/etc/passwd|/etc/hosts", wantErr: `scheme "concat" is not allowed`},
		{name: "data", in: "data:text/plain;base64,AAAA", wantErr: `scheme "data" is not allowed`},
		{name: "pipe", in: "pipe:0", wantErr: `scheme "pipe" is not allowed`},
		{name: "gopher", in: "gopher://example/", wantErr: `scheme "gopher" is not allowed`},
		{name: "option smuggling", in: "-i /etc/passwd", wantErr: "must not start with '-'"},
		{name: "space smuggling", in: "rtmp://a/b -f lavfi", wantErr: "spaces"},
		{name: "newline", in: "rtmp://a/b\n", wantErr: "control"},
		{name: "no host", in: "rtmp:///live", wantErr: "no host"},
		{name: "absolute path", in: "/etc/passwd", wantErr: "relative to the media root"},
		{name: "traversal", in: "../../etc/passwd", wantErr: "outside the media root"},
		{name: "symlink escape", in: "escape.mp4", wantErr: "outside the media root"},
		{name: "missing file", in: "nope.mp4", wantErr: "does not exist"},
		{name: "directory", in: "talks", wantErr: "not a regular file"},
		{name: "too long", in: "rtmp://a/" + strings.Repeat("x", MaxLen), wantErr: "longer than"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, root)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("Parse(%q) = %+v, want error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrInvalid) {
					t.Errorf("error %v does not wrap ErrInvalid", err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("error %q does not contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got.Kind != tc.kind || got.Live != tc.live {
				t.Errorf("Parse(%q) = kind %q live %v, want %q %v", tc.in, got.Kind, got.Live, tc.kind, tc.live)
			}
			if tc.display != "" && got.Display != tc.display {
				t.Errorf("Display = %q, want %q", got.Display, tc.display)
			}
			if got.Kind == File && !strings.HasPrefix(got.URL, root) && !filepath.IsAbs(got.URL) {
				t.Errorf("file URL %q is not an absolute path inside the root", got.URL)
			}
		})
	}
}

func TestParseNoMediaRoot(t *testing.T) {
	if _, err := Parse("a.mp4", ""); err == nil || !strings.Contains(err.Error(), "disabled") {
		t.Fatalf("err = %v, want file sources disabled", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
