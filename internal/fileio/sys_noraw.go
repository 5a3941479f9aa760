//go:build !linux || (!amd64 && !arm64)

package fileio

import "syscall"

// rawSupported: elsewhere the calls keep their blocking form (For never sets raw).
const rawSupported = false

func rawOpen(path string, flags int, perm uint32) (int, error) {
	return syscall.Open(path, flags, perm)
}
func rawRead(fd int, b []byte) (int, error)         { return syscall.Read(fd, b) }
func rawWrite(fd int, b []byte) (int, error)        { return syscall.Write(fd, b) }
func rawClose(fd int) error                         { return syscall.Close(fd) }
func rawFstat(fd int, st *syscall.Stat_t) error     { return syscall.Fstat(fd, st) }
func rawStat(path string, st *syscall.Stat_t) error { return syscall.Stat(path, st) }
func rawFchmod(fd int, mode uint32) error           { return syscall.Fchmod(fd, mode) }
func rawRename(from, to string) error               { return syscall.Rename(from, to) }
func rawUnlink(path string) error                   { return syscall.Unlink(path) }
