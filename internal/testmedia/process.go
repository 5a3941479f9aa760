package testmedia

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireFFmpeg skips the test when ffmpeg or ffprobe is not on PATH, or
// fails it when the environment variable CI is set, so that a CI run cannot
// pass by skipping what it was meant to check.
func RequireFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found: %v (CI is set, so this is a failure, not a skip)", tool, err)
				return
			}
			t.Skipf("%s not found: %v; skipping (set CI to make this fail)", tool, err)
			return
		}
	}
}

// groupCommand returns a command that runs name in a process group of its
// own, gets SIGKILL if the thread that started it dies (so a crashed test
// binary leaves nothing behind), and whose whole group is killed when ctx
// ends. started, when not nil, is told each process ID, which is also its
// process group ID.
func groupCommand(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.SysProcAttr = groupAttr()
	cmd.Cancel = func() error {
		// exec calls Cancel only while the process has not been waited
		// for, so the group ID cannot have been reused yet.
		err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		if errors.Is(err, syscall.ESRCH) {
			return os.ErrProcessDone
		}
		return err
	}
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// tail keeps the last bytes written to it: the end of a child's stderr.
type tail struct {
	mu  sync.Mutex
	buf []byte
}

const tailMax = 4 << 10

func (w *tail) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > tailMax {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-tailMax:]...)
	}
	return len(p), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}

// pidSet records the process IDs a source started, so its tests can prove
// that none outlives it.
type pidSet struct {
	mu   sync.Mutex
	pids []int
}

func (p *pidSet) add(pid int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.pids = append(p.pids, pid)
}

func (p *pidSet) list() []int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]int(nil), p.pids...)
}
