package job

import (
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/backoff"
)

// TestStallLimits holds issue 16's target for a hung live ffmpeg: seen within three
// segments, a beat included, but not before it has missed two progress reports. A file
// job keeps the old, patient limits.
func TestStallLimits(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		seg                     time.Duration
		live                    bool
		running, starting, hung time.Duration
	}{
		{"live 1s segments", time.Second, true, 8 * time.Second, 30 * time.Second, 2 * time.Second},
		{"live 2s segments", 2 * time.Second, true, 8 * time.Second, 30 * time.Second, 5 * time.Second},
		{"live 500ms segments: two reports", 500 * time.Millisecond, true, 8 * time.Second, 30 * time.Second, 2 * time.Second},
		{"live 10s segments", 10 * time.Second, true, 40 * time.Second, 40 * time.Second, 29 * time.Second},
		{"file", 2 * time.Second, false, 8 * time.Second, 30 * time.Second, 8 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			running, starting, hung := stallLimits(tc.seg, tc.live)
			if running != tc.running || starting != tc.starting || hung != tc.hung {
				t.Errorf("stallLimits(%v, %v) = %v, %v, %v; want %v, %v, %v", tc.seg, tc.live, running, starting, hung, tc.running, tc.starting, tc.hung)
			}
			if tc.live && hung+checkInterval > max(3*tc.seg, 3*time.Second) {
				t.Errorf("a hang is seen after up to %v, more than three segments", hung+checkInterval)
			}
		})
	}
}

// TestRetryWait: a live source is tried again about every second for the first two
// minutes of an outage, then less and less often, up to slowRetry; once segments flowed
// the next try comes at once.
func TestRetryWait(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	bo := backoff.New()
	bo.Min, bo.Jitter = liveRetryMin, 0
	r := &runner{live: true, bo: bo, gone: now, deps: deps{now: func() time.Time { return now }}}
	var waits []time.Duration
	for now.Sub(r.gone) < fastRetryFor {
		w := r.retryWait(0)
		waits = append(waits, w)
		if w > fastRetry {
			t.Fatalf("wait %v after an outage of %v, want at most %v", w, now.Sub(r.gone), fastRetry)
		}
		now = now.Add(w + 200*time.Millisecond) // the failed try itself
	}
	if waits[0] != liveRetryMin || len(waits) < 60 {
		t.Errorf("waits %v: want %v first, then about a second", waits[:min(len(waits), 8)], liveRetryMin)
	}
	var last time.Duration
	for range 10 {
		last = r.retryWait(0)
		now = now.Add(last)
	}
	if last != slowRetry {
		t.Errorf("after a long outage the wait is %v, want %v", last, slowRetry)
	}
	r.bo.Reset() // what loop does once segments flowed
	r.gone = now
	if w := r.retryWait(0); w != liveRetryMin {
		t.Errorf("after segments flowed the wait is %v, want %v", w, liveRetryMin)
	}
}
