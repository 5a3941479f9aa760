package ingest

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"

	"github.com/transcoderd/transcoderd/internal/srt"
)

// srtKey returns the stream key of an SRT stream id that asks to publish, in
// MediaMTX's syntax (publish:KEY) or SRT's access-control one (#!::r=KEY,m=publish).
// A request to read is refused as play.
func srtKey(streamID string) (string, error) {
	var key, mode string
	if rest, ok := strings.CutPrefix(streamID, "#!::"); ok {
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "r":
				key = v
			case "m":
				mode = v
			}
		}
	} else {
		mode, key, _ = strings.Cut(streamID, ":")
	}
	switch {
	case mode == "read" || mode == "request":
		return "", errPlay
	case mode != "publish":
		return "", errNoKey
	case key == "" || strings.ContainsAny(key, ":/,"):
		return "", errNoKey
	case len(key) > maxKeyLen:
		return "", errLongKey
	}
	return key, nil
}

// errPlay is a request to read a stream: the hub only takes publishers.
var errPlay = errors.New("play requested: this server only takes publishers")

// srtListener is the SRT listener; an interface so that a test can make it fail.
type srtListener interface {
	Accept() (*srt.Request, error)
	Addr() net.Addr
	Close() error
}

// listenSRT starts the SRT listener.
func (h *Hub) listenSRT(addr string) error {
	ln, err := srt.Listen(addr, srt.Config{})
	if err != nil {
		return fmt.Errorf("ingest srt listen: %w", err)
	}
	h.srt = ln
	h.log.Info().Str("srt", ln.Addr().String()).Msg("push ingest listening")
	return nil
}

// serveSRT takes SRT connection requests until the listener closes or fails: its
// errors are for good (its socket is gone).
func (h *Hub) serveSRT(ln srtListener) {
	defer h.wg.Done()
	for {
		req, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, srt.ErrClosed) {
				h.log.Error().Err(err).Msg("srt listener failed: no more srt publishers until a restart")
			}
			return
		}
		h.mu.Lock()
		if h.closed {
			h.mu.Unlock()
			req.Reject(srt.RejectClose)
			return
		}
		h.wg.Add(1)
		h.mu.Unlock()
		go func() {
			defer h.wg.Done()
			h.handleSRT(req)
		}()
	}
}

// handleSRT refuses a request that is not a publish with a known key in the
// handshake, before any media; it serves an accepted one to its end.
func (h *Hub) handleSRT(req *srt.Request) {
	remote := req.RemoteAddr().String()
	defer h.recovered(SRT, remote)
	defer req.Reject(srt.RejectInternal) // unless answered: the caller is not left waiting
	host, _, _ := net.SplitHostPort(remote)
	if h.lim.banned(host) {
		h.cfg.Observer.Rejected("limit")
		req.Reject(srt.RejectOverload)
		return
	}
	st, err := h.authorizeSRT(req.StreamID())
	if err != nil {
		var ref refusal
		errors.As(err, &ref)
		req.Reject(srt.RejectUnauthorized)
		h.refuse(SRT, remote, ref)
		return
	}
	if err := checkPassphrase(req, st.srtPassphrase()); err != nil {
		req.Reject(srt.RejectBadSecret)
		h.refuse(SRT, remote, refusal{"passphrase", err})
		return
	}
	conn, err := req.Accept()
	if err != nil {
		return
	}
	if !h.track(conn) {
		_ = conn.Close()
		return
	}
	defer h.untrack(conn)
	defer conn.Close()
	if err := h.srtSession(conn, st); err != nil {
		h.log.Debug().Str("remote", remote).Err(err).Msg("srt connection ended")
	}
}

// CheckPassphrase reports whether p can be an SRT passphrase: SRT takes 10 to 79
// characters (its key material is derived from them).
func CheckPassphrase(p string) error {
	if len(p) < 10 || len(p) > 79 {
		return fmt.Errorf("must be 10 to 79 characters, not %d", len(p))
	}
	return nil
}

// checkPassphrase holds an SRT request to the stream's passphrase: one is required
// when the stream has one, and refused when it has none.
func checkPassphrase(req *srt.Request, passphrase string) error {
	switch {
	case passphrase == "" && req.Encrypted():
		return errors.New("encrypted, but the job has no passphrase")
	case passphrase == "":
		return nil
	case !req.Encrypted():
		return errors.New("not encrypted, but the job has a passphrase")
	}
	if err := req.SetPassphrase(passphrase); err != nil {
		return fmt.Errorf("wrong passphrase: %w", err)
	}
	return nil
}

