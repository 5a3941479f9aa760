package cpucap

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// TestPressure reads fake /proc/stat and cgroup cpu.stat files through a few windows.
func TestPressure(t *testing.T) {
	dir := t.TempDir()
	p := &Pressure{procStat: filepath.Join(dir, "stat"), cgroupStat: filepath.Join(dir, "cpu.stat")}
	write := func(name, text string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// user nice system idle iowait irq softirq steal guest guest_nice
	box := func(busy, idle int) string {
		return "cpu  " + strconv.Itoa(busy) + " 0 0 " + strconv.Itoa(idle) + " 0 0 0 0 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"
	}
	cgroup := func(periods, throttled int) string {
		return "nr_periods " + strconv.Itoa(periods) + "\nnr_throttled " + strconv.Itoa(throttled) + "\nthrottled_time 123\n"
	}
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	write("stat", box(100, 100))
	write("cpu.stat", cgroup(10, 0))
	if _, ok := p.Sample(t0); ok {
		t.Fatal("a load from one reading")
	}
	steps := []struct {
		name    string
		after   time.Duration
		stat    string
		cpuStat string
		want    Load
		short   bool
		fails   bool // no load can be read
	}{
		{"half busy, quota never ran out", 5 * time.Second, box(200, 200), cgroup(60, 0), Load{Throttled: 0, Busy: 0.5}, false, false},
		{"within half a second: the same figures", 5*time.Second + 400*time.Millisecond, box(1000, 200), cgroup(61, 1), Load{Throttled: 0, Busy: 0.5}, false, false},
		{"quota ran out in 40 of 50 periods", 10 * time.Second, box(300, 300), cgroup(110, 40), Load{Throttled: 0.8, Busy: 0.5}, true, false},
		{"quota ran out in 10 of 50 periods: bursts", 12 * time.Second, box(400, 400), cgroup(160, 50), Load{Throttled: 0.2, Busy: 0.5}, false, false},
		{"every core busy", 15 * time.Second, box(600, 405), cgroup(210, 50), Load{Throttled: 0, Busy: 200.0 / 205}, true, false},
		{"the cgroup is gone: never throttled", 20 * time.Second, box(700, 505), "", Load{Throttled: 0, Busy: 0.5}, false, false},
		{"no /proc/stat", 25 * time.Second, "", "", Load{}, false, true},
	}
	for _, s := range steps {
		if s.stat == "" {
			os.Remove(filepath.Join(dir, "stat"))
		} else {
			write("stat", s.stat)
		}
		if s.cpuStat == "" {
			os.Remove(filepath.Join(dir, "cpu.stat"))
		} else {
			write("cpu.stat", s.cpuStat)
		}
		got, ok := p.Sample(t0.Add(s.after))
		if ok && !got.Capped {
			t.Errorf("%s: not capped, with a cgroup", s.name)
		}
		if ok == s.fails || !near(got.Throttled, s.want.Throttled) || !near(got.Busy, s.want.Busy) || got.Short() != s.short {
			t.Errorf("%s: %+v (%v), ok %v, short %v; want %+v, short %v", s.name, got, got, ok, got.Short(), s.want, s.short)
		}
	}
}

// TestPressureHere reads this machine's real files.
func TestPressureHere(t *testing.T) {
	p := NewPressure(nil)
	time.Sleep(1100 * time.Millisecond)
	l, ok := p.Sample(time.Now())
	if !ok {
		t.Fatal("no load from /proc/stat")
	}
	if l.Busy < 0 || l.Busy > 1 || l.Throttled != 0 || l.Capped {
		t.Errorf("load %+v", l)
	}
	t.Log(l)
}

func TestProcStatCPU(t *testing.T) {
	tests := []struct {
		text        string
		busy, total uint64
		ok          bool
	}{
		{"cpu  10 1 5 80 4 0 0 0 0 0\n", 16, 100, true},
		{"cpu  10 1 5 80 4 2 3 5\n", 26, 110, true},
		{"cpu  10 1 5 80\n", 16, 96, true},
		{"cpu0 10 1 5 80 4\n", 0, 0, false},
		{"cpu  10 x 5 80 4\n", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		busy, total, err := procStatCPU([]byte(tc.text))
		if (err == nil) != tc.ok || busy != tc.busy || total != tc.total {
			t.Errorf("%q: %d %d %v", tc.text, busy, total, err)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-9 && b-a < 1e-9 }
