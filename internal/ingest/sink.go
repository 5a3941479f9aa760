package ingest

import (
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
)

// sink is the pipe of one ffmpeg run. The publisher's goroutine muxes each unit to
// MPEG-TS and writes it to the pipe at once, without blocking (writeNow): handing each
// unit to another goroutine instead cost a wake-up of the scheduler per unit, which was
// most of the hub's CPU time. What a full pipe does not take (ffmpeg reads slowly, or
// not at all) waits in a backlog that the sink's goroutine writes as the pipe drains,
// so that ffmpeg never stalls the publisher. When the backlog holds queue units or
// maxSinkBytes, the sink drops units up to the next keyframe. A batched sink (an RTMP
// publisher's, read in batches: see readPace) writes what it muxed when flushed, once
// per read of the publisher, not once per unit. Its methods but run are called under
// the stream's lock.
type sink struct {
	w       *os.File
	raw     syscall.RawConn
	mux     *tsMuxer // muxes into buf
	queue   int
	batched bool
	skip    bool // dropping to the next keyframe
	closed  bool
	kick    chan struct{} // the backlog's goroutine has work
	failed  atomic.Bool   // writing failed: ffmpeg is gone

	mu       sync.Mutex // guards what follows, shared with run
	buf      []byte     // muxed, not yet written
	flushing bool       // the backlog's goroutine owns the pipe: buf is its backlog
	backlog  int        // units muxed into buf while flushing
	inflight int        // bytes the goroutine writes now, out of buf
}

func newSink(tr tracks, w *os.File, queue int) *sink {
	k := &sink{w: w, queue: queue, kick: make(chan struct{}, 1)}
	raw, err := w.SyscallConn()
	if err == nil {
		k.raw = raw
		k.mux, err = newTSMuxer(tr)
	}
	if err != nil {
		k.failed.Store(true)
	}
	k.mu.Lock()
	if k.mux != nil {
		k.buf = k.mux.writeTables(k.buf)
	}
	k.writeNow()
	k.mu.Unlock()
	go k.run()
	return k
}

// offer writes u to the pipe, or to the backlog when the pipe is full; it reports
// whether it had to drop to the next keyframe (the run fell behind) from this unit on.
func (k *sink) offer(u unit) (fellBehind bool) {
	if k.skip {
		if !u.key {
			return false
		}
		k.skip = false
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.failed.Load() || k.closed {
		return false
	}
	if k.flushing && (k.backlog >= k.queue || len(k.buf)+k.inflight+u.cost() > maxSinkBytes) {
		k.skip = true
		return true
	}
	k.buf = k.mux.writeUnit(k.buf, u)
	switch {
	case k.flushing:
		k.backlog++
	case !k.batched:
		k.writeNow()
	}
	return false
}

// flush writes what a batched sink muxed since its last flush, unless the sink's
// goroutine owns the pipe (it writes it then).
func (k *sink) flush() {
	k.mu.Lock()
	if !k.flushing {
		k.writeNow()
	}
	k.mu.Unlock()
}

// writeNow writes what buf holds to the pipe, as much as it takes without blocking;
// the rest becomes the backlog of the sink's goroutine. Called under k.mu.
func (k *sink) writeNow() {
	if len(k.buf) == 0 || k.failed.Load() {
		return
	}
	var n int
	var werr error
	err := k.raw.Write(func(fd uintptr) bool {
		for {
			var errno syscall.Errno
			if n, errno = rawWrite(fd, k.buf); errno != syscall.EINTR {
				if errno != 0 {
					n, werr = 0, errno
				}
				return true // EAGAIN too: the goroutine waits for room, not the publisher
			}
		}
	})
	if err == nil && werr != nil && werr != syscall.EAGAIN {
		err = werr
	}
	if err != nil {
		k.failLocked()
		return
	}
	if n = max(n, 0); n == len(k.buf) {
		k.buf = k.buf[:0]
		return
	}
	k.buf = append(k.buf[:0], k.buf[n:]...)
	k.flushing, k.backlog = true, 1
	select {
	case k.kick <- struct{}{}:
	default:
	}
}

// failLocked marks the pipe broken (ffmpeg is gone) and drops what waits for it.
func (k *sink) failLocked() {
	k.failed.Store(true)
	k.buf, k.flushing = nil, false
}

func (k *sink) dead() bool { return k.failed.Load() }

// close ends the pipe once what waits for it is written: the run reads the end of
// its input.
func (k *sink) close() {
	if !k.closed {
		k.mu.Lock()
		k.closed = true
		k.mu.Unlock()
		close(k.kick)
	}
}

// run writes the backlog whenever there is one, blocking on the pipe, until the sink
// is closed; then it closes the pipe.
func (k *sink) run() {
	defer k.w.Close()
	for range k.kick {
		for k.drain() {
		}
	}
	for k.drain() { // what was muxed before close
	}
}

// drain writes what buf holds, out of the lock, while the muxer appends to a new one;
// it reports whether to go on: false once the backlog is empty or the pipe broke.
func (k *sink) drain() bool {
	k.mu.Lock()
	if len(k.buf) == 0 || k.failed.Load() {
		k.flushing, k.backlog = false, 0
		if cap(k.buf) > maxIdleBuffer {
			k.buf = nil // a backlog's peak is not kept
		}
		k.mu.Unlock()
		return false
	}
	out := k.buf
	k.buf, k.inflight = nil, len(out)
	k.mu.Unlock()
	_, err := k.w.Write(out)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.inflight = 0
	if err != nil {
		k.failLocked()
		return false
	}
	if len(k.buf) == 0 && cap(out) <= maxIdleBuffer {
		k.buf = out[:0]
	}
	return true
}

// maxIdleBuffer bounds the buffer a sink keeps once its backlog is written.
const maxIdleBuffer = 1 << 20

// writeTS writes units to w as one MPEG-TS stream.
func writeTS(w io.Writer, tr tracks, units []unit) error {
	m, err := newTSMuxer(tr)
	if err != nil {
		return err
	}
	b := m.writeTables(nil)
	for _, u := range units {
		b = m.writeUnit(b, u)
	}
	_, err = w.Write(b)
	return err
}
