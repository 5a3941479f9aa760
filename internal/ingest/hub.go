// Package ingest is the daemon's push-ingest hub: encoders (OBS, a hardware encoder, a
// phone) publish to it over RTMP or RTMPS (gortmplib) or SRT (internal/srt), on one port of each for
// every job, and it hands each job's ffmpeg what its publisher sends, re-muxed to
// MPEG-TS on a pipe. A publish names its
// job by its stream key: random, shown once, kept only as a SHA-256 hash, compared in
// constant time, never logged. Unknown keys, other applications and play requests are
// refused before any media is read; a new publisher with a valid key takes over from
// the one before at once (an encoder reconnecting while its old connection is
// half-open); a publisher silent for the read timeout is dropped. The hub keeps each
// publisher's last GOP, so that a new ffmpeg run starts at a keyframe, and drops to the
// next keyframe rather than stall a publisher when ffmpeg falls behind.
package ingest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Config is what a Hub needs from the daemon.
type Config struct {
	// RTMPListen is the address of the RTMP listener (":1935"); "" leaves it off.
	RTMPListen string
	// RTMPSListen is the address of the RTMPS listener (":1936"), with the PEM
	// certificate TLSCert and its key TLSKey; "" leaves it off.
	RTMPSListen     string
	TLSCert, TLSKey string
	// SRTListen is the UDP address of the SRT listener (":9000"); "" leaves it off.
	SRTListen string
	// PublicHost is the host name the URLs shown to users carry; "" is the listener's
	// own address, or this machine's host name when it listens on every address.
	PublicHost string
	// ReadTimeout ends a publisher that sends nothing for that long (10 s).
	ReadTimeout time.Duration
	// Hold binds the listeners but accepts nothing until Start: the daemon puts its
	// jobs back on the hub first, so that encoders reconnecting after a restart wait
	// in the listen backlog rather than be refused (and counted against a ban).
	Hold bool
	Log  zerolog.Logger
	// Observer counts what the hub does, for metrics; nil counts nothing.
	Observer Observer
}

// Observer receives the hub's counts. Its methods must be fast and safe for
// concurrent use.
type Observer interface {
	// Publishers reports that the number of publishers of a protocol changed by delta.
	Publishers(p Protocol, delta int)
	// Received counts media bytes received for job.
	Received(job string, n int)
	// Rejected counts a refused publisher, by reason: key, app, play, codec, limit,
	// passphrase.
	Rejected(reason string)
	// Takeover counts a publisher replaced by a new one with the same key.
	Takeover()
}

type noObserver struct{}

func (noObserver) Publishers(Protocol, int) {}
func (noObserver) Received(string, int)     {}
func (noObserver) Rejected(string)          {}
func (noObserver) Takeover()                {}

// Hub is every job's stream, and the listeners publishers reach them on.
type Hub struct {
	cfg   Config
	log   zerolog.Logger
	rtmp  net.Listener
	rtmps net.Listener // nil when off
	srt   srtListener
	now   func() time.Time
	lim   *limiter

	mu      sync.Mutex
	streams map[string]*Stream
	binder  Binder // creates the jobs of bound keys; nil for none
	conns   map[net.Conn]struct{}
	preAuth map[string]int // connections not yet authorized, by host
	preAll  int            // and in all
	started bool
	closed  bool
	wg      sync.WaitGroup
}

// ErrOff is returned for a push job when no listener of the protocols it allows is on.
var ErrOff = errors.New("push ingest is off: start the daemon with --ingest-rtmp-listen, --ingest-rtmps-listen or --ingest-srt-listen")

