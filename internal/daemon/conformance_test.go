package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/media"
)

// The conformance checks a packager's output is held to, on real output: checkOutputs
// runs checkHLSConformance and checkMPD runs checkMPDConformance, so every end-to-end
// test (each shipped profile on a file, live RTMP and RTSP) runs the whole set.

// hlsRate is what one rendition's listed segments measure.
type hlsRate struct {
	peak, mean float64 // bits per second: the largest per-segment rate, and all bits over all seconds
}

// measureRates measures every rendition's listed segments from the files.
func measureRates(t *testing.T, dir string, tracks map[string]*trackInfo) map[string]hlsRate {
	t.Helper()
	rates := map[string]hlsRate{}
	for name, ti := range tracks {
		var bits, secs float64
		var r hlsRate
		for _, s := range ti.playlist.GetAllSegments() {
			seg, err := media.ParseSegmentFile(filepath.Join(dir, name, s.URI), &ti.init)
			if err != nil {
				t.Fatalf("%s/%s: %v", name, s.URI, err)
			}
			d := float64(seg.Duration) / float64(ti.init.Timescale)
			if d <= 0 {
				continue
			}
			b := float64(seg.Size * 8)
			r.peak = max(r.peak, b/d)
			bits += b
			secs += d
		}
		if secs > 0 {
			r.mean = bits / secs
		}
		rates[name] = r
	}
	return rates
}

// checkHLSConformance checks what RFC 8216 asks of the playlists beyond parsing: the
// VERSION each playlist declares covers the tags it uses (and is the same everywhere),
// every variant's CODECS are exactly the codecs its init segments hold, BANDWIDTH is at
// least the largest sum of peak segment bit rates of the variant's renditions (the
// video's and those of its audio group), and
// AVERAGE-BANDWIDTH is within 10% of the sum of their measured average rates. Segment
// alignment across rungs and keyframes at segment starts are checked by checkOutputs.
//
// The master is read again after the segments were measured: during a live job it is
// rewritten with every new segment, so that copy accounts for everything measured.
func checkHLSConformance(t *testing.T, dir string, v job.View, tracks map[string]*trackInfo) {
	t.Helper()
	versions := map[string]int{}
	for _, r := range v.Renditions {
		name := r.Name + "/" + manifest.MediaName
		versions[name] = checkHLSVersion(t, name, readFile(t, filepath.Join(dir, r.Name, manifest.MediaName)))
	}
	rates := measureRates(t, dir, tracks)
	data := readFile(t, filepath.Join(dir, manifest.MasterName))
	versions[manifest.MasterName] = checkHLSVersion(t, manifest.MasterName, data)
	if vs := slices.Compact(slices.Sorted(maps.Values(versions))); len(vs) != 1 {
		t.Errorf("EXT-X-VERSION differs across the playlists: %v", versions)
	}
	pl, _, err := m3u8.DecodeFrom(bytes.NewReader(data), true)
	if err != nil {
		t.Fatalf("master.m3u8: %v", err)
	}
	mp, ok := pl.(*m3u8.MasterPlaylist)
	if !ok {
		t.Fatalf("master.m3u8 is not a master playlist")
	}

	for _, va := range mp.Variants {
		// The audio renditions the variant may be played with: those of its group.
		var audio []string
		for _, alt := range va.Alternatives {
			if alt.Type == "AUDIO" && alt.GroupId == va.Audio {
				audio = append(audio, strings.TrimSuffix(alt.URI, "/"+manifest.MediaName))
			}
		}
		name := strings.TrimSuffix(va.URI, "/"+manifest.MediaName)
		ti := tracks[name]
		if ti == nil {
			t.Errorf("variant %s: no such rendition", va.URI)
			continue
		}
		want := []string{ti.init.Codecs}
		peak, mean := 0.0, 0.0
		if ti.init.Video {
			peak, mean = rates[name].peak, rates[name].mean
		}
		if va.Audio != "" || !ti.init.Video {
			var ap, am float64
			for _, a := range audio {
				if !slices.Contains(want, tracks[a].init.Codecs) {
					want = append(want, tracks[a].init.Codecs)
				}
				ap, am = max(ap, rates[a].peak), max(am, rates[a].mean)
			}
			peak, mean = peak+ap, mean+am
		}
		got := strings.Split(va.Codecs, ",")
		slices.Sort(got)
		slices.Sort(want)
		want = slices.Compact(want)
		if !slices.Equal(got, want) {
			t.Errorf("variant %s: CODECS %q, its init segments hold %q", va.URI, va.Codecs, strings.Join(want, ","))
		}
		if float64(va.Bandwidth) < peak {
			t.Errorf("variant %s: BANDWIDTH %d below the measured peak %.0f bit/s", va.URI, va.Bandwidth, peak)
		}
		switch {
		case va.AverageBandwidth == 0:
			t.Errorf("variant %s: no AVERAGE-BANDWIDTH (measured %.0f bit/s)", va.URI, mean)
		case math.Abs(float64(va.AverageBandwidth)/mean-1) > 0.10:
			t.Errorf("variant %s: AVERAGE-BANDWIDTH %d, measured %.0f bit/s (%+.1f%%)", va.URI, va.AverageBandwidth, mean,
				(float64(va.AverageBandwidth)/mean-1)*100)
		}
	}
}

