package ingest

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
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
	defer h.untrack(conn)
	defer conn.Close()
	remote := conn.RemoteAddr().String()
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
	r := &gortmplib.Reader{Conn: sc}
	if err := r.Initialize(); err != nil {
		return fmt.Errorf("rtmp tracks: %w", err)
	}
	sess, err := h.rtmpPublisher(conn, sc, r, st, connected)
	if err != nil {
		return err
	}
	if err := st.attach(sess); err != nil {
		return err
	}
	h.cfg.Observer.Publishers(RTMP, 1)
	defer h.cfg.Observer.Publishers(RTMP, -1)
	for {
		_ = conn.SetReadDeadline(h.now().Add(h.cfg.ReadTimeout))
		if err := r.Read(); err != nil {
			st.detach(sess, err)
			return fmt.Errorf("rtmp read: %w", err)
		}
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

// rtmpPublisher makes the session of an accepted publisher: its first video and audio
// tracks, whose data go to the stream it will be attached to.
func (h *Hub) rtmpPublisher(conn net.Conn, sc *gortmplib.ServerConn, r *gortmplib.Reader, st *Stream, connected time.Time) (*session, error) {
	pub := Publisher{Protocol: RTMP, Remote: conn.RemoteAddr().String(), Encoder: sc.FlashVer, Since: connected.UTC()}
	var tr tracks
	var vt, at *gortmplib.Track
	for _, t := range r.Tracks() {
		switch c := t.Codec.(type) {
		case *codecs.H264:
			if vt == nil && c != nil {
				vt, tr.video, pub.Video = t, &tscodecs.H264{}, "h264"
			}
		case *codecs.H265:
			if vt == nil && c != nil {
				vt, tr.video, pub.Video = t, &tscodecs.H265{}, "h265"
			}
		case *codecs.MPEG4Audio:
			if at == nil && c.Config != nil {
				at, tr.audio, pub.Audio = t, &tscodecs.MPEG4Audio{Config: *c.Config}, "aac"
			}
		}
	}
	if vt == nil && at == nil {
		return nil, refusal{"codec", errors.New("no H.264, H.265 or AAC track")}
	}
	sess := newSession(pub, tr, func() { _ = conn.Close() }, h.now)
	onRTMPData(r, st, sess, vt, at)
	return sess, nil
}

// onRTMPData sends the data of tracks vt and at (either may be nil) to st, as the
// data of sess: the reader calls back while it reads, once sess is attached.
func onRTMPData(r *gortmplib.Reader, st *Stream, sess *session, vt, at *gortmplib.Track) {
	push := func(u unit) { st.push(sess, u) }
	video := func(pts, dts time.Duration, au [][]byte) {
		if u, ok := sess.videoUnit(ticks(pts), ticks(dts), au); ok {
			push(u)
		}
	}
	if vt != nil {
		if _, ok := vt.Codec.(*codecs.H265); ok {
			r.OnDataH265(vt, video)
		} else {
			r.OnDataH264(vt, video)
		}
	}
	if at != nil {
		r.OnDataMPEG4Audio(at, func(pts time.Duration, au []byte) { push(sess.audioUnit(ticks(pts), au)) })
	}
}
