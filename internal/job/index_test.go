package job

import (
	"reflect"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/media"
)

func TestCompletedSegments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		run  uint64
		want []int64
	}{
		{"empty", "", 5, nil},
		{"ffmpeg playlist", "#EXTM3U\n#EXT-X-MAP:URI=\"v_init.mp4\"\n#EXTINF:2.000000,\nseg_5_7.m4s\n#EXTINF:2.000000,\nseg_5_8.m4s\n", 5, []int64{7, 8}},
		{"path prefix", "#EXTINF:2,\n/out/a/720p/seg_5_3.m4s\n", 5, []int64{3}},
		{"foreign names ignored", "init.mp4\nseg_x.m4s\nseg_-1.m4s\nother_4.m4s\nseg_5.ts\nseg_5_x.m4s\n", 5, nil},
		{"another run's ignored", "seg_4_1.m4s\nseg_1.m4s\nseg_5_2.m4s\n", 5, []int64{2}},
		{"names before run numbers", "seg_1.m4s\nseg_5_2.m4s\n", 0, []int64{1}},
		{"crlf", "#EXTINF:2,\r\nseg_5_1.m4s\r\n", 5, []int64{1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := completedSegments([]byte(tc.in), tc.run); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// fakeTrack adds a track with n segments of 1 s (timescale 1000) numbered from first.
func fakeTrack(x *index, name string, kind manifest.Kind, first uint64, n int) *track {
	t := x.addTrack(name, kind, "", "", 1000)
	t.init = &media.Init{Timescale: 1000}
	t.Timescale = 1000
	for i := 0; i < n; i++ {
		num := first + uint64(i)
		t.Segments = append(t.Segments, manifest.Segment{Number: num, Start: num * 1000, Duration: 1000, Size: 100})
		t.last = int64(num)
		x.produced++
	}
	return t
}

func TestPresentationWindow(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	x := newIndex(true, time.Second, 3*time.Second, func() time.Time { return now })
	v := fakeTrack(x, "v", manifest.Video, 0, 10)
	a := fakeTrack(x, "a", manifest.Audio, 0, 11) // audio one segment ahead
	for _, tr := range []*track{v, a} {
		tr.Segments[7].Discontinuity = true // ffmpeg restarted at 7 s
		for k := 7; k < len(tr.Segments); k++ {
			tr.Segments[k].Disc = 1
		}
	}

	p := x.presentation(false)
	// Each track's window of 3 s ends at its own newest segment: video at 10 s, audio
	// at 11 s, so that one track's new segment never changes another's listing.
	if got := numbers(p.Video[0].Segments); !reflect.DeepEqual(got, []uint64{7, 8, 9}) {
		t.Errorf("video listed %v", got)
	}
	if got := numbers(p.Audio[0].Segments); !reflect.DeepEqual(got, []uint64{8, 9, 10}) {
		t.Errorf("audio listed %v", got)
	}
	// Video lists the restart's first segment (7), audio starts after it (8): both are
	// in discontinuity sequence 1.
	if p.Video[0].DiscontinuitySequence != 1 || p.Audio[0].DiscontinuitySequence != 1 {
		t.Errorf("discontinuity sequences: video %d, audio %d, want 1 and 1", p.Video[0].DiscontinuitySequence, p.Audio[0].DiscontinuitySequence)
	}

	// A track that sat out a run (a shed rung back after two restarts) is listed from
	// after the gap: HLS cannot count two discontinuities with one tag.
	v.Segments[9].Disc = 3
	v.Segments[9].Discontinuity = true
	p = x.presentation(false)
	if got := numbers(p.Video[0].Segments); !reflect.DeepEqual(got, []uint64{9}) || p.Video[0].DiscontinuitySequence != 3 {
		t.Errorf("after a gap: listed %v, discontinuity sequence %d, want [9] and 3", got, p.Video[0].DiscontinuitySequence)
	}
	v.Segments[9].Disc, v.Segments[9].Discontinuity = 1, false

	// After a restart, each track continues its own numbering and the timeline its end.
	next := x.beginAttempt()
	if next["v"] != 10 || next["a"] != 11 {
		t.Errorf("start numbers %v, want v:10 a:11", next)
	}
	next = x.beginAttempt() // a restart: numbers continue, the run starts where the media ended
	if next["v"] != 10 || v.base != 11000 || v.runStart != 11*time.Second || !v.pendingDisc {
		t.Errorf("restart: next %v base %d run start %v pending %v, want 10, 11000, 11s, true", next, v.base, v.runStart, v.pendingDisc)
	}

	// Live with a known availability start: the run starts at the wall-clock time.
	x.ast = now.Add(-20 * time.Second)
	x.beginAttempt()
	if v.runStart != 20*time.Second || a.base != 20000 {
		t.Errorf("wall-clock restart: run start %v base %d, want 20s, 20000", v.runStart, a.base)
	}
}

func TestPresentationEventKeepsAll(t *testing.T) {
	x := newIndex(true, time.Second, 0, time.Now)
	fakeTrack(x, "v", manifest.Video, 0, 50)
	p := x.presentation(false)
	if len(p.Video[0].Segments) != 50 {
		t.Errorf("window 0 listed %d of 50 segments", len(p.Video[0].Segments))
	}
	if errs := x.prune(); len(errs) != 0 || len(x.tracks[0].Segments) != 50 {
		t.Errorf("window 0 pruned segments: %v", errs)
	}
}

func numbers(segs []manifest.Segment) []uint64 {
	var out []uint64
	for _, s := range segs {
		out = append(out, s.Number)
	}
	return out
}

// TestPresentationHoldsAudio checks that, while the job runs slower than real time,
// audio segments are listed only as far as the video has come, that the hold never
// takes back a listed segment, and that it lets the held ones go when it ends.
func TestPresentationHoldsAudio(t *testing.T) {
	x := newIndex(true, time.Second, 0, time.Now)
	fakeTrack(x, "v", manifest.Video, 0, 4)      // video to 4 s
	a := fakeTrack(x, "a", manifest.Audio, 0, 5) // audio a segment ahead: listed
	listed := func() []uint64 { return numbers(x.presentation(false).Audio[0].Segments) }
	if got := listed(); !reflect.DeepEqual(got, []uint64{0, 1, 2, 3, 4}) {
		t.Fatalf("not holding: audio listed %v", got)
	}

	x.holdAudio = true
	for i := 5; i < 9; i++ { // ffmpeg slows down: audio runs on to 9 s, video stays at 4 s
		a.Segments = append(a.Segments, manifest.Segment{Number: uint64(i), Start: uint64(i) * 1000, Duration: 1000, Size: 100})
	}
	if got := listed(); !reflect.DeepEqual(got, []uint64{0, 1, 2, 3, 4}) {
		t.Errorf("holding, video at 4 s: audio listed %v, want 0 to 4 (4 was listed before the hold)", got)
	}
	v := x.tracks[0]
	v.Segments = append(v.Segments, manifest.Segment{Number: 4, Start: 4000, Duration: 1000, Size: 100},
		manifest.Segment{Number: 5, Start: 5000, Duration: 1000, Size: 100})
	if got := listed(); !reflect.DeepEqual(got, []uint64{0, 1, 2, 3, 4, 5}) {
		t.Errorf("holding, video at 6 s: audio listed %v, want 0 to 5 (ends up to 6.5 s)", got)
	}
	if p := x.presentation(true); len(p.Audio[0].Segments) != 9 {
		t.Errorf("the ended job's manifests list %d audio segments, want all 9", len(p.Audio[0].Segments))
	}

	// After a restart, a video rung with nothing in the new run yet holds nothing back.
	x.disc = 1
	a.Segments = append(a.Segments, manifest.Segment{Number: 9, Start: 9000, Duration: 1000, Size: 100, Disc: 1})
	if got := listed(); len(got) != 10 {
		t.Errorf("holding, no video in the new run: audio listed %v, want all 10", got)
	}
	a.Segments = a.Segments[:9]
	x.disc = 0

	x.holdAudio = false
	if got := listed(); len(got) != 9 {
		t.Errorf("hold over: audio listed %v, want all 9", got)
	}
	// A ladder without video has nothing to wait for.
	y := newIndex(true, time.Second, 0, time.Now)
	fakeTrack(y, "a", manifest.Audio, 0, 3)
	y.holdAudio = true
	if got := numbers(y.presentation(false).Audio[0].Segments); len(got) != 3 {
		t.Errorf("audio-only, holding: listed %v, want all 3", got)
	}
}