// checkHLSVersion reports the problems of hlsVersion and returns the declared version.
func checkHLSVersion(t *testing.T, name string, data []byte) int {
	t.Helper()
	v, problems := hlsVersion(data)
	for _, p := range problems {
		t.Errorf("%s: %s", name, p)
	}
	return v
}

// hlsVersion checks that a playlist declares one EXT-X-VERSION, no lower than its tags
// need (RFC 8216 section 7), and no tag that its version removed. It returns the
// declared version (0 when none) and the problems found.
func hlsVersion(data []byte) (int, []string) {
	var problems []string
	declared, need := 0, 1
	why := "nothing"
	require := func(v int, reason string) {
		if v > need {
			need, why = v, reason
		}
	}
	iframesOnly := bytes.Contains(data, []byte("#EXT-X-I-FRAMES-ONLY"))
	allowCache := false
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		tag, attrs, _ := strings.Cut(line, ":")
		switch tag {
		case "#EXT-X-VERSION":
			n, err := strconv.Atoi(attrs)
			if err != nil || declared != 0 {
				problems = append(problems, fmt.Sprintf("bad or repeated EXT-X-VERSION %q", line))
			}
			declared = n
		case "#EXTINF":
			dur, _, _ := strings.Cut(attrs, ",")
			if strings.Contains(dur, ".") {
				require(3, "a decimal EXTINF")
			}
		case "#EXT-X-BYTERANGE", "#EXT-X-I-FRAMES-ONLY":
			require(4, tag)
		case "#EXT-X-MAP":
			if iframesOnly {
				require(5, "EXT-X-MAP in an I-frame playlist")
			} else {
				require(6, "EXT-X-MAP")
			}
		case "#EXT-X-KEY", "#EXT-X-SESSION-KEY":
			if strings.Contains(attrs, "KEYFORMAT") {
				require(5, "KEYFORMAT")
			}
			if strings.Contains(attrs, "IV=") {
				require(2, "IV")
			}
		case "#EXT-X-MEDIA":
			if strings.Contains(attrs, "INSTREAM-ID=\"SERVICE") {
				require(7, "INSTREAM-ID SERVICE")
			}
		case "#EXT-X-ALLOW-CACHE":
			allowCache = true
		}
	}
	if allowCache && declared >= 7 {
		problems = append(problems, fmt.Sprintf("EXT-X-ALLOW-CACHE, which version %d no longer has", declared))
	}
	if need > 1 && declared == 0 {
		problems = append(problems, fmt.Sprintf("no EXT-X-VERSION, but %s needs version %d", why, need))
	}
	if declared != 0 && declared < need {
		problems = append(problems, fmt.Sprintf("EXT-X-VERSION %d, but %s needs version %d", declared, why, need))
	}
	return declared, problems
}

