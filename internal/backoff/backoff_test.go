package backoff

import (
	"testing"
	"time"
)

func TestNext(t *testing.T) {
	b := &Backoff{Min: 500 * time.Millisecond, Max: 4 * time.Second, Stable: time.Minute}
	steps := []struct {
		ran  time.Duration
		want time.Duration
	}{
		{0, 500 * time.Millisecond},
		{time.Second, time.Second},
		{0, 2 * time.Second},
		{0, 4 * time.Second},
		{0, 4 * time.Second},                      // capped
		{2 * time.Minute, 500 * time.Millisecond}, // a stable run resets
		{0, time.Second},
	}
	for i, s := range steps {
		if got := b.Next(s.ran); got != s.want {
			t.Fatalf("step %d: Next(%v) = %v, want %v", i, s.ran, got, s.want)
		}
	}
	b.Reset()
	if got := b.Next(0); got != 500*time.Millisecond {
		t.Fatalf("after Reset: %v", got)
	}
}

func TestJitter(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    float64
		want time.Duration
	}{
		{"lowest", 0, 800 * time.Millisecond},
		{"middle", 0.5, time.Second},
		{"highest", 0.999999, 1200 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &Backoff{Min: time.Second, Max: time.Minute, Jitter: 0.2, Rand: func() float64 { return tc.r }}
			got := b.Next(0)
			if d := got - tc.want; d < -time.Millisecond || d > time.Millisecond {
				t.Fatalf("Next = %v, want %v", got, tc.want)
			}
		})
	}
}
