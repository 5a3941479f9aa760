package ingest

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// The hub reads a publisher's socket and writes a run's pipe with raw system calls,
// which the Go runtime is not told of. Both descriptors are non-blocking, so no call
// can block a thread; a read that finds nothing waits for the descriptor in the
// runtime's poller as net.Conn does. The reason: a system call that goes through the
// runtime (syscall.Read, net.Conn.Read) wakes the runtime's monitor thread (sysmon)
// whenever the process was idle, and it then polls every 20 µs until the process is
// idle again. A publisher makes the hub busy some 80 times a second (each frame,
// audio or video) and idle in between, and those wake-ups were a fifth of its CPU
// time.

// rawRead reads fd once; n is 0 and errno EAGAIN when nothing is there.
func rawRead(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// rawWrite writes p to fd once, as much as it takes without blocking.
func rawWrite(fd uintptr, p []byte) (int, syscall.Errno) {
	if len(p) == 0 {
		return 0, 0
	}
	n, _, errno := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
	return int(n), errno
}

// rawConnReader reads a TCP connection with rawRead, waiting in the runtime's poller
// (with the connection's read deadline) when nothing is there.
type rawConnReader struct{ rc syscall.RawConn }

// newRawReader is a rawConnReader of conn, or conn itself when it has no descriptor
// of its own (RTMPS: TLS decrypts in Go, it reads through net.Conn).
func newRawReader(conn net.Conn) io.Reader {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return conn
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return conn
	}
	return rawConnReader{rc}
}

func (r rawConnReader) Read(p []byte) (int, error) {
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			n, errno = rawRead(fd, p)
			if errno != syscall.EINTR {
				return errno != syscall.EAGAIN
			}
		}
	})
	switch {
	case err != nil:
		return 0, err
	case errno != 0:
		return 0, errno
	case n == 0 && len(p) > 0:
		return 0, io.EOF
	}
	return n, nil
}
