package ffmpeg

import (
	"slices"
	"testing"
)

func TestArgs(t *testing.T) {
	tests := []struct {
		name  string
		build func(a *Args)
		want  []string
	}{
		{name: "zero value is empty", build: func(*Args) {}, want: []string{}},
		{name: "add keeps order", build: func(a *Args) { a.Add("-y", "-i", "in.mp4") }, want: []string{"-y", "-i", "in.mp4"}},
		{name: "flag prefixes a dash", build: func(a *Args) { a.Flag("c:v", "libx264") }, want: []string{"-c:v", "libx264"}},
		{
			name: "keys repeat in order",
			build: func(a *Args) {
				a.Flag("map", "[v0]").Flag("f", "hls").Add("a.m3u8").Flag("map", "[v1]").Flag("f", "hls").Add("b.m3u8")
			},
			want: []string{"-map", "[v0]", "-f", "hls", "a.m3u8", "-map", "[v1]", "-f", "hls", "b.m3u8"},
		},
		{name: "negative value stays a value", build: func(a *Args) { a.Flag("live_start_index", "-3") }, want: []string{"-live_start_index", "-3"}},
		{name: "empty value kept", build: func(a *Args) { a.Flag("metadata", "") }, want: []string{"-metadata", ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a Args
			tt.build(&a)
			if got := a.Strings(); !slices.Equal(got, tt.want) {
				t.Errorf("Strings() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestArgsStringsIsACopy(t *testing.T) {
	var a Args
	a.Add("-i", "in.mp4")
	got := a.Strings()
	got[1] = "changed"
	if s := a.Strings(); s[1] != "in.mp4" {
		t.Errorf("changing the result of Strings changed the Args: %q", s)
	}
}
