// Package supervise is the one way the daemon starts a child process: every ffmpeg and
// ffprobe, for jobs, probes and trial encodes. A child runs in a process group of its
// own, dies with the daemon (the parent-death signal: no ffmpeg outlives a daemon
// killed with -9), is asked to stop with SIGINT to its group when its context ends (so
// ffmpeg closes its last segment) and killed with SIGKILL to the group after a grace
// period, and leaves no process of its group behind once it has been waited for. Wait
// gives its real exit code and the last lines of its stderr.
package supervise

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"sync/atomic"
	"syscall"
	"time"
)

// DefaultGrace is how long a child asked to stop has before it is killed, when
// Spec.Grace is zero.
const DefaultGrace = 10 * time.Second

// DefaultTailLines is how many lines of stderr Wait returns, when Spec.TailLines is zero.
const DefaultTailLines = 20

// Cgroup puts a started process under a CPU limit (cpucap.Cap does).
type Cgroup interface {
	Attach(pid int) error
}

// Spec is what to start, and how.
type Spec struct {
	Path string   // the program: a path, or a name looked up in PATH
	Args []string // its arguments, without the program's name
	Env  []string // added to the daemon's environment ("KEY=value")

	Stdout     io.Writer // receives its standard output; nil discards it
	PipeStdout bool      // instead, Process.Stdout reads it (a pipe the runtime polls)
	Stderr     io.Writer // also receives its standard error, beside the tail Wait returns

	TailLines int                 // lines of stderr that Wait returns; 0 means DefaultTailLines
	Redact    func(string) string // masks secrets in those lines; nil leaves them
	// ExtraFiles are the child's descriptors 3, 4...: an input ffmpeg reads as pipe:3.
	ExtraFiles []*os.File

	Grace  time.Duration // from SIGINT, when the context ends, to SIGKILL; 0 means DefaultGrace
	Cgroup Cgroup        // attached right after the start; nil for none
	Nice   int           // the group's nice value, set right after the start (after Cgroup); 0 leaves it
}

// Process is a started child. Wait must be called once.
type Process struct {
	Pid int
	// Stdout reads the child's standard output when Spec.PipeStdout: read it to its
	// end before Wait, which closes it.
	Stdout io.Reader
	// CgroupErr and NiceErr say why the child could not be put under Spec.Cgroup or
	// Spec.Nice. It runs all the same.
	CgroupErr, NiceErr error

	ctx    context.Context
	cmd    *exec.Cmd
	tail   *Tail
	killed atomic.Bool
}

// Result is how a child ended.
type Result struct {
	// Code is the exit code; -1 when a signal ended the child or it never started.
	Code int
	// Err is what exec.Cmd.Wait says: nil when it exited with 0 on its own, an
	// *exec.ExitError, or the context's error when it was asked to stop; the start's
	// error from Run.
	Err error
	// Tail is the last lines of its stderr, oldest first, redacted.
	Tail []string
	// Overran is set when it was asked to stop and was killed at the end of the grace.
	Overran bool
	// CPU is the processor time (user and system) the child used, with the children
	// it waited for: what its rusage says. Zero when it never started.
	CPU time.Duration
}

// Last is the last line of the child's stderr, "" when it wrote none.
func (r Result) Last() string {
	if len(r.Tail) == 0 {
		return ""
	}
	return r.Tail[len(r.Tail)-1]
}

// Start starts the child of s. When ctx ends, the child's group gets SIGINT, and SIGKILL
// after the grace. The error is exec's own, which names the program.
func Start(ctx context.Context, s Spec) (*Process, error) {
	cmd := exec.CommandContext(ctx, s.Path, s.Args...)
	// The parent-death signal is sent when the thread that started the child ends: Go
	// ends threads only behind goroutines that lock one, which no caller does.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if len(s.Env) > 0 {
		cmd.Env = append(os.Environ(), s.Env...)
	}
	n := s.TailLines
	if n <= 0 {
		n = DefaultTailLines
	}
	p := &Process{ctx: ctx, cmd: cmd, tail: NewTail(n)}
	p.tail.SetRedactor(s.Redact)
	cmd.Stderr = p.tail
	if s.Stderr != nil {
		cmd.Stderr = io.MultiWriter(p.tail, s.Stderr)
	}
	cmd.Stdout = s.Stdout
	if s.PipeStdout {
		cmd.Stdout = nil
		r, err := cmd.StdoutPipe()
		if err != nil {
			return nil, err
		}
		p.Stdout = r
	}
	cmd.ExtraFiles = s.ExtraFiles
	cmd.Cancel = func() error { return signalGroup(cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = s.Grace
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = DefaultGrace
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p.Pid = cmd.Process.Pid
	if s.Cgroup != nil {
		p.CgroupErr = s.Cgroup.Attach(p.Pid)
	}
	if s.Nice != 0 {
		p.NiceErr = syscall.Setpriority(syscall.PRIO_PGRP, p.Pid, s.Nice)
	}
	return p, nil
}

// Run starts the child of s and waits for it: for short commands, whose output goes to
// s.Stdout.
func Run(ctx context.Context, s Spec) Result {
	p, err := Start(ctx, s)
	if err != nil {
		return Result{Code: -1, Err: err}
	}
	return p.Wait()
}

// Kill kills the child's whole group at once: for a child that may not heed SIGINT (a
// hung one).
func (p *Process) Kill() {
	p.killed.Store(true)
	_ = signalGroup(p.Pid, syscall.SIGKILL)
}

// Wait waits for the child to exit, then kills whatever is left of its group.
func (p *Process) Wait() Result {
	err := p.cmd.Wait()
	_ = signalGroup(p.Pid, syscall.SIGKILL) // no process of the group outlives the child
	r := Result{Code: -1, Err: err, Tail: p.tail.Lines()}
	if st := p.cmd.ProcessState; st != nil {
		r.Code = st.ExitCode()
		r.CPU = st.UserTime() + st.SystemTime()
		ws, ok := st.Sys().(syscall.WaitStatus)
		// Killed, not by Kill, after the context ended: exec's WaitDelay did it.
		r.Overran = ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL && p.ctx.Err() != nil && !p.killed.Load()
	}
	return r
}

// signalGroup sends sig to the process group led by pid; a group that is gone is
// os.ErrProcessDone, as exec.Cmd.Cancel expects.
func signalGroup(pid int, sig syscall.Signal) error {
	err := syscall.Kill(-pid, sig)
	if errors.Is(err, syscall.ESRCH) {
		return os.ErrProcessDone
	}
	return err
}
