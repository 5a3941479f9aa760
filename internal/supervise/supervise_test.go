package supervise

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// The tests start this test binary again as the child (tailscale's way of faking a
// process): with $SUPERVISE_CHILD set, TestMain plays the child it names.
const childEnv = "SUPERVISE_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(childEnv); mode != "" {
		os.Exit(child(mode))
	}
	os.Exit(m.Run())
}

// child plays a child process; what it prints on stdout tells the test where it is.
func child(mode string) int {
	switch mode {
	case "lines": // 30 lines of stderr, the last without a newline, then exit 7
		for i := 1; i <= 30; i++ {
			fmt.Fprintf(os.Stderr, "line %d of rtmp://user:secret@cam\n", i)
		}
		fmt.Fprint(os.Stderr, "the end")
		return 7
	case "trap": // stops on SIGINT, as ffmpeg does: says so and exits 3
		ints := make(chan os.Signal, 1)
		signal.Notify(ints, syscall.SIGINT)
		fmt.Println("ready")
		<-ints
		fmt.Fprintln(os.Stderr, "interrupted")
		return 3
	case "ignore": // heeds no SIGINT (a hung ffmpeg)
		signal.Ignore(syscall.SIGINT)
		fmt.Println("ready")
		time.Sleep(time.Hour) // not select {}: with no goroutine left, the runtime would end it
		return 0
	case "family", "family-ignore": // starts a grandchild that heeds no SIGINT, then exits (or waits)
		g := exec.Command(os.Args[0])
		g.Env = append(os.Environ(), childEnv+"=ignore")
		if !started(g) {
			return 2
		}
		fmt.Printf("pid %d\n", g.Process.Pid)
		if mode == "family" {
			return 0
		}
		signal.Ignore(syscall.SIGINT)
		time.Sleep(time.Hour) // not select {}: with no goroutine left, the runtime would end it
		return 0
	case "supervisor": // starts a child as the daemon does, then waits to be killed
		p, err := Start(context.Background(), Spec{Path: os.Args[0], Env: []string{childEnv + "=ignore"}, PipeStdout: true})
		if err != nil || !ready(p.Stdout) {
			return 2
		}
		fmt.Printf("pid %d\n", p.Pid)
		time.Sleep(time.Hour) // not select {}: with no goroutine left, the runtime would end it
		return 0
	case "pipe3": // copies descriptor 3 to stdout
		_, _ = io.Copy(os.Stdout, os.NewFile(3, "pipe:3"))
		return 0
	case "env":
		fmt.Println(os.Getenv("SUPERVISE_X"))
		return 0
	case "burn": // uses 300 ms of CPU, then exits
		burn(300 * time.Millisecond)
		return 0
	}
	return 2
}

// started starts cmd with its stdout piped and waits until it prints "ready".
func started(cmd *exec.Cmd) bool {
	out, err := cmd.StdoutPipe()
	return err == nil && cmd.Start() == nil && ready(out)
}

func ready(r io.Reader) bool {
	line, err := bufio.NewReader(r).ReadString('\n')
	return err == nil && line == "ready\n"
}

// spec is a Spec that starts the child of mode.
func spec(mode string) Spec {
	return Spec{Path: os.Args[0], Env: []string{childEnv + "=" + mode}, PipeStdout: true}
}

// readPID reads the "pid N" line a child prints.
func readPID(t *testing.T, r io.Reader) int {
	t.Helper()
	var pid int
	if _, err := fmt.Fscanf(r, "pid %d\n", &pid); err != nil {
		t.Fatalf("no pid from the child: %v", err)
	}
	return pid
}

