package manifest

import (
	"bytes"
	"cmp"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/dash-mpd/xml"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// ast is the availability start of the live fixtures.
var ast = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

const (
	videoTS = 15360 // what ffmpeg's mp4 muxer picks for 30 fps
	audioTS = 48000
	seg4s   = 4 * videoTS
)

// AAC frames are 1024 samples, so 4 s segments of 48 kHz audio alternate between 188
// and 187 frames (4.0107 s and 3.9893 s).
var aac4s = []uint64{188 * 1024, 187 * 1024}

// segs makes n consecutive segments numbered from first and starting at start, their
// durations cycling through durs. live segments carry a program date-time.
func segs(first uint64, n int, start uint64, ts uint32, live bool, durs ...uint64) []Segment {
	out := make([]Segment, 0, n)
	t := start
	for i := range n {
		d := durs[i%len(durs)]
		s := Segment{Number: first + uint64(i), Start: t, Duration: d, Size: int64(d) * 100 / int64(ts)}
		if live {
			s.ProgramDate = ast.Add(toDuration(t, ts))
		}
		out = append(out, s)
		t += d
	}
	return out
}

// then continues a segment list after a restart: the next segment starts gap units
// after the last one ended and is flagged as a discontinuity.
func then(prev []Segment, gap uint64, ts uint32, more []Segment) []Segment {
	last := prev[len(prev)-1]
	start := last.Start + last.Duration + gap
	out := append([]Segment(nil), prev...)
	for i, s := range more {
		s.Number = last.Number + 1 + uint64(i)
		s.Start += start - more[0].Start
		if !s.ProgramDate.IsZero() {
			s.ProgramDate = ast.Add(toDuration(s.Start, ts))
		}
		s.Discontinuity = i == 0
		out = append(out, s)
	}
	return out
}

// inRun sets the run of every segment of ss (see layout.go) and returns ss.
func inRun(run uint64, ss []Segment) []Segment {
	for i := range ss {
		ss[i].Run = run
	}
	return ss
}

func video(name, codecs string, w, h int, declared, peak, avg int64, ss []Segment) Track {
	return Track{
		Name: name, Kind: Video, Codecs: codecs, Timescale: videoTS, Width: w, Height: h, FrameRate: "30",
		Declared: declared, PeakBandwidth: peak, AverageBandwidth: avg, Segments: ss,
	}
}

func audio(name, lang string, declared, peak, avg int64, ss []Segment) Track {
	return Track{
		Name: name, Kind: Audio, Codecs: "mp4a.40.2", Timescale: audioTS, Channels: 2, SampleRate: 48000,
		Language: lang, Declared: declared, PeakBandwidth: peak, AverageBandwidth: avg, Segments: ss,
	}
}

// ladder3 is three measured video rungs and measured audio, listing numbers from first,
// which must be even for the AAC durations to alternate from 188 frames.
func ladder3(first uint64, n int, live bool) ([]Track, []Track) {
	vs := segs(first, n, first*seg4s, videoTS, live, seg4s)
	as := segs(first, n, first/2*(aac4s[0]+aac4s[1]), audioTS, live, aac4s...)
	return []Track{
			// measured above what was declared: BANDWIDTH follows the measurement
			video("1080p", "avc1.640028", 1920, 1080, 5_000_000, 5_400_000, 4_900_000, vs),
			// measured below what was declared: BANDWIDTH keeps the declaration
			video("720p", "avc1.64001f", 1280, 720, 3_000_000, 2_900_000, 2_750_000, vs),
			video("360p", "avc1.64001e", 640, 360, 800_000, 820_000, 700_000, vs),
		}, []Track{
			audio("audio", "en", 128_000, 131_000, 128_500, as),
		}
}

type goldenCase struct {
	name string
	p    Presentation
}

func goldenCases() []goldenCase {
	var cases []goldenCase
	add := func(name string, p Presentation) { cases = append(cases, goldenCase{name, p}) }
	live := func(window time.Duration) Presentation {
		return Presentation{
			Live: true, AvailabilityStart: ast, SegmentDuration: 4 * time.Second, Window: window,
		}
	}

	// Six segments of 4 s in a 24 s window, numbers 100 to 105, with an audio-only variant.
	p := live(24 * time.Second)
	p.Video, p.Audio = ladder3(100, 6, true)
	for _, tr := range p.allTracks() {
		tr.Segments = inRun(1796500000, slices.Clone(tr.Segments))
	}
	p.PublishTime = ast.Add(424 * time.Second)
	p.AudioOnly = true
	add("live_sliding", p)

	// A live event just started: everything kept, nothing measured yet.
	p = live(0)
	vs := segs(0, 4, 0, videoTS, true, seg4s)
	as := segs(0, 4, 0, audioTS, true, aac4s...)
	p.Video = []Track{
		video("720p", "avc1.64001f", 1280, 720, 3_000_000, 0, 0, vs),
		video("360p", "avc1.64001e", 640, 360, 800_000, 0, 0, vs),
	}
	p.Audio = []Track{audio("audio", "", 128_000, 0, 0, as)}
	p.PublishTime = ast.Add(16*time.Second + 250*time.Millisecond)
	add("live_event", p)

	// ffmpeg restarted twice. The first restart's segment (40) is the first listed, so its
	// discontinuity is counted in DiscontinuitySequence and gets no tag; the second comes
	// after a short segment (42, cut by the crash) and restarts 1024 units late for video
	// (a gap: the timeline states t again) and on time for audio.
	p = live(24 * time.Second)
	vs = segs(40, 3, 40*seg4s, videoTS, true, seg4s, seg4s, 2*videoTS+videoTS/2)
	vs[0].Discontinuity = true
	vs = then(vs, 1024, videoTS, segs(0, 3, 0, videoTS, true, seg4s))
	as = segs(40, 3, 20*(aac4s[0]+aac4s[1]), audioTS, true, aac4s[0], aac4s[1], 118*1024)
	as[0].Discontinuity = true
	as = then(as, 0, audioTS, segs(0, 3, 0, audioTS, true, aac4s...))
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_100_000, 2_800_000, vs)}
	p.Audio = []Track{audio("audio", "en", 128_000, 130_000, 127_000, as)}
	p.Video[0].DiscontinuitySequence, p.Audio[0].DiscontinuitySequence = 1, 1
	p.PublishTime = ast.Add(190 * time.Second)
	add("live_discontinuity", p)

	// ffmpeg restarted 10 s after the source dropped: the new run's media time starts at
	// zero again (its tfdt), and it is placed on the presentation's wall-clock timeline
	// 10 s after the last segment ended. HLS marks it with a discontinuity and a
	// program date-time; DASH gives it its own Period with a presentationTimeOffset.
	// The first run is that of a job stored by a version before run numbers (run 0:
	// init.mp4, seg_<N>.m4s), resumed after an upgrade: its segments keep their names,
	// and the new run has its own init segment and names.
	p = live(0)
	vs = segs(10, 3, 10*seg4s, videoTS, true, seg4s)
	as = segs(10, 3, 5*(aac4s[0]+aac4s[1]), audioTS, true, aac4s[0], aac4s[1])
	restartAt := 62 * time.Second // 13 segments of 4 s, then 10 s away
	for i, rs := range []*[]Segment{&vs, &as} {
		ts := uint32(videoTS)
		if i == 1 {
			ts = audioTS
		}
		runTicks := uint64(restartAt) * uint64(ts) / uint64(time.Second)
		first := uint64(512) // the run's first tfdt is not zero (encoder delay)
		more := segs(0, 2, first, ts, true, seg4s*uint64(ts)/videoTS)
		for k := range more {
			more[k].MediaTime = more[k].Start
			more[k].Start = runTicks + more[k].Start - first
			more[k].ProgramDate = ast.Add(toDuration(more[k].Start, ts))
			more[k].PeriodStart = restartAt
			more[k].Number = (*rs)[len(*rs)-1].Number + 1 + uint64(k)
			more[k].Run = 1796500062
		}
		more[0].Discontinuity = true
		*rs = append(*rs, more...)
	}
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_100_000, 2_800_000, vs)}
	p.Audio = []Track{audio("audio", "en", 128_000, 130_000, 127_000, as)}
	p.PublishTime = ast.Add(71 * time.Second)
	add("live_restart_period", p)

	// The box fell behind real time and the job shed its top rung: ffmpeg was restarted
	// at 24 s without 720p. The master lists 360p alone, the first Period both rungs,
	// the second 360p only.
	p = live(0)
	shedAt := 24 * time.Second
	run2 := func(prev []Segment, ts uint32, n int, d uint64) []Segment {
		first := uint64(512)
		more := segs(0, n, first, ts, true, d)
		for k := range more {
			more[k].MediaTime = more[k].Start
			more[k].Start = uint64(shedAt)*uint64(ts)/uint64(time.Second) + more[k].Start - first
			more[k].ProgramDate = ast.Add(toDuration(more[k].Start, ts))
			more[k].PeriodStart = shedAt
			more[k].Number = prev[len(prev)-1].Number + 1 + uint64(k)
			more[k].Run = 1796500024
		}
		more[0].Discontinuity = true
		return append(prev, more...)
	}
	vs = inRun(1796500000, segs(0, 5, 0, videoTS, true, seg4s))
	as = inRun(1796500000, segs(0, 5, 0, audioTS, true, aac4s...))
	top := video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_100_000, 2_800_000, vs)
	top.Withdrawn = true
	p.Video = []Track{top, video("360p", "avc1.64001e", 640, 360, 800_000, 820_000, 790_000, run2(vs, videoTS, 2, seg4s))}
	p.Audio = []Track{audio("audio", "en", 128_000, 130_000, 127_000, run2(as, audioTS, 2, seg4s*audioTS/videoTS))}
	p.PublishTime = ast.Add(33 * time.Second)
	add("live_shed_top_rung", p)

	// The source stopped: the last playlists end, the MPD stops updating.
	p = live(24 * time.Second)
	p.Video, p.Audio = ladder3(200, 6, true)
	p.Ended = true
	p.PublishTime = ast.Add(825 * time.Second)
	add("live_ended", p)

	// A file transcode that finished: two audio languages, a short last segment.
	p = Presentation{Ended: true, SegmentDuration: 4 * time.Second}
	vs = inRun(1796500000, segs(0, 5, 0, videoTS, false, seg4s, seg4s, seg4s, seg4s, videoTS+videoTS/2))
	as = inRun(1796500000, segs(0, 5, 0, audioTS, false, aac4s[0], aac4s[1], aac4s[0], aac4s[1], 71*1024))
	p.Video = []Track{
		video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_300_000, 2_600_000, vs),
		video("360p", "avc1.64001e", 640, 360, 800_000, 790_000, 610_000, vs),
	}
	p.Audio = []Track{
		audio("audio_en", "en", 128_000, 129_000, 127_000, as),
		audio("audio_sv", "sv", 96_000, 97_000, 95_000, as),
	}
	add("vod_finished", p)

	// A file in English and French on a ladder with tracks: all at two bitrates: two
	// rendition groups of the same two tracks, each video rung offered with each group,
	// an audio-only variant per group; in DASH one AdaptationSet per language holding
	// both bitrates.
	p = Presentation{Ended: true, SegmentDuration: 4 * time.Second, AudioOnly: true}
	vs = segs(0, 3, 0, videoTS, false, seg4s, seg4s, videoTS)
	as = segs(0, 3, 0, audioTS, false, aac4s[0], aac4s[1], 47*1024)
	p.Video = []Track{
		video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_300_000, 2_600_000, vs),
		video("360p", "avc1.64001e", 640, 360, 800_000, 790_000, 610_000, vs),
	}
	lang := func(name, group, lang, label string, src int, declared, peak, avg int64, channels int) Track {
		a := audio(name, lang, declared, peak, avg, as)
		a.Group, a.Label, a.SourceTrack, a.Channels = group, label, src, channels
		return a
	}
	p.Audio = []Track{
		lang("hi_0", "hi", "en", "English", 0, 128_000, 131_000, 127_000, 2),
		lang("hi_1", "hi", "fr", "Français", 1, 128_000, 129_000, 126_000, 2),
		lang("lo_0", "lo", "en", "English", 0, 64_000, 66_000, 63_000, 1),
		lang("lo_1", "lo", "fr", "Français", 1, 64_000, 65_000, 0, 1), // not measured yet: no AVERAGE-BANDWIDTH with lo
	}
	add("vod_languages_two_bitrates", p)

	// A live camera with a second audio track of the same language, a commentary: one
	// group of two renditions told apart by NAME, and two DASH AdaptationSets of one
	// language, since the two tracks are not interchangeable.
	p = live(24 * time.Second)
	vs = segs(10, 4, 10*seg4s, videoTS, true, seg4s)
	as = segs(10, 4, 5*(aac4s[0]+aac4s[1]), audioTS, true, aac4s...)
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_100_000, 2_800_000, vs)}
	p.Audio = []Track{
		lang("main", "", "en", "English", 0, 96_000, 97_000, 95_000, 2),
		lang("commentary", "", "en", "Commentary", 1, 64_000, 65_000, 63_000, 1),
	}
	p.Audio[0].Segments, p.Audio[1].Segments = as, as
	p.PublishTime = ast.Add(60 * time.Second)
	add("live_commentary", p)

	// The same transcode still running: an EVENT playlist that will grow, no end yet.
	p = Presentation{SegmentDuration: 4 * time.Second}
	vs = segs(0, 3, 0, videoTS, false, seg4s)
	as = segs(0, 3, 0, audioTS, false, aac4s...)
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 3_300_000, 2_600_000, vs)}
	p.Audio = []Track{audio("audio", "en", 128_000, 129_000, 127_000, as)}
	add("vod_running", p)

	// A radio stream: no video at all, so the only variant is the audio one.
	p = live(12 * time.Second)
	// Segment 7 follows three pairs of AAC segments and one of 188 frames.
	as = segs(7, 3, 3*(aac4s[0]+aac4s[1])+aac4s[0], audioTS, true, aac4s[1], aac4s[0])
	p.Audio = []Track{audio("audio", "en", 128_000, 131_000, 128_500, as)}
	p.PublishTime = ast.Add(40 * time.Second)
	add("audio_only_source", p)

	// 29.97 fps: 120 frames of 1001/30000 s make 4.004 s segments, so the target
	// duration is 5; FRAME-RATE is 29.970 and frameRate 30000/1001.
	p = Presentation{Ended: true, SegmentDuration: 4 * time.Second}
	vs = segs(0, 4, 0, 30000, false, 120*1001)
	p.Video = []Track{{
		Name: "720p", Kind: Video, Codecs: "avc1.64001f", Timescale: 30000, Width: 1280, Height: 720,
		FrameRate: "30000/1001", Declared: 3_000_000, PeakBandwidth: 3_200_000, AverageBandwidth: 2_900_000, Segments: vs,
	}}
	p.Audio = []Track{audio("audio", "en", 128_000, 129_000, 127_000, segs(0, 4, 0, audioTS, false, aac4s...))}
	add("fps_2997", p)

	// Video without audio: no AUDIO group, CODECS of the video alone.
	p = Presentation{Ended: true, SegmentDuration: 2 * time.Second}
	vs = segs(0, 3, 0, videoTS, false, 2*videoTS)
	p.Video = []Track{video("480p", "avc1.4d401e", 854, 480, 1_200_000, 1_150_000, 1_000_000, vs)}
	add("video_only", p)

	return cases
}

