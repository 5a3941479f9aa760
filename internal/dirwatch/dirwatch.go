// Package dirwatch tells a job at once when ffmpeg has replaced a file in a folder it
// watches, so
// that manifests follow a closed segment within milliseconds instead of a poll period.
//
// It is a thin layer over Linux inotify, watching for IN_MOVED_TO only: ffmpeg writes
// its live playlists under a temporary name and renames them into place after each
// segment it closes, so one rename is one new version of a playlist, and the kernel
// filters out the many writes in between. One Watcher (one inotify instance) serves
// every job of the daemon: the per-user limit on instances
// (fs.inotify.max_user_instances, often 128) is far lower than the limit on watches.
//
// Notifications are hints, not a log: a subscriber's channel holds at most one pending
// wake-up, and a queue overflow wakes every subscriber. Callers re-read the file and
// keep a slow poll as a safety net.
package dirwatch

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/transcoderd/transcoderd/internal/fileio"
)

// Watcher is one inotify instance shared by every subscription.
type Watcher struct {
	f  *os.File
	fd int // f's descriptor, kept apart: os.File.Fd would make it blocking

	mu   sync.Mutex
	subs map[int32]*sub // by watch descriptor
	err  error          // why the reader stopped; Watch fails from then on
	done chan struct{}
}

type sub struct {
	ch chan<- struct{}
}

// New starts a Watcher. It fails where inotify is unavailable or its instances are used
// up; callers then poll.
func New() (*Watcher, error) {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC | unix.IN_NONBLOCK)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	// A non-blocking descriptor is read through the runtime's poller: no thread waits.
	w := &Watcher{f: os.NewFile(uintptr(fd), "inotify"), fd: fd, subs: map[int32]*sub{}, done: make(chan struct{})}
	go w.read()
	return w, nil
}

// Watch wakes ch (without blocking: a wake-up already pending is enough) each time a
// file is renamed into dir. The returned function ends the subscription. A folder has
// at most one subscription: watching it again replaces the first.
func (w *Watcher) Watch(dir string, ch chan<- struct{}) (stop func(), err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs == nil {
		return nil, errors.New("dirwatch: watcher closed")
	}
	if w.err != nil {
		return nil, fmt.Errorf("dirwatch: inotify stopped: %w", w.err)
	}
	wd, err := unix.InotifyAddWatch(w.fd, dir, unix.IN_MOVED_TO|unix.IN_ONLYDIR)
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", dir, err)
	}
	s := &sub{ch: ch}
	w.subs[int32(wd)] = s
	return func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		if w.subs[int32(wd)] != s {
			return // replaced, or the folder is gone and the kernel dropped the watch
		}
		delete(w.subs, int32(wd))
		_, _ = unix.InotifyRmWatch(w.fd, uint32(wd))
	}, nil
}

// Close ends every subscription and the inotify instance.
func (w *Watcher) Close() error {
	w.mu.Lock()
	w.subs = nil
	w.mu.Unlock()
	err := w.f.Close()
	<-w.done
	return err
}

func (w *Watcher) read() {
	defer close(w.done)
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	// Raw reads: the first system call after each wake-up need not wake the runtime's
	// sysmon (fileio.PollReader).
	r, err := fileio.NewPollReader(w.f)
	if err != nil {
		w.mu.Lock()
		w.err = err
		w.wakeAllLocked()
		w.mu.Unlock()
		return
	}
	for {
		n, err := r.Read(buf)
		if err != nil {
			if !errors.Is(err, os.ErrClosed) && !errors.Is(err, io.EOF) {
				w.mu.Lock()
				w.err = err
				w.wakeAllLocked() // their safety polls go on; new subscriptions fail, so jobs poll
				w.mu.Unlock()
			}
			return
		}
		w.dispatch(buf[:n])
	}
}

// dispatch wakes the subscribers named by a buffer of inotify events.
func (w *Watcher) dispatch(buf []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			return
		}
		buf = buf[end:]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			w.wakeAllLocked()
		case ev.Mask&unix.IN_IGNORED != 0:
			delete(w.subs, ev.Wd) // the folder was removed: the kernel dropped the watch
		default:
			if s := w.subs[ev.Wd]; s != nil {
				wake(s.ch)
			}
		}
	}
}

func (w *Watcher) wakeAllLocked() {
	for _, s := range w.subs {
		wake(s.ch)
	}
}

func wake(ch chan<- struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
