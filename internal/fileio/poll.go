package fileio

import (
	"fmt"
	"io"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// PollReader reads a descriptor the runtime polls (a pipe, an inotify descriptor) with
// raw read calls, waiting for data in the runtime's poller. Such a descriptor is
// non-blocking: a read with nothing to give returns EAGAIN at once, so a raw call never
// holds its thread, and the runtime's sysmon thread is not woken for it (see For). An
// idle daemon wakes for ffmpeg's progress reports and for the renames of its playlists:
// each read of them is the first system call after the wake-up.
type PollReader struct {
	f  *os.File
	rc syscall.RawConn
}

// NewPollReader returns a PollReader of f, which must be pollable (from os.Pipe, or
// os.NewFile of a non-blocking descriptor).
// It refuses a file the poller does not watch or whose descriptor blocks: a raw read of
// that would hold its thread. (f.Fd makes the descriptor blocking: do not call it on f
// afterwards.)
func NewPollReader(f *os.File) (*PollReader, error) {
	if err := f.SetReadDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("read %s with raw calls: not pollable: %w", f.Name(), err)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return nil, err
	}
	var nonblock bool
	if err := rc.Control(func(fd uintptr) {
		var flags int
		flags, err = unix.FcntlInt(fd, unix.F_GETFL, 0)
		nonblock = flags&unix.O_NONBLOCK != 0
	}); err != nil {
		return nil, err
	}
	if err != nil || !nonblock {
		return nil, fmt.Errorf("read %s with raw calls: its descriptor blocks (%v)", f.Name(), err)
	}
	return &PollReader{f: f, rc: rc}, nil
}

// Read reads like f.Read: io.EOF at the end, and an error that is os.ErrClosed once f
// is closed.
func (r *PollReader) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(int(fd), b)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		// The poller's own errors: f is pollable (NewPollReader checked) and has no
		// deadline, so the one left is that it was closed.
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: os.ErrClosed}
	case errno != nil:
		return 0, &os.PathError{Op: "read", Path: r.f.Name(), Err: errno}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}