// TestGolden renders every case, compares each file with testdata/golden/<case>/ and
// checks that what was rendered parses back to what went in.
func TestGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			p := &tc.p
			files := renderAll(t, p)
			master, mpdData := files[MasterName], files[MPDName]
			compareGolden(t, filepath.Join("testdata", "golden", tc.name), files)
			testmedia.ValidateMPDBytes(t, mpdData)
			checkMaster(t, p, master)
			checkMedia(t, p, files)
			checkMPD(t, p, mpdData)
		})
	}
}

func compareGolden(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	if *update {
		if err := os.RemoveAll(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, data := range files {
			if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/manifest -update to create the golden files)", err)
	}
	if len(entries) != len(files) {
		t.Errorf("%s holds %d files, rendered %d", dir, len(entries), len(files))
	}
	for name, got := range files {
		want, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Errorf("%v (run go test ./internal/manifest -update)", err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from %s (run go test ./internal/manifest -update if the change is intended):\n%s",
				name, dir, lineDiff(string(want), string(got)))
		}
	}
}

// lineDiff shows the first differing lines of two texts.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n  want %q\n  got  %q\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

// checkMaster parses the multivariant playlist back and checks its variants against p.
func checkMaster(t *testing.T, p *Presentation, data []byte) {
	t.Helper()
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(data), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("master playlist does not parse as a master: type %v, %v", typ, err)
	}
	master := pl.(*m3u8.MasterPlaylist)
	if master.Version() != hlsVersion {
		t.Errorf("master version %d, media playlists say %d", master.Version(), hlsVersion)
	}
	if !master.IndependentSegments() {
		t.Error("master lacks EXT-X-INDEPENDENT-SEGMENTS")
	}
	var listed []Track
	for _, v := range p.Video {
		if !v.Withdrawn {
			listed = append(listed, v)
		}
	}
	// The audio groups, in the order they first appear: each video variant is offered
	// once with each.
	type group struct {
		id     string
		tracks []Track
		peak   int64
	}
	var groups []*group
	for _, a := range p.Audio {
		id := a.Group
		if id == "" {
			id = "audio"
		}
		i := slices.IndexFunc(groups, func(g *group) bool { return g.id == id })
		if i < 0 {
			groups = append(groups, &group{id: id})
			i = len(groups) - 1
		}
		groups[i].tracks = append(groups[i].tracks, a)
		groups[i].peak = max(groups[i].peak, a.PeakBandwidth, a.Declared)
	}
	if len(groups) == 0 {
		groups = []*group{{}}
	}
	wantVariants := len(listed) * len(groups)
	audioOnly := len(p.Audio) > 0 && (p.AudioOnly || len(p.Video) == 0)
	if audioOnly {
		wantVariants += len(groups)
	}
	if len(master.Variants) != wantVariants {
		t.Fatalf("%d variants, want %d", len(master.Variants), wantVariants)
	}
	for i, v := range listed {
		for k, g := range groups {
			got := master.Variants[i*len(groups)+k]
			if got.URI != v.Name+"/"+MediaName {
				t.Errorf("variant %d URI %q, want %s/%s", i, got.URI, v.Name, MediaName)
			}
			// BANDWIDTH must never be below the peak actually produced, nor below the
			// declaration while nothing was measured.
			if int64(got.Bandwidth) < v.PeakBandwidth+g.peak || int64(got.Bandwidth) < v.Declared+g.peak {
				t.Errorf("variant %s BANDWIDTH %d is below the peak %d + audio %d", v.Name, got.Bandwidth, v.PeakBandwidth, g.peak)
			}
			if got.Resolution != fmt.Sprintf("%dx%d", v.Width, v.Height) {
				t.Errorf("variant %s RESOLUTION %q", v.Name, got.Resolution)
			}
			num, den, _ := parseFrameRate(v.FrameRate)
			if want := float64(num) / float64(den); got.FrameRate < want-0.0005 || got.FrameRate > want+0.0005 {
				t.Errorf("variant %s FRAME-RATE %v, want %v", v.Name, got.FrameRate, want)
			}
			if !strings.HasPrefix(got.Codecs, v.Codecs) {
				t.Errorf("variant %s CODECS %q does not start with %q", v.Name, got.Codecs, v.Codecs)
			}
			if len(p.Audio) > 0 && (got.Audio != g.id || !strings.Contains(got.Codecs, g.tracks[0].Codecs)) {
				t.Errorf("variant %s with group %s: AUDIO %q CODECS %q", v.Name, g.id, got.Audio, got.Codecs)
			}
		}
	}
	if len(p.Audio) == 0 {
		return
	}
	for k, g := range groups {
		if audioOnly {
			last := master.Variants[len(listed)*len(groups)+k]
			if last.URI != g.tracks[0].Name+"/"+MediaName || int64(last.Bandwidth) < g.peak || last.Resolution != "" || last.Audio != g.id {
				t.Errorf("audio-only variant of %s: URI %q BANDWIDTH %d RESOLUTION %q AUDIO %q", g.id, last.URI, last.Bandwidth, last.Resolution, last.Audio)
			}
		}
	}
	// Every EXT-X-MEDIA, as parsed, by group and URI.
	alts := map[string]*m3u8.Alternative{}
	for _, va := range master.Variants {
		for _, alt := range va.Alternatives {
			alts[alt.GroupId+" "+alt.URI] = alt
		}
	}
	if len(alts) != len(p.Audio) {
		t.Fatalf("%d audio renditions, want %d", len(alts), len(p.Audio))
	}
	for _, g := range groups {
		names := map[string]bool{}
		for i, a := range g.tracks {
			alt := alts[g.id+" "+a.Name+"/"+MediaName]
			if alt == nil {
				t.Errorf("no EXT-X-MEDIA of %s in group %s", a.Name, g.id)
				continue
			}
			wantName := a.Label
			if wantName == "" {
				wantName = a.Name
			}
			if alt.Type != "AUDIO" || !alt.Autoselect || alt.Channels == nil || alt.Channels.Amount != a.Channels ||
				alt.Name != wantName || alt.Language != a.Language || alt.Default != (i == 0) {
				t.Errorf("audio rendition %s: %+v", a.Name, alt)
			}
			if names[alt.Name] {
				t.Errorf("NAME %q twice in group %s", alt.Name, g.id)
			}
			names[alt.Name] = true
		}
		// RFC 8216 4.3.4.1.1: the groups of one type hold the same renditions.
		if len(names) != len(groups[0].tracks) {
			t.Errorf("group %s has %d renditions, group %s %d", g.id, len(names), groups[0].id, len(groups[0].tracks))
		}
		for _, a := range groups[0].tracks {
			n := cmp.Or(a.Label, a.Name)
			if len(groups) > 1 && !names[n] {
				t.Errorf("group %s lacks the rendition %q of group %s", g.id, n, groups[0].id)
			}
		}
	}
}

