package ladder

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestDurationsInSeconds: in JSON every duration is a number of seconds, both ways,
// and the other fields are written as before.
func TestDurationsInSeconds(t *testing.T) {
	tests := []struct {
		name string
		v    any    // a value to encode
		want string // substrings of its JSON
		back any    // a pointer to decode the JSON into, compared with v
	}{
		{
			name: "ladder",
			v:    Ladder{Name: "l", SegmentDuration: 2 * time.Second, Window: 15 * time.Minute, Encoder: "x264", Video: Video{Renditions: []Rendition{{Name: "r", Height: 360, Bitrate: 800_000}}}},
			want: `"name":"l"|"segment_duration":2,|"window":900}|"renditions":[{"name":"r","height":360,"bitrate":800000}]`,
			back: &Ladder{},
		},
		{
			name: "ladder with sub-second segments, no window, no video",
			v:    Ladder{Name: "l", SegmentDuration: 500 * time.Millisecond, Video: Video{Renditions: []Rendition{}}},
			want: `"segment_duration":0.5,|"window":0}|"renditions":[]`,
			back: &Ladder{},
		},
		{
			name: "plan",
			v:    Plan{FPS: 25, GOP: 50, SegmentDuration: 2 * time.Second, Video: []PlannedVideo{}, Audio: []Audio{}},
			want: `"fps":25|"gop":50|"segment_duration":2}|"video":[]`,
			back: &Plan{},
		},
		{
			name: "probe of a file",
			v:    SourceInfo{HasVideo: true, Width: 1920, Height: 1080, Duration: 12*time.Second + 480*time.Millisecond},
			want: `"width":1920|"duration":12.48}`,
			back: &SourceInfo{},
		},
		{
			name: "probe to the nanosecond",
			v:    SourceInfo{HasAudio: true, Duration: time.Hour + time.Nanosecond},
			want: `"duration":3600.000000001}`,
			back: &SourceInfo{},
		},
		{
			name: "probe of a live source has no duration",
			v:    SourceInfo{HasVideo: true},
			want: `{"has_video":true,"has_audio":false}`,
			back: &SourceInfo{},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.v)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range strings.Split(tc.want, "|") {
				if !strings.Contains(string(b), w) {
					t.Errorf("%s lacks %s", b, w)
				}
			}
			if strings.Contains(string(b), "000000000") {
				t.Errorf("%s holds nanoseconds", b)
			}
			if err := json.Unmarshal(b, tc.back); err != nil {
				t.Fatal(err)
			}
			if got := reflect.ValueOf(tc.back).Elem().Interface(); !reflect.DeepEqual(got, tc.v) {
				t.Errorf("read back %+v, want %+v", got, tc.v)
			}
		})
	}
}

func TestDurationsInSecondsRefused(t *testing.T) {
	for _, in := range []string{
		`{"segment_duration":"2s"}`,
		`{"segment_duration":1e10}`,
		`{"window":-1e10}`,
	} {
		var l Ladder
		if err := json.Unmarshal([]byte(in), &l); err == nil {
			t.Errorf("%s: read as %v, %v", in, l.SegmentDuration, l.Window)
		}
	}
	// A key that is absent leaves the field as it was, as encoding/json does.
	l := Ladder{SegmentDuration: time.Second, Window: time.Minute}
	if err := json.Unmarshal([]byte(`{"name":"x"}`), &l); err != nil || l.SegmentDuration != time.Second || l.Window != time.Minute || l.Name != "x" {
		t.Errorf("got %+v, %v", l, err)
	}
}

// TestLadderJSONNoNull: a ladder without video renditions shows [], not null.
func TestLadderJSONNoNull(t *testing.T) {
	if b, _ := json.Marshal(Ladder{}); !strings.Contains(string(b), `"renditions":[]`) {
		t.Errorf("a ladder without video: %s", b)
	}
}