// New starts the hub's listeners. A hub with none is valid: it refuses push jobs.
func New(cfg Config) (*Hub, error) {
	if cfg.ReadTimeout <= 0 {
		cfg.ReadTimeout = 10 * time.Second
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	h := &Hub{cfg: cfg, log: cfg.Log.With().Str("component", "ingest").Logger(), now: time.Now,
		lim: newLimiter(time.Now), streams: map[string]*Stream{}, conns: map[net.Conn]struct{}{}, preAuth: map[string]int{}}
	if cfg.RTMPListen != "" {
		ln, err := net.Listen("tcp", cfg.RTMPListen)
		if err != nil {
			return nil, fmt.Errorf("ingest rtmp listen: %w", err)
		}
		h.rtmp = ln
		h.log.Info().Str("rtmp", ln.Addr().String()).Msg("push ingest listening")
	}
	if cfg.RTMPSListen != "" {
		if err := h.listenRTMPS(cfg.RTMPSListen); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	if cfg.SRTListen != "" {
		if err := h.listenSRT(cfg.SRTListen); err != nil {
			_ = h.Close()
			return nil, err
		}
	}
	if !cfg.Hold {
		h.Start()
	}
	return h, nil
}

// Start accepts publishers on the listeners of a hub made with Config.Hold; once,
// and not after Close.
func (h *Hub) Start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.started || h.closed {
		return
	}
	h.started = true
	for _, ln := range []net.Listener{h.rtmp, h.rtmps} {
		if ln != nil {
			h.wg.Add(1)
			go h.serveRTMP(ln)
		}
	}
	if h.srt != nil {
		h.wg.Add(1)
		go h.serveSRT(h.srt)
	}
}

// Close stops the listeners, ends every publisher and waits for their goroutines.
func (h *Hub) Close() error {
	h.mu.Lock()
	h.closed = true
	if h.rtmp != nil {
		_ = h.rtmp.Close()
	}
	if h.rtmps != nil {
		_ = h.rtmps.Close()
	}
	if h.srt != nil {
		h.srt.Close()
	}
	for c := range h.conns {
		_ = c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
	return nil
}

// RTMPAddr is the address the RTMP listener listens on; nil when it is off.
func (h *Hub) RTMPAddr() net.Addr {
	if h == nil || h.rtmp == nil {
		return nil
	}
	return h.rtmp.Addr()
}

// SRTAddr is the address the SRT listener listens on; nil when it is off.
func (h *Hub) SRTAddr() net.Addr {
	if h == nil || h.srt == nil {
		return nil
	}
	return h.srt.Addr()
}

// Allows reports whether the hub listens for p.
func (h *Hub) Allows(p Protocol) bool {
	return h != nil && (p == RTMP && (h.rtmp != nil || h.rtmps != nil) || p == SRT && h.srt != nil)
}

// Add gives job id a stream that publishers of the protocols allow reach with the key
// whose hash is hash.
func (h *Hub) Add(id string, hash Hash, allow []Protocol) (*Stream, error) {
	s := &Stream{id: id, hash: hash, allow: map[Protocol]bool{}, queue: sinkQueue, obs: h.cfg.Observer, changed: make(chan struct{})}
	for _, p := range allow {
		s.allow[p] = true
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.streams[id]; ok {
		return nil, fmt.Errorf("ingest stream %q exists", id)
	}
	h.streams[id] = s
	return s, nil
}

// Remove takes job id's stream out of the hub: its publisher is closed and its key
// refused from now on.
func (h *Hub) Remove(id string) {
	h.mu.Lock()
	s := h.streams[id]
	delete(h.streams, id)
	h.mu.Unlock()
	if s != nil {
		s.remove()
	}
}

// find returns the stream that key publishes to over p, creating its job first when
// the key is bound to one (SetBinder); nil when none.
func (h *Hub) find(key string, p Protocol) *Stream {
	hash := HashKey(key)
	if s := h.match(hash, p); s != nil || !h.bind(hash, p) {
		return s
	}
	return h.match(hash, p)
}

// match returns the stream whose key has hash over p; nil when none. Every stream's
// hash is compared, in constant time, whatever matches.
func (h *Hub) match(hash Hash, p Protocol) *Stream {
	h.mu.Lock()
	defer h.mu.Unlock()
	var found *Stream
	for _, s := range h.streams {
		if s.matches(hash, p) {
			found = s
		}
	}
	return found
}

// Endpoints is where an encoder publishes a job's stream.
type Endpoints struct {
	RTMPURL   string `json:"rtmp_url,omitempty"` // OBS's "Server"
	RTMPSURL  string `json:"rtmps_url,omitempty"`
	StreamKey string `json:"stream_key,omitempty"`
	SRTURL    string `json:"srt_url,omitempty"`
}

// Endpoints returns the URLs of a stream for key; key "" (the stream is shown
// without its key) leaves the key out.
func (h *Hub) Endpoints(key string, allow []Protocol) Endpoints {
	var e Endpoints
	for _, p := range allow {
		if p == RTMP && h.rtmp != nil {
			e.RTMPURL = "rtmp://" + net.JoinHostPort(h.publicHost(), port(h.rtmp.Addr())) + "/" + App
			e.StreamKey = key
		}
		if p == RTMP && h.rtmps != nil {
			e.RTMPSURL = "rtmps://" + net.JoinHostPort(h.publicHost(), port(h.rtmps.Addr())) + "/" + App
			e.StreamKey = key
		}
		if p == SRT && h.Allows(SRT) {
			e.SRTURL = "srt://" + net.JoinHostPort(h.publicHost(), port(h.srt.Addr()))
			if key != "" {
				e.SRTURL += "?streamid=publish:" + key
			}
			e.StreamKey = key
		}
	}
	return e
}

// publicHost is the host the URLs name.
func (h *Hub) publicHost() string {
	if h.cfg.PublicHost != "" {
		return h.cfg.PublicHost
	}
	listen := h.cfg.RTMPListen
	if listen == "" {
		listen = h.cfg.RTMPSListen
	}
	if listen == "" {
		listen = h.cfg.SRTListen
	}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip := net.ParseIP(host); ip == nil || !ip.IsUnspecified() {
			return host
		}
	}
	if name, err := os.Hostname(); err == nil {
		return name
	}
	return "localhost"
}

func port(a net.Addr) string {
	switch t := a.(type) {
	case *net.TCPAddr:
		return strconv.Itoa(t.Port)
	case *net.UDPAddr:
		return strconv.Itoa(t.Port)
	}
	_, p, _ := net.SplitHostPort(a.String())
	return p
}

// track keeps conn to close it at Close; it reports false when the hub is closed.
func (h *Hub) track(conn net.Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.conns[conn] = struct{}{}
	h.wg.Add(1)
	return true
}

func (h *Hub) untrack(conn net.Conn) {
	h.mu.Lock()
	delete(h.conns, conn)
	h.mu.Unlock()
	h.wg.Done()
}

// What an RTMP client that has not yet been authorized may hold: a place among
// maxPreAuth (maxPreAuthPerHost from one host), for preAuthTimeout at most. Until its
// publish is authorized a client can make gortmplib allocate up to 10 MiB at once
// (the chunk size it announces), so these bound the memory unauthenticated clients
// take (to about 40 MiB from one host, 640 MiB from 16 hosts or more).
const (
	maxPreAuth        = 64
	maxPreAuthPerHost = 4
	preAuthTimeout    = 5 * time.Second
)

// admit takes a place for a connection from host that is not yet authorized; release
// gives it back, once however often it is called. ok is false when none is left.
func (h *Hub) admit(host string) (release func(), ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.preAll >= maxPreAuth || h.preAuth[host] >= maxPreAuthPerHost {
		return nil, false
	}
	h.preAll++
	h.preAuth[host]++
	var once sync.Once
	return func() {
		once.Do(func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.preAll--
			if h.preAuth[host]--; h.preAuth[host] <= 0 {
				delete(h.preAuth, host)
			}
		})
	}, true
}

// refuse counts a refused publisher against its address and in the metric, and logs
// why (never its key).
func (h *Hub) refuse(p Protocol, remote string, ref refusal) {
	host, _, _ := net.SplitHostPort(remote)
	h.lim.failed(host)
	h.cfg.Observer.Rejected(ref.reason)
	h.log.Warn().Str("remote", remote).Str("reason", ref.reason).Err(ref.err).Msg(string(p) + " publisher refused")
}
