package ingest

import (
	"sync"
	"time"
)

// Failures from one address the hub tolerates before it refuses that address for a
// while: a key is 128 bits, so this is for the logs and the CPU, not for the key.
const (
	maxFailures = 10
	failWindow  = time.Minute
)

// limiter counts refused publishes per remote host.
type limiter struct {
	now  func() time.Time
	mu   sync.Mutex
	fail map[string][]time.Time
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fail: map[string][]time.Time{}}
}

// banned reports whether host failed maxFailures times within the last failWindow.
func (l *limiter) banned(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recentLocked(host)) >= maxFailures
}

// failed counts a refusal of host.
func (l *limiter) failed(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail[host] = append(l.recentLocked(host), l.now())
	if len(l.fail) > 10000 { // a flood of addresses: forget them rather than grow
		clear(l.fail)
	}
}

func (l *limiter) recentLocked(host string) []time.Time {
	t := l.fail[host]
	cut := l.now().Add(-failWindow)
	for len(t) > 0 && t[0].Before(cut) {
		t = t[1:]
	}
	if len(t) == 0 {
		delete(l.fail, host)
		return nil
	}
	if len(t) > maxFailures {
		t = t[len(t)-maxFailures:]
	}
	l.fail[host] = t
	return t
}
