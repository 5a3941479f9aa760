package ingest

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/abema/go-mp4"
	"github.com/bluenviron/gortmplib"
	"github.com/bluenviron/gortmplib/pkg/message"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// rtmpClient connects a gortmplib client that publishes with key to h.
func rtmpClient(t *testing.T, h *Hub, key string) *gortmplib.Client {
	t.Helper()
	u, err := url.Parse("rtmp://" + h.RTMPAddr().String() + "/" + App + "/" + key)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &gortmplib.Client{URL: u, Publish: true}
	if err := c.Initialize(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
}

// emptySPSConfig is an AVC sequence header whose SPS is empty: a malformed header
// that once crashed the daemon.
func emptySPSConfig() *message.Video {
	return &message.Video{
		ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeConfig,
		AVCConfig: &mp4.AVCDecoderConfiguration{
			AnyTypeBox:           mp4.AnyTypeBox{Type: mp4.BoxTypeAvcC()},
			ConfigurationVersion: 1, Profile: 66, Level: 30, LengthSizeMinusOne: 3,
			NumOfSequenceParameterSets: 1,
			SequenceParameterSets:      []mp4.AVCParameterSet{{Length: 0, NALUnit: []byte{}}},
			NumOfPictureParameterSets:  1,
			PictureParameterSets:       []mp4.AVCParameterSet{{Length: 4, NALUnit: []byte{0x68, 0xce, 0x3c, 0x80}}},
		},
	}
}

// TestEmptyParameterSet publishes a sequence header with an empty SPS, then a
// keyframe: the hub takes the publisher (without the empty NAL unit) and lives on.
func TestEmptyParameterSet(t *testing.T) {
	h, _ := newTestHub(t, 5*time.Second)
	st, key, _ := addStream(t, h, "stage-a")
	c := rtmpClient(t, h, key)
	if err := c.Write(emptySPSConfig()); err != nil {
		t.Fatal(err)
	}
	idr := &message.Video{ChunkStreamID: message.VideoChunkStreamID, MessageStreamID: 0x1000000, Codec: message.CodecH264,
		IsKeyFrame: true, Type: message.VideoTypeAU, AU: []byte{0, 0, 0, 2, 0x65, 0x88}}
	for i := range 8 { // past trackWait: the tracks are known without audio
		idr.DTS = time.Duration(i) * 100 * time.Millisecond
		if err := c.Write(idr); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("the publisher never fed the stream: %v", err)
	}
}

// TestVideoUnitEmptyNALUs gives videoUnit access units with empty NAL units.
func TestVideoUnitEmptyNALUs(t *testing.T) {
	tests := []struct {
		name    string
		codec   string
		au      [][]byte
		ok, key bool
	}{
		{"h264 all empty", "h264", [][]byte{{}, nil}, false, false},
		{"h264 empty then idr", "h264", [][]byte{{}, {0x65, 0x88}}, true, true},
		{"h264 empty then sps", "h264", [][]byte{nil, {0x67, 1}}, false, false},
		{"h265 all empty", "h265", [][]byte{{}}, false, false},
		{"h265 empty then idr", "h265", [][]byte{{}, {19 << 1, 1}}, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(Publisher{Video: tt.codec}, tracks{video: &tscodecs.H264{}}, func() {}, time.Now)
			u, ok := s.videoUnit(0, 0, tt.au)
			if ok != tt.ok || u.key != tt.key {
				t.Errorf("ok %v key %v, want %v %v", ok, u.key, tt.ok, tt.key)
			}
			for _, n := range u.data {
				if len(n) == 0 {
					t.Errorf("an empty NAL unit in %q", u.data)
				}
			}
		})
	}
}

// panicky is an Observer that panics when a publisher is counted.
type panicky struct{ counts }

func (p *panicky) Publishers(Protocol, int) { panic("observer failed") }

// TestHandlerPanic checks the backstop: a panic while handling a publisher closes its
// connection and ends it as the stream's publisher; the hub lives on.
func TestHandlerPanic(t *testing.T) {
	obs := &panicky{counts{rejected: map[string]int{}}}
	h, err := New(Config{RTMPListen: "127.0.0.1:0", ReadTimeout: 5 * time.Second, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.Close() })
	st, key, _ := addStream(t, h, "stage-a")
	done := make(chan struct{})
	st.OnEvent(func(e Event) {
		if e.Type == "publisher_gone" {
			close(done)
		}
	})
	c := rtmpClient(t, h, key)
	for _, m := range encoderMessages(t, true, true, true, 0) {
		if err := c.Write(m); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the publisher whose handler panicked was not ended")
	}
	if p := st.Publisher(); p != nil {
		t.Errorf("publisher %+v after the panic, want none", p)
	}
}
