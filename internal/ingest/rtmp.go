package ingest

import (
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"time"

	"github.com/bluenviron/gortmplib"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// refusal is why a publisher was refused, as the metric counts it, with the error told
// in the log.
type refusal struct {
	reason string // key | app | play | codec | limit
	err    error
}

func (r refusal) Error() string { return r.err.Error() }
func (r refusal) Unwrap() error { return r.err }

// serveRTMP accepts RTMP connections until the listener closes.
func (h *Hub) serveRTMP(ln net.Listener) {
	defer h.wg.Done()
	for {
		conn, err := ln.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return
		}
		if !h.track(conn) {
			_ = conn.Close()
			return
		}
		go h.handleRTMP(conn)
	}
}

// handleRTMP serves one RTMP connection to its end.
func (h *Hub) handleRTMP(conn net.Conn) {
	remote := conn.RemoteAddr().String()
	defer h.recovered(RTMP, remote)
	defer h.untrack(conn)
	defer conn.Close()
	host, _, _ := net.SplitHostPort(remote)
	if h.lim.banned(host) {
		h.cfg.Observer.Rejected("limit")
		return // not even a handshake
	}
	err := h.rtmpSession(conn)
	var ref refusal
	switch {
	case errors.As(err, &ref):
		h.lim.failed(host)
		h.cfg.Observer.Rejected(ref.reason)
		h.log.Warn().Str("remote", remote).Str("reason", ref.reason).Err(ref.err).Msg("rtmp publisher refused")
	case err != nil:
		h.log.Debug().Str("remote", remote).Err(err).Msg("rtmp connection ended")
	}
}

// rtmpSession does the handshake, refuses what is not a publish with a known key, and
// reads the publisher's media into its stream until it goes.
func (h *Hub) rtmpSession(conn net.Conn) error {
	connected := h.now()
	_ = conn.SetReadDeadline(connected.Add(h.cfg.ReadTimeout))
	sc := &gortmplib.ServerConn{RW: conn}
	if err := sc.Initialize(); err != nil {
		return fmt.Errorf("rtmp handshake: %w", err)
	}
	if err := sc.AcceptConn(); err != nil {
		return fmt.Errorf("rtmp connect: %w", err)
	}
	st, err := h.authorize(sc)
	if err != nil {
		_ = sc.RejectAction()
		return err
	}
	if err := sc.AcceptAction(); err != nil {
		return fmt.Errorf("rtmp publish: %w", err)
	}
	r := &rtmpReader{conn: sc}
	if err := r.findTracks(); err != nil {
		return fmt.Errorf("rtmp tracks: %w", err)
	}
	pub := Publisher{Protocol: RTMP, Remote: conn.RemoteAddr().String(), Encoder: sc.FlashVer, Since: connected.UTC()}
	sess := h.rtmpPublisher(conn, pub, r, st)
	if err := st.attach(sess); err != nil {
		return err
	}
	end := errHandler // until the read fails
	defer func() { st.detach(sess, end) }()
	h.cfg.Observer.Publishers(RTMP, 1)
	defer h.cfg.Observer.Publishers(RTMP, -1)
	for {
		_ = conn.SetReadDeadline(h.now().Add(h.cfg.ReadTimeout))
		if err := r.read(); err != nil {
			end = err
			return fmt.Errorf("rtmp read: %w", err)
		}
	}
}

// errHandler ends a publisher whose connection's handler failed (recovered).
var errHandler = errors.New("the hub failed to handle the connection")

// recovered is deferred by each connection's handler: a panic while handling one
// publisher (a bug no fuzzing found) closes that connection, not the daemon. Only the
// remote address, the panic and the stack are logged: never the key.
func (h *Hub) recovered(p Protocol, remote string) {
	if v := recover(); v != nil {
		h.log.Error().Str("protocol", string(p)).Str("remote", remote).Str("panic", fmt.Sprint(v)).
			Str("stack", string(debug.Stack())).Msg("ingest connection handler panicked: connection closed")
	}
}

// authorize finds the stream an RTMP publish is for. The key is never logged.
func (h *Hub) authorize(sc *gortmplib.ServerConn) (*Stream, error) {
	if !sc.Publish {
		return nil, refusal{"play", errors.New("play requested: this server only takes publishers")}
	}
	key, err := rtmpKey(sc.URL.Path)
	if err != nil {
		reason := "key"
		if errors.Is(err, errBadApp) {
			reason = "app"
		}
		return nil, refusal{reason, err}
	}
	st := h.find(key, RTMP)
	if st == nil {
		return nil, refusal{"key", errors.New("unknown stream key")}
	}
	return st, nil
}

// rtmpPublisher makes the session of an accepted publisher, whose tracks r found: their
// data go to the stream it will be attached to.
func (h *Hub) rtmpPublisher(conn net.Conn, pub Publisher, r *rtmpReader, st *Stream) *session {
	var tr tracks
	switch r.tracks.video {
	case "h264":
		tr.video = &tscodecs.H264{}
	case "h265":
		tr.video = &tscodecs.H265{}
	}
	if r.tracks.audio != nil {
		tr.audio, pub.Audio = &tscodecs.MPEG4Audio{Config: *r.tracks.audio}, "aac"
	}
	pub.Video = r.tracks.video
	sess := newSession(pub, tr, func() { _ = conn.Close() }, h.now)
	r.onVideo = func(pts, dts time.Duration, au [][]byte) {
		if u, ok := sess.videoUnit(ticks(pts), ticks(dts), au); ok {
			st.push(sess, u)
		}
	}
	r.onAudio = func(pts time.Duration, au []byte) { st.push(sess, sess.audioUnit(ticks(pts), au)) }
	return sess
}
