package source

import (
	"errors"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"
)

// FuzzParse feeds arbitrary strings to Parse over a media root that holds a
// file, a folder, a symlink inside and a symlink out. It must never panic;
// every refusal wraps ErrInvalid; what it accepts is a network URL with an
// allowed scheme and a host, or a regular file inside the root, and never
// something ffmpeg could read as an option or a second argument.
func FuzzParse(f *testing.F) {
	tmp := f.TempDir()
	root := filepath.Join(tmp, "media")
	outside := filepath.Join(tmp, "outside")
	for _, d := range []string{filepath.Join(root, "talks"), outside} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			f.Fatal(err)
		}
	}
	for _, p := range []string{filepath.Join(root, "a.mp4"), filepath.Join(root, "talks", "b.mp4"), filepath.Join(outside, "secret.mp4")} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			f.Fatal(err)
		}
	}
	if err := os.Symlink(filepath.Join(outside, "secret.mp4"), filepath.Join(root, "escape.mp4")); err != nil {
		f.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "a.mp4"), filepath.Join(root, "alias.mp4")); err != nil {
		f.Fatal(err)
	}
	realRoot, err := filepath.EvalSymlinks(root)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{
		"rtmp://cam.example/live/key", "rtsp://admin:pw@10.0.0.9:554/s", "srt://127.0.0.1:9000?mode=caller&passphrase=x",
		"https://origin.example/live/master.m3u8", "a.mp4", "talks/b.mp4", "./talks/../a.mp4", "alias.mp4", "escape.mp4",
		"../outside/secret.mp4", "/etc/passwd", "file:///etc/passwd", "concat:a.mp4|b.mp4", "-i", "a.mp4 -f null",
		"subfile,,start,0,end,0,,:a.mp4", "rtmp:///x", "rtmp://[::1]:1935/x", "data:,x", "", "talks", "a.mp4\x00",
		"rtsp://cam/s?a=1&transport=udp&b=%20#f", "rtsp://cam/s?%74ransport=tcp", "rtsp://cam/s#?transport=x", "rtsp://u:transport@cam/s?transport=udp",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		s, err := Parse(raw, root)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrInvalid", raw, err)
			}
			return
		}
		if s.URL == "" || strings.HasPrefix(s.URL, "-") || strings.ContainsFunc(s.URL, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
			t.Fatalf("Parse(%q) accepted URL %q", raw, s.URL)
		}
		if s.Kind == File {
			rel, err := filepath.Rel(realRoot, s.URL)
			if s.Live || err != nil || !filepath.IsAbs(s.URL) || rel == ".." || strings.HasPrefix(rel, "../") {
				t.Fatalf("Parse(%q) = %+v: a file outside the root %s", raw, s, realRoot)
			}
			if fi, err := os.Lstat(s.URL); err != nil || !fi.Mode().IsRegular() {
				t.Fatalf("Parse(%q) = %q, not a regular file: %v", raw, s.URL, err)
			}
			return
		}
		u, err := url.Parse(s.URL)
		if err != nil || !s.Live || u.Hostname() == "" {
			t.Fatalf("Parse(%q) = %+v (%v)", raw, s, err)
		}
		// The URL is raw, but for an RTSP source's own ?transport=, which is taken
		// out: ffmpeg would hand it to the camera.
		given, _ := url.Parse(raw)
		switch {
		case s.Kind != RTSP && (s.URL != raw || s.Transport != ""):
			t.Fatalf("Parse(%q) = %+v: a non-RTSP URL changed, or has a transport", raw, s)
		case s.Kind == RTSP && transports[string(s.Transport)] != s.Transport:
			t.Fatalf("Parse(%q): transport %q", raw, s.Transport)
		case s.Kind == RTSP && u.Query().Has(TransportParam):
			t.Fatalf("Parse(%q) = %q keeps ?%s=", raw, s.URL, TransportParam)
		case s.Kind == RTSP && !given.Query().Has(TransportParam) && s.URL != raw:
			t.Fatalf("Parse(%q) = %q, changed without a ?%s=", raw, s.URL, TransportParam)
		}
		if kind, ok := schemes[strings.ToLower(u.Scheme)]; !ok || kind != s.Kind {
			t.Fatalf("Parse(%q): scheme %q gave kind %q", raw, u.Scheme, s.Kind)
		}
		if pw, ok := u.User.Password(); ok && pw != "" && !strings.Contains(Mask, pw) && strings.Contains(s.Display, pw) {
			t.Fatalf("Parse(%q): Display %q shows the password", raw, s.Display)
		}
	})
}
