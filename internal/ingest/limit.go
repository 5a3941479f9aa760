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
	// maxHosts bounds the addresses the limiter remembers, failing and banned: beyond
	// it, the one whose last failure (or ban) is oldest is forgotten.
	maxHosts = 10000
)

// limiter counts refused publishes per remote host. maxFailures within failWindow
// ban the host for failWindow from the last of them.
type limiter struct {
	now   func() time.Time
	mu    sync.Mutex
	fail  map[string][]time.Time
	until map[string]time.Time // banned hosts, until when
}

func newLimiter(now func() time.Time) *limiter {
	return &limiter{now: now, fail: map[string][]time.Time{}, until: map[string]time.Time{}}
}

// banned reports whether host is banned now.
func (l *limiter) banned(host string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.until[host]
	if ok && !l.now().Before(t) {
		delete(l.until, host)
		ok = false
	}
	return ok
}

// failed counts a refusal of host.
func (l *limiter) failed(host string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	t := append(l.recentLocked(host), now)
	if len(t) < maxFailures {
		l.fail[host] = t
		evictOldest(l.fail, func(t []time.Time) time.Time { return t[len(t)-1] })
		return
	}
	delete(l.fail, host)
	l.until[host] = now.Add(failWindow)
	evictOldest(l.until, func(t time.Time) time.Time { return t })
}

// evictOldest forgets the entry of m whose time is oldest when m holds more than
// maxHosts (a flood of addresses): m stays bounded, and the others are kept.
func evictOldest[V any](m map[string]V, at func(V) time.Time) {
	if len(m) <= maxHosts {
		return
	}
	var oldest string
	var first time.Time
	for h, v := range m {
		if t := at(v); oldest == "" || t.Before(first) {
			oldest, first = h, t
		}
	}
	delete(m, oldest)
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
	l.fail[host] = t
	return t
}
