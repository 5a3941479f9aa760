package ingest

import (
	"slices"
	"time"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h265"
)

// unit is one access unit of a publisher, with its timestamps in MPEG-TS ticks (90 kHz).
type unit struct {
	video    bool
	key      bool // a video keyframe; every audio unit of a publisher without video
	pts, dts int64
	data     [][]byte // the NAL units of a video unit; the one frame of an audio unit
	size     int
}

// Bounds of what the hub keeps per publisher.
const (
	// maxGOPBytes bounds the GOP cache: a publisher whose keyframes are further apart
	// (or huge) is cached again from its next keyframe.
	maxGOPBytes = 8 << 20
	// maxGOPUnits bounds the units of the GOP cache too: 10 s of 60 fps video and
	// audio is 1 100.
	maxGOPUnits = 4000
	// maxSinkBytes bounds the memory of a run's backlog (its MPEG-TS), whatever its units.
	maxSinkBytes = 32 << 20
	// sinkQueue is how many units a run's backlog holds (beyond what its pipe holds)
	// before the hub drops to the next keyframe rather than wait for ffmpeg: about 5 s
	// at 30 fps with AAC audio.
	sinkQueue = 400
	// tsOffset is added to every timestamp, so that the first ones (RTMP starts at 0)
	// never make a negative PCR.
	tsOffset = 90000
)

// ticks is d in MPEG-TS ticks (90 kHz).
func ticks(d time.Duration) int64 { return d.Microseconds() * 9 / 100 }

// session is one publisher's connection, whatever its protocol.
type session struct {
	pub    Publisher
	tracks tracks
	close  func()           // ends the connection
	link   func() *SRTStats // an SRT publisher's statistics; nil for RTMP
	params [][]byte
	keyed  bool // a keyframe arrived: a run can start
	// batched: the connection is read in batches and flushes its sinks before each
	// read (RTMP: see readPace); otherwise each unit is written as it comes.
	batched bool
	fed     bool // its GOP cache was handed to a run

	gop      []unit // from the last keyframe
	gopBytes int    // what the units of gop cost
	caching  bool   // false from a GOP over maxGOPBytes to the next keyframe
	first    int64  // dts of the first keyframe
	last     int64  // the latest dts

	window      time.Time // when the bitrate window began
	windowBytes int64
	now         func() time.Time
}

// newSession makes the session of pub; pub.Since is when it connected, or now.
func newSession(pub Publisher, tr tracks, closeFn func(), now func() time.Time) *session {
	if pub.Since.IsZero() {
		pub.Since = now().UTC()
	}
	return &session{pub: pub, tracks: tr, close: closeFn, now: now, window: now()}
}

// cache keeps u in the GOP cache, from the last keyframe, and counts its bytes.
func (s *session) cache(u unit) {
	s.count(u.size)
	if u.key && (u.video || s.tracks.video == nil) {
		if u.video && s.pub.Width == 0 {
			s.describe(u.data)
		}
		if !s.keyed {
			s.keyed, s.first = true, u.dts
		}
		if u.video || len(s.gop) > 100 { // audio alone: keep about 2 s
			s.gop, s.gopBytes, s.caching = s.gop[:0:0], 0, true
		}
	}
	s.last = max(s.last, u.dts)
	if !s.caching {
		return
	}
	if s.gopBytes+u.cost() > maxGOPBytes || len(s.gop) >= maxGOPUnits {
		s.gop, s.gopBytes, s.caching = nil, 0, false
		return
	}
	s.gop = append(s.gop, u)
	s.gopBytes += u.cost()
}

// cost is about the memory u holds: its bytes, a slice header for each NAL unit (and
// the allocator's rounding), and the unit itself. A publisher of many tiny units
// costs what it takes, not what it sends.
func (u unit) cost() int { return u.size + 64*len(u.data) + 96 }

// span is how much media the session has sent since its first keyframe.
func (s *session) span() int64 {
	if !s.keyed {
		return 0
	}
	return s.last - s.first
}

// count measures the bitrate over windows of 2 s and more.
func (s *session) count(n int) {
	s.windowBytes += int64(n)
	now := s.now()
	if el := now.Sub(s.window); el >= 2*time.Second {
		s.pub.Bitrate = s.windowBytes * 8 * int64(time.Second) / int64(el)
		s.window, s.windowBytes = now, 0
	}
}

// publisher is what the API shows of the session, its link statistics read now.
func (s *session) publisher() Publisher {
	p := s.pub
	if s.link != nil {
		p.SRT = s.link()
	}
	return p
}

