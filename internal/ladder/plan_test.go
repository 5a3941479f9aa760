package ladder

import (
	"bytes"
	"encoding/json"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/profiles"
)

var update = flag.Bool("update", false, "rewrite golden files in testdata/")

func mustParse(t *testing.T, doc string) *Ladder {
	t.Helper()
	l, err := Parse("t", "t.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("test ladder does not parse: %v", err)
	}
	return l
}

// fourRungs is the shipped default ladder's video, written out so that these
// tests do not move when profiles/default.yaml is tuned.
const fourRungs = `segment_duration: 2s
video:
  renditions:
    - {name: 1080p, height: 1080, bitrate: 5000k, maxrate: 5350k, profile: high}
    - {name: 720p,  height: 720,  bitrate: 2800k, profile: main}
    - {name: 480p,  height: 480,  bitrate: 1400k, bufsize: 2M}
    - {name: 360p,  height: 360,  bitrate: 800k, profile: baseline, encoder: nvenc}
audio:
  - {name: aac, bitrate: 128k}
audio_only: true
`

var (
	src1080 = SourceInfo{HasVideo: true, Width: 1920, Height: 1080, FPS: 30, HasAudio: true, Channels: 2, SampleRate: 48000}
	aac     = []Audio{{Name: "aac", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000}}
	rung    = map[string]PlannedVideo{
		"1080p": {Name: "1080p", Bitrate: 5_000_000, MaxRate: 5_350_000, BufSize: 10_700_000, Profile: "high", Encoder: "x264"},
		"720p":  {Name: "720p", Bitrate: 2_800_000, MaxRate: 2_800_000, BufSize: 5_600_000, Profile: "main", Encoder: "x264"},
		"480p":  {Name: "480p", Bitrate: 1_400_000, MaxRate: 1_400_000, BufSize: 2_000_000, Encoder: "x264"},
		"360p":  {Name: "360p", Bitrate: 800_000, MaxRate: 800_000, BufSize: 1_600_000, Profile: "baseline", Encoder: "nvenc"},
	}
)

// twoLanguages is a file with English stereo and French mono audio.
var twoLanguages = SourceInfo{HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000, AudioTracks: []AudioTrack{
	{Index: 0, Codec: "aac", Language: "en", Channels: 2, SampleRate: 48000},
	{Index: 1, Codec: "aac", Language: "fr", Channels: 1, SampleRate: 48000, Title: "Version française"},
}}

// nineTracks are nine untagged stereo tracks; eightOfNine is what tracks: all makes of them.
var nineTracks, eightOfNine = func() ([]AudioTrack, []Audio) {
	var ts []AudioTrack
	var as []Audio
	for i := range 9 {
		ts = append(ts, AudioTrack{Index: i, Channels: 2})
		if i < 8 {
			as = append(as, Audio{Name: "a_" + strconv.Itoa(i), Codec: "aac", Bitrate: 64_000, Channels: 2, SampleRate: 48000,
				Track: i, Label: "Track " + strconv.Itoa(i+1), Group: "a"})
		}
	}
	return ts, as
}()

// sized returns the named rung of fourRungs planned at w x h.
func sized(name string, w, h int) PlannedVideo {
	v := rung[name]
	v.Width, v.Height = w, h
	return v
}

