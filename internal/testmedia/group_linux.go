package testmedia

import "syscall"

// groupAttr puts a child in a process group of its own and has the kernel
// SIGKILL it when the thread that started it dies.
func groupAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