// checkMedia parses every media playlist back: the same target duration everywhere, no
// EXTINF above it, and the listed segments exactly the input ones.
func checkMedia(t *testing.T, p *Presentation, files map[string][]byte) {
	t.Helper()
	target := uint(0)
	for _, tr := range p.allTracks() {
		if tr.Withdrawn {
			continue
		}
		pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(files[tr.Name+".m3u8"]), true)
		if err != nil || typ != m3u8.MEDIA {
			t.Fatalf("%s: does not parse as a media playlist: type %v, %v", tr.Name, typ, err)
		}
		media := pl.(*m3u8.MediaPlaylist)
		if target == 0 {
			target = media.TargetDuration
		}
		if media.TargetDuration != target {
			t.Errorf("%s: TARGETDURATION %d, another playlist has %d", tr.Name, media.TargetDuration, target)
		}
		if media.Version() != hlsVersion || media.Map == nil || media.Map.URI != InitName(tr.Segments[0].Run) || !media.IndependentSegments() {
			t.Errorf("%s: version %d, map %+v, independent %v", tr.Name, media.Version(), media.Map, media.IndependentSegments())
		}
		if media.SeqNo != tr.Segments[0].Number || media.DiscontinuitySeq != tr.DiscontinuitySequence {
			t.Errorf("%s: media sequence %d, discontinuity sequence %d", tr.Name, media.SeqNo, media.DiscontinuitySeq)
		}
		if media.Closed != p.Ended {
			t.Errorf("%s: ENDLIST %v, ended %v", tr.Name, media.Closed, p.Ended)
		}
		wantType := m3u8.MediaType(0)
		switch {
		case p.Live && p.Window > 0:
		case p.Live || !p.Ended:
			wantType = m3u8.EVENT
		default:
			wantType = m3u8.VOD
		}
		if media.MediaType != wantType {
			t.Errorf("%s: playlist type %v, want %v", tr.Name, media.MediaType, wantType)
		}
		got := media.GetAllSegments()
		if len(got) != len(tr.Segments) {
			t.Fatalf("%s: %d segments listed, want %d", tr.Name, len(got), len(tr.Segments))
		}
		for i, s := range tr.Segments {
			g := got[i]
			if math.Round(g.Duration) > float64(target) {
				t.Errorf("%s: EXTINF %v, rounded, above TARGETDURATION %d", tr.Name, g.Duration, target)
			}
			if want := s.Seconds(tr.Timescale); g.Duration < want-0.0005 || g.Duration > want+0.0005 {
				t.Errorf("%s: segment %d EXTINF %v, want %v", tr.Name, s.Number, g.Duration, want)
			}
			if g.SeqId != s.Number || g.URI != SegmentName(s.Run, s.Number) {
				t.Errorf("%s: segment %d listed as %d %q", tr.Name, s.Number, g.SeqId, g.URI)
			}
			// Each run's segments are played with its own init segment: EXT-X-MAP again
			// wherever the run changes.
			if newRun := i > 0 && s.Run != tr.Segments[i-1].Run; newRun != (g.Map != nil) || newRun && g.Map.URI != InitName(s.Run) {
				t.Errorf("%s: segment %d of run %d has EXT-X-MAP %+v", tr.Name, s.Number, s.Run, g.Map)
			}
			if g.Discontinuity != (s.Discontinuity && i > 0) {
				t.Errorf("%s: segment %d discontinuity %v", tr.Name, s.Number, g.Discontinuity)
			}
			if !g.ProgramDateTime.Equal(s.ProgramDate.Truncate(time.Millisecond)) {
				t.Errorf("%s: segment %d program date %v, want %v", tr.Name, s.Number, g.ProgramDateTime, s.ProgramDate)
			}
		}
	}
	if want, _ := targetDuration(p, nil); uint64(target) != want {
		t.Errorf("TARGETDURATION %d, want %d", target, want)
	}
}