// authorizeSRT finds the stream an SRT stream id publishes to. The key is never logged.
func (h *Hub) authorizeSRT(streamID string) (*Stream, error) {
	key, err := srtKey(streamID)
	switch {
	case errors.Is(err, errPlay):
		return nil, refusal{"play", err}
	case err != nil:
		return nil, refusal{"key", err}
	}
	st := h.find(key, SRT)
	if st == nil {
		return nil, refusal{"key", errors.New("unknown stream key")}
	}
	return st, nil
}

// srtSession demuxes the MPEG-TS an SRT publisher sends into its stream until it goes.
func (h *Hub) srtSession(conn *srt.Conn, st *Stream) error {
	idle := newIdleCloser(conn, h.cfg.ReadTimeout)
	defer idle.stop()
	r := newTSReader(idle)
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("srt mpeg-ts: %w", err)
	}
	r.OnDecodeError(func(error) {})
	sess, err := srtPublisher(conn, r, st, h.now)
	if err != nil {
		return err
	}
	if err := st.attach(sess); err != nil {
		return err
	}
	end := errHandler // until the read fails
	defer func() { st.detach(sess, end) }()
	h.cfg.Observer.Publishers(SRT, 1)
	defer h.cfg.Observer.Publishers(SRT, -1)
	for {
		if err := r.Read(); err != nil {
			end = err
			return fmt.Errorf("srt read: %w", err)
		}
	}
}

// srtPublisher makes the session of an accepted SRT publisher: its first video and
// audio tracks, whose data go to st.
func srtPublisher(conn *srt.Conn, r *tsReader, st *Stream, now func() time.Time) (*session, error) {
	pub := Publisher{Protocol: SRT, Remote: conn.RemoteAddr().String()}
	var tr tracks
	var vt, at *tsTrack
	for _, t := range r.Tracks() {
		switch c := t.codec.(type) {
		case *tscodecs.H264:
			if vt == nil {
				vt, tr.video, pub.Video = t, c, "h264"
			}
		case *tscodecs.H265:
			if vt == nil {
				vt, tr.video, pub.Video = t, c, "h265"
			}
		case *tscodecs.MPEG4Audio:
			if at == nil {
				at, tr.audio, pub.Audio = t, c, "aac"
			}
		}
	}
	if vt == nil && at == nil {
		return nil, refusal{"codec", errors.New("no H.264, H.265 or AAC track")}
	}
	sess := newSession(pub, tr, func() { _ = conn.Close() }, now)
	sess.link = srtStats(conn)
	video := func(pts, dts int64, au [][]byte) error {
		if u, ok := sess.videoUnit(pts, dts, au); ok {
			st.push(sess, u)
		}
		return nil
	}
	if vt != nil && pub.Video == "h265" {
		r.OnDataH265(vt, video)
	} else if vt != nil {
		r.OnDataH264(vt, video)
	}
	if at != nil {
		rate := int64(at.codec.(*tscodecs.MPEG4Audio).SampleRate)
		r.OnDataMPEG4Audio(at, func(pts int64, aus [][]byte) error {
			for i, au := range aus { // 1024 samples each
				if u, ok := sess.audioUnit(pts+int64(i)*1024*90000/max(rate, 1), au); ok {
					st.push(sess, u)
				}
			}
			return nil
		})
	}
	return sess, nil
}

// idleCloser closes a connection that has delivered nothing for a while (a publisher
// that sends keepalives and no media; srt.Conn has no read deadlines).
type idleCloser struct {
	conn  *srt.Conn
	limit time.Duration
	timer *time.Timer
}

func newIdleCloser(conn *srt.Conn, limit time.Duration) *idleCloser {
	return &idleCloser{conn: conn, limit: limit, timer: time.AfterFunc(limit, func() { _ = conn.Close() })}
}

func (c *idleCloser) Read(p []byte) (int, error) {
	n, err := c.conn.Read(p)
	if n > 0 {
		c.timer.Reset(c.limit) // only here: Read is never called concurrently
	}
	return n, err
}

func (c *idleCloser) stop() { c.timer.Stop() }
