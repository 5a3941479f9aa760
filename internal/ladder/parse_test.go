package ladder

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

// want is one problem a test expects: its line, key path and a fragment of
// its message.
type want struct {
	line int
	path string
	msg  string
}

func (w want) String() string { return fmt.Sprintf("%d: %s: ...%s...", w.line, w.path, w.msg) }

// prefix is how the problem line must start: "<file>:<line>: <path>: ".
func (w want) prefix(file string) string {
	var b strings.Builder
	b.WriteString(file)
	if w.line > 0 {
		fmt.Fprintf(&b, ":%d", w.line)
	}
	b.WriteString(": ")
	if w.path != "" {
		b.WriteString(w.path + ": ")
	}
	return b.String()
}

// checkProblems asserts that err holds exactly the wanted problems, each as
// its own line located by file, line and key path.
func checkProblems(t *testing.T, file string, err error, wants []want) {
	t.Helper()
	if err == nil {
		t.Fatalf("Parse succeeded, want %d problems", len(wants))
	}
	var p *Problem
	if !errors.As(err, &p) {
		t.Errorf("error holds no *Problem: %v", err)
	}
	got := problemLines(err)
	if len(got) != len(strings.Split(err.Error(), "\n")) {
		t.Errorf("problem lines %q do not match the error text %q", got, err.Error())
	}
	used := make([]bool, len(got))
	for _, w := range wants {
		found := false
		for i, g := range got {
			if !used[i] && strings.HasPrefix(g, w.prefix(file)) && strings.Contains(g, w.msg) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing problem %q...%q", w.prefix(file), w.msg)
		}
	}
	for i, g := range got {
		if !used[i] {
			t.Errorf("unexpected problem: %s", g)
		}
	}
}

// base is a valid ladder that the error cases below break one key at a time.
// Line numbers in the cases count from the first line of each YAML text.
const base = `segment_duration: 2s
video:
  renditions:
    - {name: hi, height: 720, bitrate: 2800k}
    - {name: lo, height: 360, bitrate: 800k}
audio:
  - {name: aac, bitrate: 128k}
`

