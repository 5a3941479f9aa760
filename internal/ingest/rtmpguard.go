package ingest

import (
	"errors"
	"fmt"
	"io"
)

// Until a publisher's key is authorized, the hub reads its RTMP connection through
// a preAuth guard, because gortmplib (v1.0.1) allocates each chunk's body before it
// reads it: min(the message length the chunk header announces, the chunk size), up to
// 10 MiB, and 10 MiB more to join a message's chunks. A peer that announces a chunk
// size and a message of 10 MiB and sends nothing more held 10 MiB of the daemon, 640
// MiB over the maxPreAuth connections the hub admits. The guard parses the chunk
// stream as gortmplib will (the handshake, then each chunk header, and the control
// messages that change how the next chunks are cut: SetChunkSize, Abort) and refuses
// a message over maxPreAuthMessage, a chunk size under minChunkSize (a chunk of one
// byte costs gortmplib a slice of its own), RTMPE (encrypted: not parsable) and more
// than maxPreAuthBytes in all. So a connection costs at most about maxPreAuthBytes +
// maxPreAuthMessage before its key is known. Once authorized, the guard is gone.
//
// The guard hands gortmplib only bytes it has parsed and found fine: what follows a
// refused chunk header in the same read is held back, and refused only if gortmplib
// asks for it before the publish is authorized. An encoder that sends its first frame
// right after its publish command (without waiting for the answer) is not refused
// for that frame's size.
const (
	// maxPreAuthMessage bounds a message before authorization: a connect command,
	// the largest, is some hundreds of bytes (OBS's, with its Enhanced RTMP codecs).
	maxPreAuthMessage = 16 << 10
	// maxPreAuthBytes bounds what a connection sends before authorization: the
	// handshake (3 073 bytes), then connect, releaseStream, FCPublish, createStream
	// and publish.
	maxPreAuthBytes = 64 << 10
	// minChunkSize is RTMP's default chunk size, the least any encoder announces.
	minChunkSize = 128
	// maxChunkSize is gortmplib's own bound on a chunk size.
	maxChunkSize = 10 << 20
	// handshakeBytes is what a client sends of the (plain) handshake: C0, C1, C2.
	handshakeBytes = 1 + 1536 + 1536
)

// Why the guard refused a connection: each wraps errGuard.
var (
	errGuard          = errors.New("rtmp refused before authorization")
	errPreAuthMessage = fmt.Errorf("%w: a message over %d bytes", errGuard, maxPreAuthMessage)
	errPreAuthBytes   = fmt.Errorf("%w: over %d bytes sent", errGuard, maxPreAuthBytes)
	errChunkSize      = fmt.Errorf("%w: a chunk size under %d or over %d", errGuard, minChunkSize, maxChunkSize)
	errRTMPE          = fmt.Errorf("%w: rtmpe (encrypted rtmp) is not taken, rtmps is", errGuard)
	errChunkStream    = fmt.Errorf("%w: a chunk out of order, or an extended chunk stream id", errGuard)
	errControl        = fmt.Errorf("%w: a control message of a length other than 4", errGuard)
)

// chunkStream is what the guard knows of one chunk stream, as gortmplib keeps it.
type chunkStream struct {
	started bool   // a type 0 or 1 chunk came: later ones may leave fields out
	typ     uint8  // the message type
	length  uint32 // the message length
	recv    uint32 // bytes of the message received; 0 between messages
	ext     bool   // its chunks carry an extended timestamp
}

// preAuth is the reader of a connection until its publish is authorized (see above).
type preAuth struct {
	conn io.Reader
	held []byte // read from conn, not handed on: see err
	err  error  // why held is held; the answer to any read before authorization
	n    int    // bytes handed on

	hs        int      // bytes of the handshake still to come
	hdr       [16]byte // the chunk header being read
	hdrN      int
	chunkSize uint32
	streams   [64]chunkStream
	cur       uint8  // the chunk stream of the chunk being read
	chunk     uint32 // the length of its body
	body      uint32 // bytes of its body still to come
	ctl       [4]byte
	ctlN      int
	ctlOn     bool // the chunk is a control message's, whose body is kept in ctl
}

func newPreAuth(conn io.Reader) *preAuth {
	return &preAuth{conn: conn, hs: handshakeBytes, chunkSize: minChunkSize}
}

// Read reads conn, handing on what the guard found fine.
func (g *preAuth) Read(p []byte) (int, error) {
	if g.err != nil {
		return 0, g.err
	}
	n, err := g.conn.Read(p)
	ok, ferr := g.scan(p[:n])
	if ferr == nil {
		return n, err
	}
	g.held, g.err = append([]byte(nil), p[ok:n]...), ferr
	if ok == 0 {
		return 0, ferr
	}
	return ok, nil
}

