package ingest

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"
	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// demuxed is what mediacommon's reader found in an MPEG-TS stream: its tracks' codecs
// and, per track, each unit as "pts/dts/keyframe: payload".
type demuxed struct {
	codecs []string
	units  map[string][]string
}

// demuxTS reads b with mediacommon's MPEG-TS reader.
func demuxTS(t *testing.T, b []byte) demuxed {
	t.Helper()
	r := &mpegts.Reader{R: bytes.NewReader(b)}
	if err := r.Initialize(); err != nil {
		t.Fatalf("read the tables: %v", err)
	}
	r.OnDecodeError(func(err error) { t.Errorf("decode: %v", err) })
	d := demuxed{units: map[string][]string{}}
	video := func(name string) func(pts, dts int64, au [][]byte) error {
		return func(pts, dts int64, au [][]byte) error {
			d.units[name] = append(d.units[name], fmt.Sprintf("%d/%d: %x", pts, dts, bytes.Join(au, []byte("|"))))
			return nil
		}
	}
	for _, tr := range r.Tracks() {
		switch c := tr.Codec.(type) {
		case *tscodecs.H264:
			d.codecs = append(d.codecs, "h264")
			r.OnDataH264(tr, video("video"))
		case *tscodecs.H265:
			d.codecs = append(d.codecs, "h265")
			r.OnDataH265(tr, video("video"))
		case *tscodecs.MPEG4Audio:
			d.codecs = append(d.codecs, fmt.Sprintf("aac %d Hz %d ch", c.Config.SampleRate, c.Config.ChannelCount))
			r.OnDataMPEG4Audio(tr, func(pts int64, aus [][]byte) error {
				for _, au := range aus {
					d.units["audio"] = append(d.units["audio"], fmt.Sprintf("%d: %x", pts, au))
				}
				return nil
			})
		default:
			t.Fatalf("track of %T", c)
		}
	}
	for {
		if err := r.Read(); err == io.EOF || err == io.ErrUnexpectedEOF {
			return d
		} else if err != nil {
			t.Fatalf("read: %v", err)
		}
	}
}

// mediacommonTS writes units with mediacommon's MPEG-TS writer: what the hub's muxer
// must match, as a reader sees it.
func mediacommonTS(t *testing.T, tr tracks, units []unit) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := &mpegts.Writer{W: &buf}
	var video, audio *mpegts.Track
	if tr.video != nil {
		video = &mpegts.Track{Codec: tr.video}
		w.Tracks = append(w.Tracks, video)
	}
	if tr.audio != nil {
		audio = &mpegts.Track{Codec: tr.audio}
		w.Tracks = append(w.Tracks, audio)
	}
	if err := w.Initialize(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.WriteTables(); err != nil {
		t.Fatal(err)
	}
	for _, u := range units {
		var err error
		switch _, hevc := tr.video.(*tscodecs.H265); {
		case !u.video:
			err = w.WriteMPEG4Audio(audio, u.pts, u.data)
		case hevc:
			err = w.WriteH265(video, u.pts, u.dts, u.data)
		default:
			err = w.WriteH264(video, u.pts, u.dts, u.data)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

// TestTSMuxer checks the hub's MPEG-TS muxer against mediacommon's writer, as
// mediacommon's reader reads both: the same tracks, the same units with the same
// timestamps. Payload sizes run across packet boundaries (a PES packet that ends 1,
// 2... bytes short of a packet: every stuffing), past 64 KiB (a video PES packet
// without a length), with B-frames (pts after dts) and without.
func TestTSMuxer(t *testing.T) {
	aac := &tscodecs.MPEG4Audio{Config: mpeg4audio.AudioSpecificConfig{Type: mpeg4audio.ObjectTypeAACLC, SampleRate: 48000, ChannelCount: 2}}
	var sizes []int
	for n := 1; n <= 2*tsPacket+2; n++ { // every remainder, in first and later packets
		sizes = append(sizes, n)
	}
	sizes = append(sizes, 1000, 70000, 200000)
	for _, tc := range []struct {
		name string
		tr   tracks
	}{
		{"h264 aac", tracks{video: &tscodecs.H264{}, audio: aac}},
		{"h265 aac", tracks{video: &tscodecs.H265{}, audio: aac}},
		{"h264", tracks{video: &tscodecs.H264{}}},
		{"aac", tracks{audio: aac}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, hevc := tc.tr.video.(*tscodecs.H265)
			units := testUnits(tc.tr, hevc, sizes)
			got, err := muxAll(tc.tr, units)
			if err != nil {
				t.Fatal(err)
			}
			if len(got)%tsPacket != 0 {
				t.Fatalf("%d bytes: not whole packets", len(got))
			}
			ref := mediacommonTS(t, tc.tr, units)
			samePackets(t, got, ref)
			want := demuxTS(t, ref)
			have := demuxTS(t, got)
			if !slices.Equal(have.codecs, want.codecs) {
				t.Errorf("tracks %q, mediacommon's %q", have.codecs, want.codecs)
			}
			for _, name := range []string{"video", "audio"} {
				h, w := have.units[name], want.units[name]
				if len(h) != len(w) {
					t.Errorf("%d %s units, mediacommon's %d", len(h), name, len(w))
					continue
				}
				for i := range h {
					if h[i] != w[i] {
						t.Errorf("%s unit %d:\n got  %.120s\n want %.120s", name, i, h[i], w[i])
						break
					}
				}
			}
		})
	}
}

// samePackets checks that a stream is mediacommon's byte for byte, but for the PMT's
// version: astits counts up when its writer names the PCR's PID again.
func samePackets(t *testing.T, got, want []byte) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%d bytes, mediacommon's %d", len(got), len(want))
		return
	}
	for i := 0; i < len(got); i += tsPacket {
		g, w := got[i:i+tsPacket], want[i:i+tsPacket]
		if pid := int(g[1]&0x1F)<<8 | int(g[2]); pid == tsPMTPID {
			continue
		}
		if !bytes.Equal(g, w) {
			for j := range g {
				if g[j] != w[j] {
					t.Errorf("packet %d differs from byte %d:\n got  % x\n want % x", i/tsPacket, j, g[j:min(j+24, tsPacket)], w[j:min(j+24, tsPacket)])
					return
				}
			}
		}
	}
}

