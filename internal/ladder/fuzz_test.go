package ladder

import (
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/profiles"
)

// FuzzParse feeds arbitrary bytes to Parse. It must never panic; a failure
// must be a list of located problems; a success must hold every invariant the
// rest of the daemon relies on, and plan cleanly on a 1080p source.
func FuzzParse(f *testing.F) {
	files, err := fs.Glob(profiles.FS, "*.yaml")
	if err != nil {
		f.Fatal(err)
	}
	for _, file := range files {
		data, err := fs.ReadFile(profiles.FS, file)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{
		base,
		fourRungs,
		"",
		"- a\n",
		"video:\n  renditions:\n    - &r {name: hi, height: 720, bitrate: 2M}\n    - *r\n",
		"<<: {window: 0}\nwindow: !!str 0\n",
		"audio: [{name: a, bitrate: 1.5k, channels: 1, sample_rate: 44100}]\naudio_only: true\n",
		"audio: [{name: a, bitrate: 96k, track: 1, language: fra}, {name: b, bitrate: 64k, tracks: all}]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const file = "fuzz.yaml"
		l, err := Parse("fuzz", file, data)
		if err != nil {
			if l != nil {
				t.Fatal("a ladder alongside an error")
			}
			for _, line := range problemLines(err) {
				if !strings.HasPrefix(line, file+":") {
					t.Fatalf("problem without its file: %q", line)
				}
			}
			return
		}
		checkInvariants(t, l)
		p, err := l.Plan(src1080)
		if err != nil {
			t.Fatalf("valid ladder does not plan on 1080p: %v", err)
		}
		for _, v := range p.Video {
			if v.Width%2 != 0 || v.Height%2 != 0 || v.Width <= 0 || v.MaxRate < v.Bitrate || v.BufSize <= 0 || v.Encoder == "" {
				t.Fatalf("bad planned rung %+v", v)
			}
		}
		if p.GOP < 1 {
			t.Fatalf("GOP %d", p.GOP)
		}
	})
}

// checkInvariants fails t unless l satisfies every rule Parse enforces.
func checkInvariants(t *testing.T, l *Ladder) {
	t.Helper()
	if l.SegmentDuration < minSegment || l.SegmentDuration > maxSegment {
		t.Fatalf("segment_duration %s", l.SegmentDuration)
	}
	if l.Window != 0 && (l.Window < minWindowFactor*l.SegmentDuration || l.Window > maxWindow) {
		t.Fatalf("window %s with segments of %s", l.Window, l.SegmentDuration)
	}
	if !slices.Contains(encoders, l.Encoder) || !slices.Contains(fallbacks, l.Fallback) ||
		!slices.Contains(videoCodecs, l.Video.Codec) || !slices.Contains(presets, l.Video.Preset) ||
		(l.Video.Tune != "" && !slices.Contains(tunes, l.Video.Tune)) {
		t.Fatalf("enum out of its set: %+v", l)
	}
	if l.Video.MaxFPS < 0 || l.Video.MaxFPS > maxFPS {
		t.Fatalf("max_fps %g", l.Video.MaxFPS)
	}
	if len(l.Video.Renditions)+len(l.Audio) == 0 || len(l.Video.Renditions) > maxVideoRungs || len(l.Audio) > maxAudioRungs {
		t.Fatalf("%d video and %d audio renditions", len(l.Video.Renditions), len(l.Audio))
	}
	if l.AudioOnly && len(l.Audio) == 0 {
		t.Fatal("audio_only without audio")
	}
	names := map[string]bool{}
	useName := func(n string) {
		if !ValidName(n) || names[n] {
			t.Fatalf("name %q invalid or used twice", n)
		}
		names[n] = true
	}
	for i, r := range l.Video.Renditions {
		useName(r.Name)
		if r.Height%2 != 0 || r.Height < minHeight || r.Height > maxHeight {
			t.Fatalf("rung %d height %d", i, r.Height)
		}
		if r.Bitrate < minVideoBitrate || r.Bitrate > maxBitrate || (r.MaxRate != 0 && r.MaxRate < r.Bitrate) || r.BufSize < 0 {
			t.Fatalf("rung %d rates %+v", i, r)
		}
		if r.Profile != "" && !slices.Contains(h264Profiles, r.Profile) || r.Encoder != "" && !slices.Contains(rungEncoders, r.Encoder) {
			t.Fatalf("rung %d profile or encoder %+v", i, r)
		}
		if i > 0 && (r.Height >= l.Video.Renditions[i-1].Height || r.Bitrate >= l.Video.Renditions[i-1].Bitrate) {
			t.Fatalf("rung %d does not descend: %+v after %+v", i, r, l.Video.Renditions[i-1])
		}
	}
	for i, a := range l.Audio {
		useName(a.Name)
		if a.Codec != "aac" || a.Bitrate < minAudioBitrate || a.Bitrate > maxBitrate ||
			!slices.Contains(channelSets, a.Channels) || !slices.Contains(sampleRates, a.SampleRate) {
			t.Fatalf("audio %d %+v", i, a)
		}
		if a.Track < 0 || a.Track > maxTrack || a.Language != "" && Language(a.Language) != a.Language ||
			a.Tracks != "" && (a.Tracks != "all" || a.Track != 0 || a.Language != "" || a.Tracks != l.Audio[0].Tracks) ||
			a.Label != "" || a.Group != "" {
			t.Fatalf("audio %d track, language or tracks %+v", i, a)
		}
	}
}
