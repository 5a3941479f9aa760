package job

import (
	"bytes"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// stderrLog logs ffmpeg's stderr line by line, at most burst lines per period: a source
// with broken timestamps can make ffmpeg print thousands of lines a second. What it
// drops it counts, and says so when it logs again.
type stderrLog struct {
	log    zerolog.Logger
	now    func() time.Time
	redact func(string) string // masks the source's secrets (source.Redactor)
	burst  int
	period time.Duration

	mu      sync.Mutex
	partial []byte
	window  time.Time
	n       int
	dropped int
}

func newStderrLog(log zerolog.Logger, now func() time.Time, redact func(string) string) *stderrLog {
	return &stderrLog{log: log, now: now, redact: redact, burst: 10, period: 10 * time.Second}
}

func (s *stderrLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.partial = append(s.partial, p...)
	for {
		i := bytes.IndexAny(s.partial, "\r\n")
		if i < 0 {
			break
		}
		line := string(bytes.TrimSpace(s.partial[:i]))
		s.partial = s.partial[i+1:]
		if line != "" {
			s.line(line)
		}
	}
	if len(s.partial) > 4096 { // no newline in sight: log what there is
		s.line(string(s.partial))
		s.partial = s.partial[:0]
	}
	return len(p), nil
}

func (s *stderrLog) line(line string) {
	now := s.now()
	if now.Sub(s.window) >= s.period {
		if s.dropped > 0 {
			s.log.Warn().Int("dropped", s.dropped).Msg("ffmpeg stderr: lines dropped by rate limit")
		}
		s.window, s.n, s.dropped = now, 0, 0
	}
	if s.n >= s.burst {
		s.dropped++
		return
	}
	s.n++
	if len(line) > 1024 {
		line = line[:1024]
	}
	s.log.Warn().Str("stderr", s.redact(line)).Msg("ffmpeg")
}
