package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// fixture is a real ffmpeg rendition read into memory.
type fixture struct {
	init     []byte
	segments [][]byte
}

func loadFixture(t testing.TB, out func(dir string) []string) fixture {
	t.Helper()
	dir := t.TempDir()
	r := encode(t, dir, out(dir)...)
	var fx fixture
	var err error
	if fx.init, err = os.ReadFile(r.init); err != nil {
		t.Fatal(err)
	}
	for _, p := range r.segments {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fx.segments = append(fx.segments, data)
	}
	return fx
}

func audioFixture(t testing.TB) fixture {
	return loadFixture(t, func(dir string) []string { return append(append([]string{}, aacStereo...), hlsFMP4(dir)...) })
}

func videoFixture(t testing.TB) fixture {
	return loadFixture(t, func(dir string) []string { return append(append([]string{}, x264...), hlsFMP4(dir)...) })
}

// boxEnd returns the offset just past the first top-level box of type typ.
func boxEnd(t *testing.T, data []byte, typ string) (start, end int) {
	t.Helper()
	for pos := 0; pos+8 <= len(data); {
		size := int(binary.BigEndian.Uint32(data[pos:]))
		if size < 8 {
			break
		}
		if string(data[pos+4:pos+8]) == typ {
			return pos, pos + size
		}
		pos += size
	}
	t.Fatalf("no %s box", typ)
	return 0, 0
}

func TestParseMalformed(t *testing.T) {
	fx := audioFixture(t)
	in, err := ParseInit(fx.init)
	if err != nil {
		t.Fatal(err)
	}
	seg := fx.segments[1]
	_, moofEnd := boxEnd(t, seg, "moof")
	mdatStart, _ := boxEnd(t, seg, "mdat")
	// An mdat 100 bytes short of what the trun says, but well-formed as a box.
	shortMdat := append([]byte{}, seg[:len(seg)-100]...)
	binary.BigEndian.PutUint32(shortMdat[mdatStart:], uint32(len(shortMdat)-mdatStart))
	otherTrack := in
	otherTrack.TrackID = 2
	noMvex := rewriteInit(t, fx.init)

	huge := []byte("\xff\xff\xff\xffmoof")
	// Progressive (not fragmented) MP4 files, as a camera or an upload would be.
	progressive := func(opts testmedia.SampleOptions) []byte {
		path := filepath.Join(t.TempDir(), "progressive.mp4")
		opts.Width, opts.Height, opts.Duration = 160, 90, 500*time.Millisecond
		testmedia.WriteSample(t, path, opts)
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	tests := []struct {
		name    string
		init    bool // parse as init segment, else as media segment
		data    []byte
		with    *Init
		wantErr string // in the message
		wantIs  error  // in the chain, when not nil
	}{
		{name: "empty segment", data: nil, wantErr: "no moof"},
		{name: "text as segment", data: []byte("this is not an mp4 file, just some words"), wantErr: "not an mp4 box"},
		{name: "segment cut in mdat", data: seg[:len(seg)/2], wantErr: "truncated", wantIs: ErrTruncated},
		{name: "segment cut in box header", data: seg[:moofEnd+5], wantErr: "truncated", wantIs: ErrTruncated},
		{name: "segment cut after moof", data: seg[:moofEnd], wantErr: "moof without mdat", wantIs: ErrTruncated},
		{name: "styp and sidx only", data: seg[:boxStart(t, seg, "moof")], wantErr: "no moof"},
		{name: "mdat shorter than its samples", data: shortMdat, with: &in, wantErr: "mdat holds"},
		{name: "segment for another track", data: seg, with: &otherTrack, wantErr: "no track fragment for track 2"},
		{name: "init as segment", data: fx.init, wantErr: "moov"},
		{name: "box claiming 4 GiB", data: huge, wantErr: "claims 4294967295 bytes", wantIs: ErrTruncated},
		{name: "box claiming 2^64 bytes", data: []byte("\x00\x00\x00\x01mdat\xff\xff\xff\xff\xff\xff\xff\xff"), wantIs: ErrTruncated},
		{name: "box smaller than its header", data: []byte("\x00\x00\x00\x04moof"), wantErr: "smaller than its header"},
		{name: "box running to end of file", data: []byte("\x00\x00\x00\x00moof"), wantErr: "size 0"},
		{name: "empty init", init: true, data: nil, wantErr: "no moov"},
		{name: "text as init", init: true, data: []byte("<html>not an init segment</html>"), wantErr: "not an mp4 box"},
		{name: "box of zeros as init", init: true, data: make([]byte, 64), wantErr: "size 0"},
		{name: "unknown box as init", init: true, data: []byte("\x00\x00\x00\x0cabcd\x00\x00\x00\x00"), wantErr: "no moov"},
		{name: "init cut short", init: true, data: fx.init[:len(fx.init)-10], wantIs: ErrTruncated},
		{name: "segment as init", init: true, data: seg, wantErr: "no moov"},
		{name: "init without mvex", init: true, data: noMvex, wantErr: "no mvex"},
		{name: "progressive mp4 with two tracks as init", init: true, data: progressive(testmedia.SampleOptions{}), wantErr: "2 tracks"},
		{name: "progressive mp4 as init", init: true, data: progressive(testmedia.SampleOptions{Video: true}), wantErr: "no mvex"},
		{name: "progressive mp4 as segment", data: progressive(testmedia.SampleOptions{Audio: true}), wantErr: "moov"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var err error
			if tt.init {
				var got Init
				got, err = ParseInit(tt.data)
				if got != (Init{}) {
					t.Errorf("ParseInit returned %+v with its error, want the zero Init", got)
				}
			} else {
				var got Segment
				got, err = ParseSegment(tt.data, tt.with)
				if got != (Segment{}) {
					t.Errorf("ParseSegment returned %+v with its error, want the zero Segment", got)
				}
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error = %v, want one containing %q", err, tt.wantErr)
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("error = %v, want one wrapping %v", err, tt.wantIs)
			}
		})
	}
}