func TestPlan(t *testing.T) {
	tests := []struct {
		name   string
		ladder string
		src    SourceInfo
		want   Plan
	}{
		{
			name:   "16:9 1080p source keeps every rung",
			ladder: fourRungs,
			src:    src1080,
			want: Plan{FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, AudioOnly: true, Audio: aac,
				Video: []PlannedVideo{sized("1080p", 1920, 1080), sized("720p", 1280, 720), sized("480p", 854, 480), sized("360p", 640, 360)}},
		},
		{
			name:   "4:3 480p source drops the taller rungs",
			ladder: fourRungs,
			src:    SourceInfo{HasVideo: true, Width: 640, Height: 480, FPS: 25, HasAudio: true},
			want: Plan{FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second, AudioOnly: true, Audio: aac,
				Video:   []PlannedVideo{sized("480p", 640, 480), sized("360p", 480, 360)},
				Dropped: []string{"1080p", "720p"}},
		},
		{
			name:   "vertical 1080x1920 source keeps heights, narrows widths",
			ladder: fourRungs,
			src:    SourceInfo{HasVideo: true, Width: 1080, Height: 1920, FPS: 30, HasAudio: true},
			want: Plan{FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, AudioOnly: true, Audio: aac,
				// 1080*720/1920 = 405 and 1080*360/1920 = 202.5 round to the nearest even width.
				Video: []PlannedVideo{sized("1080p", 608, 1080), sized("720p", 406, 720), sized("480p", 270, 480), sized("360p", 202, 360)}},
		},
		{
			name:   "odd source width rounds to even",
			ladder: fourRungs,
			src:    SourceInfo{HasVideo: true, Width: 1279, Height: 720, FPS: 30},
			want: Plan{Audio: []Audio{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				// 1279 -> 1280; 852.67 -> 852; 639.5 -> 640.
				Video:   []PlannedVideo{sized("720p", 1280, 720), sized("480p", 852, 480), sized("360p", 640, 360)},
				Dropped: []string{"1080p"}},
		},
		{
			name:   "source smaller than every rung keeps the smallest at source height",
			ladder: fourRungs,
			src:    SourceInfo{HasVideo: true, Width: 427, Height: 241, FPS: 30, HasAudio: true},
			want: Plan{FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, AudioOnly: true, Audio: aac,
				Video:   []PlannedVideo{sized("360p", 426, 240)},
				Dropped: []string{"1080p", "720p", "480p"}},
		},
		{
			name:   "no audio in the source",
			ladder: fourRungs,
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 60},
			want: Plan{Audio: []Audio{}, FPS: 60, GOP: 120, SegmentDuration: 2 * time.Second,
				Video:   []PlannedVideo{sized("720p", 1280, 720), sized("480p", 854, 480), sized("360p", 640, 360)},
				Dropped: []string{"1080p"}},
		},
		{
			name:   "no video in the source",
			ladder: fourRungs,
			src:    SourceInfo{HasAudio: true, Channels: 2, SampleRate: 44100},
			want:   Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, AudioOnly: true, Audio: aac},
		},
		{
			name:   "mono source caps the channels",
			ladder: "audio:\n  - {name: st, bitrate: 128k}\n  - {name: mo, bitrate: 64k, channels: 1, sample_rate: 44100}\n",
			src:    SourceInfo{HasAudio: true, Channels: 1},
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "st", Codec: "aac", Bitrate: 128_000, Channels: 1, SampleRate: 48000},
				{Name: "mo", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 44100},
			}},
		},
		{
			name:   "tracks: all takes each source track with its language",
			ladder: "audio:\n  - {name: aac, bitrate: 128k, tracks: all}\n",
			src:    twoLanguages,
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "aac_0", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Track: 0, Language: "en", Label: "English", Group: "aac"},
				{Name: "aac_1", Codec: "aac", Bitrate: 128_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français", Group: "aac"},
			}},
		},
		{
			name:   "two tracks: all entries make two groups of the same tracks",
			ladder: "audio:\n  - {name: hi, bitrate: 128k, tracks: all}\n  - {name: lo, bitrate: 64k, channels: 1, tracks: all}\n",
			src:    twoLanguages,
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "hi_0", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Track: 0, Language: "en", Label: "English", Group: "hi"},
				{Name: "hi_1", Codec: "aac", Bitrate: 128_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français", Group: "hi"},
				{Name: "lo_0", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 0, Language: "en", Label: "English", Group: "lo"},
				{Name: "lo_1", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français", Group: "lo"},
			}},
		},
		{
			name:   "tracks: all on untagged tracks and a language twice",
			ladder: "audio:\n  - {name: a, bitrate: 96k, tracks: all}\n",
			src: SourceInfo{HasAudio: true, AudioTracks: []AudioTrack{
				{Index: 0, Channels: 2}, {Index: 1, Channels: 2},
				{Index: 2, Language: "en", Channels: 2}, {Index: 3, Language: "en", Channels: 2, Title: "Commentary"},
			}},
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "a_0", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 0, Label: "Track 1", Group: "a"},
				{Name: "a_1", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 1, Label: "Track 2", Group: "a"},
				{Name: "a_2", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 2, Language: "en", Label: "Track 3", Group: "a"},
				{Name: "a_3", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 3, Language: "en", Label: "Commentary", Group: "a"},
			}},
		},
		{
			name:   "tracks: all takes at most 8 tracks",
			ladder: "audio:\n  - {name: a, bitrate: 64k, tracks: all}\n",
			src:    SourceInfo{HasAudio: true, AudioTracks: nineTracks},
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: eightOfNine,
				Dropped: []string{"a_8"}, Notes: []string{"audio a_8: tracks: all takes the first 8 audio tracks of the source, which has 9"}},
		},
		{
			name:   "tracks picked and labelled by the ladder",
			ladder: "audio:\n  - {name: fr, bitrate: 96k, track: 1}\n  - {name: en, bitrate: 96k, track: 0, language: en-GB}\n",
			src:    twoLanguages,
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "fr", Codec: "aac", Bitrate: 96_000, Channels: 1, SampleRate: 48000, Track: 1, Language: "fr", Label: "Français"},
				{Name: "en", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000, Track: 0, Language: "en-GB", Label: "English"},
			}},
		},
		{
			name:   "a track the source lacks is dropped with a note",
			ladder: "video:\n  renditions: [{name: v, height: 360, bitrate: 800k}]\naudio:\n  - {name: main, bitrate: 96k}\n  - {name: second, bitrate: 96k, track: 1, language: fr}\n",
			src:    SourceInfo{HasVideo: true, Width: 640, Height: 360, FPS: 25, HasAudio: true, Channels: 2},
			want: Plan{FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second,
				Video:   []PlannedVideo{{Name: "v", Width: 640, Height: 360, Bitrate: 800_000, MaxRate: 800_000, BufSize: 1_600_000, Encoder: "x264"}},
				Audio:   []Audio{{Name: "main", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000}},
				Dropped: []string{"second"}, Notes: []string{"audio second: the source has no audio track 1 (it has 1 audio track)"}},
		},
		{
			name:   "the same track twice in one group keeps the names",
			ladder: "audio:\n  - {name: st, bitrate: 128k}\n  - {name: mo, bitrate: 64k, channels: 1}\n",
			src:    twoLanguages,
			want: Plan{Video: []PlannedVideo{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Audio: []Audio{
				{Name: "st", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Language: "en"},
				{Name: "mo", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Language: "en"},
			}},
		},
		{
			name:   "fps capped at max_fps",
			ladder: "segment_duration: 1s\nvideo:\n  max_fps: 30\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 59.94},
			want: Plan{Audio: []Audio{}, FPS: 30, GOP: 30, SegmentDuration: time.Second,
				Video: []PlannedVideo{{Name: "v", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "x264"}}},
		},
		{
			name:   "fps rounded to 3 decimals",
			ladder: "video:\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 30000.0 / 1001},
			want: Plan{Audio: []Audio{}, FPS: 29.97, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []PlannedVideo{{Name: "v", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "x264"}}},
		},
		{
			name:   "unknown fps defaults to 30",
			ladder: "video:\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720},
			want: Plan{Audio: []Audio{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second,
				Video: []PlannedVideo{{Name: "v", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "x264"}}},
		},
		{
			name:   "absurd fps defaults to 30 then max_fps caps it",
			ladder: "segment_duration: 500ms\nvideo:\n  max_fps: 24\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 90000},
			want: Plan{Audio: []Audio{}, FPS: 24, GOP: 12, SegmentDuration: 500 * time.Millisecond,
				Video: []PlannedVideo{{Name: "v", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "x264"}}},
		},
		{
			name:   "very low fps still has a GOP of one frame",
			ladder: "segment_duration: 500ms\nvideo:\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 0.5},
			want: Plan{Audio: []Audio{}, FPS: 0.5, GOP: 1, SegmentDuration: 500 * time.Millisecond,
				Video: []PlannedVideo{{Name: "v", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "x264"}}},
		},
		{
			name:   "ladder encoder applies where the rung names none",
			ladder: "encoder: qsv\nvideo:\n  renditions:\n    - {name: a, height: 720, bitrate: 2M}\n    - {name: b, height: 360, bitrate: 1M, encoder: x264}\n",
			src:    SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 30},
			want: Plan{Audio: []Audio{}, FPS: 30, GOP: 60, SegmentDuration: 2 * time.Second, Video: []PlannedVideo{
				{Name: "a", Width: 1280, Height: 720, Bitrate: 2_000_000, MaxRate: 2_000_000, BufSize: 4_000_000, Encoder: "qsv"},
				{Name: "b", Width: 640, Height: 360, Bitrate: 1_000_000, MaxRate: 1_000_000, BufSize: 2_000_000, Encoder: "x264"},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustParse(t, tt.ladder).Plan(tt.src)
			if err != nil {
				t.Fatalf("Plan: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Plan:\n got  %+v\n want %+v", got, tt.want)
			}
		})
	}
}

