package ingest

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/codecs"
	"github.com/bluenviron/gortmplib/pkg/message"
	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
)

// msgConn is a gortmplib.Conn that keeps what is written and reads it back.
type msgConn struct{ msgs []message.Message }

func (c *msgConn) BytesReceived() uint64 { return 0 }
func (c *msgConn) BytesSent() uint64     { return 0 }
func (c *msgConn) Write(m message.Message) error {
	c.msgs = append(c.msgs, m)
	return nil
}

func (c *msgConn) Read() (message.Message, error) {
	if len(c.msgs) == 0 {
		return nil, io.EOF
	}
	m := c.msgs[0]
	c.msgs = c.msgs[1:]
	return m, nil
}

var testAAC = &mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}

// idr is an H.264 access unit that is a keyframe (an IDR slice; its content is not read).
var idr = [][]byte{{0x65, 0x88, 0x84, 0x00}}

// encoderMessages are the messages gortmplib's client sends for tracks: the onMetaData
// (without it when meta is false), the sequence headers, then an access unit of each
// track every 100 ms for span.
func encoderMessages(t testing.TB, video, audio bool, meta bool, span time.Duration) []message.Message {
	t.Helper()
	c := &msgConn{}
	var vt, at *gortmplib.Track
	var all []*gortmplib.Track
	if video {
		vt = &gortmplib.Track{Codec: &codecs.H264{}}
		all = append(all, vt)
	}
	if audio {
		at = &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: testAAC}}
		all = append(all, at)
	}
	w := &gortmplib.Writer{Conn: c, Tracks: all}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	for d := time.Duration(0); d <= span; d += 100 * time.Millisecond {
		if vt != nil {
			if err := w.WriteH264(vt, d, d, idr); err != nil {
				t.Fatal(err)
			}
		}
		if at != nil {
			if err := w.WriteMPEG4Audio(at, d, []byte{1, 2, 3}); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !meta {
		c.msgs = c.msgs[1:] // the onMetaData is first
	}
	return c.msgs
}

// TestFindTracks checks when the hub knows an RTMP publisher's tracks: at the sequence
// headers of those its onMetaData announces (or of both without one), else after
// trackWait of media, and at headerWait at the latest; never at gortmplib's 2 s of
// analysis when the headers are there.
func TestFindTracks(t *testing.T) {
	for _, c := range []struct {
		name         string
		video, audio bool
		meta         bool
		drop         func(message.Message) bool // messages the encoder does not send
		wantVideo    string
		wantAudio    bool
		wantMedia    time.Duration // of media read before the tracks were known; -1 for none
		wantErr      string
	}{
		{name: "announced video and audio", video: true, audio: true, meta: true, wantVideo: "h264", wantAudio: true, wantMedia: -1},
		{name: "announced video only", video: true, meta: true, wantVideo: "h264", wantMedia: -1},
		{name: "announced audio only", audio: true, meta: true, wantAudio: true, wantMedia: -1},
		{name: "no onMetaData, both headers", video: true, audio: true, wantVideo: "h264", wantAudio: true, wantMedia: -1},
		{name: "no onMetaData, video alone", video: true, wantVideo: "h264", wantMedia: trackWait},
		{
			name: "announced audio header never sent", video: true, audio: true, meta: true, wantVideo: "h264", wantMedia: headerWait,
			drop: func(m message.Message) bool {
				a, ok := m.(*message.Audio)
				return ok && a.AACType == message.AudioAACTypeConfig
			},
		},
		{
			name: "no header at all", video: true, meta: true, wantErr: "no H.264, H.265 or AAC track",
			drop: func(m message.Message) bool {
				v, ok := m.(*message.Video)
				return ok && v.Type == message.VideoTypeConfig
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			msgs := encoderMessages(t, c.video, c.audio, c.meta, 3*time.Second)
			conn := &msgConn{}
			for _, m := range msgs {
				if c.drop == nil || !c.drop(m) {
					conn.msgs = append(conn.msgs, m)
				}
			}
			r := &rtmpReader{conn: conn}
			err := r.findTracks()
			if c.wantErr != "" {
				var ref refusal
				if !errors.As(err, &ref) || ref.reason != "codec" || err.Error() != c.wantErr {
					t.Fatalf("findTracks: %v, want a codec refusal %q", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.tracks.video != c.wantVideo || (r.tracks.audio != nil) != c.wantAudio {
				t.Errorf("tracks: video %q, audio %v; want %q, %v", r.tracks.video, r.tracks.audio != nil, c.wantVideo, c.wantAudio)
			}
			media := time.Duration(-1)
			for _, m := range r.early {
				if d, ok := mediaDTS(m); ok && !isHeader(m) {
					media = max(media, d)
				}
			}
			if media != c.wantMedia {
				t.Errorf("read media up to %v before the tracks were known, want %v", media, c.wantMedia)
			}
		})
	}
}

// TestRTMPTracksAtOnce publishes with gortmplib's client a keyframe and nothing more:
// the hub knows the tracks from the sequence headers and the publisher is ready at
// once, where gortmplib's Reader waited for 2 s of media.
func TestRTMPTracksAtOnce(t *testing.T) {
	h, _ := newTestHub(t, 10*time.Second)
	st, key, _ := addStream(t, h, "stage-a")
	c := rtmpClient(t, h, key)
	vt := &gortmplib.Track{Codec: &codecs.H264{}}
	at := &gortmplib.Track{Codec: &codecs.MPEG4Audio{Config: testAAC}}
	w := &gortmplib.Writer{Conn: c, Tracks: []*gortmplib.Track{vt, at}}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	if err := w.WriteH264(vt, 0, 0, idr); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), time.Second)
	defer wcancel()
	if err := st.Wait(wctx); err != nil {
		t.Fatalf("publisher not ready 1 s after its first keyframe: %v", err)
	}
	t.Logf("first keyframe sent → publisher ready: %v", time.Since(began).Round(time.Millisecond))
	if p := st.Publisher(); p == nil || p.Video != "h264" || p.Audio != "aac" {
		t.Errorf("publisher %+v, want h264 and aac", p)
	}
}

func isHeader(m message.Message) bool {
	switch m := m.(type) {
	case *message.Video:
		return m.Type == message.VideoTypeConfig
	case *message.Audio:
		return m.AACType == message.AudioAACTypeConfig
	}
	return false
}