// muxAll muxes units into one stream, tables first, as a sink does.
func muxAll(tr tracks, units []unit) ([]byte, error) {
	var b bytes.Buffer
	err := writeTS(&b, tr, units)
	return b.Bytes(), err
}

// testUnits makes video units of each size (every fourth a keyframe, then every 60th;
// odd ones with B-frame timestamps) and audio frames of each size, interleaved.
func testUnits(tr tracks, hevc bool, sizes []int) []unit {
	var units []unit
	for i, n := range sizes {
		pts := int64(900000 + 3000*i)
		if tr.video != nil {
			key := i%4 == 0 && i < 100 || i%60 == 0 // and 40 PES packets apart: tables every 40
			nal := bytes.Repeat([]byte{byte(i + 1)}, n)
			switch {
			case hevc && key:
				nal[0] = 19 << 1 // IDR_W_RADL
			case hevc:
				nal[0] = 1 << 1 // TRAIL_R
			case key:
				nal[0] = 0x65 // IDR
			default:
				nal[0] = 0x41 // non-IDR slice
			}
			au := [][]byte{nal}
			if i%3 == 0 { // with a SEI before it
				sei := []byte{0x06, 0x05, 0x01, 0x80}
				if hevc {
					sei = []byte{39 << 1, 1, 0x05, 0x01, 0x80}
				}
				au = [][]byte{sei, nal}
			}
			dts := pts
			if i%2 == 1 {
				pts += 6000
			}
			units = append(units, unit{video: true, key: key, pts: pts, dts: dts, data: au, size: n})
		}
		if tr.audio != nil && n < 8000 { // an ADTS frame has 13 bits of length
			frame := bytes.Repeat([]byte{byte(i + 7)}, n)
			units = append(units, unit{key: tr.video == nil, pts: pts + 10, dts: pts + 10, data: [][]byte{frame}, size: n})
		}
	}
	return units
}

// TestTSMuxerTimestamps checks PTS and PCR fields bit by bit at the 33-bit edges.
func TestTSMuxerTimestamps(t *testing.T) {
	for _, ts := range []int64{0, 1, 0x7FFF, 0x8000, 1<<30 - 1, 1 << 30, 1<<32 + 12345, 1<<33 - 1} {
		b := appendTimestamp(nil, 0x2, ts)
		got := int64(b[0]>>1&0x07)<<30 | int64(b[1])<<22 | int64(b[2]>>1)<<15 | int64(b[3])<<7 | int64(b[4]>>1)
		if got != ts || b[0]>>4 != 0x2 || b[0]&1 != 1 || b[2]&1 != 1 || b[4]&1 != 1 {
			t.Errorf("timestamp %d: % x reads %d", ts, b, got)
		}
	}
}
