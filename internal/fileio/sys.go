package fileio

import "syscall"

// The system calls an FS makes: raw ones (sys_raw.go) when f.raw, else the syscall
// package's, which tell the runtime that the thread may block.

func (f FS) open(path string, flags int, perm uint32) (int, error) {
	for {
		var fd int
		var err error
		if f.raw {
			fd, err = rawOpen(path, flags|syscall.O_CLOEXEC, perm)
		} else {
			fd, err = syscall.Open(path, flags|syscall.O_CLOEXEC, perm)
		}
		if err != syscall.EINTR {
			return fd, err
		}
	}
}

func (f FS) read(fd int, b []byte) (int, error) {
	if f.raw {
		return rawRead(fd, b)
	}
	return syscall.Read(fd, b)
}

func (f FS) write(fd int, b []byte) (int, error) {
	if f.raw {
		return rawWrite(fd, b)
	}
	return syscall.Write(fd, b)
}

func (f FS) close(fd int) error {
	if f.raw {
		return rawClose(fd)
	}
	return syscall.Close(fd)
}

func (f FS) fstat(fd int, st *syscall.Stat_t) error {
	if f.raw {
		return rawFstat(fd, st)
	}
	return syscall.Fstat(fd, st)
}

func (f FS) stat(path string, st *syscall.Stat_t) error {
	if f.raw {
		return rawStat(path, st)
	}
	return syscall.Stat(path, st)
}

func (f FS) fchmod(fd int, mode uint32) error {
	if f.raw {
		return rawFchmod(fd, mode)
	}
	return syscall.Fchmod(fd, mode)
}

func (f FS) rename(from, to string) error {
	if f.raw {
		return rawRename(from, to)
	}
	return syscall.Rename(from, to)
}

func (f FS) unlink(path string) error {
	if f.raw {
		return rawUnlink(path)
	}
	return syscall.Unlink(path)
}