func TestParseBaseIsValid(t *testing.T) {
	if _, err := Parse("base", "base.yaml", []byte(base)); err != nil {
		t.Fatalf("the base of the error cases must be valid: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		{
			name: "empty file",
			yaml: "",
			want: []want{{1, "", "the file is empty"}},
		},
		{
			name: "only comments",
			yaml: "# nothing here\n# yet\n",
			want: []want{{1, "", "the file is empty"}},
		},
		{
			name: "syntax error",
			yaml: "video:\n  renditions: [\n",
			want: []want{{2, "", "invalid YAML"}},
		},
		{
			name: "document is a list",
			yaml: "# a list\n- name: hi\n  height: 720\n",
			want: []want{{2, "", "the document must be a mapping"}},
		},
		{
			name: "document is a scalar",
			yaml: "hello\n",
			want: []want{{1, "", "got a string"}},
		},
		{
			name: "tagged document",
			yaml: "!!map\nwindow: 0\n",
			want: []want{{1, "", "YAML tags such as !!map are not supported"}},
		},
		{
			name: "two documents",
			yaml: base + "---\nwindow: 0\n",
			want: []want{{9, "", "one YAML document"}},
		},
		{
			name: "unknown top-level key",
			yaml: "segmnet_duration: 2s\n" + base,
			want: []want{{1, "segmnet_duration", "unknown key; known keys here are description, segment_duration"}},
		},
		{
			name: "unknown key with odd characters is quoted",
			yaml: "\"seg dur.\": 2s\n" + base,
			want: []want{{1, `"seg dur."`, "unknown key"}},
		},
		{
			name: "unknown key in video",
			yaml: strings.Replace(base, "video:\n", "video:\n  codecs: h264\n", 1),
			want: []want{{3, "video.codecs", "unknown key"}},
		},
		{
			name: "unknown key in a rendition",
			yaml: strings.Replace(base, "height: 360,", "height: 360, widht: 640,", 1),
			want: []want{{5, "video.renditions[1].widht", "unknown key; known keys here are name, height, bitrate"}},
		},
		{
			name: "unknown key in a block rendition",
			yaml: "video:\n  renditions:\n    - name: hi\n      height: 720\n      bitrate: 2M\n      crf: 23\n",
			want: []want{{6, "video.renditions[0].crf", "unknown key"}},
		},
		{
			name: "unknown key in audio",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, lang: en}", 1),
			want: []want{{7, "audio[0].lang", "unknown key; known keys here are name, codec, bitrate, channels, sample_rate, track, language, tracks"}},
		},
		{
			name: "audio track out of range",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, track: -1}\n  - {name: far, bitrate: 64k, track: 32}\n  - {name: two, bitrate: 64k, track: second}", 1),
			want: []want{
				{7, "audio[0].track", "-1 is out of range: use 0 (the first audio track) to 31"},
				{8, "audio[1].track", "32 is out of range"},
				{9, "audio[2].track", "want a whole number, got a string"},
			},
		},
		{
			name: "bad languages",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, language: english}\n  - {name: b, bitrate: 64k, language: und}\n  - {name: c, bitrate: 64k, language: 33}", 1),
			want: []want{
				{7, "audio[0].language", `"english" is not a language tag: use a BCP 47 tag such as en`},
				{8, "audio[1].language", `"und" says the language is undetermined: leave the key out`},
				{9, "audio[2].language", `"33" is not a language tag`},
			},
		},
		{
			name: "tracks is not all",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, tracks: some}", 1),
			want: []want{{7, "audio[0].tracks", `"some" is not one of all`}},
		},
		{
			name: "tracks: all with a track and a language",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, tracks: all, track: 1, language: en}", 1),
			want: []want{
				{7, "audio[0].track", "cannot go with tracks: all, which takes every source track"},
				{7, "audio[0].language", "cannot go with tracks: all"},
			},
		},
		{
			name: "tracks: all mixed with entries of one track",
			yaml: strings.Replace(base, "bitrate: 128k}", "bitrate: 128k, track: 1}\n  - {name: all, bitrate: 64k, tracks: all}\n  - {name: one, bitrate: 64k}", 1),
			want: []want{
				{7, "audio[0]", "takes one track, but audio[1] takes every track (tracks: all): use tracks: all on every audio entry or on none"},
				{9, "audio[2]", "takes one track, but audio[1] takes every track"},
			},
		},
		{
			name: "tracks: all with a name too long for its renditions",
			yaml: strings.Replace(base, "name: aac, bitrate: 128k}", "name: "+strings.Repeat("a", 63)+", bitrate: 128k, tracks: all}", 1),
			want: []want{{7, "audio[0].name", "is too long for tracks: all, whose renditions are named " + strings.Repeat("a", 63) + "_0 to " + strings.Repeat("a", 63) + "_7: use at most 62 characters"}},
		},
		{
			name: "tracks: all names a rendition already named",
			yaml: strings.Replace(strings.Replace(base, "name: lo,", "name: aac_3,", 1), "bitrate: 128k}", "bitrate: 128k, tracks: all}", 1),
			want: []want{{7, "audio[0].name", `tracks: all names its renditions aac_0 to aac_7, but "aac_3" is already the name of video.renditions[1]`}},
		},
		{
			name: "duplicate key",
			yaml: base + "segment_duration: 4s\n",
			want: []want{{8, "segment_duration", "duplicate key, first set on line 1"}},
		},
		{
			name: "bad bitrate unit",
			yaml: strings.Replace(base, "2800k", "2800kb", 1),
			want: []want{{4, "video.renditions[0].bitrate", `"2800kb" is not a bitrate`}},
		},
		{
			name: "fractional bitrate",
			yaml: strings.Replace(base, "bitrate: 800k", "bitrate: 0.0005k", 1),
			want: []want{{5, "video.renditions[1].bitrate", "not a whole number of bits per second"}},
		},
		{
			name: "zero bitrate",
			yaml: strings.Replace(base, "128k", "0k", 1),
			want: []want{{7, "audio[0].bitrate", "must be greater than zero"}},
		},
		{
			name: "bitrate without k is too low",
			yaml: strings.Replace(base, "bitrate: 800k", "bitrate: 800", 1),
			want: []want{{5, "video.renditions[1].bitrate", "did you mean 800k?"}},
		},
		{
			name: "duration without unit",
			yaml: strings.Replace(base, "2s", "2", 1),
			want: []want{{1, "segment_duration", "use a unit, e.g. 2s"}},
		},
		{
			name: "duration that is not one",
			yaml: base + "window: forever\n",
			want: []want{{8, "window", `"forever" is not a duration`}},
		},
		{
			name: "segment too long",
			yaml: strings.Replace(base, "2s", "12s", 1),
			want: []want{{1, "segment_duration", "12s is out of range: use 500ms to 10s"}},
		},
		{
			name: "window shorter than three segments",
			yaml: base + "window: 5s\n",
			want: []want{{8, "window", "shorter than 3 segments (6s)"}},
		},
		{
			name: "window too long",
			yaml: base + "window: 25h\n",
			want: []want{{8, "window", "longer than 24h"}},
		},
		{
			name: "record not a boolean",
			yaml: base + "record: yes please\n",
			want: []want{{8, "record", "want true or false"}},
		},
		{
			name: "record retention negative",
			yaml: base + "record: true\nrecord_retention: -1h\n",
			want: []want{{9, "record_retention", "is negative"}},
		},
		{
			name: "record retention too short",
			yaml: base + "record: true\nrecord_retention: 10m\n",
			want: []want{{9, "record_retention", "shorter than 1h0m0s"}},
		},
		{
			name: "record retention not a duration",
			yaml: base + "record_retention: 7 days\n",
			want: []want{{8, "record_retention", `"7 days" is not a duration`}},
		},
		{
			name: "non-descending heights",
			yaml: strings.Replace(base, "height: 360", "height: 720", 1),
			want: []want{{5, "video.renditions[1].height", "720 is not lower than the rung above (720)"}},
		},
		{
			name: "rungs in ascending order",
			yaml: "video:\n  renditions:\n    - {name: lo, height: 360, bitrate: 800k}\n    - {name: hi, height: 720, bitrate: 2800k}\n",
			want: []want{
				{4, "video.renditions[1].height", "720 is not lower than the rung above (360)"},
				{4, "video.renditions[1].bitrate", "2800k is not lower than the rung above (800k)"},
			},
		},
		{
			name: "non-descending bitrates",
			yaml: strings.Replace(base, "bitrate: 800k", "bitrate: 3M", 1),
			want: []want{{5, "video.renditions[1].bitrate", "3000k is not lower than the rung above (2800k)"}},
		},
		{
			name: "maxrate below bitrate",
			yaml: strings.Replace(base, "bitrate: 800k", "bitrate: 800k, maxrate: 700k", 1),
			want: []want{{5, "video.renditions[1].maxrate", "700k is lower than the bitrate (800k)"}},
		},
		{
			name: "duplicate name within video",
			yaml: strings.Replace(base, "name: lo", "name: hi", 1),
			want: []want{{5, "video.renditions[1].name", `"hi" is already the name of video.renditions[0]`}},
		},
		{
			name: "duplicate name across video and audio",
			yaml: strings.Replace(base, "name: aac", "name: lo", 1),
			want: []want{{7, "audio[0].name", `"lo" is already the name of video.renditions[1]`}},
		},
		{
			name: "bad name",
			yaml: strings.Replace(base, "name: hi", "name: Hi Res", 1),
			want: []want{{4, "video.renditions[0].name", `"Hi Res" is not a valid name`}},
		},
		{
			name: "odd height",
			yaml: strings.Replace(base, "height: 360", "height: 361", 1),
			want: []want{{5, "video.renditions[1].height", "361 is odd"}},
		},
		{
			name: "height too small",
			yaml: strings.Replace(base, "height: 360", "height: 32", 1),
			want: []want{{5, "video.renditions[1].height", "32 is out of range: use 64 to 4320"}},
		},
		{
			name: "missing required keys",
			yaml: "video:\n  renditions:\n    - {name: hi}\naudio:\n  - {name: aac}\n",
			want: []want{
				{3, "video.renditions[0].height", "required key is missing"},
				{3, "video.renditions[0].bitrate", "required key is missing"},
				{5, "audio[0].bitrate", "required key is missing"},
			},
		},
		{
			name: "shed_top_rung with one rung",
			yaml: "video:\n  shed_top_rung: true\n  renditions:\n    - {name: hi, height: 720, bitrate: 2800k}\n",
			want: []want{{2, "video.shed_top_rung", "needs at least two video renditions"}},
		},
		{
			name: "shed_top_rung not a boolean",
			yaml: strings.Replace(base, "video:\n", "video:\n  shed_top_rung: sometimes\n", 1),
			want: []want{{3, "video.shed_top_rung", "want true or false, got a string"}},
		},
		{
			name: "audio_only without audio",
			yaml: "audio_only: true\nvideo:\n  renditions:\n    - {name: hi, height: 720, bitrate: 2800k}\n",
			want: []want{{1, "audio_only", "needs at least one audio rendition"}},
		},
		{
			name: "no renditions at all",
			yaml: "description: nothing\nvideo:\n  preset: fast\n",
			want: []want{{2, "video.renditions", "at least one video rendition or one audio rendition"}},
		},
		{
			name: "empty lists",
			yaml: "video:\n  renditions: []\naudio: []\n",
			want: []want{{2, "video.renditions", "at least one video rendition or one audio rendition"}},
		},
		{
			name: "too many audio renditions",
			yaml: "audio:\n  - {name: a1, bitrate: 64k}\n  - {name: a2, bitrate: 64k}\n  - {name: a3, bitrate: 64k}\n  - {name: a4, bitrate: 64k}\n  - {name: a5, bitrate: 64k}\n",
			want: []want{{1, "audio", "5 renditions, at most 4"}},
		},
		{
			name: "wrong type: string for height",
			yaml: strings.Replace(base, "height: 360", "height: tall", 1),
			want: []want{{5, "video.renditions[1].height", "want a whole number, got a string"}},
		},
		{
			name: "height beyond any integer",
			yaml: strings.Replace(base, "height: 360", "height: 99999999999", 1),
			want: []want{{5, "video.renditions[1].height", "99999999999 is out of range"}},
		},
		{
			name: "wrong type: float for height",
			yaml: strings.Replace(base, "height: 360", "height: 360.5", 1),
			want: []want{{5, "video.renditions[1].height", "want a whole number, got a number"}},
		},
		{
			name: "wrong type: yes for a boolean",
			yaml: base + "audio_only: yes\n",
			want: []want{{8, "audio_only", "want true or false, got a string"}},
		},
		{
			name: "wrong type: mapping for renditions",
			yaml: "video:\n  renditions: {name: hi, height: 720, bitrate: 2M}\n",
			want: []want{{2, "video.renditions", "want a list, got a mapping"}},
		},
		{
			name: "wrong type: list for video",
			yaml: "video:\n  - {name: hi, height: 720, bitrate: 2M}\n",
			want: []want{{1, "video", "want a mapping of keys (codec, preset, tune, max_fps, shed_top_rung, renditions), got a list"}},
		},
		{
			name: "wrong type: scalar as a rendition",
			yaml: strings.Replace(base, "    - {name: lo, height: 360, bitrate: 800k}", "    - 360p", 1),
			want: []want{{5, "video.renditions[1]", "want a mapping of keys"}},
		},
		{
			name: "wrong type: list for a string",
			yaml: base + "description: [a, b]\n",
			want: []want{{8, "description", "want a string, got a list"}},
		},
		{
			name: "null value",
			yaml: base + "encoder:\n",
			want: []want{{8, "encoder", "has no value"}},
		},
		{
			name: "unknown encoder, preset, profile and codec",
			yaml: "encoder: nvidia\nfallback: cpu\nvideo:\n  codec: h265\n  preset: placebo\n  renditions:\n    - {name: hi, height: 720, bitrate: 2M, profile: high10, encoder: auto}\naudio:\n  - {name: a, codec: opus, bitrate: 64k, channels: 6, sample_rate: 22050}\n",
			want: []want{
				{1, "encoder", `"nvidia" is not one of auto, x264, nvenc, qsv, vce, vaapi`},
				{2, "fallback", `"cpu" is not one of x264, none`},
				{4, "video.codec", `"h265" is not one of h264`},
				{5, "video.preset", `"placebo" is not one of ultrafast`},
				{7, "video.renditions[0].profile", `"high10" is not one of baseline, main, high`},
				{7, "video.renditions[0].encoder", `"auto" is not one of x264, nvenc`},
				{9, "audio[0].codec", `"opus" is not one of aac`},
				{9, "audio[0].channels", "6 is not 1 or 2"},
				{9, "audio[0].sample_rate", "22050 is not 44100 or 48000"},
			},
		},
		{
			name: "tune that libx264 lacks",
			yaml: strings.Replace(base, "video:\n", "video:\n  tune: lowlatency\n", 1),
			want: []want{{3, "video.tune", `"lowlatency" is not one of film, animation, grain, stillimage, fastdecode, zerolatency, psnr, ssim`}},
		},
		{
			name: "tune as a list",
			yaml: strings.Replace(base, "video:\n", "video:\n  tune: [zerolatency, fastdecode]\n", 1),
			want: []want{{3, "video.tune", "want a string, got a list"}},
		},
		{
			name: "max_fps out of range",
			yaml: strings.Replace(base, "video:\n", "video:\n  max_fps: 240\n", 1),
			want: []want{{3, "video.max_fps", "240 is out of range"}},
		},
		{
			name: "tags, merge keys and unknown aliases",
			yaml: "<<: {window: 0}\nwindow: !!str 0\nvideo: *nope\n",
			want: []want{
				{1, "<<", "merge keys are not supported"},
				{2, "window", "YAML tags such as !!str are not supported"},
				{3, "video", "alias *nope names no anchor"},
			},
		},
		{
			name: "a problem inside an alias is reported where it is used",
			yaml: "video:\n  renditions:\n    - &r {name: hi, height: 720, bitrate: 2M}\n    - *r\n",
			want: []want{
				{4, "video.renditions[1].name", "already the name"},
				{4, "video.renditions[1].height", "not lower than the rung above"},
				{4, "video.renditions[1].bitrate", "not lower than the rung above"},
			},
		},
		{
			name: "several problems at once",
			yaml: `description: many mistakes
segment_duration: 2
window: 1m
colour: blue
video:
  preset: veryfast
  renditions:
    - {name: 1080p, height: 1080, bitrate: 5000k}
    - {name: 720p, height: 721, bitrate: 6000k, size: big}
    - {name: 1080p, height: 1080, bitrate: 1M}
audio_only: true
`,
			want: []want{
				{2, "segment_duration", "use a unit"},
				{4, "colour", "unknown key"},
				{9, "video.renditions[1].size", "unknown key"},
				{9, "video.renditions[1].height", "721 is odd"},
				{9, "video.renditions[1].bitrate", "6000k is not lower than the rung above (5000k)"},
				{10, "video.renditions[2].name", `"1080p" is already the name of video.renditions[0]`},
				{10, "video.renditions[2].height", "1080 is not lower than the rung above (721)"},
				{11, "audio_only", "needs at least one audio rendition"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const file = "profiles/broken.yaml"
			l, err := Parse("broken", file, []byte(tt.yaml))
			if l != nil {
				t.Errorf("Parse returned a ladder alongside an error")
			}
			checkProblems(t, file, err, tt.want)
		})
	}
}

