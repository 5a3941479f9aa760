package fileio

import "syscall"

// calls are the system calls an FS makes: the syscall package's, which tell the runtime
// that the thread may block, or raw ones (sys_raw.go).
type calls struct {
	open        func(path string, flags int, perm uint32) (int, error)
	read, write func(fd int, b []byte) (int, error)
	close       func(fd int) error
	fstat       func(fd int, st *syscall.Stat_t) error
	stat        func(path string, st *syscall.Stat_t) error
	fchmod      func(fd int, mode uint32) error
	rename      func(from, to string) error
	unlink      func(path string) error
}

var blockingCalls = calls{
	open: syscall.Open, read: syscall.Read, write: syscall.Write, close: syscall.Close,
	fstat: syscall.Fstat, stat: syscall.Stat, fchmod: syscall.Fchmod,
	rename: syscall.Rename, unlink: syscall.Unlink,
}

func (f FS) sys() *calls {
	if f.raw {
		return &rawCalls
	}
	return &blockingCalls
}

// open opens path, close-on-exec, again when a signal interrupts it.
func (f FS) open(path string, flags int, perm uint32) (int, error) {
	for {
		fd, err := f.sys().open(path, flags|syscall.O_CLOEXEC, perm)
		if err != syscall.EINTR {
			return fd, err
		}
	}
}
