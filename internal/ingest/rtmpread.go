package ingest

import (
	"errors"
	"fmt"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/amf0"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/h264"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// An RTMP publisher's tracks are known from its sequence headers: the AVC or HEVC
// decoder configuration of its video, the AudioSpecificConfig of its AAC audio, which
// encoders send before any media. gortmplib's Reader instead reads 2 s of media before
// it tells the tracks (its analyze period, not configurable in v1.0.1), which is 2 s
// more before a push job can start. So the hub reads the publisher's messages itself:
// it waits for the headers of the tracks the onMetaData announces (videocodecid,
// audiocodecid), and without one for both headers or trackWait of media, whichever
// comes first. A header that does not come within headerWait of media is given up: the
// publisher goes on with the tracks it has.
const (
	trackWait  = 500 * time.Millisecond
	headerWait = 2 * time.Second
	// maxEarly bounds the messages kept while the tracks are found, and maxEarlyBytes
	// what they hold (the bytes received for them, and earlyOverhead each).
	maxEarly      = 2000
	maxEarlyBytes = 16 << 20
	earlyOverhead = 128
)

// rtmpTracks is what a publisher's first messages told of its tracks.
type rtmpTracks struct {
	video       string // h264 | h265; "" for none (or one the hub cannot take)
	audio       *mpeg4audio.AudioSpecificConfig
	meta        bool // an onMetaData came
	wantVideo   bool // the onMetaData names a video codec
	wantAudio   bool // and an audio codec
	videoHeader bool // a video sequence header came, of whatever codec
	audioHeader bool // an audio one
}

// complete reports whether every track is known that the publisher announced, or both
// when it announced none.
func (t *rtmpTracks) complete() bool {
	if !t.meta {
		return t.videoHeader && t.audioHeader
	}
	return (t.videoHeader || !t.wantVideo) && (t.audioHeader || !t.wantAudio)
}

// rtmpReader reads an accepted RTMP publisher: first its tracks (findTracks), then its
// media, as access units with their timestamps.
type rtmpReader struct {
	conn   gortmplib.Conn
	tracks rtmpTracks
	early  []message.Message // read while finding the tracks: media to hand on

	onVideo  func(pts, dts time.Duration, au [][]byte)
	onParams func(ps [][]byte) // the NAL units of a video sequence header (SEI among them)
	onAudio  func(pts time.Duration, au []byte)
}

// findTracks reads messages until the tracks are known (see above).
func (r *rtmpReader) findTracks() error {
	var first, span time.Duration
	timed := false
	began := r.conn.BytesReceived()
	for {
		msg, err := r.conn.Read()
		if err != nil {
			return err
		}
		held := r.conn.BytesReceived() - began + uint64(earlyOverhead*len(r.early))
		if len(r.early) >= maxEarly || held > maxEarlyBytes {
			return errors.New("no sequence headers in the first messages")
		}
		r.early = append(r.early, msg)
		r.tracks.learn(msg)
		if dts, ok := mediaDTS(msg); ok {
			if !timed {
				first, timed = dts, true
			}
			span = dts - first
		}
		switch {
		case r.tracks.complete():
			return nil
		case !r.tracks.meta && span >= trackWait, span >= headerWait:
			if r.tracks.video == "" && r.tracks.audio == nil {
				return refusal{"codec", errors.New("no H.264, H.265 or AAC track")}
			}
			return nil
		}
	}
}

// learn takes what msg tells of the tracks.
func (t *rtmpTracks) learn(msg message.Message) {
	switch m := msg.(type) {
	case *message.DataAMF0:
		t.metadata(m.Payload)
	case *message.Video:
		if m.Type != message.VideoTypeConfig || t.videoHeader {
			return
		}
		t.videoHeader = true
		t.video, _ = videoHeader(m)
	case *message.VideoExSequenceStart:
		if !t.videoHeader {
			t.videoHeader = true
			t.video, _ = videoHeader(m)
		}
	case *message.Audio:
		if !t.audioHeader && m.Codec == message.CodecMPEG4Audio && m.AACType == message.AudioAACTypeConfig {
			t.audioHeader, t.audio = true, m.AACConfig
		} else if !t.audioHeader && m.Codec != message.CodecMPEG4Audio {
			t.audioHeader = true // MP3, G.711...: no track the hub takes
		}
	case *message.AudioExSequenceStart:
		if !t.audioHeader {
			t.audioHeader, t.audio = true, m.AACConfig // nil for Opus, FLAC...
		}
	}
}

// metadata takes what an onMetaData announces: which tracks will come.
func (t *rtmpTracks) metadata(d amf0.Data) {
	for i, v := range d {
		if s, ok := v.(string); !ok || s != "onMetaData" || i+1 >= len(d) {
			continue
		}
		var obj amf0.Object
		switch o := d[i+1].(type) {
		case amf0.Object:
			obj = o
		case amf0.ECMAArray:
			obj = amf0.Object(o)
		default:
			return
		}
		t.meta = true
		t.wantVideo = announced(obj, "videocodecid")
		t.wantAudio = announced(obj, "audiocodecid")
		return
	}
}

// announced reports whether an onMetaData names a codec for key: a number other than
// 0, or a FourCC string.
func announced(obj amf0.Object, key string) bool {
	v, ok := obj.Get(key)
	switch c := v.(type) {
	case float64:
		return c != 0
	case string:
		return c != ""
	}
	return ok && v != nil
}

// videoHeader is the codec and parameter sets of a video sequence header (legacy or
// Enhanced RTMP); "" for a codec the hub does not take.
func videoHeader(msg message.Message) (string, [][]byte) {
	var avc, hevc bool
	var ps [][]byte
	switch m := msg.(type) {
	case *message.Video:
		avc, hevc = m.AVCConfig != nil, m.HEVCConfig != nil
		if avc {
			for _, s := range append(m.AVCConfig.SequenceParameterSets, m.AVCConfig.PictureParameterSets...) {
				if len(s.NALUnit) > 0 { // an empty one is no NAL unit: nothing may index it
					ps = append(ps, s.NALUnit)
				}
			}
		} else if hevc {
			for _, a := range m.HEVCConfig.NaluArrays {
				for _, n := range a.Nalus {
					if len(n.NALUnit) > 0 {
						ps = append(ps, n.NALUnit)
					}
				}
			}
		}
	case *message.VideoExSequenceStart:
		return videoHeader(&message.Video{AVCConfig: m.AVCConfig, HEVCConfig: m.HEVCConfig})
	}
	switch {
	case len(ps) == 0:
		return "", nil
	case avc:
		return "h264", ps
	case hevc:
		return "h265", ps
	}
	return "", nil
}

// mediaDTS is the decoding time of a media message.
func mediaDTS(msg message.Message) (time.Duration, bool) {
	switch m := msg.(type) {
	case *message.Video:
		return m.DTS, true
	case *message.VideoExCodedFrames:
		return m.DTS, true
	case *message.VideoExFramesX:
		return m.DTS, true
	case *message.Audio:
		return m.DTS, true
	case *message.AudioExCodedFrames:
		return m.DTS, true
	}
	return 0, false
}

// read hands on the next message: first those read while finding the tracks.
func (r *rtmpReader) read() error {
	if len(r.early) > 0 {
		msg := r.early[0]
		r.early = r.early[1:]
		return r.handle(msg)
	}
	msg, err := r.conn.Read()
	if err != nil {
		return err
	}
	return r.handle(msg)
}

// handle hands on the media of msg, of the tracks found; it ignores the rest (other
// tracks of a multitrack publisher among them).
func (r *rtmpReader) handle(msg message.Message) error {
	switch m := msg.(type) {
	case *message.Video:
		if m.Type == message.VideoTypeConfig {
			r.params(videoHeader(m))
			return nil
		}
		if m.Type == message.VideoTypeAU && (m.Codec == message.CodecH264) == (r.tracks.video == "h264") {
			return r.avcc(m.DTS+m.PTSDelta, m.DTS, m.AU)
		}
	case *message.VideoExSequenceStart:
		r.params(videoHeader(m))
	case *message.VideoExCodedFrames:
		if fourCC(m.FourCC) == r.tracks.video {
			return r.avcc(m.DTS+m.PTSDelta, m.DTS, m.Payload)
		}
	case *message.VideoExFramesX:
		if fourCC(m.FourCC) == r.tracks.video {
			return r.avcc(m.DTS, m.DTS, m.Payload)
		}
	case *message.Audio:
		if r.tracks.audio != nil && m.Codec == message.CodecMPEG4Audio && m.AACType == message.AudioAACTypeAU {
			r.onAudio(m.DTS, m.AU)
		}
	case *message.AudioExCodedFrames:
		if r.tracks.audio != nil && m.FourCC == message.FourCCMP4A {
			r.onAudio(m.DTS, m.Payload)
		}
	}
	return nil
}

// params hands on the parameter sets of a new sequence header of the video track.
func (r *rtmpReader) params(codec string, ps [][]byte) {
	if codec != "" && codec == r.tracks.video && r.onParams != nil {
		r.onParams(ps)
	}
}

func (r *rtmpReader) video(pts, dts time.Duration, au [][]byte) {
	if r.tracks.video != "" && len(au) > 0 {
		r.onVideo(pts, dts, au)
	}
}

// avcc hands on an access unit in AVCC form (length-prefixed NAL units, for H.265 too).
func (r *rtmpReader) avcc(pts, dts time.Duration, payload []byte) error {
	var au h264.AVCC
	if err := au.Unmarshal(payload); err != nil {
		if errors.Is(err, h264.ErrAVCCNoNALUs) {
			return nil
		}
		return fmt.Errorf("rtmp video: %w", err)
	}
	r.video(pts, dts, au)
	return nil
}

// fourCC is the codec of an Enhanced RTMP video FourCC, as the hub names it.
func fourCC(f message.FourCC) string {
	switch f {
	case message.FourCCAVC:
		return "h264"
	case message.FourCCHEVC:
		return "h265"
	}
	return "-"
}
