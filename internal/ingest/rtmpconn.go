package ingest

import (
	"bufio"
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
// read as is until its publish is authorized, then through a buffer.
type rtmpConn struct {
	net.Conn
	r io.Reader
}

func newRTMPConn(conn net.Conn) *rtmpConn { return &rtmpConn{Conn: conn, r: conn} }

func (c *rtmpConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// buffered reads the connection through a buffer of readBuffer from now on, once the
// publish is authorized. What was read before is gortmplib's already: nothing is read
// twice or skipped.
func (c *rtmpConn) buffered() { c.r = bufio.NewReaderSize(newRawReader(c.Conn), readBuffer) }