func TestParseBadLadderName(t *testing.T) {
	_, err := Parse("My Ladder", "profiles/My Ladder.yaml", []byte(base))
	checkProblems(t, "profiles/My Ladder.yaml", err, []want{{0, "", `ladder name "My Ladder" is not valid`}})
}

func TestParseDefaults(t *testing.T) {
	l, err := Parse("min", "min.yaml", []byte("audio:\n  - {name: a, bitrate: 96k}\n"))
	if err != nil {
		t.Fatal(err)
	}
	wantL := &Ladder{
		Name: "min", Path: "min.yaml",
		SegmentDuration: 2 * time.Second, Window: 0, Encoder: "auto", Fallback: "x264",
		Video: Video{Codec: "h264", Preset: "veryfast"},
		Audio: []Audio{{Name: "a", Codec: "aac", Bitrate: 96_000, Channels: 2, SampleRate: 48000}},
	}
	if !reflect.DeepEqual(l, wantL) {
		t.Errorf("got  %+v\nwant %+v", l, wantL)
	}
}

func TestParseFull(t *testing.T) {
	const doc = `# every key set
description: "All keys: set"
segment_duration: 500ms
window: 0
encoder: nvenc
fallback: none
video:
  codec: h264
  preset: slow
  tune: zerolatency
  max_fps: 29.97
  renditions:
    - name: uhd
      height: 2160
      bitrate: 1.5M
      maxrate: 2M
      bufsize: 3000000
      profile: high
      encoder: x264
    - {name: "360", height: 360, bitrate: 800000}
audio:
  - &aac {name: stereo, codec: aac, bitrate: 128K, channels: 2, sample_rate: 44100}
  - {name: mono, bitrate: 64k, channels: 1, track: 2, language: fre}
audio_only: false
record: true
record_retention: 7d
`
	l, err := Parse("full", "full.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	wantL := &Ladder{
		Name: "full", Path: "full.yaml", Description: "All keys: set",
		SegmentDuration: 500 * time.Millisecond, Window: 0, Encoder: "nvenc", Fallback: "none",
		Video: Video{Codec: "h264", Preset: "slow", Tune: "zerolatency", MaxFPS: 29.97, Renditions: []Rendition{
			{Name: "uhd", Height: 2160, Bitrate: 1_500_000, MaxRate: 2_000_000, BufSize: 3_000_000, Profile: "high", Encoder: "x264"},
			{Name: "360", Height: 360, Bitrate: 800_000},
		}},
		Audio: []Audio{
			{Name: "stereo", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 44100},
			{Name: "mono", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Track: 2, Language: "fr"},
		},
		Record: true, RecordRetention: 7 * 24 * time.Hour,
	}
	if !reflect.DeepEqual(l, wantL) {
		t.Errorf("got  %+v\nwant %+v", l, wantL)
	}
}

