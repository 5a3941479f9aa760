package diskspace

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// watch runs w until the test ends and returns its reports and the ticks to drive it.
func watch(t *testing.T, w *Watcher) (chan<- time.Time, <-chan Status) {
	t.Helper()
	ticks, reports := make(chan time.Time), make(chan Status, 16)
	w.Ticks = ticks
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx, func(s Status) { reports <- s })
	}()
	t.Cleanup(func() { cancel(); <-done })
	return ticks, reports
}

func next(t *testing.T, reports <-chan Status) Status {
	t.Helper()
	select {
	case s := <-reports:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no report in 10 s")
		return Status{}
	}
}

// TestWatcherTmpfs fills a real 8 MiB tmpfs past a 4 MiB reserve and empties it again:
// the watcher reports the start, the fall below the reserve and the way back, and
// nothing for a check that changes nothing.
func TestWatcherTmpfs(t *testing.T) {
	dir := tmpfs(t, 8<<20)
	ticks, reports := watch(t, &Watcher{Path: dir, Reserve: 4 << 20})
	if s := next(t, reports); s.Low || s.Free != 8<<20 || s.Err != nil {
		t.Fatalf("first report %+v, want not low with 8 MiB free", s)
	}
	big := filepath.Join(dir, "big")
	fill(t, big, 5<<20)
	ticks <- time.Time{}
	if s := next(t, reports); !s.Low || s.Free != 3<<20 || s.Reserve != 4<<20 {
		t.Fatalf("report after filling %+v, want low with 3 MiB free", s)
	}
	ticks <- time.Time{} // still low: no report (the next one read must be the way back)
	if err := os.Remove(big); err != nil {
		t.Fatal(err)
	}
	ticks <- time.Time{}
	if s := next(t, reports); s.Low || s.Free != 8<<20 {
		t.Fatalf("report after emptying %+v, want not low with 8 MiB free", s)
	}
}

// TestWatcherMargin: back above the reserve only past the margin, and errors reported
// once, keeping the last state.
func TestWatcherMargin(t *testing.T) {
	const reserve = 1000
	errStat := errors.New("statfs failed")
	for _, tc := range []struct {
		name   string
		margin uint64
		free   []uint64 // 0 is a failed check
		want   []string
	}{
		{name: "default margin 5 %", free: []uint64{2000, 999, 1000, 1049, 1050, 999},
			want: []string{"ok 2000", "low 999", "ok 1050", "low 999"}},
		{name: "margin 1", margin: 1, free: []uint64{500, 1000, 1001, 999},
			want: []string{"low 500", "ok 1001", "low 999"}},
		{name: "errors", free: []uint64{500, 0, 0, 600, 0, 2000},
			want: []string{"low 500", "err low", "err low", "ok 2000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			i := 0
			free := func(string) (uint64, error) {
				n := tc.free[min(i, len(tc.free)-1)]
				i++
				if n == 0 {
					return 0, errStat
				}
				return n, nil
			}
			ticks, reports := watch(t, &Watcher{Reserve: reserve, Margin: tc.margin, FreeFunc: free})
			var got []string
			read := func() {
				for {
					select {
					case s := <-reports:
						got = append(got, describe(s))
					default:
						return
					}
				}
			}
			for range len(tc.free) - 1 {
				ticks <- time.Time{}
			}
			ticks <- time.Time{} // the last check's report is in the channel once this tick is taken
			read()
			if len(got) != len(tc.want) {
				t.Fatalf("reports %q, want %q", got, tc.want)
			}
			for k := range got {
				if got[k] != tc.want[k] {
					t.Errorf("reports %q, want %q", got, tc.want)
					break
				}
			}
		})
	}
}

func describe(s Status) string {
	switch {
	case s.Err != nil && s.Low:
		return "err low"
	case s.Err != nil:
		return "err ok"
	case s.Low:
		return "low " + itoa(s.Free)
	}
	return "ok " + itoa(s.Free)
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