func TestPlanErrors(t *testing.T) {
	tests := []struct {
		name   string
		ladder string
		src    SourceInfo
		want   string
	}{
		{"source has nothing", fourRungs, SourceInfo{}, "nothing to encode"},
		{"video-only ladder, audio-only source", "video:\n  renditions: [{name: v, height: 720, bitrate: 2M}]\n", SourceInfo{HasAudio: true}, "nothing to encode"},
		{"audio-only ladder, video-only source", "audio: [{name: a, bitrate: 64k}]\n", SourceInfo{HasVideo: true, Width: 640, Height: 360}, "nothing to encode"},
		{"video of unknown size", fourRungs, SourceInfo{HasVideo: true, HasAudio: true}, "source video size 0x0 is unusable"},
		{"video one pixel tall", fourRungs, SourceInfo{HasVideo: true, Width: 640, Height: 1}, "unusable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := mustParse(t, tt.ladder).Plan(tt.src)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Plan = %+v, %v; want an error containing %q", p, err, tt.want)
			}
		})
	}
	var nilLadder *Ladder
	if _, err := nilLadder.Plan(src1080); err == nil {
		t.Error("Plan on a nil ladder succeeded")
	}
}

// TestPlanGolden applies every shipped ladder to a set of typical sources
// and compares the plans with testdata/plans.golden.json. Run
// go test ./internal/ladder -run TestPlanGolden -update after a deliberate
// change to a profile, then review the diff.
func TestPlanGolden(t *testing.T) {
	sources := []struct {
		Name string
		Src  SourceInfo
	}{
		{"1080p30 stereo", src1080},
		{"720p59.94 mono", SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 60000.0 / 1001, HasAudio: true, Channels: 1, SampleRate: 44100}},
		{"4:3 576p25 silent", SourceInfo{HasVideo: true, Width: 768, Height: 576, FPS: 25}},
		{"vertical 1080x1920", SourceInfo{HasVideo: true, Width: 1080, Height: 1920, FPS: 30, HasAudio: true, Channels: 2}},
		{"tiny 176x144", SourceInfo{HasVideo: true, Width: 176, Height: 144, FPS: 15, HasAudio: true, Channels: 1}},
		{"radio", SourceInfo{HasAudio: true, Channels: 2, SampleRate: 44100}},
		{"1080p25 English and French", SourceInfo{HasVideo: true, Width: 1920, Height: 1080, FPS: 25, HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000,
			AudioTracks: twoLanguages.AudioTracks}},
	}
	type result struct {
		Ladder string
		Source string
		Plan   *Plan  `json:",omitempty"`
		Error  string `json:",omitempty"`
	}
	files, err := fs.Glob(profiles.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var results []result
	for _, file := range files {
		data, err := fs.ReadFile(profiles.FS, file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(file, ".yaml")
		l, err := Parse(name, file, data)
		if err != nil {
			t.Fatalf("shipped ladder %s: %v", file, err)
		}
		for _, s := range sources {
			r := result{Ladder: name, Source: s.Name}
			if p, err := l.Plan(s.Src); err != nil {
				r.Error = err.Error()
			} else {
				r.Plan = &p
			}
			results = append(results, r)
		}
	}
	got, err := json.MarshalIndent(results, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	golden := filepath.Join("testdata", "plans.golden.json")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("plans differ from %s; run with -update and review the diff. Got:\n%s", golden, got)
	}
}
