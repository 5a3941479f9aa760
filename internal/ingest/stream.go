package ingest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// Protocol is how a publisher reaches the hub.
type Protocol string

// Protocols.
const (
	RTMP Protocol = "rtmp"
	SRT  Protocol = "srt"
)

// Publisher is what the API shows of the publisher of a stream while one is connected.
type Publisher struct {
	Protocol Protocol  `json:"protocol"`
	Remote   string    `json:"remote_addr"`
	Encoder  string    `json:"encoder,omitempty"` // what the encoder calls itself (RTMP flashVer)
	Video    string    `json:"video_codec,omitempty"`
	Audio    string    `json:"audio_codec,omitempty"`
	Width    int       `json:"width,omitempty"`
	Height   int       `json:"height,omitempty"`
	FPS      float64   `json:"fps,omitempty"`
	Bitrate  int64     `json:"bitrate"`       // bits per second received, over the last few seconds
	Since    time.Time `json:"since"`         // when it connected
	SRT      *SRTStats `json:"srt,omitempty"` // an SRT publisher's link, as it is when asked
}

// ErrNoPublisher is returned while no publisher with a keyframe feeds the stream.
var ErrNoPublisher = errors.New("no publisher")

// errRemoved is returned by a stream whose job is gone from the hub.
var errRemoved = errors.New("stream removed from the hub")

// Stream is one job's place in the hub: the key that publishes to it, its publisher
// (at most one: a new one takes over), the GOP cache of that publisher, and the pipes
// of the job's ffmpeg runs it feeds.
type Stream struct {
	id    string
	allow map[Protocol]bool
	queue int // units a sink holds before it drops to the next keyframe
	obs   Observer

	mu         sync.Mutex
	hash       Hash
	passphrase string // SRT publishers must encrypt with it; "" for none
	cur        *session
	sinks      []*sink
	changed    chan struct{} // closed and replaced when cur or its readiness changes
	removed    bool
	onEvent    func(Event)
}

// Event is something that happened to a stream's publisher, for the job's events.
type Event struct {
	Type    string // publisher | publisher_gone | publisher_replaced | ingest_behind
	Message string
}

// SetKey replaces the stream's key (a rotation): new publishers must present the new
// one; the running session may finish.
func (s *Stream) SetKey(h Hash) {
	s.mu.Lock()
	s.hash = h
	s.mu.Unlock()
}

// SetPassphrase sets the passphrase SRT publishers must encrypt with ("" for none:
// then an encrypting publisher is refused).
func (s *Stream) SetPassphrase(p string) {
	s.mu.Lock()
	s.passphrase = p
	s.mu.Unlock()
}

func (s *Stream) srtPassphrase() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.passphrase
}

// OnEvent sets what is told of the stream's publishers.
func (s *Stream) OnEvent(fn func(Event)) {
	s.mu.Lock()
	s.onEvent = fn
	s.mu.Unlock()
}

func (s *Stream) matches(h Hash, p Protocol) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hash.equal(h) && s.allow[p] && !s.removed
}

// notifyLocked wakes whoever waits for a change. s.mu is held.
func (s *Stream) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

func (s *Stream) tell(e Event) {
	s.mu.Lock()
	fn := s.onEvent
	s.mu.Unlock()
	if fn != nil {
		fn(e)
	}
}

// attach makes sess the stream's publisher; the one before, if any, is taken over:
// its connection is closed and the runs it fed see the end of their input.
func (s *Stream) attach(sess *session) error {
	s.mu.Lock()
	if s.removed {
		s.mu.Unlock()
		return errRemoved
	}
	old := s.cur
	s.cur = sess
	s.closeSinksLocked()
	s.notifyLocked()
	s.mu.Unlock()
	if old != nil {
		old.close()
		s.obs.Takeover()
		s.tell(Event{Type: "publisher_replaced", Message: fmt.Sprintf("%s publisher from %s replaced by one from %s", old.pub.Protocol, old.pub.Remote, sess.pub.Remote)})
		return nil
	}
	s.tell(Event{Type: "publisher", Message: fmt.Sprintf("%s publisher connected from %s (%s)", sess.pub.Protocol, sess.pub.Remote, sess.pub.Encoder)})
	return nil
}

// detach ends sess as the stream's publisher, unless another took over already.
func (s *Stream) detach(sess *session, why error) {
	s.mu.Lock()
	if s.cur != sess {
		s.mu.Unlock()
		return
	}
	s.cur = nil
	s.closeSinksLocked()
	s.notifyLocked()
	s.mu.Unlock()
	s.tell(Event{Type: "publisher_gone", Message: fmt.Sprintf("%s publisher from %s gone: %v", sess.pub.Protocol, sess.pub.Remote, why)})
}