// rest is what the guard read and held back: the next bytes, once authorized.
func (g *preAuth) rest() []byte { return g.held }

// scan parses b, which follows what it parsed before. It returns how much of b to
// hand on and, when it refuses the rest, why: it cuts at the start of the chunk
// whose header or message it refuses.
func (g *preAuth) scan(b []byte) (int, error) {
	var over error
	if left := maxPreAuthBytes - g.n; len(b) > left {
		b, over = b[:left], errPreAuthBytes
	}
	start := 0 // where the chunk being parsed began in b
	for i := 0; i < len(b); {
		switch {
		case g.hs > 0:
			if g.hs == handshakeBytes && b[i] != 3 {
				return i, errRTMPE // version 6; any other gortmplib refuses itself
			}
			k := min(g.hs, len(b)-i)
			g.hs, i = g.hs-k, i+k
		case g.body > 0:
			k := min(int(g.body), len(b)-i)
			if g.ctlOn {
				g.ctlN += copy(g.ctl[g.ctlN:], b[i:i+k])
			}
			g.body, i = g.body-uint32(k), i+k
			if g.body == 0 {
				if err := g.chunkEnd(); err != nil {
					return start, err
				}
			}
		default:
			if g.hdrN == 0 {
				start = i
			}
			g.hdr[g.hdrN] = b[i]
			g.hdrN, i = g.hdrN+1, i+1
			if g.hdrN < g.headerLen() {
				continue
			}
			g.hdrN = 0
			if err := g.header(); err != nil {
				return start, err
			}
			if g.body == 0 {
				if err := g.chunkEnd(); err != nil {
					return start, err
				}
			}
		}
	}
	g.n += len(b)
	return len(b), over
}

// headerLen is the length of the chunk header being read, as far as its first bytes
// tell: the basic header, the message header of its type, an extended timestamp.
func (g *preAuth) headerLen() int {
	if g.hdrN == 0 {
		return 1
	}
	typ := g.hdr[0] >> 6
	n := 1 + [4]int{11, 7, 3, 0}[typ]
	if g.hdrN < n {
		return n
	}
	ext := g.streams[g.hdr[0]&0x3f].ext
	if typ != 3 {
		ext = be24(g.hdr[1:]) >= 0xffffff
	}
	if ext {
		return n + 4
	}
	return n
}

// header takes a whole chunk header, as gortmplib's rawmessage.Reader does.
func (g *preAuth) header() error {
	id := g.hdr[0] & 0x3f
	if id < 2 {
		return errChunkStream
	}
	s, h := &g.streams[id], g.hdr[1:]
	g.cur, g.ctlOn = id, false
	typ := g.hdr[0] >> 6
	if typ == 3 && s.recv != 0 { // the next chunk of a message
		g.chunk = min(s.length-s.recv, g.chunkSize)
		g.body = g.chunk
		return nil
	}
	if (typ != 0 && !s.started) || s.recv != 0 {
		return errChunkStream
	}
	// gortmplib takes a timestamp that is extended for the 32 bits it reads there,
	// and the next chunks of the stream carry one if those are 0xffffff or more.
	if typ < 3 {
		ts := be24(h)
		if n := 1 + [3]int{11, 7, 3}[typ]; ts == 0xffffff {
			ts = uint32(g.hdr[n])<<24 | be24(g.hdr[n+1:])
		}
		s.ext = ts >= 0xffffff
	}
	if typ < 2 {
		length := be24(h[3:])
		if length > maxPreAuthMessage {
			return errPreAuthMessage
		}
		s.started, s.typ, s.length = true, h[6], length
	}
	g.chunk = min(s.length, g.chunkSize)
	g.body = g.chunk
	if s.typ == 1 || s.typ == 2 { // SetChunkSize, Abort
		if s.length != 4 {
			return errControl
		}
		g.ctlOn, g.ctlN = true, 0
	}
	return nil
}

// chunkEnd takes the end of a chunk's body: the end of its message, maybe, which
// for a control message changes how the next chunks are cut.
func (g *preAuth) chunkEnd() error {
	s := &g.streams[g.cur]
	if s.recv += g.chunk; s.recv < s.length {
		return nil
	}
	s.recv = 0
	if !g.ctlOn {
		return nil
	}
	g.ctlOn = false
	v := uint32(g.ctl[0])<<24 | uint32(g.ctl[1])<<16 | uint32(g.ctl[2])<<8 | uint32(g.ctl[3])
	if s.typ == 1 {
		if v < minChunkSize || v > maxChunkSize {
			return errChunkSize
		}
		g.chunkSize = v
	} else if v >= 2 && v < 64 && g.streams[v].recv != 0 {
		g.streams[v].recv, g.streams[v].length = 0, 0 // as gortmplib's AbortChunkStream
	}
	return nil
}

func be24(b []byte) uint32 { return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]) }
