package ingest

import (
	"bufio"
	"bytes"
	"io"
	"net"
)

// readBuffer is what one read of an authorized RTMP publisher takes from its socket at
// most. gortmplib's own buffer (4 KiB) reads each chunk's body straight from the
// socket, and its header with another read: two or three system calls a chunk.
// Through this buffer one read takes what the socket holds (a whole frame, mostly),
// with rawRead (see rawio.go). It adds no latency: a read returns what is there, it
// never waits for more.
const readBuffer = 64 << 10

// rtmpConn is the connection gortmplib reads and writes an RTMP publisher through:
// read through a preAuth guard until its publish is authorized (see rtmpguard.go),
// then through a buffer.
type rtmpConn struct {
	net.Conn
	r     io.Reader
	guard *preAuth // until authorized
}

func newRTMPConn(conn net.Conn) *rtmpConn {
	g := newPreAuth(conn)
	return &rtmpConn{Conn: conn, r: g, guard: g}
}

func (c *rtmpConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// buffered ends the guard, once the publish is authorized: from now on the
// connection is read through a buffer of readBuffer, starting with what the guard
// held back. What was read before is gortmplib's already: nothing is read twice or
// skipped.
func (c *rtmpConn) buffered() {
	r := newRawReader(c.Conn)
	if rest := c.guard.rest(); len(rest) > 0 {
		r = io.MultiReader(bytes.NewReader(rest), r)
	}
	c.guard = nil
	c.r = bufio.NewReaderSize(r, readBuffer)
}
