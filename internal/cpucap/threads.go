package cpucap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// SerialBound is the share of the time a process's busiest thread must be ready to run
// for the process to count as held back by that thread: one stage (decoding and scaling,
// say) that one core cannot carry, however many cores are free.
const SerialBound = 0.9

// Threads watches how busy the threads of one process are, from the scheduler's account
// of each (/proc/<pid>/task/<tid>/schedstat): the time a thread ran, and the time it was
// ready to run but waited for a CPU. A thread that always has work is ready nearly all
// the time; one that waits for something else, such as its input, sleeps.
type Threads struct {
	dir  string                // /proc/<pid>/task
	last map[string]threadTime // by thread id, at the last call
	at   time.Time             // the last call
}

type threadTime struct{ run, wait float64 } // seconds

// NewThreads starts watching the threads of pid.
func NewThreads(pid int) *Threads {
	t := &Threads{dir: filepath.Join("/proc", strconv.Itoa(pid), "task")}
	t.Busiest(time.Now())
	return t
}

// Busiest returns the share of the time since the last call that the busiest thread of
// the process was ready to run (running or waiting for a CPU): 0 to 1, a little over
// with rounding. ok is false on the first call, when less than half a second has
// passed, and where the kernel keeps no schedstat figures.
func (t *Threads) Busiest(now time.Time) (busiest float64, ok bool) {
	tids, err := os.ReadDir(t.dir)
	if err != nil {
		return 0, false
	}
	cur := make(map[string]threadTime, len(tids))
	var ran bool // some thread has run at all: the kernel keeps the figures
	dt := now.Sub(t.at).Seconds()
	for _, e := range tids {
		c, err := schedstat(filepath.Join(t.dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread has exited
		}
		cur[e.Name()] = c
		ran = ran || c.run > 0
		p, seen := t.last[e.Name()]
		if !seen || c.run < p.run || c.wait < p.wait {
			p = threadTime{} // started since the last call (or a new thread with an old id)
		}
		if dt > 0 {
			busiest = max(busiest, (c.run+c.wait-p.run-p.wait)/dt)
		}
	}
	ok = t.last != nil && dt >= 0.5 && ran
	t.last, t.at = cur, now
	return busiest, ok
}

// schedstat reads a thread's time on a CPU and time waiting for one.
func schedstat(path string) (threadTime, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return threadTime{}, err
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return threadTime{}, fmt.Errorf("%s: %q: want run time, wait time and timeslices", path, b)
	}
	r, err1 := strconv.ParseUint(string(f[0]), 10, 64)
	w, err2 := strconv.ParseUint(string(f[1]), 10, 64)
	if err1 != nil || err2 != nil {
		return threadTime{}, fmt.Errorf("%s: %q: want nanoseconds", path, b)
	}
	return threadTime{float64(r) / 1e9, float64(w) / 1e9}, nil
}