func TestHLSVersion(t *testing.T) {
	const media = "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MAP:URI=\"init.mp4\"\n#EXTINF:1.003,\nseg_0.m4s\n"
	tests := []struct {
		name     string
		playlist string
		version  int
		problem  string // "" when none
	}{
		{"fMP4 media playlist at 7", "#EXTM3U\n#EXT-X-VERSION:7\n" + media[8:], 7, ""},
		{"fMP4 media playlist at 6", "#EXTM3U\n#EXT-X-VERSION:6\n" + media[8:], 6, ""},
		{"EXT-X-MAP needs 6", "#EXTM3U\n#EXT-X-VERSION:5\n" + media[8:], 5, "EXT-X-MAP needs version 6"},
		{"no version at all", media, 0, "no EXT-X-VERSION"},
		{"decimal EXTINF needs 3", "#EXTM3U\n#EXT-X-VERSION:2\n#EXTINF:1.5,\na.ts\n", 2, "decimal EXTINF needs version 3"},
		{"integer EXTINF needs nothing", "#EXTM3U\n#EXTINF:2,\na.ts\n", 0, ""},
		{"ALLOW-CACHE removed in 7", "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-ALLOW-CACHE:NO\n#EXTINF:2,\na.ts\n", 7, "ALLOW-CACHE"},
		{"two versions", "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-VERSION:7\n", 7, "repeated"},
		{"master with EXT-X-MEDIA", "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"a\",NAME=\"aac\",URI=\"a/index.m3u8\"\n", 7, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, problems := hlsVersion([]byte(tc.playlist))
			got := strings.Join(problems, "; ")
			if v != tc.version || (tc.problem == "") != (got == "") || !strings.Contains(got, tc.problem) {
				t.Errorf("hlsVersion = %d, %q; want %d and a problem containing %q", v, got, tc.version, tc.problem)
			}
		})
	}
}

// dashSegment is one SegmentTimeline entry, expanded.
type dashSegment struct {
	number   uint64
	t, d     uint64 // in the timescale, as written
	start    float64
	duration float64 // seconds on the presentation timeline
}

// expandTimeline lists the segments a SegmentTemplate with a SegmentTimeline addresses.
func expandTimeline(st *mpd.SegmentTemplateType, periodStart float64) ([]dashSegment, error) {
	if st.SegmentTimeline == nil {
		return nil, fmt.Errorf("no SegmentTimeline")
	}
	ts := float64(st.GetTimescale())
	var pto uint64
	if st.PresentationTimeOffset != nil {
		pto = *st.PresentationTimeOffset
	}
	n := uint64(1)
	if st.StartNumber != nil {
		n = uint64(*st.StartNumber)
	}
	var out []dashSegment
	var next uint64
	for i, s := range st.SegmentTimeline.S {
		switch {
		case s.T != nil:
			next = *s.T
		case i == 0:
			next = 0
		}
		if s.R < 0 {
			return nil, fmt.Errorf("S[%d] has an open repeat r=%d", i, s.R)
		}
		if s.D == 0 {
			return nil, fmt.Errorf("S[%d] has no duration", i)
		}
		for k := 0; k <= s.R; k++ {
			out = append(out, dashSegment{
				number:   n,
				t:        next,
				d:        s.D,
				start:    periodStart + (float64(next)-float64(pto))/ts,
				duration: float64(s.D) / ts,
			})
			n++
			next += s.D
		}
	}
	return out, nil
}