// checkMPD parses the MPD back and expands every SegmentTimeline: it must give exactly
// the input segments, number, start and duration.
func checkMPD(t *testing.T, p *Presentation, data []byte) {
	t.Helper()
	m, err := mpd.MPDFromBytes(data)
	if err != nil {
		t.Fatalf("mpd does not parse: %v", err)
	}
	wantType := mpd.STATIC_TYPE
	if p.Live && !p.Ended {
		wantType = mpd.DYNAMIC_TYPE // an ended live presentation turns static (IOP 4.6.4)
	}
	if m.GetType() != wantType {
		t.Errorf("MPD type %s, want %s", m.GetType(), wantType)
	}
	if updating := p.Live && !p.Ended; (m.MinimumUpdatePeriod != nil) != updating || (m.MediaPresentationDuration == nil) != updating {
		t.Errorf("minimumUpdatePeriod %v, mediaPresentationDuration %v for live %v ended %v",
			m.MinimumUpdatePeriod, m.MediaPresentationDuration, p.Live, p.Ended)
	}
	if len(m.Periods) != len(periodStarts(p)) {
		t.Fatalf("%d periods, want %d", len(m.Periods), len(periodStarts(p)))
	}
	// Each track's segments, gathered over the Periods and mapped back onto the
	// presentation timeline, must be exactly the input segments.
	timelines := map[string][]Segment{}
	for _, period := range m.Periods {
		ps := time.Duration(*period.Start)
		// One audio AdaptationSet per language and source track, labelled as its tracks;
		// with several, the first has Role main, the others none.
		sets := map[string]bool{}
		var audioSets []*mpd.AdaptationSetType
		for _, as := range period.AdaptationSets {
			if as.ContentType == "audio" {
				audioSets = append(audioSets, as)
			}
		}
		for k, as := range audioSets {
			main := len(as.Roles) == 1 && as.Roles[0].SchemeIdUri == "urn:mpeg:dash:role:2011" && as.Roles[0].Value == "main"
			if want := k == 0 && len(audioSets) > 1; main != want || len(as.Roles) > btoi(want) {
				t.Errorf("period %s: audio AdaptationSet %d of %d has roles %+v, want main %v", period.Id, k, len(audioSets), as.Roles, want)
			}
		}
		for _, as := range audioSets {
			if len(as.Representations) == 0 {
				continue
			}
			first := trackByName(p, as.Representations[0].Id)
			if first == nil {
				continue
			}
			key := fmt.Sprint(first.Language, "/", first.SourceTrack)
			if sets[key] {
				t.Errorf("period %s: two audio AdaptationSets of language %q and source track %d", period.Id, first.Language, first.SourceTrack)
			}
			sets[key] = true
			var label string
			if len(as.Labels) > 0 {
				label = as.Labels[0].Value
			}
			if as.Lang != first.Language || label != first.Label || len(as.Labels) > 1 {
				t.Errorf("audio AdaptationSet %v: lang %q labels %+v, its first track has %q and %q", as.Id, as.Lang, as.Labels, first.Language, first.Label)
			}
			for _, r := range as.Representations {
				if tr := trackByName(p, r.Id); tr != nil && (tr.Language != first.Language || tr.SourceTrack != first.SourceTrack) {
					t.Errorf("audio AdaptationSet %v holds %s (%q, track %d) and %s (%q, track %d)", as.Id, first.Name, first.Language, first.SourceTrack,
						tr.Name, tr.Language, tr.SourceTrack)
				}
			}
		}
		for _, as := range period.AdaptationSets {
			for _, r := range as.Representations {
				tr := trackByName(p, r.Id)
				if tr == nil {
					t.Errorf("representation %s has no track", r.Id)
					continue
				}
				if int64(r.Bandwidth) < tr.PeakBandwidth || int64(r.Bandwidth) < tr.Declared {
					t.Errorf("%s: bandwidth %d below peak %d or declared %d", tr.Name, r.Bandwidth, tr.PeakBandwidth, tr.Declared)
				}
				st := r.SegmentTemplate
				if st == nil || st.SegmentTimeline == nil || st.StartNumber == nil || st.Timescale == nil {
					t.Errorf("%s: incomplete segment template %+v", tr.Name, st)
					continue
				}
				run := tr.Segments[slices.IndexFunc(tr.Segments, func(s Segment) bool { return s.PeriodStart == ps })].Run
				if *st.Timescale != tr.Timescale || st.Media != tr.Name+"/"+SegmentTemplate(run, "$Number$") || st.Initialization != tr.Name+"/"+InitName(run) {
					t.Errorf("%s: template timescale %d media %q init %q", tr.Name, *st.Timescale, st.Media, st.Initialization)
				}
				var pto uint64
				if st.PresentationTimeOffset != nil {
					pto = *st.PresentationTimeOffset
				}
				runStart := uint64(ps) * uint64(tr.Timescale) / uint64(time.Second)
				for _, s := range expand(uint64(*st.StartNumber), st.SegmentTimeline) {
					s.Start = s.Start - pto + runStart
					timelines[r.Id] = append(timelines[r.Id], s)
				}
			}
		}
	}
	starts := periodStarts(p)
	for _, tr := range p.allTracks() {
		got := timelines[tr.Name]
		var want []Segment
		for _, s := range tr.Segments {
			if s.PeriodStart <= starts[len(starts)-1] { // a held-back Period is not listed yet
				want = append(want, Segment{Number: s.Number, Start: s.Start, Duration: s.Duration})
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s: timeline expands to\n%v\nwant\n%v", tr.Name, got, want)
		}
	}
}

// newPeriodCase is a restart whose new run has, so far, segments in some tracks only,
// and how many Periods its MPD must list.
type newPeriodCase struct {
	name    string
	p       Presentation
	periods int
}

// newPeriodCases are the cases of TestNewPeriodWaitsForEveryTrack, made from the golden
// case live_restart_period.
func newPeriodCases() []newPeriodCase {
	var restart Presentation
	for _, tc := range goldenCases() {
		if tc.name == "live_restart_period" {
			restart = tc.p
		}
	}
	// keep returns p with the segments of the second run beyond the first n removed from
	// the track at i (0: video, 1: audio).
	keep := func(p Presentation, i, n int) Presentation {
		tracks := []*[]Track{&p.Video, &p.Audio}[i]
		*tracks = slices.Clone(*tracks)
		tr := &(*tracks)[0]
		var segs []Segment
		run2 := 0
		for _, s := range tr.Segments {
			if s.PeriodStart > 0 {
				if run2 >= n {
					continue
				}
				run2++
			}
			segs = append(segs, s)
		}
		tr.Segments = segs
		return p
	}
	audioOnly := keep(restart, 0, 0)
	withdrawn := keep(restart, 0, 0)
	withdrawn.Video = slices.Clone(withdrawn.Video)
	withdrawn.Video[0].Withdrawn = true
	threeAudio := keep(restart, 0, 0)
	threeAudio.Audio = slices.Clone(threeAudio.Audio)
	a := &threeAudio.Audio[0]
	next := a.Segments[len(a.Segments)-1]
	next.Number++
	next.Start += next.Duration
	next.MediaTime += next.Duration
	next.Discontinuity = false
	a.Segments = append(slices.Clone(a.Segments), next)
	ended := audioOnly
	ended.Ended = true

	return []newPeriodCase{
		{"both tracks", restart, 2},
		{"audio alone, 2 segments", audioOnly, 1},
		{"video alone, 1 segment", keep(restart, 1, 0), 1},
		{"audio alone, video shed", withdrawn, 2},
		{"audio alone, 3 segments", threeAudio, 2},
		{"audio alone, ended", ended, 1},
	}
}

// TestNewPeriodWaitsForEveryTrack renders a restart whose new run has, so far, segments
// in some tracks only: the MPD leaves the new Period out until every track still encoded
// has one, or one track has holdBack.
func TestNewPeriodWaitsForEveryTrack(t *testing.T) {
	for _, tc := range newPeriodCases() {
		t.Run(tc.name, func(t *testing.T) {
			data, err := RenderMPD(&tc.p)
			if err != nil {
				t.Fatal(err)
			}
			checkMPD(t, &tc.p, data)
			testmedia.ValidateMPDBytes(t, data)
			m, err := mpd.MPDFromBytes(data)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Periods) != tc.periods {
				t.Errorf("%d Periods, want %d:\n%s", len(m.Periods), tc.periods, data)
			}
			// An ended presentation lasts to the end of the Periods it lists: the first
			// run ends at 52 s, the held-back one starts at 62 s.
			if d := m.MediaPresentationDuration; tc.p.Ended && (d == nil || time.Duration(*d) < 52*time.Second || time.Duration(*d) > 53*time.Second) {
				t.Errorf("mediaPresentationDuration %v, want the end of the first run, 52 s", d)
			}
		})
	}
}

