package manifest

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/dash-mpd/xml"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestMPDMatchesEncoder checks the MPD writer against dash-mpd's encoder, which wrote the
// MPD before it: every MPD is parsed with dash-mpd and encoded again the way RenderMPD
// used to encode it (two-space indentation, the XML header, a final newline), and the
// two must be the same bytes. The MPDs are those of the golden cases, of
// TestNewPeriodWaitsForEveryTrack and of the benchmark, plus a few with long durations,
// large numbers and several languages.
func TestMPDMatchesEncoder(t *testing.T) {
	type mpdCase struct {
		name string
		p    Presentation
	}
	var cases []mpdCase
	for _, tc := range goldenCases() {
		cases = append(cases, mpdCase{"golden/" + tc.name, tc.p})
	}
	for _, tc := range newPeriodCases() {
		cases = append(cases, mpdCase{"new period/" + tc.name, tc.p})
	}
	cases = append(cases, mpdCase{"bench", *benchPresentation()})
	for _, tc := range extraMPDCases() {
		cases = append(cases, mpdCase{"extra/" + tc.name, tc.p})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data, err := RenderMPD(&tc.p)
			if err != nil {
				t.Fatal(err)
			}
			checkEncoder(t, data)
		})
	}
	// The extra cases are also checked like the golden ones, and against the schema.
	for _, tc := range extraMPDCases() {
		t.Run("extra/"+tc.name+"/check", func(t *testing.T) {
			data, err := RenderMPD(&tc.p)
			if err != nil {
				t.Fatal(err)
			}
			checkMPD(t, &tc.p, data)
			testmedia.ValidateMPDBytes(t, data)
		})
	}
}

// extraMPDCases are presentations beyond the golden ones, for TestMPDMatchesEncoder.
func extraMPDCases() []goldenCase {
	var cases []goldenCase
	add := func(name string, p Presentation) { cases = append(cases, goldenCase{name, p}) }

	// Hours-long durations with fractions of a second, a window below a millisecond.
	p := Presentation{
		Live: true, AvailabilityStart: ast, PublishTime: ast.Add(5*time.Hour + 1500*time.Millisecond),
		SegmentDuration: 2500 * time.Millisecond, Window: 400 * time.Microsecond,
	}
	start := uint64(5*3600-10) * videoTS
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 0, 0,
		segs(7200, 4, start, videoTS, true, 2*videoTS+videoTS/2, 2*videoTS+videoTS/2, videoTS/3))}
	p.Audio = []Track{audio("audio", "en", 128_000, 0, 0,
		segs(7200, 4, uint64(5*3600-10)*audioTS, audioTS, true, 120_000, 120_000, 16_000))}
	add("hours", p)
	p.Ended = true
	p.Window = 90 * time.Minute
	add("hours_ended", p)

	// The largest startNumber and bandwidth that fit in 32 bits, times far from zero, and
	// a segment duration too short for minBufferTime.
	p = Presentation{Ended: true, SegmentDuration: time.Millisecond}
	p.Video = []Track{video("big", "hvc1.1.6.L93.B0", 7680, 4320, 1<<32-1, 0, 0,
		segs(1<<32-3, 3, 1<<40, videoTS, false, seg4s))}
	add("large_numbers", p)

	// Languages in mixed order, one without a language, video at two frame rates: one
	// AdaptationSet per language, in the order the languages first appear.
	p = Presentation{Ended: true, SegmentDuration: 4 * time.Second}
	vs := segs(0, 2, 0, videoTS, false, seg4s)
	as := segs(0, 2, 0, audioTS, false, aac4s...)
	fast := video("1080p60", "avc1.64002a", 1920, 1080, 6_000_000, 0, 0, vs)
	fast.FrameRate = "60000/1001"
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 0, 0, vs), fast}
	p.Audio = []Track{
		audio("en_stereo", "en", 128_000, 0, 0, as),
		audio("sv", "sv", 96_000, 0, 0, as),
		audio("en_mono", "en", 64_000, 0, 0, as),
		audio("und", "", 64_000, 0, 0, as),
		audio("sv_mono", "sv", 48_000, 0, 0, as),
	}
	p.Audio[2].Channels = 1
	p.Audio[4].Channels, p.Audio[4].SampleRate = 1, 44100
	add("languages", p)

	// Two tracks of one language and their labels, one that XML must escape: two sets.
	p.Audio = []Track{audio("film", "fr", 128_000, 0, 0, as), audio("notes", "fr", 64_000, 0, 0, as)}
	p.Audio[0].Label = "Français"
	p.Audio[1].Label, p.Audio[1].SourceTrack = "Director's notes & <cuts>", 1
	add("labels", p)
	return cases
}

