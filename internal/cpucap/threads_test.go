package cpucap

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestThreads measures real processes: one that computes all the time is short of CPU
// (and still is when a cgroup holds it to a tenth of a core), one that mostly waits is
// not.
func TestThreads(t *testing.T) {
	if _, err := os.Stat("/proc/self/task"); err != nil {
		t.Skip("no /proc")
	}
	tests := []struct {
		name   string
		script string
		cap    float64 // cores; 0: none
		short  bool
	}{
		{"computes", "while :; do :; done", 0, true},
		{"computes under a cap of 0.1 core", "while :; do :; done", 0.1, true},
		{"waits for its input", "while :; do sleep 0.05; done", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("sh", "-c", tc.script)
			cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			var c *Cap
			if tc.cap > 0 {
				if c = New(tc.cap, "/sys/fs/cgroup"); c.Mode() == "priority" {
					t.Skip("no writable cgroup")
				}
			}
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
			if _, ok := th.Sample(time.Now()); ok {
				t.Error("a figure over less than a second")
			}
			time.Sleep(1500 * time.Millisecond)
			u, ok := th.Sample(time.Now())
			if !ok {
				t.Skip("the kernel keeps no schedstat figures")
			}
			t.Logf("%v", u)
			if got := u.ShortOfCPU(); got != tc.short {
				t.Errorf("short of CPU: %v (%v), want %v", got, u, tc.short)
			}
		})
	}
	t.Run("gone", func(t *testing.T) {
		th := &Threads{dir: filepath.Join(t.TempDir(), "task")}
		if _, ok := th.Sample(time.Now()); ok {
			t.Error("a figure for a process that is not there")
		}
	})
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

func TestShortOfCPU(t *testing.T) {
	tests := []struct {
		name string
		u    Usage
		want bool
	}{
		{"idle", Usage{}, false},
		{"waits for its input", Usage{Run: 0.4, Wait: 0.02, Busiest: 0.3}, false},
		{"waits for its input, wakes often on a busy box", Usage{Run: 0.04, Wait: 0.06, Busiest: 0.03}, false},
		{"a little scheduling delay", Usage{Run: 1.5, Wait: 0.2, Busiest: 0.6}, false},
		{"throttled by the cgroup", Usage{Run: 0.6, Wait: 1.8, Busiest: 0.7}, true},
		{"neighbours hold the cores", Usage{Run: 0.8, Wait: 0.3, Busiest: 0.5}, true},
		{"one thread cannot keep up, cores to spare", Usage{Run: 1.2, Wait: 0.01, Busiest: 0.97}, true},
	}
	for _, tc := range tests {
		if got := tc.u.ShortOfCPU(); got != tc.want {
			t.Errorf("%s (%v): %v, want %v", tc.name, tc.u, got, tc.want)
		}
	}
}
