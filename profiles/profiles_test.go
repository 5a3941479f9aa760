package profiles_test

import (
	"io/fs"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/profiles"
)

// TestShippedProfiles loads every embedded ladder the way the daemon does and
// applies it to a plain 1080p30 source.
func TestShippedProfiles(t *testing.T) {
	files, err := fs.Glob(profiles.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"default.yaml", "lowlatency.yaml", "mobile.yaml", "test.yaml"} {
		if !slices.Contains(files, want) {
			t.Errorf("%s is not embedded (have %v)", want, files)
		}
	}
	src := ladder.SourceInfo{HasVideo: true, Width: 1920, Height: 1080, FPS: 30, HasAudio: true, Channels: 2, SampleRate: 48000}
	for _, file := range files {
		name := strings.TrimSuffix(file, ".yaml")
		t.Run(name, func(t *testing.T) {
			data, err := fs.ReadFile(profiles.FS, file)
			if err != nil {
				t.Fatal(err)
			}
			l, err := ladder.Parse(name, "profiles/"+file, data)
			if err != nil {
				t.Fatalf("shipped ladder does not validate:\n%v", err)
			}
			if l.Description == "" {
				t.Error("no description")
			}
			p, err := l.Plan(src)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if len(p.Video) != len(l.Video.Renditions) || len(p.Dropped) != 0 {
				t.Errorf("1080p source: planned %d of %d rungs, dropped %v", len(p.Video), len(l.Video.Renditions), p.Dropped)
			}
			if len(p.Audio) != len(l.Audio) {
				t.Errorf("planned %d of %d audio renditions", len(p.Audio), len(l.Audio))
			}
			if p.FPS != 30 {
				t.Errorf("FPS = %v, want 30", p.FPS)
			}
			if want := int(30 * l.SegmentDuration / time.Second); p.GOP != want {
				t.Errorf("GOP = %d, want %d", p.GOP, want)
			}
			for _, v := range p.Video {
				if v.Width%2 != 0 || v.Height%2 != 0 || math.Abs(float64(v.Width)-float64(v.Height)*16/9) > 2 {
					t.Errorf("%s: %dx%d is odd or not 16:9", v.Name, v.Width, v.Height)
				}
				if v.Encoder != "x264" || v.MaxRate < v.Bitrate || v.BufSize <= 0 {
					t.Errorf("%s: unresolved rate control or encoder: %+v", v.Name, v)
				}
			}
		})
	}
}

// TestEmbeddedStore checks the embedded profiles through a Store with no
// ladder directory, as a fresh install runs.
func TestEmbeddedStore(t *testing.T) {
	s := ladder.NewStore(t.TempDir()+"/absent", profiles.FS)
	entries, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 4 {
		t.Fatalf("List found %d ladders, want at least 4", len(entries))
	}
	for _, e := range entries {
		if len(e.Problems) > 0 || e.Ladder == nil {
			t.Errorf("%s: %v", e.Name, e.Problems)
		}
	}
	l, err := s.Get("default")
	if err != nil {
		t.Fatal(err)
	}
	if l.Path != "embedded:default.yaml" {
		t.Errorf("Path = %q", l.Path)
	}
}

// TestDefaultAudioExamples parses the audio examples written in default.yaml's
// comments (each run of "#   - {...}" lines is one audio list), so that what the
// comments show is a valid ladder, and plans each on a source in two languages.
func TestDefaultAudioExamples(t *testing.T) {
	data, err := fs.ReadFile(profiles.FS, "default.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var examples []string
	prev := false
	for _, line := range strings.Split(string(data), "\n") {
		item, ok := strings.CutPrefix(line, "#   - {")
		if !ok {
			prev = false
			continue
		}
		if !prev {
			examples = append(examples, "audio:\n")
		}
		examples[len(examples)-1] += "  - {" + item + "\n"
		prev = true
	}
	if len(examples) != 2 {
		t.Fatalf("found %d audio examples in default.yaml's comments, want 2 (track and language; tracks: all)", len(examples))
	}
	src := ladder.SourceInfo{HasAudio: true, Channels: 2, SampleRate: 48000, AudioTracks: []ladder.AudioTrack{
		{Index: 0, Language: "en", Channels: 2}, {Index: 1, Language: "fr", Channels: 2},
	}}
	for i, ex := range examples {
		l, err := ladder.Parse("example", "default.yaml", []byte(ex))
		if err != nil {
			t.Errorf("example %d does not parse:\n%s\n%v", i+1, ex, err)
			continue
		}
		p, err := l.Plan(src)
		if err != nil {
			t.Errorf("example %d does not plan: %v", i+1, err)
			continue
		}
		langs := map[string]bool{}
		for _, a := range p.Audio {
			langs[a.Language] = true
		}
		if !langs["en"] || !langs["fr"] || len(p.Dropped) > 0 {
			t.Errorf("example %d plans %+v, want English and French, nothing dropped", i+1, p.Audio)
		}
	}
}