// awkwardPresentation has names, languages, codecs and a frame rate with characters that
// need escaping in XML, non-ASCII ones, characters that XML cannot carry and invalid
// UTF-8. validate refuses them all, so they never reach the writer from RenderMPD; the
// writer escapes them all the same.
func awkwardPresentation() *Presentation {
	vs := segs(0, 2, 0, videoTS, false, seg4s)
	as := segs(0, 2, 0, audioTS, false, aac4s...)
	p := &Presentation{Ended: true, SegmentDuration: 4 * time.Second}
	p.Video = []Track{
		video(`a&b"<'>`, "avc1\t\n\r.x", 1280, 720, 3_000_000, 0, 0, vs),
		video("grüße-ø-😀", "hvc1.ü", 640, 0, 800_000, 0, 0, vs),
	}
	p.Video[0].FrameRate = `30"&<'>`
	p.Video[1].FrameRate = "\x01\xff"
	p.Audio = []Track{
		audio("bad\xffutf8", `x"&<>'`, 128_000, 0, 0, as),
		audio("ctl\x01\x7f\x1b", "\t\n\r", 96_000, 0, 0, as),
		audio("fffd\uFFFD-\uFFFE-\U0010FFFF", "sv\uFFFE", 64_000, 0, 0, as),
		audio("lone\xed\xa0\x80surrogate", `x"&<>'`, 48_000, 0, 0, as),
	}
	p.Audio[0].Codecs = ""
	p.Audio[0].Label = "x\"&<>'\xff\x01" // no tab or newline: character data escapes those unlike attributes, and validate refuses them
	p.Audio[1].Codecs = "mp4a\u00a0&amp;"
	return p
}

// TestMPDEscaping writes the awkward presentation and checks it against dash-mpd's
// encoder like TestMPDMatchesEncoder, and checks that what XML can carry reads back as
// it went in.
func TestMPDEscaping(t *testing.T) {
	p := awkwardPresentation()
	if _, err := RenderMPD(p); err == nil {
		t.Error("RenderMPD accepted the awkward presentation")
	}
	data, err := appendMPD(nil, p)
	if err != nil {
		t.Fatal(err)
	}
	checkEncoder(t, data)
	m, err := mpd.MPDFromBytes(data)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, as := range m.Periods[0].AdaptationSets {
		for _, r := range as.Representations {
			got = append(got, r.Id, as.Lang, r.Codecs, string(r.FrameRate))
		}
	}
	// The audio sets are grouped by language: the last track joins the first one's.
	var want []string
	for _, tr := range []*Track{&p.Video[0], &p.Video[1], &p.Audio[0], &p.Audio[3], &p.Audio[1], &p.Audio[2]} {
		want = append(want, tr.Name, tr.Language, tr.Codecs, tr.FrameRate)
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d strings, want %d:\n%q\n%q", len(got), len(want), got, want)
	}
	for i := range got {
		if xmlString(want[i]) && got[i] != want[i] {
			t.Errorf("read back %q, want %q", got[i], want[i])
		}
		if !xmlString(want[i]) && !strings.ContainsRune(got[i], utf8.RuneError) {
			t.Errorf("read back %q for %q, want U+FFFD in it", got[i], want[i])
		}
	}
}

// xmlString reports whether s is valid UTF-8 made of XML characters only.
func xmlString(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !isXMLChar(r) {
			return false
		}
	}
	return true
}

// checkEncoder parses data with dash-mpd and encodes it again as RenderMPD did with
// dash-mpd's encoder: the result must be data.
func checkEncoder(t *testing.T, data []byte) {
	t.Helper()
	m, err := mpd.ReadFromString(string(data))
	if err != nil {
		t.Fatalf("mpd does not parse: %v\n%s", err, data)
	}
	want, err := m.WriteToString("  ", true)
	if err != nil {
		t.Fatal(err)
	}
	want += "\n"
	if string(data) != want {
		t.Errorf("the MPD differs from dash-mpd's encoding of it:\n%s", lineDiff(want, string(data)))
	}
}

// FuzzAppendEscaped checks appendEscaped against dash-mpd's encoder writing the same
// string as an attribute value.
func FuzzAppendEscaped(f *testing.F) {
	for _, s := range []string{
		"", "plain", `a&b"<'>`, "\t\n\r", "grüße 😀", "\xff", "a\xc3", "\x00\x01\x1f\x7f",
		"\uFFFD", "\uFFFE\uFFFF", "\ud7ff\ue000", "\xed\xa0\x80", "\U0010FFFF", "\xf4\x90\x80\x80",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := struct {
			XMLName xml.Name `xml:"a"`
			V       string   `xml:"v,attr"`
		}{V: s}
		enc, err := xml.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		want := strings.TrimSuffix(strings.TrimPrefix(string(enc), `<a v="`), `"></a>`)
		if got := string(appendEscaped(nil, s)); got != want {
			t.Errorf("appendEscaped(%q) = %q, want %q", s, got, want)
		}
	})
}
