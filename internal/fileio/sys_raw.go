//go:build linux && (amd64 || arm64)

package fileio

import (
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// rawSupported: these architectures have every call below under one number.
const rawSupported = true

var rawCalls = calls{
	open: rawOpen, read: rawRead, write: rawWrite, close: rawClose,
	fstat: rawFstat, stat: rawStat, fchmod: rawFchmod,
	rename: rawRename, unlink: rawUnlink,
}

// atFDCWD is AT_FDCWD (-100) as a system call argument: converted from a variable, as a
// negative constant cannot be.
var atFDCWD = func() uintptr { fd := unix.AT_FDCWD; return uintptr(fd) }()

func errno(e syscall.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

func bytePtr(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func rawOpen(path string, flags int, perm uint32) (int, error) {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return -1, err
	}
	fd, _, e := syscall.RawSyscall6(unix.SYS_OPENAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(flags), uintptr(perm), 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

func rawRead(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(unix.SYS_READ, uintptr(fd), uintptr(bytePtr(b)), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawWrite(fd int, b []byte) (int, error) {
	n, _, e := syscall.RawSyscall(unix.SYS_WRITE, uintptr(fd), uintptr(bytePtr(b)), uintptr(len(b)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

func rawClose(fd int) error {
	_, _, e := syscall.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
	return errno(e)
}

func rawFstat(fd int, st *syscall.Stat_t) error {
	_, _, e := syscall.RawSyscall(unix.SYS_FSTAT, uintptr(fd), uintptr(unsafe.Pointer(st)), 0)
	return errno(e)
}

func rawStat(path string, st *syscall.Stat_t) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := syscall.RawSyscall6(unix.SYS_NEWFSTATAT, atFDCWD, uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(st)), 0, 0, 0)
	return errno(e)
}

func rawFchmod(fd int, mode uint32) error {
	_, _, e := syscall.RawSyscall(unix.SYS_FCHMOD, uintptr(fd), uintptr(mode), 0)
	return errno(e)
}

func rawRename(from, to string) error {
	p1, err := syscall.BytePtrFromString(from)
	if err != nil {
		return err
	}
	p2, err := syscall.BytePtrFromString(to)
	if err != nil {
		return err
	}
	_, _, e := syscall.RawSyscall6(unix.SYS_RENAMEAT, atFDCWD, uintptr(unsafe.Pointer(p1)), atFDCWD, uintptr(unsafe.Pointer(p2)), 0, 0)
	return errno(e)
}

func rawUnlink(path string) error {
	p, err := syscall.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := syscall.RawSyscall(unix.SYS_UNLINKAT, atFDCWD, uintptr(unsafe.Pointer(p)), 0)
	return errno(e)
}