func (s *Stream) closeSinksLocked() {
	for _, k := range s.sinks {
		k.close()
	}
	s.sinks = nil
}

// remove takes the stream out of service: its publisher is closed, its runs see
// their input end.
func (s *Stream) remove() {
	s.mu.Lock()
	s.removed = true
	cur := s.cur
	s.cur = nil
	s.closeSinksLocked()
	s.notifyLocked()
	s.mu.Unlock()
	if cur != nil {
		cur.close()
	}
}

// push takes a unit of sess into the GOP cache and the running sinks; those of a
// batched session write it at its next flush.
func (s *Stream) push(sess *session, u unit) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != sess {
		return // taken over: the old connection's last packets
	}
	s.obs.Received(s.id, u.size)
	wasKeyed := sess.keyed
	sess.cache(u)
	if sess.keyed && !wasKeyed {
		s.notifyLocked()
	}
	live := s.sinks[:0]
	behind := false
	for _, k := range s.sinks {
		if k.dead() {
			k.close()
			continue
		}
		behind = k.offer(u) || behind
		live = append(live, k)
	}
	s.sinks = live
	if behind {
		go s.tell(Event{Type: "ingest_behind", Message: "ffmpeg reads the publisher slower than it sends: media dropped up to the next keyframe"})
	}
}

// Ready reports whether a publisher feeds the stream and has sent a keyframe.
func (s *Stream) Ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur != nil && s.cur.keyed
}

// Wait returns once a publisher feeds the stream and has sent a keyframe, or with
// ctx's error.
func (s *Stream) Wait(ctx context.Context) error {
	for {
		s.mu.Lock()
		ready, removed, ch := s.cur != nil && s.cur.keyed, s.removed, s.changed
		s.mu.Unlock()
		switch {
		case removed:
			return errRemoved
		case ready:
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// Publisher returns the stream's publisher; nil when none is connected.
func (s *Stream) Publisher() *Publisher {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil {
		return nil
	}
	p := s.cur.publisher()
	return &p
}

// Open returns the read end of a pipe that carries the publisher's media as MPEG-TS,
// for the next ffmpeg run (its descriptor 3). The first run of a session starts with
// the GOP cache (from the keyframe the publisher sent last); a later run of the same
// session (ffmpeg died) starts at the next keyframe, so that it encodes nothing twice.
// The pipe ends when the publisher goes. It returns ErrNoPublisher when none is ready.
func (s *Stream) Open() (*os.File, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("ingest pipe: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.cur
	if sess == nil || !sess.keyed {
		_ = r.Close()
		_ = w.Close()
		return nil, ErrNoPublisher
	}
	k := newSink(sess.tracks, w, s.queue)
	if sess.fed || !sess.caching || len(sess.gop) == 0 {
		k.skip = true // to the next keyframe: the cache is spent, or dropped (too big)
	} else {
		for _, u := range sess.gop {
			k.offer(u)
		}
		sess.fed = true
	}
	k.batched = sess.batched // the cache went unit by unit, as through any sink
	s.sinks = append(s.sinks, k)
	return r, nil
}

// flush writes out what the running sinks of sess muxed: its connection is about to
// be read again (see readPace).
func (s *Stream) flush(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur != sess {
		return
	}
	for _, k := range s.sinks {
		k.flush()
	}
}

// WriteGOP writes the publisher's GOP cache to w as MPEG-TS, for a probe, once it
// spans at least span of media (or ctx ends, or the cache holds a whole GOP).
func (s *Stream) WriteGOP(ctx context.Context, w io.Writer, span time.Duration) error {
	for {
		s.mu.Lock()
		sess := s.cur
		var gop []unit
		var tr tracks
		done := false
		if sess != nil && sess.keyed && sess.caching { // else the GOP was too big: the next one
			gop, tr = append([]unit(nil), sess.gop...), sess.tracks
			done = len(gop) > 0 && sess.span() >= ticks(span)
		}
		s.mu.Unlock()
		if sess == nil {
			return ErrNoPublisher
		}
		if done || (ctx.Err() != nil && len(gop) > 0) {
			return writeTS(w, tr, gop)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// tracks is what a session carries, as MPEG-TS codecs: nil when absent.
type tracks struct {
	video, audio tscodecs.Codec
}
