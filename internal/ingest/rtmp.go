package ingest

import (
	"errors"
	"fmt"
	"net"
	"runtime/debug"
	"strings"
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

// serveRTMP accepts RTMP (or RTMPS) connections until the listener closes. It rides
// out failures of Accept (no descriptor left: EMFILE), waiting longer after each.
func (h *Hub) serveRTMP(ln net.Listener) {
	defer h.wg.Done()
	var delay time.Duration
	for {
		conn, err := ln.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			h.log.Warn().Err(err).Str("listener", ln.Addr().String()).Dur("retry_in", delay).Msg("ingest accept failed")
			time.Sleep(delay)
			continue
		}
		delay = 0
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
	release, ok := h.admit(host)
	if !ok {
		h.cfg.Observer.Rejected("limit")
		h.log.Debug().Str("remote", remote).Msg("rtmp connection refused: too many not yet authorized")
		return
	}
	connected := h.now()
	sc, st, err := h.rtmpAccept(conn)
	release()
	if err == nil {
		err = h.rtmpSession(conn, sc, st, connected)
	}
	var ref refusal
	var pre preAuthError
	switch {
	case errors.As(err, &ref):
		h.refuse(RTMP, remote, ref)
	case errors.As(err, &pre):
		// gortmplib's errors may quote the connect object, whose tcUrl may hold the
		// key: only the stage is logged.
		h.lim.failed(host)
		ev := h.log.Debug().Str("remote", remote).Str("stage", pre.stage).Bool("timeout", pre.timeout())
		if errors.Is(pre.err, errGuard) { // the guard's own: no key in it
			ev = ev.AnErr("refused", pre.err)
		}
		ev.Msg("rtmp connection ended before its publish was authorized")
	case err != nil:
		h.log.Debug().Str("remote", remote).Err(err).Msg("rtmp connection ended")
	}
}

// preAuthError is how a connection failed before its publish was authorized: in the
// handshake, the connect or the publish command, or by the pre-authorization deadline.
type preAuthError struct {
	stage string // handshake | connect | publish
	err   error
}

func (e preAuthError) Error() string { return "rtmp " + e.stage + ": " + e.err.Error() }
func (e preAuthError) Unwrap() error { return e.err }

func (e preAuthError) timeout() bool {
	var ne net.Error
	return errors.As(e.err, &ne) && ne.Timeout()
}

// rtmpAccept does the handshake, within preAuthTimeout, and refuses what is not a
// publish with a known key: it returns the connection and the stream it publishes to.
func (h *Hub) rtmpAccept(conn net.Conn) (*gortmplib.ServerConn, *Stream, error) {
	_ = conn.SetDeadline(h.now().Add(min(preAuthTimeout, h.cfg.ReadTimeout)))
	sc := &gortmplib.ServerConn{RW: newRTMPConn(conn)}
	if err := sc.Initialize(); err != nil {
		return nil, nil, preAuthError{"handshake", err}
	}
	if err := sc.AcceptConn(); err != nil {
		return nil, nil, preAuthError{"connect", err}
	}
	st, err := h.authorize(sc)
	if err != nil {
		_ = sc.RejectAction()
		return nil, nil, err
	}
	if err := sc.AcceptAction(); err != nil {
		return nil, nil, preAuthError{"publish", err}
	}
	_ = conn.SetWriteDeadline(time.Time{})
	sc.RW.(*rtmpConn).buffered(h.cfg.ReadTimeout)
	return sc, st, nil
}

// rtmpSession reads an accepted publisher's media into its stream until it goes.
func (h *Hub) rtmpSession(conn net.Conn, sc *gortmplib.ServerConn, st *Stream, connected time.Time) error {
	r := &rtmpReader{conn: sc} // the connection ends a publisher silent for ReadTimeout
	if err := r.findTracks(); err != nil {
		return fmt.Errorf("rtmp tracks: %w", err)
	}
	enc := sc.FlashVer // the client's to say: shown in the API, its events and logs
	if len(enc) > maxEncoder {
		enc = strings.ToValidUTF8(enc[:maxEncoder], "")
	}
	pub := Publisher{Protocol: RTMP, Remote: conn.RemoteAddr().String(), Encoder: enc, Since: connected.UTC()}
	sess := h.rtmpPublisher(conn, pub, r, st)
	sess.batched = true
	if err := st.attach(sess); err != nil {
		return err
	}
	sc.RW.(*rtmpConn).drained = func() { st.flush(sess) }
	end := errHandler // until the read fails
	defer func() { st.detach(sess, end) }()
	h.cfg.Observer.Publishers(RTMP, 1)
	defer h.cfg.Observer.Publishers(RTMP, -1)
	for {
		if err := r.read(); err != nil {
			end = err
			return fmt.Errorf("rtmp read: %w", err)
		}
	}
}

// maxEncoder bounds the encoder string kept of an RTMP publisher (its flashVer).
const maxEncoder = 128

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
	r.onParams = sess.setParams
	r.onAudio = func(pts time.Duration, au []byte) {
		if u, ok := sess.audioUnit(ticks(pts), au); ok {
			st.push(sess, u)
		}
	}
	return sess
}
