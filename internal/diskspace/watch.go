package diskspace

import (
	"context"
	"time"
)

// DefaultInterval is how often a Watcher measures when its Interval is zero: a live job
// writes a few megabytes a second, so a reserve of a gigabyte or more is not crossed
// unseen between two checks.
const DefaultInterval = 5 * time.Second

// Status is what a Watcher reports.
type Status struct {
	Low     bool   // free space is below the reserve (see Watcher.Margin for the way back)
	Free    uint64 // bytes free at the check; 0 when Err
	Reserve uint64
	Err     error // the check failed; Low keeps its last value
}

// Watcher measures the free space of the file system holding Path every Interval and
// reports when it falls below Reserve and when it is back above it.
type Watcher struct {
	Path    string
	Reserve uint64
	// Margin is how far above Reserve free space must climb before the watcher reports
	// it back, so that a disk hovering at the reserve does not flap: Reserve/20 (5 %)
	// when zero; set it to 1 for none.
	Margin uint64
	// Interval between checks; DefaultInterval when zero.
	Interval time.Duration

	// Ticks, when not nil, replaces the ticker of Interval: the watcher checks once at
	// the start, then once per value received. Tests drive it; so could a caller that
	// wants a check after each segment.
	Ticks <-chan time.Time
	// FreeFunc replaces Free (tests).
	FreeFunc func(path string) (uint64, error)
}

// Run checks at once and then at each tick until ctx ends, and calls fn (on Run's
// goroutine) with the first check's status, and afterwards each time Low changes or a
// check fails where the one before did not. It returns when ctx ends.
func (w *Watcher) Run(ctx context.Context, fn func(Status)) {
	ticks := w.Ticks
	if ticks == nil {
		interval := w.Interval
		if interval <= 0 {
			interval = DefaultInterval
		}
		t := time.NewTicker(interval)
		defer t.Stop()
		ticks = t.C
	}
	free := w.FreeFunc
	if free == nil {
		free = Free
	}
	margin := w.Margin
	if margin == 0 {
		margin = w.Reserve / 20
	}
	var last Status
	for first := true; ; first = false {
		s := Status{Reserve: w.Reserve, Low: last.Low}
		s.Free, s.Err = free(w.Path)
		if s.Err == nil {
			switch {
			case s.Free < w.Reserve:
				s.Low = true
			case s.Free >= w.Reserve+margin:
				s.Low = false
			}
		}
		if first || s.Low != last.Low || (s.Err != nil && last.Err == nil) {
			fn(s)
		}
		last = s
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}
