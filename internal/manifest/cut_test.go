package manifest

import (
	"bytes"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// goldenPresentation returns the presentation of the golden case name.
func goldenPresentation(t *testing.T, name string) *Presentation {
	t.Helper()
	for _, tc := range goldenCases() {
		if tc.name == name {
			p := tc.p
			return &p
		}
	}
	t.Fatalf("no golden case %q", name)
	return nil
}

// TestCut cuts golden presentations, as a job's recording, and checks which segments
// each cut takes, then renders it (golden files in testdata/golden/cut_<case>) and
// checks the manifests: VOD playlists over the job's files by relative path, a static
// MPD that passes the DASH schema, whose Periods and timelines put every segment where
// it is in the cut.
func TestCut(t *testing.T) {
	s := func(sec float64) time.Duration { return time.Duration(sec * float64(time.Second)) }
	cases := []struct {
		name        string
		from        string // golden case
		root        string
		start, end  time.Duration
		first, last uint64 // of the reference track
		periods     int
		discs       int
		omitted     string
		wantErr     string
	}{
		{name: "inside_segments", from: "live_sliding", root: "../../", start: s(405), end: s(413), first: 101, last: 103, periods: 1},
		{name: "on_boundaries", from: "live_sliding", root: "../../", start: s(404), end: s(412), first: 101, last: 102, periods: 1},
		{name: "whole", from: "live_sliding", root: "../", start: s(400), end: s(424), first: 100, last: 105, periods: 1},
		{name: "across_restart", from: "live_restart_period", root: "../../", start: s(45), end: s(64), first: 11, last: 13, periods: 2, discs: 1},
		{name: "after_restart", from: "live_restart_period", root: "../../", start: s(63), end: s(69), first: 13, last: 14, periods: 1},
		{name: "shed_rung", from: "live_shed_top_rung", root: "../../", start: s(2), end: s(30), first: 0, last: 6, periods: 2, discs: 1, omitted: "720p"},
		{name: "shed_rung_beyond", from: "live_shed_top_rung", root: "../../", start: 0, end: time.Hour, wantErr: "recorded"},
		{name: "before_recording", from: "live_sliding", root: "../../", start: s(399), end: s(410), wantErr: "6m40s to 7m4s recorded"},
		{name: "after_recording", from: "live_sliding", root: "../../", start: s(410), end: s(430), wantErr: "7m10s asked"},
		{name: "reversed", from: "live_sliding", root: "../../", start: s(410), end: s(405), wantErr: "before it starts"},
		{name: "in_outage", from: "live_restart_period", root: "../../", start: s(53), end: s(61), wantErr: "an outage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := goldenPresentation(t, tc.from)
			rec.Live, rec.Window, rec.AvailabilityStart, rec.PublishTime = false, 0, time.Time{}, time.Time{}
			for _, tr := range rec.allTracks() { // the index numbers the runs (Disc); the golden cases only flag them
				tr.Segments = slices.Clone(tr.Segments)
				disc := uint64(0)
				for i := range tr.Segments {
					if tr.Segments[i].Discontinuity {
						disc++
					}
					tr.Segments[i].Disc = disc
				}
			}
			p, info, err := Cut(rec, tc.root, tc.start, tc.end)
			if tc.wantErr != "" {
				if !errors.Is(err, ErrOutOfRange) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Cut: %v, want ErrOutOfRange with %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if info.First.Number != tc.first || info.Last.Number != tc.last || info.Periods != tc.periods ||
				info.Discontinuities != tc.discs || strings.Join(info.Omitted, ",") != tc.omitted {
				t.Errorf("cut %+v\nwant segments %d to %d, %d periods, %d discontinuities, omitted %q",
					info, tc.first, tc.last, tc.periods, tc.discs, tc.omitted)
			}
			if info.Start > tc.start || info.End < tc.end || info.End-info.Start > tc.end-tc.start+2*rec.SegmentDuration {
				t.Errorf("cut %s to %s does not hold %s to %s in whole segments", info.Start, info.End, tc.start, tc.end)
			}
			files := renderAll(t, p)
			compareGolden(t, filepath.Join("testdata", "golden", "cut_"+tc.name), files)
			testmedia.ValidateMPDBytes(t, files[MPDName])
			checkCutMedia(t, p, files)
			checkCutMPD(t, p, files[MPDName])
		})
	}
}

// renderAll renders every manifest of p, media playlists as <track>.m3u8.
func renderAll(t *testing.T, p *Presentation) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	master, err := RenderMaster(p)
	if err != nil {
		t.Fatalf("RenderMaster: %v", err)
	}
	files[MasterName] = master
	for _, tr := range p.allTracks() {
		if tr.Withdrawn {
			continue
		}
		media, err := RenderMedia(p, tr)
		if err != nil {
			t.Fatalf("RenderMedia(%s): %v", tr.Name, err)
		}
		files[tr.Name+".m3u8"] = media
	}
	data, err := RenderMPD(p)
	if err != nil {
		t.Fatalf("RenderMPD: %v", err)
	}
	files[MPDName] = data
	return files
}

