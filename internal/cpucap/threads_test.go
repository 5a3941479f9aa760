package cpucap

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestThreads measures real processes: one that computes all the time has its thread
// ready all the time, also when a cgroup holds it to a tenth of a core (the time it is
// throttled counts as waiting for a CPU); one that mostly waits has not.
func TestThreads(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		unavailable(t, "no /proc")
	}
	tests := []struct {
		name   string
		script string
		cap    float64 // cores; 0: none
		bound  bool
	}{
		{"computes", "while :; do :; done", 0, true},
		{"computes under a cap of 0.1 core", "while :; do :; done", 0.1, true},
		{"waits for its input", "while :; do sleep 0.05; done", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c *Cap
			if tc.cap > 0 {
				if c = New(tc.cap, "/sys/fs/cgroup"); c.Mode() == "priority" {
					unavailable(t, "no writable cgroup (cgroup v2 cpu.max or v1 cpu.cfs_quota_us under /sys/fs/cgroup, as root)")
				}
			}
			cmd := exec.Command("sh", "-c", tc.script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
				if c != nil {
					_ = c.Close()
				}
			})
			if c != nil {
				if err := c.Attach(cmd.Process.Pid); err != nil {
					t.Fatal(err)
				}
			}
			th := NewThreads(cmd.Process.Pid)
			if _, ok := th.Busiest(time.Now()); ok {
				t.Error("a figure over less than half a second")
			}
			time.Sleep(1500 * time.Millisecond)
			busiest, ok := th.Busiest(time.Now())
			if !ok {
				unavailable(t, "the kernel keeps no schedstat figures (/proc/<pid>/task/<tid>/schedstat)")
			}
			t.Logf("busiest thread ready %.0f%% of the time", 100*busiest)
			if got := busiest >= SerialBound; got != tc.bound {
				t.Errorf("busiest thread ready %.2f of the time: held back by it %v, want %v", busiest, got, tc.bound)
			}
		})
	}
	t.Run("gone", func(t *testing.T) {
		th := &Threads{dir: filepath.Join(t.TempDir(), "task")}
		if _, ok := th.Busiest(time.Now()); ok {
			t.Error("a figure for a process that is not there")
		}
	})
}

// TestThreadsCount follows threads through a fake /proc/<pid>/task: a thread that
// appears between two calls counts from zero (ffmpeg starts its encoder threads after
// the first call), and a thread id used again does not make a negative figure.
func TestThreadsCount(t *testing.T) {
	dir := t.TempDir()
	set := func(tid string, run, wait float64) {
		t.Helper()
		p := filepath.Join(dir, tid)
		if err := os.MkdirAll(p, 0o755); err != nil {
			t.Fatal(err)
		}
		text := fmt.Sprintf("%d %d 7\n", int64(run*1e9), int64(wait*1e9))
		if err := os.WriteFile(filepath.Join(p, "schedstat"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	th := &Threads{dir: dir}
	set("100", 5, 1) // the main thread
	if _, ok := th.Busiest(t0); ok {
		t.Fatal("a figure from one call")
	}
	steps := []struct {
		name string
		do   func()
		want float64
	}{
		{"main thread 0.2 s in 2 s", func() { set("100", 5.3, 1.1) }, 0.2},
		{"an encoder thread started since, ready 1.8 s", func() { set("100", 5.5, 1.1); set("101", 1.2, 0.6) }, 0.9},
		{"its id used again by a new thread, ready 0.4 s", func() { set("101", 0.3, 0.1) }, 0.2},
	}
	for i, s := range steps {
		s.do()
		got, ok := th.Busiest(t0.Add(time.Duration(2*(i+1)) * time.Second))
		if !ok || got < s.want-1e-9 || got > s.want+1e-9 {
			t.Errorf("%s: busiest %.3f (ok %v), want %.3f", s.name, got, ok, s.want)
		}
	}
	// A kernel without the figures shows zeros.
	zero := &Threads{dir: t.TempDir()}
	if err := os.MkdirAll(filepath.Join(zero.dir, "1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(zero.dir, "1", "schedstat"), []byte("0 0 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	zero.Busiest(t0)
	if _, ok := zero.Busiest(t0.Add(2 * time.Second)); ok {
		t.Error("a figure where the kernel keeps none")
	}
}

func TestSchedstat(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		text string
		want threadTime
		ok   bool
	}{
		{"1500000000 250000000 42\n", threadTime{1.5, 0.25}, true},
		{"0 0 0\n", threadTime{}, true},
		{"1500000000\n", threadTime{}, false},
		{"x 1 2\n", threadTime{}, false},
		{"", threadTime{}, false},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, "schedstat")
		if err := os.WriteFile(p, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := schedstat(p)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("%q: %+v %v", tc.text, got, err)
		}
	}
}
