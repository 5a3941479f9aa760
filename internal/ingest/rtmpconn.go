package ingest

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// readBuffer is what one read of an authorized RTMP publisher takes from its socket at
// most. gortmplib's own buffer (4 KiB) reads each chunk's body straight from the
// socket, and its header with another read: two or three system calls a chunk.
// Through this buffer one read takes what the socket holds (the frames that came
// since the last read: see readPace), with rawRead (see rawio.go). The buffer adds no
// latency: a read returns what is there, it never waits to fill it.
const readBuffer = 64 << 10

// readPace is about how often an authorized publisher's socket wakes the hub. An
// encoder sends each frame, audio or video, as it has it: some 80 writes a second,
// each a wake-up of the hub that costs more than the frame's muxing (a thread woken
// from another CPU; in a virtual machine, an exit to the hypervisor). So the socket's
// receive low-water mark (SO_RCVLOWAT) is set to what the publisher sent in readPace,
// from its bitrate over the last second: the kernel wakes the hub once that much is
// there, a read takes the frames that came meanwhile, and their MPEG-TS goes to the
// pipe in one write. This adds about readPace of latency and limits nothing: the mark
// is never over maxLowWater, and a read that waits maxWait for it (the publisher's
// bitrate fell: a still picture, a pause) lowers it to a byte and reads what is there,
// until the next second's bitrate sets it again. That wait is bounded with the read
// deadline, which the hub moves at most every maxWait/2 while a mark is set (about
// every second otherwise), not at each read: a timer armed per read would wake the
// runtime's poller each time, and cost more than the mark saves. The end of the
// connection wakes the hub whatever the mark. No publisher waits on the hub below the
// mark: RTMP's flow control lets it send 2.5 MB unacknowledged (the peer bandwidth
// gortmplib sets), and once publishing it sends no command it awaits an answer to.
const (
	readPace    = 40 * time.Millisecond
	maxWait     = 250 * time.Millisecond
	minLowWater = 2 << 10  // below, not worth a mark
	maxLowWater = 32 << 10 // a bound, whatever the bitrate
)

// rtmpConn is the connection gortmplib reads and writes an RTMP publisher through:
// read through a preAuth guard until its publish is authorized (see rtmpguard.go),
// then through a buffer, paced (see readPace).
type rtmpConn struct {
	net.Conn
	r     io.Reader
	guard *preAuth // until authorized

	// drained, when set, is called before each read that goes to the socket: every
	// whole message the buffer held has been handled, what they gave can be written.
	drained func()
	// What follows is the paced reader's, once authorized (one goroutine).
	timeout  time.Duration   // a publisher silent for that long is ended
	heard    time.Time       // when data last came
	deadline time.Time       // the read deadline set
	sys      syscall.RawConn // the socket's, for its low-water mark; nil if none
	mark     int             // the socket's low-water mark; 0 before any is set
	since    time.Time       // when the bitrate's second began
	got      int             // bytes read since
}

func newRTMPConn(conn net.Conn) *rtmpConn {
	g := newPreAuth(conn)
	return &rtmpConn{Conn: conn, r: g, guard: g}
}

func (c *rtmpConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// buffered ends the guard, once the publish is authorized: from now on the
// connection is read through a buffer of readBuffer, starting with what the guard
// held back, and a publisher silent for timeout is ended. What was read before is
// gortmplib's already: nothing is read twice or skipped.
func (c *rtmpConn) buffered(timeout time.Duration) {
	r := newRawReader(c.Conn)
	if rest := c.guard.rest(); len(rest) > 0 {
		r = io.MultiReader(bytes.NewReader(rest), r)
	}
	c.guard = nil
	c.timeout = timeout
	c.heard = time.Now()
	c.since = c.heard
	var tcp net.Conn = c.Conn
	if t, ok := tcp.(*tls.Conn); ok {
		tcp = t.NetConn()
	}
	if sc, ok := tcp.(syscall.Conn); ok {
		c.sys, _ = sc.SyscallConn()
	}
	c.r = bufio.NewReaderSize(pacedReader{c, r}, readBuffer)
}

// pacedReader reads an authorized publisher's socket for the buffer, with the low-water
// mark of its bitrate (see readPace).
type pacedReader struct {
	c *rtmpConn
	r io.Reader
}

func (p pacedReader) Read(b []byte) (int, error) {
	c := p.c
	if c.drained != nil {
		c.drained()
	}
	for {
		c.armDeadline(time.Now())
		n, err := p.r.Read(b)
		now := time.Now()
		if n > 0 {
			c.heard = now
			c.got += n
		}
		if now.Sub(c.since) >= time.Second {
			c.lowWater(int(float64(c.got) * readPace.Seconds() / now.Sub(c.since).Seconds()))
			c.since, c.got = now, 0
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && c.mark > 1 && now.Sub(c.heard) < c.timeout {
			c.setLowWater(1) // the bitrate fell under the mark: read what is there
			continue
		}
		return n, err
	}
}

// armDeadline moves the read deadline to where it should be at now: timeout after
// the last data, and while a mark is set, at most maxWait from now. It moves it only
// when that changes by more than maxWait/2 with a mark (a second, or a quarter of the
// timeout, without: a publisher silent for the timeout less that is ended), or when it
// must come sooner.
func (c *rtmpConn) armDeadline(now time.Time) {
	end, slack := c.heard.Add(c.timeout), min(time.Second, c.timeout/4)
	if c.mark > 1 {
		end, slack = now.Add(maxWait), maxWait/2
		if silent := c.heard.Add(c.timeout); silent.Before(end) {
			end = silent
		}
	}
	if end.Before(c.deadline) || end.Sub(c.deadline) > slack {
		_ = c.Conn.SetReadDeadline(end)
		c.deadline = end
	}
}

// lowWater sets the socket's receive low-water mark to about v bytes, when it changes
// by more than a quarter.
func (c *rtmpConn) lowWater(v int) {
	if v < minLowWater {
		v = 1 // the kernel's default: wake at each byte
	}
	v = min(v, maxLowWater)
	if d := v - c.mark; max(d, -d) > c.mark/4 {
		c.setLowWater(v)
	}
}

// setLowWater sets the socket's receive low-water mark; setting it lower wakes a read
// waiting for what is there already.
func (c *rtmpConn) setLowWater(v int) {
	if c.sys == nil {
		return
	}
	err := c.sys.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVLOWAT, v)
	})
	if err == nil {
		c.mark = v
	}
}