// checkMPDConformance checks the MPD against the media it points to: every
// Representation's init segment holds its codecs, every SegmentTimeline entry names a
// segment whose tfdt is the entry's t and whose sample durations add up to its d, and
// the Representations of each video AdaptationSet (segmentAlignment) have the same
// segments, number for number, at the same presentation times.
func checkMPDConformance(t *testing.T, dir string, m *mpd.MPD) {
	t.Helper()
	for pi, p := range m.Periods {
		var pstart float64
		if p.Start != nil {
			pstart = time.Duration(*p.Start).Seconds()
		}
		for _, as := range p.AdaptationSets {
			var ref []dashSegment
			var refID string
			for _, rep := range as.Representations {
				where := fmt.Sprintf("period %d (%s) representation %s", pi, p.Id, rep.Id)
				st := rep.SegmentTemplate
				if st == nil {
					st = as.SegmentTemplate
				}
				if st == nil {
					t.Errorf("%s: no SegmentTemplate", where)
					continue
				}
				in, err := media.ParseInitFile(filepath.Join(dir, st.Initialization))
				if err != nil {
					t.Errorf("%s: init %s: %v", where, st.Initialization, err)
					continue
				}
				codecs := rep.Codecs
				if codecs == "" {
					codecs = as.Codecs
				}
				if codecs != in.Codecs {
					t.Errorf("%s: codecs %q, %s holds %q", where, codecs, st.Initialization, in.Codecs)
				}
				if st.GetTimescale() != in.Timescale {
					t.Errorf("%s: timescale %d, %s says %d", where, st.GetTimescale(), st.Initialization, in.Timescale)
				}
				segs, err := expandTimeline(st, pstart)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				for _, s := range segs {
					name := strings.ReplaceAll(st.Media, "$Number$", strconv.FormatUint(s.number, 10))
					seg, err := media.ParseSegmentFile(filepath.Join(dir, name), &in)
					if err != nil {
						t.Errorf("%s: segment %d: %v", where, s.number, err)
						continue
					}
					if seg.BaseDecodeTime != s.t || seg.Duration != s.d {
						t.Errorf("%s: segment %d: timeline says t=%d d=%d, %s has tfdt %d and lasts %d",
							where, s.number, s.t, s.d, name, seg.BaseDecodeTime, seg.Duration)
					}
					if in.Video && !seg.FirstIsKeyframe {
						t.Errorf("%s: %s does not start with a keyframe", where, name)
					}
				}
				if as.ContentType != "video" {
					continue
				}
				if ref == nil {
					ref, refID = segs, rep.Id
					continue
				}
				if len(segs) != len(ref) {
					t.Errorf("period %d: representation %s lists %d segments, %s lists %d", pi, rep.Id, len(segs), refID, len(ref))
					continue
				}
				for i := range segs {
					a, b := segs[i], ref[i]
					if a.number != b.number || math.Abs(a.start-b.start) > 0.001 || math.Abs(a.duration-b.duration) > 0.001 {
						t.Errorf("period %d: segment %d of %s (%.3f+%.3f s) is not aligned with segment %d of %s (%.3f+%.3f s)",
							pi, a.number, rep.Id, a.start, a.duration, b.number, refID, b.start, b.duration)
						break
					}
				}
			}
		}
	}
}

func TestExpandTimeline(t *testing.T) {
	u := func(v uint64) *uint64 { return &v }
	u32 := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name    string
		pto     *uint64
		s       []*mpd.S
		want    []dashSegment
		wantErr string
	}{
		{"repeat", nil, []*mpd.S{{T: u(1000), D: 1000, R: 1}, {D: 500}}, []dashSegment{
			{number: 7, t: 1000, d: 1000, start: 11, duration: 1},
			{number: 8, t: 2000, d: 1000, start: 12, duration: 1},
			{number: 9, t: 3000, d: 500, start: 13, duration: 0.5},
		}, ""},
		{"gap restarts at t", nil, []*mpd.S{{T: u(0), D: 1000}, {T: u(5000), D: 1000}}, []dashSegment{
			{number: 7, t: 0, d: 1000, start: 10, duration: 1},
			{number: 8, t: 5000, d: 1000, start: 15, duration: 1},
		}, ""},
		{"presentation time offset", u(4000), []*mpd.S{{T: u(5000), D: 1000}}, []dashSegment{
			{number: 7, t: 5000, d: 1000, start: 11, duration: 1},
		}, ""},
		{"open repeat", nil, []*mpd.S{{T: u(0), D: 1000, R: -1}}, nil, "open repeat"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := &mpd.SegmentTemplateType{}
			st.Timescale = u32(1000)
			st.StartNumber = u32(7)
			st.PresentationTimeOffset = tc.pto
			st.SegmentTimeline = &mpd.SegmentTimelineType{S: tc.s}
			got, err := expandTimeline(st, 10)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("expandTimeline = %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}
