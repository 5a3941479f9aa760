package ingest

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts"
	tscodecs "github.com/bluenviron/mediacommon/v2/pkg/formats/mpegts/codecs"
)

// tsEvents demuxes ts with mediacommon's reader (mine false) or tsReader (true), as
// srtPublisher does, and returns what each callback was given, one line each.
func tsEvents(t testing.TB, ts []byte, mine bool, chunks bool) []string {
	t.Helper()
	var r io.Reader = bytes.NewReader(ts)
	if chunks {
		r = &chunkReader{data: ts, rnd: rand.New(rand.NewPCG(1, 2))}
	}
	var out []string
	video := func(pts, dts int64, au [][]byte) error {
		out = append(out, fmt.Sprintf("video %d %d %d %08x", pts, dts, len(au), crc32.ChecksumIEEE(bytes.Join(au, []byte{0}))))
		return nil
	}
	audio := func(pts int64, aus [][]byte) error {
		out = append(out, fmt.Sprintf("audio %d %d %08x", pts, len(aus), crc32.ChecksumIEEE(bytes.Join(aus, []byte{0}))))
		return nil
	}
	codecs := func(c tscodecs.Codec) string {
		if a, ok := c.(*tscodecs.MPEG4Audio); ok {
			return fmt.Sprintf("aac %d Hz %d ch", a.Config.SampleRate, a.Config.ChannelCount) //nolint:staticcheck
		}
		return fmt.Sprintf("%T", c)
	}
	read := func(next func() error) {
		for {
			if err := next(); err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("read: %v", err)
				}
				return
			}
		}
	}
	if !mine {
		mr := &mpegts.Reader{R: r}
		if err := mr.Initialize(); err != nil {
			t.Fatal(err)
		}
		for _, tr := range mr.Tracks() {
			out = append(out, "track "+codecs(tr.Codec))
			switch tr.Codec.(type) {
			case *tscodecs.H264:
				mr.OnDataH264(tr, video)
			case *tscodecs.H265:
				mr.OnDataH265(tr, video)
			case *tscodecs.MPEG4Audio:
				mr.OnDataMPEG4Audio(tr, audio)
			}
		}
		read(mr.Read)
		return out
	}
	tr := newTSReader(r)
	if err := tr.Initialize(); err != nil {
		t.Fatal(err)
	}
	for _, track := range tr.Tracks() {
		out = append(out, "track "+codecs(track.codec))
		switch track.codec.(type) {
		case *tscodecs.H264:
			tr.OnDataH264(track, video)
		case *tscodecs.H265:
			tr.OnDataH265(track, video)
		case *tscodecs.MPEG4Audio:
			tr.OnDataMPEG4Audio(track, audio)
		}
	}
	read(tr.Read)
	return out
}

// chunkReader returns data in reads of 1 to 2000 bytes, as a socket would.
type chunkReader struct {
	data []byte
	rnd  *rand.Rand
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 1+c.rnd.IntN(2000))], c.data)
	c.data = c.data[n:]
	return n, nil
}

// TestTSReaderMatchesMediacommon demuxes what ffmpeg muxes (as OBS and other encoders
// over SRT do) with both readers: tsReader must hand on the same tracks, access units
// and timestamps, in the same order, whatever the reads' sizes.
func TestTSReaderMatchesMediacommon(t *testing.T) {
	cases := []struct {
		name string
		args []string
	}{
		{"h264 aac", []string{"-c:v", "libx264", "-g", "25", "-bf", "2", "-c:a", "aac"}},
		{"hevc aac", []string{"-c:v", "libx265", "-x265-params", "log-level=error", "-g", "25", "-c:a", "aac"}},
		{"h264 only", []string{"-an", "-c:v", "libx264", "-g", "25"}},
		{"aac only", []string{"-vn", "-c:a", "aac"}},
		{"aac 44.1 kHz stereo, small pes", []string{"-vn", "-c:a", "aac", "-ar", "44100", "-ac", "2", "-pes_payload_size", "0"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "in.ts")
			args := slices.Concat([]string{"-nostdin", "-hide_banner", "-loglevel", "error",
				"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
				"-t", "3"}, c.args, []string{"-f", "mpegts", path})
			if out, err := exec.Command("ffmpeg", args...).CombinedOutput(); err != nil {
				t.Fatalf("ffmpeg: %v: %s", err, out)
			}
			ts, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			want := tsEvents(t, ts, false, false)
			for _, chunks := range []bool{false, true} {
				got := tsEvents(t, ts, true, chunks)
				if !slices.Equal(got, want) {
					for i := range max(len(got), len(want)) {
						g, w := "(none)", "(none)"
						if i < len(got) {
							g = got[i]
						}
						if i < len(want) {
							w = want[i]
						}
						if g != w {
							t.Fatalf("chunked reads %v: event %d: got %q, mediacommon %q (%d and %d events)", chunks, i, g, w, len(got), len(want))
						}
					}
				}
			}
			t.Logf("%d events alike", len(want))
		})
	}
}

