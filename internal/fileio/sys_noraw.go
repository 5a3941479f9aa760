//go:build !linux || (!amd64 && !arm64)

package fileio

import "syscall"

// rawSupported: elsewhere the calls keep their blocking form (For never sets raw).
const rawSupported = false

var rawCalls = blockingCalls

// rawRead is PollReader's read of a non-blocking descriptor.
func rawRead(fd int, b []byte) (int, error) { return syscall.Read(fd, b) }