// waitGone fails the test unless pid exits within limit.
func waitGone(t *testing.T, pid int, limit time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for testmedia.Running(pid) {
		if time.Now().After(deadline) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("%s: process %d still runs after %v", what, pid, limit)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wait is p.Wait, failing the test when it takes more than a minute.
func wait(t *testing.T, p *Process) Result {
	t.Helper()
	done := make(chan Result, 1)
	go func() { done <- p.Wait() }()
	select {
	case r := <-done:
		return r
	case <-time.After(time.Minute):
		_ = syscall.Kill(-p.Pid, syscall.SIGKILL)
		_ = syscall.Kill(p.Pid, syscall.SIGKILL)
		t.Fatalf("process %d not waited for after a minute", p.Pid)
		return Result{}
	}
}

func TestExitCodeAndTail(t *testing.T) {
	s := spec("lines")
	s.TailLines = 3
	s.Redact = func(l string) string { return strings.ReplaceAll(l, "secret", "xxxxx") }
	r := Run(context.Background(), s)
	var ee *exec.ExitError
	if r.Code != 7 || !errors.As(r.Err, &ee) || r.Overran {
		t.Errorf("code %d, err %v, overran %v; want 7, an exit error, false", r.Code, r.Err, r.Overran)
	}
	want := []string{"line 29 of rtmp://user:xxxxx@cam", "line 30 of rtmp://user:xxxxx@cam", "the end"}
	if strings.Join(r.Tail, "|") != strings.Join(want, "|") || r.Last() != "the end" {
		t.Errorf("tail %q, want %q", r.Tail, want)
	}
}

// burn spins until this process has used d of CPU since it started.
func burn(d time.Duration) {
	var ru syscall.Rusage
	for {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
		if time.Duration(ru.Utime.Nano()+ru.Stime.Nano()) >= d {
			return
		}
	}
}

// TestCPU: Result.CPU is the processor time the child used, as its rusage says.
func TestCPU(t *testing.T) {
	r := Run(context.Background(), spec("burn"))
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	if r.CPU < 300*time.Millisecond || r.CPU > 2*time.Second {
		t.Errorf("cpu %v, want about 300ms (the child spun that long)", r.CPU)
	}
}

func TestStartFails(t *testing.T) {
	r := Run(context.Background(), Spec{Path: "/nonexistent/ffmpeg"})
	if r.Code != -1 || !errors.Is(r.Err, os.ErrNotExist) {
		t.Errorf("code %d, err %v; want -1 and the start's error", r.Code, r.Err)
	}
}

// TestStop: a child asked to stop gets SIGINT to its group. One that heeds it exits in
// its own way, with its own code, well before the grace ends; one that ignores it is
// killed at the end of the grace.
func TestStop(t *testing.T) {
	tests := []struct {
		name     string
		mode     string
		grace    time.Duration
		code     int
		last     string // its last line of stderr
		overran  bool
		min, max time.Duration // from SIGINT to its exit
	}{
		{"SIGINT honoured", "trap", time.Minute, 3, "interrupted", false, 0, 10 * time.Second},
		{"SIGKILL after the grace", "ignore", 300 * time.Millisecond, -1, "", true, 300 * time.Millisecond, 10 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			s := spec(tc.mode)
			s.Grace = tc.grace
			p, err := Start(ctx, s)
			if err != nil || !ready(p.Stdout) {
				t.Fatalf("start: %v", err)
			}
			began := time.Now()
			cancel()
			r := wait(t, p)
			took := time.Since(began)
			if r.Code != tc.code || r.Last() != tc.last || r.Overran != tc.overran {
				t.Errorf("code %d, stderr %q, overran %v; want %d, %q, %v", r.Code, r.Tail, r.Overran, tc.code, tc.last, tc.overran)
			}
			if took < tc.min || took > tc.max {
				t.Errorf("exited %v after SIGINT, want between %v and %v", took, tc.min, tc.max)
			}
			waitGone(t, p.Pid, 5*time.Second, "after it was stopped")
		})
	}
}

// TestGroupKilled: no process of the child's group outlives it, whether the child
// exits on its own, is killed, or is stopped and overruns the grace.
func TestGroupKilled(t *testing.T) {
	tests := []struct {
		name string
		mode string
		end  func(p *Process, cancel context.CancelFunc)
		code int
	}{
		{"the child exits, its child stays", "family", func(*Process, context.CancelFunc) {}, 0},
		{"killed", "family-ignore", func(p *Process, _ context.CancelFunc) { p.Kill() }, -1},
		{"stopped, killed after the grace", "family-ignore", func(_ *Process, cancel context.CancelFunc) { cancel() }, -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			s := spec(tc.mode)
			s.Grace = 200 * time.Millisecond
			p, err := Start(ctx, s)
			if err != nil {
				t.Fatal(err)
			}
			grandchild := readPID(t, p.Stdout)
			tc.end(p, cancel)
			if r := wait(t, p); r.Code != tc.code {
				t.Errorf("code %d, want %d (%v)", r.Code, tc.code, r.Err)
			}
			waitGone(t, grandchild, 5*time.Second, "the child's own child")
		})
	}
}

// TestNoOrphanAfterParentDies kills, with SIGKILL, a process that supervises a child as
// the daemon does: the child dies with it.
func TestNoOrphanAfterParentDies(t *testing.T) {
	sup := exec.Command(os.Args[0])
	sup.Env = append(os.Environ(), childEnv+"=supervisor")
	out, err := sup.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sup.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = sup.Process.Kill(); _ = sup.Wait() }()
	grandchild := readPID(t, out)
	if !testmedia.Running(grandchild) {
		t.Fatalf("the supervised child %d does not run", grandchild)
	}
	if err := sup.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = sup.Wait()
	waitGone(t, grandchild, 5*time.Second, "its parent killed with -9")
}

// TestPlacement checks the extra descriptors, the environment, the cgroup attach and
// the nice value.
func TestPlacement(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	s := spec("pipe3")
	s.ExtraFiles = []*os.File{r}
	var cg fakeCgroup
	s.Cgroup = &cg
	s.Nice = 5
	p, err := Start(context.Background(), s)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	if nice := niceOf(t, p.Pid); nice != 5 {
		t.Errorf("nice %d, want 5", nice)
	}
	fmt.Fprint(w, "-f mpegts -i pipe:3")
	w.Close()
	got, _ := io.ReadAll(p.Stdout)
	if res := wait(t, p); res.Code != 0 || string(got) != "-f mpegts -i pipe:3" {
		t.Errorf("code %d, the child read %q from descriptor 3", res.Code, got)
	}
	if cg.pid != p.Pid || p.CgroupErr != nil || p.NiceErr != nil {
		t.Errorf("attached %d (%v), nice error %v; want %d", cg.pid, p.CgroupErr, p.NiceErr, p.Pid)
	}

	s = spec("env")
	s.Env = append(s.Env, "SUPERVISE_X=set")
	var stdout strings.Builder
	s.PipeStdout, s.Stdout = false, &stdout
	if res := Run(context.Background(), s); res.Err != nil || stdout.String() != "set\n" {
		t.Errorf("env: %v, printed %q", res.Err, stdout.String())
	}
}

type fakeCgroup struct{ pid int }

func (c *fakeCgroup) Attach(pid int) error {
	c.pid = pid
	return nil
}

// niceOf reads the nice value (field 19) of pid.
func niceOf(t *testing.T, pid int) int {
	t.Helper()
	f, ok := testmedia.Stat(pid)
	if !ok {
		t.Fatalf("no process %d", pid)
	}
	n, err := strconv.Atoi(f[16])
	if err != nil {
		t.Fatal(err)
	}
	return n
}