// boxStart returns the offset of the first top-level box of type typ.
func boxStart(t *testing.T, data []byte, typ string) int {
	t.Helper()
	start, _ := boxEnd(t, data, typ)
	return start
}

// rewriteInit returns init without its mvex box.
func rewriteInit(t *testing.T, init []byte) []byte {
	t.Helper()
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(init))
	if err != nil {
		t.Fatal(err)
	}
	moov := f.Moov
	var kept []mp4.Box
	for _, c := range moov.Children {
		if c.Type() != "mvex" {
			kept = append(kept, c)
		}
	}
	moov.Children, moov.Mvex = kept, nil
	f.FragEncMode = mp4.EncModeBoxTree
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestParseTruncated cuts a real init and a real segment at every length
// short of whole: each cut must be an error, none a panic.
func TestParseTruncated(t *testing.T) {
	fx := audioFixture(t)
	in, err := ParseInit(fx.init)
	if err != nil {
		t.Fatal(err)
	}
	seg := fx.segments[1]
	if _, err := ParseSegment(seg, &in); err != nil {
		t.Fatalf("whole segment: %v", err)
	}
	for n := range len(seg) {
		if _, err := ParseSegment(seg[:n], &in); err == nil {
			t.Fatalf("segment cut to %d of %d bytes parsed without error", n, len(seg))
		}
	}
	for n := range len(fx.init) {
		if _, err := ParseInit(fx.init[:n]); err == nil {
			t.Fatalf("init cut to %d of %d bytes parsed without error", n, len(fx.init))
		}
	}
}

