package cpucap

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"
)

// Pressure tells whether the jobs as a whole are short of CPU: the cap's cgroup ran out
// of its quota in many scheduling periods, or every core of the box was busy. A job
// slower than real time then is slow for want of CPU; one slower than real time while
// the box has room waits for something else, such as its source (unless one of its
// threads cannot keep up on its own: Threads). Safe for concurrent use: every job reads
// the same figures, refreshed at most twice a second.
type Pressure struct {
	cgroupStat string // the cap's cpu.stat; "" without a cgroup
	procStat   string // /proc/stat

	mu   sync.Mutex
	at   time.Time
	last counters
	load Load
	ok   bool
}

// Load is the CPU pressure over the last window.
type Load struct {
	Capped    bool    // the jobs run in the cap's cgroup
	Throttled float64 // share of the cgroup's scheduling periods in which its quota ran out
	Busy      float64 // share of the box's CPU time that was busy
}

// Short tells whether the jobs are short of CPU.
// A quarter of the periods is enough: a cgroup over its quota runs out in every period,
// and a window may begin before the job slowed down.
func (l Load) Short() bool { return l.Throttled >= 0.25 || l.Busy >= 0.95 }

func (l Load) String() string {
	box := fmt.Sprintf("the box was %.0f%% busy", 100*l.Busy)
	if !l.Capped {
		return box
	}
	return fmt.Sprintf("the CPU cap's quota ran out in %.0f%% of periods, %s", 100*l.Throttled, box)
}

type counters struct {
	periods, throttled uint64 // cgroup
	busy, total        uint64 // box, in clock ticks
}

// NewPressure watches the box and, when c runs ffmpeg in a cgroup, that cgroup. c may
// be nil.
func NewPressure(c *Cap) *Pressure {
	p := &Pressure{procStat: "/proc/stat"}
	if c != nil && c.group != "" {
		p.cgroupStat = filepath.Join(c.group, "cpu.stat")
	}
	p.Sample(time.Now())
	return p
}

// Sample returns the load over the window before now: since the last refresh, which
// happens when half a second or more has passed. ok is false until two readings exist,
// or when /proc/stat cannot be read.
func (p *Pressure) Sample(now time.Time) (Load, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.at.IsZero() && now.Sub(p.at) < 500*time.Millisecond {
		return p.load, p.ok
	}
	cur, err := p.read()
	if err != nil {
		p.ok = false
		return Load{}, false
	}
	if !p.at.IsZero() {
		p.load, p.ok = loadBetween(p.last, cur), true
		p.load.Capped = p.cgroupStat != ""
	}
	p.last, p.at = cur, now
	return p.load, p.ok
}

func loadBetween(a, b counters) Load {
	var l Load
	if b.periods > a.periods && b.throttled >= a.throttled {
		l.Throttled = float64(b.throttled-a.throttled) / float64(b.periods-a.periods)
	}
	if b.total > a.total && b.busy >= a.busy {
		l.Busy = float64(b.busy-a.busy) / float64(b.total-a.total)
	}
	return l
}

func (p *Pressure) read() (counters, error) {
	var c counters
	b, err := os.ReadFile(p.procStat)
	if err != nil {
		return c, err
	}
	if c.busy, c.total, err = procStatCPU(b); err != nil {
		return c, fmt.Errorf("%s: %w", p.procStat, err)
	}
	if p.cgroupStat != "" {
		// Both cgroup versions count nr_periods and nr_throttled. A cgroup that is gone
		// counts as never throttled.
		if b, err := os.ReadFile(p.cgroupStat); err == nil {
			c.periods, c.throttled = statField(b, "nr_periods"), statField(b, "nr_throttled")
		}
	}
	return c, nil
}

// procStatCPU reads the "cpu" line of /proc/stat: busy and total clock ticks of all CPUs.
// Idle and iowait are not busy; guest time is already counted in user time.
func procStatCPU(b []byte) (busy, total uint64, err error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := bytes.Fields(line)
	if len(f) < 5 || string(f[0]) != "cpu" {
		return 0, 0, fmt.Errorf("first line %q: want the cpu totals", line)
	}
	for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
		v, err := strconv.ParseUint(string(s), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("first line %q: %w", line, err)
		}
		total += v
		if i != 3 && i != 4 {
			busy += v
		}
	}
	return busy, total, nil
}

// statField returns the value of a "name value" line of a cgroup stat file, 0 if absent.
func statField(b []byte, name string) uint64 {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == name {
			n, _ := strconv.ParseUint(string(v), 10, 64)
			return n
		}
	}
	return 0
}
