package job

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

func TestStderrLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	s := newStderrLog(zerolog.New(&buf), func() time.Time { return now }, func(l string) string { return l })
	for i := 0; i < 100; i++ {
		_, _ = s.Write([]byte("Non-monotonic DTS\n"))
	}
	if got := strings.Count(buf.String(), "Non-monotonic"); got != 10 {
		t.Fatalf("logged %d lines in one period, want 10", got)
	}
	now = now.Add(11 * time.Second)
	_, _ = s.Write([]byte("partial "))
	_, _ = s.Write([]byte("line\r\n"))
	out := buf.String()
	if !strings.Contains(out, `"dropped":90`) || !strings.Contains(out, `"stderr":"partial line"`) {
		t.Fatalf("after the period: %s", out)
	}
}

// TestStderrMasksSource checks that a source's password, which ffmpeg prints in its
// errors, reaches neither the log nor the tail that events and the API show.
func TestStderrMasksSource(t *testing.T) {
	src := "rtsp://admin:hunter2@10.0.0.9:554/stream1"
	redact := source.Redactor(src)
	var buf bytes.Buffer
	log := newStderrLog(zerolog.New(&buf), time.Now, redact)
	tail := supervise.NewTail(5)
	tail.SetRedactor(redact)
	line := "[rtsp @ 0x55d0] method DESCRIBE failed: 401 Unauthorized\n" + src + ": Server returned 401 Unauthorized (authorization failed)\n"
	for _, w := range []interface{ Write([]byte) (int, error) }{log, tail} {
		if _, err := w.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	shown := strings.Join(tail.Lines(), "\n") + tail.Last() + buf.String()
	if strings.Contains(shown, "hunter2") {
		t.Fatalf("the password shows: %s", shown)
	}
	if want := "rtsp://admin:xxxxx@10.0.0.9:554/stream1: Server returned 401"; !strings.Contains(tail.Last(), want) || !strings.Contains(buf.String(), want) {
		t.Errorf("tail %q, log %s: want %q in both", tail.Last(), buf.String(), want)
	}
}
