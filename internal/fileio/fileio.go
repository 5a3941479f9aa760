// Package fileio reads and replaces the small files on a job's hot path (ffmpeg's
// playlists, the segments' boxes, our manifests) with plain system calls, made raw where
// the files are in memory (see For).
//
// The os package registers every file it opens with the runtime's network poller: on
// Linux that is four fcntl calls and an epoll_ctl that fails with EPERM for a regular
// file, five system calls for nothing on each open. A live job opens four or five files
// per segment, twenty segments a second with ten light jobs, and the daemon is otherwise
// idle: those calls, and the runtime's sysmon thread polling while they run, were a
// measurable share of its CPU (scripts/overhead). Reads and writes of regular files block
// either way; what the os package adds is only the attempt to poll them.
package fileio

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// FS makes the hot path's system calls for the files under one folder: blocking ones,
// or raw ones on a file system in memory (see For). The zero FS makes blocking calls
// and suits any folder.
type FS struct {
	raw bool
}

// For returns the FS for the files under dir (or its nearest existing ancestor).
//
// On tmpfs or ramfs, which never wait for a device, it makes its calls raw: without
// telling the Go runtime that the thread may block. Each call the runtime is told of
// wakes its sysmon thread when the process was idle, and sysmon then polls every 20 µs
// until the process is idle again: for a daemon that wakes twenty times a second to
// read a few hundred bytes and rename two files, that polling was a sixth of its CPU
// (scripts/overhead). A thread in a raw call holds its processor, and the garbage
// collector's stop-the-world waits for it. On any other file system a call may wait for
// the disk, so For keeps the calls blocking there; on tmpfs a call can still wait, but
// only for memory (pages swapped out, reclaim under a memory limit), as the rest of the
// daemon would. Files are opened with O_NONBLOCK, so a FIFO at a path read cannot hold
// an open.
func For(dir string) FS {
	for p := filepath.Clean(dir); ; p = filepath.Dir(p) {
		var st syscall.Statfs_t
		err := syscall.Statfs(p, &st)
		if err == nil {
			return FS{raw: rawSupported && inMemory(uint32(st.Type))}
		}
		if p == filepath.Dir(p) {
			return FS{}
		}
	}
}

// InMemory reports whether f makes raw calls: its folder is on tmpfs or ramfs.
func (f FS) InMemory() bool { return f.raw }

// File system magic numbers (statfs(2)).
const (
	tmpfsMagic = 0x01021994
	ramfsMagic = 0x858458f6
)

func inMemory(fsType uint32) bool { return fsType == tmpfsMagic || fsType == ramfsMagic }

// ReadFile reads the whole file at path, like os.ReadFile, with blocking calls. Its
// errors are *fs.PathError values, so errors.Is(err, fs.ErrNotExist) works as with the
// os package.
func ReadFile(path string) ([]byte, error) { return FS{}.ReadFile(path) }

// ReadFile reads the whole file at path, like os.ReadFile. Its errors are *fs.PathError
// values, so errors.Is(err, fs.ErrNotExist) works as with the os package.
func (f FS) ReadFile(path string) ([]byte, error) {
	data, _, err := f.ReadFileModTime(path)
	return data, err
}

// ReadFileModTime is ReadFile that also returns the file's modification time, from the
// same open file (a media segment's: when ffmpeg closed it), for no extra system call.
func (f FS) ReadFileModTime(path string) ([]byte, time.Time, error) {
	fd, err := f.open(path, syscall.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, time.Time{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer f.sys().close(fd)
	var st syscall.Stat_t
	if err := f.sys().fstat(fd, &st); err != nil {
		return nil, time.Time{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	mod := time.Unix(st.Mtim.Unix())
	data := make([]byte, 0, max(st.Size, 0)+512)
	for {
		if len(data) == cap(data) {
			data = slices.Grow(data, 4096)
		}
		n, err := f.sys().read(fd, data[len(data):cap(data)])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, time.Time{}, &os.PathError{Op: "read", Path: path, Err: err}
		}
		data = data[:len(data)+n]
		// The whole file as it was when opened needs no further read to see its end; a
		// file whose size stat does not tell (in /proc) is read to its end.
		if n == 0 || (st.Size > 0 && int64(len(data)) == st.Size) {
			return data, mod, nil
		}
	}
}

// Version identifies one state of a file: which file it is (device and inode), its size
// and its modification time. A file replaced by a rename, or written, has another
// version. The zero Version is no file's.
type Version struct {
	dev, ino uint64
	size     int64
	mtime    syscall.Timespec
}

// Version returns the version of the file at path (following symbolic links). Its
// errors are *fs.PathError values.
func (f FS) Version(path string) (Version, error) {
	var st syscall.Stat_t
	if err := f.sys().stat(path, &st); err != nil {
		return Version{}, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return Version{dev: uint64(st.Dev), ino: st.Ino, size: st.Size, mtime: st.Mtim}, nil
}

// Remove removes the file at path. Its errors are *fs.PathError values.
func (f FS) Remove(path string) error {
	for {
		err := f.sys().unlink(path)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return &os.PathError{Op: "remove", Path: path, Err: err}
		}
		return nil
	}
}

// WriteAtomic replaces the file at path with data so that a reader (a web server) sees
// either the old file or the new one, never a part: it writes a temporary file in the
// same folder, with mode 0644, and renames it over path, which is atomic within one file
// system. On failure the temporary file is removed and path is left as it was.
//
// It does not fsync. Manifests are rewritten every few seconds and rendered from the
// daemon's index, so one lost to a power cut is simply rendered again; an fsync per
// manifest per segment would cost far more than it protects. Readers are protected by the
// rename alone: it never exposes a file that is still being written.
func (f FS) WriteAtomic(path string, data []byte) error {
	dir, base := filepath.Split(path)
	var (
		tmp string
		fd  int
		err error
	)
	// A name of its own, as os.CreateTemp makes: two writers of one path (two daemons
	// on one output folder, by mistake) must not write into each other's file.
	for range 100 {
		tmp = dir + "." + base + ".tmp-" + strconv.FormatUint(uint64(rand.Uint32()), 10)
		fd, err = f.open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_EXCL, 0o644)
		if err != syscall.EEXIST {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, &os.PathError{Op: "open", Path: tmp, Err: err})
	}
	op, err := "write", f.writeAll(fd, data)
	if err == nil && umaskHides0644() {
		op, err = "chmod", f.sys().fchmod(fd, 0o644)
	}
	if cerr := f.sys().close(fd); err == nil && cerr != nil {
		op, err = "close", cerr
	}
	if err == nil {
		op, err = "rename", f.sys().rename(tmp, path)
	}
	if err != nil {
		_ = f.sys().unlink(tmp)
		return fmt.Errorf("write %s: %w", path, &os.PathError{Op: op, Path: tmp, Err: err})
	}
	return nil
}

func (f FS) writeAll(fd int, data []byte) error {
	for len(data) > 0 {
		n, err := f.sys().write(fd, data)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		data = data[n:]
	}
	return nil
}

// umaskHides0644 reports whether the process's umask takes any bit of 0644 from the
// files it creates (a umask of 027 or 077, say), so that WriteAtomic must set the mode
// itself for the web server to read them. It is read once, from /proc/self/status,
// since setting the umask to learn it would race with other goroutines creating files;
// where it cannot be read, the answer is yes.
var umaskHides0644 = sync.OnceValue(readUmaskHides0644)

func readUmaskHides0644() bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(status)) {
		if v, ok := strings.CutPrefix(line, "Umask:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32)
			return err != nil || mask&0o644 != 0
		}
	}
	return true
}