func trackByName(p *Presentation, name string) *Track {
	for _, t := range p.allTracks() {
		if t.Name == name {
			return t
		}
	}
	return nil
}

// expand turns a SegmentTimeline back into segments (number, start and duration).
func expand(number uint64, tl *mpd.SegmentTimelineType) []Segment {
	var out []Segment
	var next uint64
	for _, s := range tl.S {
		if s.T != nil {
			next = *s.T
		}
		for range s.R + 1 {
			out = append(out, Segment{Number: number, Start: next, Duration: s.D})
			number++
			next += s.D
		}
	}
	return out
}

// TestTimeline checks the S elements that appendTimeline writes, parsed back with
// dash-mpd: t, d and r, and that they expand to the input segments.
func TestTimeline(t *testing.T) {
	tests := []struct {
		name string
		segs []Segment
		want string
	}{
		{"one", []Segment{{Start: 7, Duration: 10}}, "t=7,d=10"},
		{"run", []Segment{{Start: 0, Duration: 10}, {Start: 10, Duration: 10}, {Start: 20, Duration: 10}}, "t=0,d=10,r=2"},
		{"alternating", []Segment{{Start: 0, Duration: 3}, {Start: 3, Duration: 2}, {Start: 5, Duration: 3}}, "t=0,d=3 d=2 d=3"},
		{"short last", []Segment{{Start: 0, Duration: 10}, {Start: 10, Duration: 10}, {Start: 20, Duration: 4}}, "t=0,d=10,r=1 d=4"},
		{"gap", []Segment{{Start: 0, Duration: 10}, {Start: 12, Duration: 10}, {Start: 22, Duration: 10}}, "t=0,d=10 t=12,d=10,r=1"},
		{"overlap", []Segment{{Start: 0, Duration: 10}, {Start: 9, Duration: 10}}, "t=0,d=10 t=9,d=10"},
		{"gap with same duration does not extend the run", []Segment{{Start: 0, Duration: 5}, {Start: 5, Duration: 5}, {Start: 11, Duration: 5}}, "t=0,d=5,r=1 t=11,d=5"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var tl mpd.SegmentTimelineType
			data := appendTimeline(nil, tc.segs, 0)
			if err := xml.Unmarshal(data, &tl); err != nil {
				t.Fatalf("timeline does not parse: %v\n%s", err, data)
			}
			var parts []string
			for _, s := range tl.S {
				var p []string
				if s.T != nil {
					p = append(p, fmt.Sprintf("t=%d", *s.T))
				}
				p = append(p, fmt.Sprintf("d=%d", s.D))
				if s.R != 0 {
					p = append(p, fmt.Sprintf("r=%d", s.R))
				}
				parts = append(parts, strings.Join(p, ","))
			}
			if got := strings.Join(parts, " "); got != tc.want {
				t.Errorf("timeline %q, want %q", got, tc.want)
			}
			for i, s := range expand(0, &tl) {
				if s.Start != tc.segs[i].Start || s.Duration != tc.segs[i].Duration {
					t.Errorf("segment %d expands to %+v, want %+v", i, s, tc.segs[i])
				}
			}
		})
	}
}

