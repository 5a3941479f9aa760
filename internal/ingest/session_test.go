package ingest

import (
	"fmt"
	"testing"
	"time"

	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// TestVideoUnitParams checks where the parameter sets of a sequence header go in a
// keyframe that lacks them: first, or right after its access unit delimiter (which
// must stay first: a decoder's parser splits the frame at a delimiter it meets later).
func TestVideoUnitParams(t *testing.T) {
	tests := []struct {
		name   string
		codec  string
		params [][]byte
		au     [][]byte
		want   string
	}{
		{"h264", "h264", [][]byte{{0x67, 1}, {0x68, 2}}, [][]byte{{0x65, 3}}, "[[103 1] [104 2] [101 3]]"},
		{"h264 after its aud", "h264", [][]byte{{0x67, 1}, {0x68, 2}}, [][]byte{{0x09, 0xF0}, {0x65, 3}}, "[[9 240] [103 1] [104 2] [101 3]]"},
		{"h264 with its own", "h264", [][]byte{{0x67, 1}}, [][]byte{{0x67, 9}, {0x65, 3}}, "[[103 9] [101 3]]"},
		{"h264 not a keyframe", "h264", [][]byte{{0x67, 1}}, [][]byte{{0x09, 0xF0}, {0x41, 3}}, "[[9 240] [65 3]]"},
		{"h265 after its aud", "h265", [][]byte{{32 << 1, 1}, {33 << 1, 1}, {34 << 1, 1}}, [][]byte{{35 << 1, 1, 0x50}, {19 << 1, 1}}, "[[70 1 80] [64 1] [66 1] [68 1] [38 1]]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(Publisher{Video: tt.codec}, tracks{video: &tscodecs.H264{}}, func() {}, time.Now)
			s.setParams(tt.params)
			u, ok := s.videoUnit(0, 0, tt.au)
			if got := fmt.Sprint(u.data); !ok || got != tt.want {
				t.Errorf("ok %v, %s; want %s", ok, got, tt.want)
			}
		})
	}
}

// TestAudioUnitBounds checks that an AAC frame ADTS cannot frame is dropped.
func TestAudioUnitBounds(t *testing.T) {
	s := newSession(Publisher{}, tracks{}, func() {}, time.Now)
	for n, want := range map[int]bool{0: false, 1: true, maxADTSFrame: true, maxADTSFrame + 1: false, 1 << 20: false} {
		if _, ok := s.audioUnit(0, make([]byte, n)); ok != want {
			t.Errorf("a frame of %d bytes: ok %v, want %v", n, ok, want)
		}
	}
}
