package cpucap

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Threads tells whether one process is short of CPU, from the scheduler's account of
// each of its threads (/proc/<pid>/task/<tid>/schedstat): the time a thread ran, and
// the time it was ready to run but waited for a CPU, because the cgroup's quota was
// spent or other processes held every core.
type Threads struct {
	dir  string                // /proc/<pid>/task
	last map[string]threadTime // by thread id, at the last call
	at   time.Time             // the last call
}

type threadTime struct{ run, wait float64 } // seconds

// Usage is what the threads of a process did between two calls of Threads.Sample.
type Usage struct {
	Run     float64 // cores: time on a CPU per wall-clock time, all threads together
	Wait    float64 // cores: time waiting for a CPU while ready to run, likewise
	Busiest float64 // share of the time the busiest thread was ready to run or running
}

// ShortOfCPU tells whether the process runs slower than it would with more CPU: its
// threads wait for a CPU a quarter as long as they run or more, and a quarter of a
// core at least (the cgroup's quota is spent, or other processes hold the cores), or
// one thread has work all the time (a stage that one core cannot carry). A process
// that waits for something else, such as its input, does neither: its threads sleep,
// and wait for a CPU only for a moment when they wake.
func (u Usage) ShortOfCPU() bool {
	return u.Wait >= max(0.25*u.Run, 0.25) || u.Busiest >= 0.9
}

func (u Usage) String() string {
	return fmt.Sprintf("its threads ran %.2f cores and waited %.2f for a CPU, the busiest ready %.0f%% of the time", u.Run, u.Wait, 100*u.Busiest)
}

// NewThreads starts watching the threads of pid.
func NewThreads(pid int) *Threads {
	t := &Threads{dir: filepath.Join("/proc", strconv.Itoa(pid), "task")}
	t.Sample(time.Now())
	return t
}

// Sample returns what the threads did since the last call. ok is false on the first
// call, when less than a second has passed, and where the kernel keeps no schedstat
// figures: the caller cannot tell then.
func (t *Threads) Sample(now time.Time) (u Usage, ok bool) {
	tids, err := os.ReadDir(t.dir)
	if err != nil {
		return Usage{}, false
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
		if !seen || dt <= 0 {
			continue // a new thread: from the next call
		}
		run, wait := c.run-p.run, c.wait-p.wait
		u.Run += run / dt
		u.Wait += wait / dt
		u.Busiest = max(u.Busiest, (run+wait)/dt)
	}
	ok = t.last != nil && dt >= 1 && ran
	t.last, t.at = cur, now
	return u, ok
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