func TestTargetDuration(t *testing.T) {
	tests := []struct {
		name    string
		segDur  time.Duration
		ts      uint32
		durs    []uint64
		want    uint64
		comment string
	}{
		{name: "exact seconds", segDur: 4 * time.Second, ts: 1000, durs: []uint64{4000, 4000}, want: 4},
		{name: "a little longer rounds down", segDur: 4 * time.Second, ts: 30000, durs: []uint64{120120}, want: 4},
		{name: "half a second longer rounds up", segDur: 4 * time.Second, ts: 1000, durs: []uint64{4000, 4500}, want: 5},
		{name: "just under half a second longer rounds down", segDur: 4 * time.Second, ts: 1000, durs: []uint64{4499}, want: 4},
		{name: "1s aac segments", segDur: time.Second, ts: 48000, durs: []uint64{48128, 48128, 47104}, want: 1},
		{name: "below a millisecond over is written as 4.000", segDur: 4 * time.Second, ts: 90000, durs: []uint64{360020}, want: 4},
		{name: "short segments keep the ladder's duration", segDur: 6 * time.Second, ts: 1000, durs: []uint64{2000, 1500}, want: 6},
		{name: "ladder duration rounds to nearest", segDur: 2500 * time.Millisecond, ts: 1000, durs: []uint64{1000}, want: 3},
		{name: "never below one", segDur: 0, ts: 1000, durs: []uint64{200}, want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := Track{Name: "a", Timescale: tc.ts}
			var start uint64
			for i, d := range tc.durs {
				tr.Segments = append(tr.Segments, Segment{Number: uint64(i), Start: start, Duration: d})
				start += d
			}
			p := &Presentation{SegmentDuration: tc.segDur, Audio: []Track{tr}}
			got, err := targetDuration(p, nil)
			if err != nil || got != tc.want {
				t.Errorf("targetDuration = %d, %v; want %d", got, err, tc.want)
			}
		})
	}
}