// TestTSReaderDamage: a stream with packets lost and garbage between packets goes on
// being demuxed: broken PES are skipped, the rest handed on.
func TestTSReaderDamage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "in.ts")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "3", "-c:v", "libx264", "-g", "25", "-c:a", "aac", "-f", "mpegts", path).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, out)
	}
	ts, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	clean := len(tsEvents(t, ts, true, false))
	rnd := rand.New(rand.NewPCG(3, 4))
	var damaged []byte
	for i := 0; i+tsPacket <= len(ts); i += tsPacket {
		switch r := rnd.IntN(100); {
		case r < 2 && i > 20*tsPacket: // lost
		case r < 3: // garbage before it
			damaged = append(damaged, 0x47, 1, 2, 3, 4, 5)
			damaged = append(damaged, ts[i:i+tsPacket]...)
		default:
			damaged = append(damaged, ts[i:i+tsPacket]...)
		}
	}
	got := len(tsEvents(t, damaged, true, true))
	t.Logf("%d of %d events through the damage", got, clean)
	if got < clean/2 || got > clean {
		t.Errorf("%d events from the damaged stream, want most of the %d of the clean one", got, clean)
	}
}

// FuzzTSReader feeds any bytes to tsReader, as a publisher may send: it must neither
// panic nor hang.
func FuzzTSReader(f *testing.F) {
	pkt := func(pid uint16, start bool, payload ...byte) []byte {
		b := make([]byte, tsPacket)
		b[0], b[1], b[2], b[3] = 0x47, byte(pid>>8), byte(pid), 0x10
		if start {
			b[1] |= 0x40
		}
		copy(b[4:], payload)
		return b
	}
	pat := pkt(0, true, 0, 0x00, 0xb0, 13, 0, 1, 0xc1, 0, 0, 0, 1, 0xf0, 0x00, 0, 0, 0, 0)
	pmt := pkt(0x1000, true, 0, 0x02, 0xb0, 23, 0, 1, 0xc1, 0, 0, 0xe1, 0, 0xf0, 0, 0x1b, 0xe1, 0, 0xf0, 0, 0x0f, 0xe1, 1, 0xf0, 0, 0, 0, 0, 0)
	pes := pkt(0x100, true, 0, 0, 1, 0xe0, 0, 0, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1, 0, 0, 0, 1, 9, 0xf0, 0, 0, 0, 1, 0x65, 0x88)
	f.Add(slices.Concat(pat, pmt, pes, pes))
	f.Add(slices.Concat(pat, pmt, pkt(0x101, true, 0, 0, 1, 0xc0, 0, 20, 0x80, 0x80, 5, 0x21, 0, 1, 0, 1, 0xff, 0xf1, 0x50, 0x80, 2, 0x1f, 0xfc)))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := newTSReader(bytes.NewReader(in))
		if r.Initialize() != nil {
			return
		}
		for _, tr := range r.Tracks() {
			switch tr.codec.(type) {
			case *tscodecs.H264:
				r.OnDataH264(tr, func(int64, int64, [][]byte) error { return nil })
			case *tscodecs.H265:
				r.OnDataH265(tr, func(int64, int64, [][]byte) error { return nil })
			case *tscodecs.MPEG4Audio:
				r.OnDataMPEG4Audio(tr, func(int64, [][]byte) error { return nil })
			}
		}
		for r.Read() == nil {
		}
	})
}

// BenchmarkTSReader demuxes 10 s of a 6 Mbit/s 720p stream (H.264 and AAC) with
// tsReader and with mediacommon's reader; "%core" is the share of one core that
// demuxing such a stream live takes.
//
//	go test -run '^$' -bench TSReader -benchtime 20x ./internal/ingest
func BenchmarkTSReader(b *testing.B) {
	path := filepath.Join(b.TempDir(), "6m.ts")
	if out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440",
		"-t", "10", "-vf", "noise=alls=20:allf=t", "-c:v", "libx264", "-preset", "ultrafast", "-g", "60",
		"-b:v", "5872k", "-maxrate", "5872k", "-bufsize", "5872k", "-c:a", "aac", "-f", "mpegts", path).CombinedOutput(); err != nil {
		b.Fatalf("ffmpeg: %v: %s", err, out)
	}
	ts, err := os.ReadFile(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		mine bool
	}{{"tsReader", true}, {"mediacommon", false}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(ts)))
			for b.Loop() {
				tsEvents(b, ts, c.mine, false)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10e9*100, "%core")
		})
	}
}
