package job

import (
	"testing"
	"time"
)

// TestRunsOfAnEpoch: a fleet job's runs are numbered from its epoch × epochRuns, so a
// box running it at a later epoch never writes a name an earlier epoch's box could.
func TestRunsOfAnEpoch(t *testing.T) {
	now := time.Unix(1_790_000_000, 0)
	clock := func() time.Time { return now }
	tests := []struct {
		name  string
		epoch uint64
		prev  uint64 // the run restored from the checkpoint
		want  uint64
	}{
		{name: "single box", epoch: 0, want: 1_790_000_000},
		{name: "first epoch", epoch: 1, want: 11_790_000_000},
		{name: "moved: above the earlier epoch's runs", epoch: 2, prev: 11_790_000_005, want: 21_790_000_000},
		{name: "same epoch again: after its last run", epoch: 2, prev: 21_790_000_007, want: 21_790_000_008},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			x := newIndex(true, time.Second, time.Minute, clock)
			x.epoch, x.run = tt.epoch, tt.prev
			x.beginAttempt()
			if x.run != tt.want {
				t.Errorf("run = %d, want %d", x.run, tt.want)
			}
		})
	}
}
