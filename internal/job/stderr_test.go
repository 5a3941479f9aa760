package job

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestStderrLogRateLimit(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	s := newStderrLog(zerolog.New(&buf), func() time.Time { return now })
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
