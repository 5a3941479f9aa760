//go:build unix && !linux

package testmedia

import "syscall"

// groupAttr puts a child in a process group of its own. Only Linux has
// Pdeathsig; elsewhere a crashed test binary may leave a child behind.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