// TestTargetDurationOverAllTracks checks that one long segment in one track raises the
// target duration of every playlist, including a track rendered on its own.
func TestTargetDurationOverAllTracks(t *testing.T) {
	p := goldenCases()[0].p
	p.Audio[0].Segments = append([]Segment(nil), p.Audio[0].Segments...)
	p.Audio[0].Segments[2].Duration = 7*audioTS + 1 // 7.000021 s, written 7.000
	last := p.Audio[0].Segments[2]
	for i := 3; i < len(p.Audio[0].Segments); i++ {
		p.Audio[0].Segments[i].Start = last.Start + last.Duration
		last = p.Audio[0].Segments[i]
	}
	for _, tr := range p.allTracks() {
		data, err := RenderMedia(&p, tr)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("\n#EXT-X-TARGETDURATION:7\n")) {
			t.Errorf("%s: no TARGETDURATION 7 in\n%s", tr.Name, data)
		}
	}
}

func TestRenderErrors(t *testing.T) {
	base := func() Presentation {
		p := goldenCases()[0].p
		p.Video = append([]Track(nil), p.Video...)
		p.Audio = append([]Track(nil), p.Audio...)
		return p
	}
	tests := []struct {
		name   string
		mutate func(p *Presentation)
		// the error each render must wrap; nil where it must succeed
		master, media, mpd error
	}{
		{"no tracks", func(p *Presentation) { p.Video, p.Audio = nil, nil }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"zero timescale", func(p *Presentation) { p.Video[1].Timescale = 0 }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"name with a slash", func(p *Presentation) { p.Video[0].Name = "a/b" }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"name used twice", func(p *Presentation) { p.Video[1].Name = p.Video[0].Name }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"codecs with a quote", func(p *Presentation) { p.Audio[0].Codecs = `mp4a"` }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"audio listed as video", func(p *Presentation) { p.Video = append(p.Video, p.Audio[0]) }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"bad frame rate", func(p *Presentation) { p.Video[0].FrameRate = "30/0" }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"no bandwidth", func(p *Presentation) {
			p.Video[2].Declared, p.Video[2].PeakBandwidth = 0, 0
		}, ErrInvalid, ErrInvalid, ErrInvalid},
		{"bandwidth over 32 bits", func(p *Presentation) { p.Video[0].PeakBandwidth = 1 << 33 }, ErrInvalid, nil, ErrInvalid},
		{"no segments yet", func(p *Presentation) { p.Audio[0].Segments = nil }, nil, ErrNoSegments, ErrNoSegments},
		{"numbers skip", func(p *Presentation) {
			p.Video[0].Segments = append([]Segment(nil), p.Video[0].Segments...)
			p.Video[0].Segments[3].Number++
		}, nil, ErrInvalid, ErrInvalid},
		{"time goes back", func(p *Presentation) {
			p.Video[0].Segments = append([]Segment(nil), p.Video[0].Segments...)
			p.Video[0].Segments[3].Start = p.Video[0].Segments[2].Start
		}, nil, ErrInvalid, ErrInvalid},
		{"zero duration", func(p *Presentation) {
			p.Video[0].Segments = append([]Segment(nil), p.Video[0].Segments...)
			p.Video[0].Segments[0].Duration = 0
		}, nil, ErrInvalid, ErrInvalid},
		{"NAME twice in a group", func(p *Presentation) {
			p.Audio = append(p.Audio, p.Audio[0])
			p.Audio[0].Label, p.Audio[1].Name, p.Audio[1].Label = "English", "audio2", "English"
		}, ErrInvalid, ErrInvalid, ErrInvalid},
		{"label with a quote", func(p *Presentation) { p.Audio[0].Label = `the "best" mix` }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"label on two lines", func(p *Presentation) { p.Audio[0].Label = "a\nb" }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"blank label", func(p *Presentation) { p.Audio[0].Label = " " }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"group with a quote", func(p *Presentation) { p.Audio[0].Group = `a"` }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"negative source track", func(p *Presentation) { p.Audio[0].SourceTrack = -1 }, ErrInvalid, ErrInvalid, ErrInvalid},
		{"the same NAME in two groups", func(p *Presentation) {
			p.Audio = append(p.Audio, p.Audio[0])
			p.Audio[1].Name, p.Audio[1].Group = "audio2", "lo"
		}, nil, nil, nil},
		{"live without availability start", func(p *Presentation) { p.AvailabilityStart = time.Time{} }, nil, nil, ErrInvalid},
		{"live without segment duration", func(p *Presentation) { p.SegmentDuration = 0 }, nil, nil, ErrInvalid},
	}
	check := func(t *testing.T, what string, err, want error) {
		t.Helper()
		switch {
		case want == nil && err != nil:
			t.Errorf("%s: unexpected error %v", what, err)
		case want != nil && !errors.Is(err, want):
			t.Errorf("%s: error %v, want one wrapping %v", what, err, want)
		}
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := base()
			tc.mutate(&p)
			_, err := RenderMaster(&p)
			check(t, "RenderMaster", err, tc.master)
			var mediaErr error
			for _, tr := range p.allTracks() {
				if _, err := RenderMedia(&p, tr); err != nil {
					mediaErr = err
					break
				}
			}
			if len(p.allTracks()) == 0 {
				_, mediaErr = RenderMedia(&p, &Track{Name: "x", Kind: Video})
			}
			check(t, "RenderMedia", mediaErr, tc.media)
			_, err = RenderMPD(&p)
			check(t, "RenderMPD", err, tc.mpd)
		})
	}
	t.Run("nil", func(t *testing.T) {
		if _, err := RenderMaster(nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("RenderMaster(nil): %v", err)
		}
		if _, err := RenderMPD(nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("RenderMPD(nil): %v", err)
		}
		p := base()
		if _, err := RenderMedia(&p, nil); !errors.Is(err, ErrInvalid) {
			t.Errorf("RenderMedia(p, nil): %v", err)
		}
	})
}