func TestParseTracksAll(t *testing.T) {
	l, err := Parse("langs", "langs.yaml", []byte("audio:\n  - {name: hi, bitrate: 128k, tracks: all}\n  - {name: lo, bitrate: 64k, channels: 1, tracks: all}\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Audio{
		{Name: "hi", Codec: "aac", Bitrate: 128_000, Channels: 2, SampleRate: 48000, Tracks: "all"},
		{Name: "lo", Codec: "aac", Bitrate: 64_000, Channels: 1, SampleRate: 48000, Tracks: "all"},
	}
	if !reflect.DeepEqual(l.Audio, want) {
		t.Errorf("got  %+v\nwant %+v", l.Audio, want)
	}
}

func TestLanguage(t *testing.T) {
	tests := []struct{ in, want, name string }{
		{"eng", "en", "English"},
		{"en", "en", "English"},
		{"fra", "fr", "Français"},
		{"fre", "fr", "Français"}, // ISO 639-2/B
		{"FRA", "fr", "Français"},
		{"ger", "de", "Deutsch"},
		{"swe", "sv", "Svenska"},
		{"zho", "zh", "中文"},
		{"pt-br", "pt-BR", "Português"},
		{"zh-hant-tw", "zh-Hant-TW", "中文"},
		{"gsw", "gsw", "gsw"}, // no two-letter code: kept
		{"und", "", ""},
		{"", "", ""},
		{" eng ", "en", "English"},
		{"english", "", ""},
		{"e", "", ""},
		{"en_US", "", ""},
		{"en-\"x", "", ""},
	}
	for _, tt := range tests {
		got := Language(tt.in)
		if got != tt.want {
			t.Errorf("Language(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if got == "" {
			continue
		}
		if n := LanguageName(got); n != tt.name {
			t.Errorf("LanguageName(%q) = %q, want %q", got, n, tt.name)
		}
		if !ValidLanguage(got) || Language(got) != got {
			t.Errorf("Language(%q) = %q is not a fixed point", tt.in, got)
		}
	}
	for _, l := range languages {
		if Language(l.iso2T) != l.iso1 || l.iso2B != "" && Language(l.iso2B) != l.iso1 || Language(l.iso1) != l.iso1 || l.name == "" {
			t.Errorf("table row %+v does not map", l)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(path, []byte(base), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if l.Name != "web" || l.Path != path {
		t.Errorf("Name, Path = %q, %q; want web, %q", l.Name, l.Path, path)
	}

	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("video: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(broken)
	checkProblems(t, broken, err, []want{{1, "video", "want a mapping"}})

	if _, err := Load(filepath.Join(dir, "absent.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v, want os.ErrNotExist", err)
	}
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want bool
	}{
		{"simple", "default", true},
		{"digits and signs", "720p_hi-2", true},
		{"64 chars", strings.Repeat("a", 64), true},
		{"empty", "", false},
		{"65 chars", strings.Repeat("a", 65), false},
		{"upper case", "Default", false},
		{"dot", "a.yaml", false},
		{"traversal", "../etc/passwd", false},
		{"slash", "a/b", false},
		{"space", "a b", false},
		{"newline", "a\n", false},
		{"unicode", "é", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidName(tt.in); got != tt.want {
				t.Errorf("ValidName(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}