// TestParseSegmentDefaults rewrites a real video segment so that sample
// durations and flags come from each level of defaults in turn.
func TestParseSegmentDefaults(t *testing.T) {
	fx := videoFixture(t)
	in, err := ParseInit(fx.init)
	if err != nil {
		t.Fatal(err)
	}
	seg := fx.segments[1]
	orig, err := ParseSegment(seg, &in)
	if err != nil {
		t.Fatal(err)
	}
	if orig.Samples != 30 || orig.Duration != 15360 || !orig.FirstIsKeyframe {
		t.Fatalf("ffmpeg's segment: %+v, want 30 samples lasting 15360 from a keyframe", orig)
	}
	const nonSync = 0x01010000 // sample_depends_on=1, sample_is_non_sync_sample
	clearTfhd := func(flag uint32) func(*mp4.TrafBox) {
		return func(traf *mp4.TrafBox) { traf.Tfhd.Flags &^= flag }
	}
	tests := []struct {
		name         string
		edit         []func(*mp4.TrafBox)
		trex         sampleDefaults
		nilInit      bool
		wantDuration uint64
		wantKey      bool
	}{
		{
			name:         "as ffmpeg writes it: tfhd defaults, first-sample flags",
			wantDuration: 15360, wantKey: true,
		},
		{
			name:         "nil init: tfhd and trun suffice",
			nilInit:      true,
			wantDuration: 15360, wantKey: true,
		},
		{
			name:         "durations from trex",
			edit:         []func(*mp4.TrafBox){clearTfhd(mp4.TfhdDefaultSampleDurationPresentFlag)},
			trex:         sampleDefaults{duration: 512},
			wantDuration: 15360, wantKey: true,
		},
		{
			name:         "tfhd duration beats trex",
			trex:         sampleDefaults{duration: 1000},
			wantDuration: 15360, wantKey: true,
		},
		{
			name:         "no duration anywhere",
			edit:         []func(*mp4.TrafBox){clearTfhd(mp4.TfhdDefaultSampleDurationPresentFlag)},
			wantDuration: 0, wantKey: true,
		},
		{
			name: "no first-sample flags: tfhd's non-sync default applies",
			edit: []func(*mp4.TrafBox){func(traf *mp4.TrafBox) {
				for _, trun := range traf.Truns {
					trun.RemoveFirstSampleFlags()
				}
			}},
			wantDuration: 15360, wantKey: false,
		},
		{
			name: "no first-sample or tfhd flags: trex's non-sync default applies",
			edit: []func(*mp4.TrafBox){clearTfhd(mp4.TfhdDefaultSampleFlagsPresentFlag), func(traf *mp4.TrafBox) {
				for _, trun := range traf.Truns {
					trun.RemoveFirstSampleFlags()
				}
			}},
			trex:         sampleDefaults{flags: nonSync},
			wantDuration: 15360, wantKey: false,
		},
		{
			name: "no flags anywhere: a sync sample",
			edit: []func(*mp4.TrafBox){clearTfhd(mp4.TfhdDefaultSampleFlagsPresentFlag), func(traf *mp4.TrafBox) {
				for _, trun := range traf.Truns {
					trun.RemoveFirstSampleFlags()
				}
			}},
			wantDuration: 15360, wantKey: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := rewriteTrafs(t, seg, tt.edit...)
			init := in
			init.defaults = tt.trex
			with := &init
			if tt.nilInit {
				with = nil
			}
			got, err := ParseSegment(data, with)
			if err != nil {
				t.Fatal(err)
			}
			if got.Duration != tt.wantDuration || got.FirstIsKeyframe != tt.wantKey || got.Samples != 30 ||
				got.BaseDecodeTime != orig.BaseDecodeTime {
				t.Errorf("got %+v, want 30 samples from %d lasting %d, keyframe first: %v",
					got, orig.BaseDecodeTime, tt.wantDuration, tt.wantKey)
			}
		})
	}
}

// rewriteTrafs applies edits to every traf of segment and encodes it again.
func rewriteTrafs(t *testing.T, segment []byte, edits ...func(*mp4.TrafBox)) []byte {
	t.Helper()
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(segment))
	if err != nil {
		t.Fatal(err)
	}
	for _, ms := range f.Segments {
		for _, frag := range ms.Fragments {
			for _, traf := range frag.Moof.Trafs {
				for _, edit := range edits {
					edit(traf)
				}
			}
		}
	}
	f.FragEncMode = mp4.EncModeBoxTree
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestErrUnsupported(t *testing.T) {
	// An init whose hdlr says "text" is well-formed but not for us.
	fx := audioFixture(t)
	f, err := mp4.DecodeFileSR(bits.NewFixedSliceReader(fx.init))
	if err != nil {
		t.Fatal(err)
	}
	f.Moov.Trak.Mdia.Hdlr.HandlerType = "text"
	f.FragEncMode = mp4.EncModeBoxTree
	var buf bytes.Buffer
	if err := f.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	if _, err := ParseInit(buf.Bytes()); !errors.Is(err, ErrUnsupported) {
		t.Errorf("ParseInit(text track) = %v, want ErrUnsupported", err)
	}
}

// FuzzParseSegment feeds mutations of real segments (video and audio) to
// ParseSegment, with and without an init, and checks that what parses
// holds together.
func FuzzParseSegment(f *testing.F) {
	video, audio := videoFixture(f), audioFixture(f)
	vin, err := ParseInit(video.init)
	if err != nil {
		f.Fatal(err)
	}
	ain, err := ParseInit(audio.init)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(audio.segments[1], false)
	f.Add(video.segments[1], true)
	f.Add(append(append([]byte{}, audio.segments[0]...), audio.segments[1]...), false)
	f.Fuzz(func(t *testing.T, data []byte, isVideo bool) {
		in := &ain
		if isVideo {
			in = &vin
		}
		for _, with := range []*Init{in, nil} {
			seg, err := ParseSegment(data, with)
			if err != nil {
				continue
			}
			if seg.Samples <= 0 || seg.Size != int64(len(data)) {
				t.Fatalf("parsed %+v from %d bytes", seg, len(data))
			}
		}
	})
}

// FuzzParseInit feeds mutations of real init segments to ParseInit.
func FuzzParseInit(f *testing.F) {
	f.Add(videoFixture(f).init)
	f.Add(audioFixture(f).init)
	f.Fuzz(func(t *testing.T, data []byte) {
		in, err := ParseInit(data)
		if err != nil {
			return
		}
		if in.Timescale == 0 || in.Codecs == "" {
			t.Fatalf("parsed %+v without a timescale or codecs", in)
		}
	})
}