// TestSchemaCheckCanFail makes sure the schema validation used above is not vacuous: an
// MPD without the required minBufferTime must be refused.
func TestSchemaCheckCanFail(t *testing.T) {
	p := goldenCases()[0].p
	data, err := RenderMPD(&p)
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(data, []byte(` minBufferTime="PT4S"`), nil, 1)
	if bytes.Equal(broken, data) {
		t.Fatalf("no minBufferTime to remove in\n%s", data)
	}
	rec := &recordingTB{TB: t}
	testmedia.ValidateMPDBytes(rec, broken)
	if rec.skipped {
		t.Skip(rec.msg)
	}
	if !rec.failed || !strings.Contains(rec.msg, "does not validate") {
		t.Errorf("an MPD without minBufferTime passed schema validation (%q)", rec.msg)
	}
}

// recordingTB records failures instead of failing the test it wraps.
type recordingTB struct {
	testing.TB
	failed, skipped bool
	msg             string
}

func (r *recordingTB) Errorf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}

func (r *recordingTB) Fatalf(format string, args ...any) {
	r.failed, r.msg = true, fmt.Sprintf(format, args...)
}

func (r *recordingTB) Skipf(format string, args ...any) {
	r.skipped, r.msg = true, fmt.Sprintf(format, args...)
}

// TestAppendTime checks the date-time formatter of the manifests against the time
// package's own formatting of the same layout.
func TestAppendTime(t *testing.T) {
	times := []time.Time{
		ast,
		time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 1, 1, 0, 0, 0, 0, time.FixedZone("CET", 3600)),
		time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC),
		time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC),
		time.Date(5, 6, 7, 8, 9, 10, 11_000_000, time.UTC),
		{},
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		times = append(times, time.Unix(r.Int64N(1<<35)-1<<34, r.Int64N(1e9)))
	}
	for _, tm := range times {
		want := tm.UTC().Format(dateTimeLayout)
		if got := formatTime(tm); got != want {
			t.Errorf("formatTime(%v) = %q, want %q", tm, got, want)
		}
	}
}

// TestPresentationDelay: a live MPD asks players to sit one segment behind the live
// edge, never less than 2 s (presentationDelay), rather than three segments.
func TestPresentationDelay(t *testing.T) {
	for _, tt := range []struct {
		seg         time.Duration
		want, want2 string
	}{
		{500 * time.Millisecond, `minimumUpdatePeriod="PT0.25S"`, `suggestedPresentationDelay="PT2S"`},
		{time.Second, `minimumUpdatePeriod="PT0.5S"`, `suggestedPresentationDelay="PT2S"`},
		{2 * time.Second, `minimumUpdatePeriod="PT1S"`, `suggestedPresentationDelay="PT2.5S"`},
		{4 * time.Second, `minimumUpdatePeriod="PT2S"`, `suggestedPresentationDelay="PT5S"`},
		{6 * time.Second, `minimumUpdatePeriod="PT3S"`, `suggestedPresentationDelay="PT7.5S"`},
	} {
		t.Run(tt.seg.String(), func(t *testing.T) {
			p := Presentation{Live: true, AvailabilityStart: ast, PublishTime: ast.Add(time.Minute), SegmentDuration: tt.seg}
			p.Video, p.Audio = ladder3(100, 3, true)
			data, err := RenderMPD(&p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range []string{tt.want, tt.want2} {
				if !bytes.Contains(data, []byte(w)) {
					t.Errorf("want %s in\n%s", w, bytes.SplitN(data, []byte("\n"), 3)[1])
				}
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
