// Package backoff computes how long to wait before retrying something that failed:
// exponential growth with jitter, capped, and reset once the thing has run stably.
// It takes its clock and randomness from the caller, so tests never sleep.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Backoff is not safe for concurrent use; each supervised thing owns one.
type Backoff struct {
	Min    time.Duration  // first delay (500ms)
	Max    time.Duration  // cap (30s)
	Stable time.Duration  // a run at least this long resets the delay to Min (60s)
	Jitter float64        // the delay is scaled by a random factor in [1-Jitter, 1+Jitter] (0.2)
	Rand   func() float64 // in [0,1); nil uses math/rand/v2

	next time.Duration
}

// New returns a Backoff with the defaults above.
func New() *Backoff {
	return &Backoff{Min: 500 * time.Millisecond, Max: 30 * time.Second, Stable: time.Minute, Jitter: 0.2}
}

// Next returns the delay before the next try, given how long the last try ran.
func (b *Backoff) Next(ran time.Duration) time.Duration {
	if b.next == 0 || (b.Stable > 0 && ran >= b.Stable) {
		b.next = b.Min
	}
	d := b.next
	b.next *= 2
	if b.next > b.Max {
		b.next = b.Max
	}
	if b.Jitter > 0 {
		r := rand.Float64
		if b.Rand != nil {
			r = b.Rand
		}
		d = time.Duration(float64(d) * (1 - b.Jitter + 2*b.Jitter*r()))
	}
	return d
}

// Reset makes the next delay Min again.
func (b *Backoff) Reset() { b.next = 0 }