// videoUnit makes the unit of an H.264 or H.265 access unit. RTMP carries the parameter
// sets out of band (the sequence header) and MPEG-TS needs them in band: they are kept
// from the header and put before every keyframe that lacks them. An access unit of
// parameter sets alone (a new sequence header) only replaces them: ok is false.
// pts and dts are in MPEG-TS ticks.
func (s *session) videoUnit(pts, dts int64, au [][]byte) (u unit, ok bool) {
	hevc := s.pub.Video == "h265"
	// An empty NAL unit (a publisher's bug or an attack) is dropped: the codecs'
	// helpers read each one's first byte.
	au = slices.DeleteFunc(slices.Clone(au), func(n []byte) bool { return len(n) == 0 })
	if onlyParams(au, hevc) {
		s.params = append([][]byte(nil), au...)
		return unit{}, false
	}
	key := h264.IsRandomAccess(au)
	if hevc {
		key = h265.IsRandomAccess(au)
	}
	if key && !hasParams(au, hevc) && len(s.params) > 0 {
		at := 0 // after an access unit delimiter, which must come first
		if isAUD(au[0], hevc) {
			at = 1
		}
		au = slices.Concat(au[:at], s.params, au[at:])
	}
	u = unit{video: true, key: key, pts: pts + tsOffset, dts: dts + tsOffset, data: au}
	for _, n := range au {
		u.size += len(n)
	}
	return u, len(au) > 0
}

// setParams keeps the parameter sets of a sequence header (RTMP's, out of band), to
// put before the keyframes that lack them; its other NAL units (SEI) are no media.
func (s *session) setParams(ps [][]byte) {
	hevc := s.pub.Video == "h265"
	var keep [][]byte
	for _, n := range ps {
		if isParam(n, hevc) {
			keep = append(keep, n)
		}
	}
	if len(keep) > 0 {
		s.params = keep
	}
}

// audioUnit makes the unit of an AAC frame; pts is in MPEG-TS ticks. A frame that ADTS
// cannot frame (13 bits of length, its header's 7 bytes among them; a real one is
// under 800 bytes a channel) or an empty one is dropped: ok is false.
func (s *session) audioUnit(pts int64, frame []byte) (u unit, ok bool) {
	if len(frame) == 0 || len(frame) > maxADTSFrame {
		return unit{}, false
	}
	t := pts + tsOffset
	return unit{key: s.tracks.video == nil, pts: t, dts: t, data: [][]byte{frame}, size: len(frame)}, true
}

// maxADTSFrame is the largest AAC frame an ADTS header can frame.
const maxADTSFrame = 1<<13 - 1 - 7

// isParam reports whether n is a parameter set NAL unit.
func isParam(n []byte, hevc bool) bool {
	if len(n) == 0 {
		return false
	}
	if hevc {
		switch h265.NALUType((n[0] >> 1) & 0b111111) {
		case h265.NALUType_VPS_NUT, h265.NALUType_SPS_NUT, h265.NALUType_PPS_NUT:
			return true
		}
		return false
	}
	t := h264.NALUType(n[0] & 0x1f)
	return t == h264.NALUTypeSPS || t == h264.NALUTypePPS
}

// isAUD reports whether n is an access unit delimiter.
func isAUD(n []byte, hevc bool) bool {
	if hevc {
		return h265.NALUType((n[0]>>1)&0b111111) == h265.NALUType_AUD_NUT
	}
	return h264.NALUType(n[0]&0x1f) == h264.NALUTypeAccessUnitDelimiter
}

func onlyParams(au [][]byte, hevc bool) bool {
	for _, n := range au {
		if !isParam(n, hevc) {
			return false
		}
	}
	return len(au) > 0
}

func hasParams(au [][]byte, hevc bool) bool {
	for _, n := range au {
		if isParam(n, hevc) {
			return true
		}
	}
	return false
}

// describe fills the publisher's size and frame rate from the SPS of a keyframe (in
// band, or put there by videoUnit).
func (s *session) describe(au [][]byte) {
	hevc := s.pub.Video == "h265"
	for _, n := range au {
		if len(n) == 0 {
			continue
		}
		if hevc && h265.NALUType((n[0]>>1)&0b111111) == h265.NALUType_SPS_NUT {
			var sps h265.SPS
			if sps.Unmarshal(n) == nil {
				s.pub.Width, s.pub.Height, s.pub.FPS = sps.Width(), sps.Height(), sps.FPS()
			}
			return
		}
		if !hevc && h264.NALUType(n[0]&0x1f) == h264.NALUTypeSPS {
			var sps h264.SPS
			if sps.Unmarshal(n) == nil {
				s.pub.Width, s.pub.Height, s.pub.FPS = sps.Width(), sps.Height(), sps.FPS()
			}
			return
		}
	}
}
