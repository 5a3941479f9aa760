package testmedia

import (
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestSampleOptions(t *testing.T) {
	tests := []struct {
		name    string
		in      SampleOptions
		want    SampleOptions
		wantErr string
	}{
		{
			name: "zero value is 2 s of 320x180 at 30 fps with both streams",
			want: SampleOptions{Width: 320, Height: 180, FPS: 30, Duration: 2 * time.Second, Audio: true, Video: true},
		},
		{
			name: "audio only stays audio only",
			in:   SampleOptions{Audio: true},
			want: SampleOptions{Width: 320, Height: 180, FPS: 30, Duration: 2 * time.Second, Audio: true},
		},
		{
			name: "video only stays video only",
			in:   SampleOptions{Video: true, Noise: true},
			want: SampleOptions{Width: 320, Height: 180, FPS: 30, Duration: 2 * time.Second, Video: true, Noise: true},
		},
		{name: "odd height", in: SampleOptions{Width: 320, Height: 181}, wantErr: "even"},
		{name: "negative fps", in: SampleOptions{FPS: -5}, wantErr: "fps"},
		{name: "negative duration", in: SampleOptions{Duration: -time.Second}, wantErr: "duration"},
		{name: "languages without audio", in: SampleOptions{Video: true, Languages: []string{"eng"}}, wantErr: "without audio"},
		{name: "too many tracks", in: SampleOptions{Languages: make([]string, 9)}, wantErr: "9 audio tracks"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.in.withDefaults()
			err := got.validate()
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("validate() = %v, want error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("validate() = %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("withDefaults() = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestWriteSample(t *testing.T) {
	RequireFFmpeg(t)
	tests := []struct {
		name      string
		opts      SampleOptions
		wantVideo string // "WxH@fps", or "" for no video stream
		wantAudio bool
		wantSecs  float64
	}{
		{name: "defaults", wantVideo: "320x180@30", wantAudio: true, wantSecs: 2},
		{
			name:      "video only, small and slow",
			opts:      SampleOptions{Video: true, Width: 160, Height: 90, FPS: 15, Duration: time.Second},
			wantVideo: "160x90@15", wantSecs: 1,
		},
		{name: "audio only", opts: SampleOptions{Audio: true, Duration: time.Second}, wantAudio: true, wantSecs: 1},
		{
			name:      "two languages and an untagged track",
			opts:      SampleOptions{Duration: time.Second, Languages: []string{"eng", "fra", ""}},
			wantVideo: "320x180@30", wantAudio: true, wantSecs: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sample.mp4")
			WriteSample(t, path, tt.opts)
			res, err := ffprobe(path)
			if err != nil {
				t.Fatal(err)
			}
			tracks := btoi(tt.wantAudio) * max(1, len(tt.opts.Languages))
			if len(res.Streams) != btoi(tt.wantVideo != "")+tracks {
				t.Errorf("%d streams, want video %q and audio %v", len(res.Streams), tt.wantVideo, tt.wantAudio)
			}
			if v, ok := res.stream("video"); ok {
				got := strconv.Itoa(v.Width) + "x" + strconv.Itoa(v.Height) + "@" + strings.TrimSuffix(v.RFrameRate, "/1")
				if v.CodecName != "h264" || got != tt.wantVideo || v.PixFmt != "yuv420p" {
					t.Errorf("video %s %s %s, want h264 %s yuv420p", v.CodecName, got, v.PixFmt, tt.wantVideo)
				}
			}
			var langs []string
			for _, a := range res.Streams {
				if a.CodecType != "audio" {
					continue
				}
				if a.CodecName != "aac" || a.SampleRate != "48000" || a.Channels != 2 {
					t.Errorf("audio %s %s Hz %d ch, want aac 48000 Hz 2 ch", a.CodecName, a.SampleRate, a.Channels)
				}
				langs = append(langs, strings.TrimPrefix(a.Tags.Language, "und"))
			}
			if len(tt.opts.Languages) > 0 && !slices.Equal(langs, tt.opts.Languages) {
				t.Errorf("audio languages %q, want %q", langs, tt.opts.Languages)
			}
			secs, err := strconv.ParseFloat(res.Format.Duration, 64)
			if err != nil || math.Abs(secs-tt.wantSecs) > 0.1 {
				t.Errorf("duration %q s, want %v s", res.Format.Duration, tt.wantSecs)
			}
		})
	}
}

// TestWriteSampleNoise checks that Noise makes the video much harder to
// compress, as real camera content is.
func TestWriteSampleNoise(t *testing.T) {
	RequireFFmpeg(t)
	dir := t.TempDir()
	size := func(name string, noise bool) int64 {
		path := filepath.Join(dir, name)
		WriteSample(t, path, SampleOptions{Video: true, Duration: time.Second, Noise: noise})
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		return st.Size()
	}
	clean, noisy := size("clean.mp4", false), size("noisy.mp4", true)
	if noisy < 2*clean {
		t.Errorf("noisy sample is %d bytes, clean %d: want noise to at least double the size", noisy, clean)
	}
}