// checkCutMedia parses each media playlist of the cut p back: VOD, ended, and every
// segment and init URI the job's file, by way of p.Root.
func checkCutMedia(t *testing.T, p *Presentation, files map[string][]byte) {
	t.Helper()
	for _, tr := range p.allTracks() {
		if tr.Withdrawn {
			continue
		}
		pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(files[tr.Name+".m3u8"]), true)
		if err != nil || typ != m3u8.MEDIA {
			t.Fatalf("%s: does not parse as a media playlist: %v", tr.Name, err)
		}
		media := pl.(*m3u8.MediaPlaylist)
		if media.MediaType != m3u8.VOD || !media.Closed {
			t.Errorf("%s: type %v, ended %v: want VOD with ENDLIST", tr.Name, media.MediaType, media.Closed)
		}
		dir := "../" + p.Root + tr.Name + "/"
		got := media.GetAllSegments()
		if len(got) != len(tr.Segments) {
			t.Fatalf("%s: %d segments listed, want %d", tr.Name, len(got), len(tr.Segments))
		}
		for i, s := range tr.Segments {
			if got[i].URI != dir+SegmentName(s.Run, s.Number) {
				t.Errorf("%s: segment %d listed as %q", tr.Name, s.Number, got[i].URI)
			}
			if got[i].Discontinuity != (s.Discontinuity && i > 0) {
				t.Errorf("%s: segment %d discontinuity %v", tr.Name, s.Number, got[i].Discontinuity)
			}
		}
		if media.Map == nil || media.Map.URI != dir+InitName(tr.Segments[0].Run) {
			t.Errorf("%s: map %+v", tr.Name, media.Map)
		}
	}
}

// checkCutMPD parses the cut's MPD back: static, as long as the cut, and each segment
// at its place on the cut's timeline (its start on the job's timeline less p.Start).
func checkCutMPD(t *testing.T, p *Presentation, data []byte) {
	t.Helper()
	m, err := mpd.MPDFromBytes(data)
	if err != nil {
		t.Fatalf("mpd does not parse: %v", err)
	}
	_, end, _ := Span(p)
	if m.GetType() != mpd.STATIC_TYPE || m.MediaPresentationDuration == nil || (time.Duration(*m.MediaPresentationDuration)-(end-p.Start)).Abs() >= time.Millisecond {
		t.Errorf("MPD type %s, duration %v, want static, %s", m.GetType(), m.MediaPresentationDuration, end-p.Start)
	}
	placed := 0
	for _, period := range m.Periods {
		for _, as := range period.AdaptationSets {
			for _, rep := range as.Representations {
				st := rep.SegmentTemplate
				tr := trackByName(p, rep.Id)
				if !strings.HasPrefix(st.Media, p.Root+tr.Name+"/") || !strings.HasPrefix(st.Initialization, p.Root+tr.Name+"/") {
					t.Errorf("%s: media %q, initialization %q: not the job's files", tr.Name, st.Media, st.Initialization)
				}
				var pto uint64
				if st.PresentationTimeOffset != nil {
					pto = *st.PresentationTimeOffset
				}
				for _, e := range expand(uint64(*st.StartNumber), st.SegmentTimeline) {
					at := time.Duration(*period.Start) + toDuration(e.Start-pto, tr.Timescale)
					for _, s := range tr.Segments {
						if s.Number != e.Number {
							continue
						}
						if want := toDuration(s.Start, tr.Timescale) - p.Start; at != want {
							t.Errorf("%s: segment %d at %s of the cut, want %s", tr.Name, s.Number, at, want)
						}
						placed++
					}
				}
			}
		}
	}
	want := 0
	for _, tr := range p.allTracks() {
		want += len(tr.Segments)
	}
	if placed != want {
		t.Errorf("the MPD places %d segments, the cut has %d", placed, want)
	}
}
