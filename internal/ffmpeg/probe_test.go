package ffmpeg

import (
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// TestProbeFiles probes small files made by the real ffmpeg.
func TestProbeFiles(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	dir := t.TempDir()
	video := []string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30:duration=1"}
	sine := []string{"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000:duration=1"}
	x264 := []string{"-c:v", "libx264", "-preset", "ultrafast"}
	cat := func(parts ...[]string) []string {
		var out []string
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	anamorphic := makeMedia(t, dir, "anamorphic.mp4", cat([]string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=25:duration=1,setsar=4/3"}, x264)...)

	tests := []struct {
		name string
		file string
		want ladder.SourceInfo
	}{
		{
			name: "video and audio",
			file: makeMedia(t, dir, "av.mp4", cat(video, sine, x264, []string{"-c:a", "aac", "-ac", "2"})...),
			want: ladder.SourceInfo{HasVideo: true, Width: 320, Height: 180, FPS: 30, VideoCodec: "h264", HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000, Duration: time.Second,
				AudioTracks: []ladder.AudioTrack{{Index: 0, Codec: "aac", Channels: 2, SampleRate: 48000}}},
		},
		{
			name: "two languages",
			file: makeMedia(t, dir, "langs.mp4", cat(video, sine, []string{"-f", "lavfi", "-i", "sine=frequency=660:sample_rate=44100:duration=1"}, x264,
				[]string{"-map", "0:v", "-map", "1:a", "-map", "2:a", "-c:a", "aac", "-ac:a:0", "2", "-metadata:s:a:0", "language=eng", "-metadata:s:a:1", "language=fre"})...),
			want: ladder.SourceInfo{HasVideo: true, Width: 320, Height: 180, FPS: 30, VideoCodec: "h264", HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000, Duration: time.Second,
				AudioTracks: []ladder.AudioTrack{
					{Index: 0, Codec: "aac", Language: "en", Channels: 2, SampleRate: 48000},
					{Index: 1, Codec: "aac", Language: "fr", Channels: 1, SampleRate: 44100},
				}},
		},
		{
			name: "titled tracks in matroska, one undetermined",
			file: makeMedia(t, dir, "titles.mkv", cat(sine, sine, []string{"-map", "0:a", "-map", "1:a", "-c:a", "aac",
				"-metadata:s:a:0", "language=und", "-metadata:s:a:0", `title=Main "mix"`, "-metadata:s:a:1", "language=spa", "-metadata:s:a:1", "title=Comentarios"})...),
			want: ladder.SourceInfo{HasAudio: true, AudioCodec: "aac", Channels: 1, SampleRate: 48000, Duration: time.Second,
				AudioTracks: []ladder.AudioTrack{
					{Index: 0, Codec: "aac", Channels: 1, SampleRate: 48000, Title: "Main mix"},
					{Index: 1, Codec: "aac", Language: "es", Channels: 1, SampleRate: 48000, Title: "Comentarios"},
				}},
		},
		{
			name: "video only",
			file: makeMedia(t, dir, "video.mp4", cat(video, x264)...),
			want: ladder.SourceInfo{HasVideo: true, Width: 320, Height: 180, FPS: 30, VideoCodec: "h264", Duration: time.Second},
		},
		{
			name: "audio only",
			file: makeMedia(t, dir, "audio.m4a", cat(sine, []string{"-c:a", "aac"})...),
			want: ladder.SourceInfo{HasAudio: true, AudioCodec: "aac", Channels: 1, SampleRate: 48000, Duration: time.Second,
				AudioTracks: []ladder.AudioTrack{{Index: 0, Codec: "aac", Channels: 1, SampleRate: 48000}}},
		},
		{
			name: "anamorphic 4:3 pixels widen the picture",
			file: anamorphic,
			want: ladder.SourceInfo{HasVideo: true, Width: 426, Height: 180, FPS: 25, VideoCodec: "h264", Duration: time.Second},
		},
		{
			name: "rotated phone video stands upright",
			file: makeMedia(t, dir, "rotated.mp4", "-i", anamorphic, "-c", "copy", "-metadata:s:v:0", "rotate=90"),
			want: ladder.SourceInfo{HasVideo: true, Width: 180, Height: 426, FPS: 25, VideoCodec: "h264", Duration: time.Second},
		},
		{
			name: "ntsc rate",
			file: makeMedia(t, dir, "ntsc.mp4", cat([]string{"-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30000/1001:duration=1"}, x264)...),
			want: ladder.SourceInfo{HasVideo: true, Width: 320, Height: 180, FPS: 30000.0 / 1001, VideoCodec: "h264", Duration: time.Second},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			got, err := Probe(ctx, ffprobe, tt.file, source.File)
			if err != nil {
				t.Fatal(err)
			}
			// Container durations are a little longer than the 1 s asked for
			// (whole frames, AAC priming); compare them loosely.
			if d := got.Duration - tt.want.Duration; d < -50*time.Millisecond || d > 100*time.Millisecond {
				t.Errorf("Duration = %v, want about %v", got.Duration, tt.want.Duration)
			}
			if math.Abs(got.FPS-tt.want.FPS) > 1e-6 {
				t.Errorf("FPS = %v, want %v", got.FPS, tt.want.FPS)
			}
			got.Duration, got.FPS = tt.want.Duration, tt.want.FPS
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Probe =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
}

func TestProbeErrors(t *testing.T) {
	ffprobe := needTool(t, "ffprobe")
	dir := t.TempDir()
	notMedia := filepath.Join(dir, "notes.mp4")
	if err := os.WriteFile(notMedia, []byte("this is not a video\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := closedPort(t)
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name    string
		ctx     context.Context
		ffprobe string
		source  string
		kind    source.Kind
		want    []string
		notWant string
		is      error
	}{
		{name: "missing file", source: filepath.Join(dir, "nope.mp4"), kind: source.File, want: []string{"nope.mp4: No such file or directory: exit status 1"}},
		{name: "not media", source: notMedia, kind: source.File, want: []string{"Invalid data found when processing input"}},
		{name: "refused rtmp", source: "rtmp://" + addr + "/live/cam", kind: source.RTMP, want: []string{"Connection refused"}},
		{
			name: "refused rtsp hides the password", source: "rtsp://admin:hunter2@" + addr + "/stream1", kind: source.RTSP,
			want: []string{"Connection refused", "rtsp://admin:xxxxx@"}, notWant: "hunter2",
		},
		{name: "cancelled", ctx: cancelled, source: notMedia, kind: source.File, is: context.Canceled},
		{name: "no ffprobe", ffprobe: filepath.Join(dir, "ffprobe-missing"), source: notMedia, kind: source.File, want: []string{"ffprobe-missing"}, is: os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := tt.ctx
			if ctx == nil {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
			}
			bin := tt.ffprobe
			if bin == "" {
				bin = ffprobe
			}
			info, err := Probe(ctx, bin, tt.source, tt.kind)
			if err == nil {
				t.Fatalf("Probe succeeded: %+v", info)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tt.notWant != "" && strings.Contains(err.Error(), tt.notWant) {
				t.Errorf("error %q leaks %q", err, tt.notWant)
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
		})
	}
}

func TestParseProbe(t *testing.T) {
	tests := []struct {
		name    string
		kind    source.Kind
		json    string
		want    ladder.SourceInfo
		wantErr error
	}{
		{
			name: "cover art is not video",
			kind: source.File,
			json: `{"streams":[{"codec_type":"video","codec_name":"mjpeg","width":600,"height":600,"disposition":{"attached_pic":1}},
				{"codec_type":"audio","codec_name":"mp3","channels":2,"sample_rate":"44100"}],"format":{"duration":"180.5"}}`,
			want: ladder.SourceInfo{HasAudio: true, AudioCodec: "mp3", Channels: 2, SampleRate: 44100, Duration: 180500 * time.Millisecond,
				AudioTracks: []ladder.AudioTrack{{Index: 0, Codec: "mp3", Channels: 2, SampleRate: 44100}}},
		},
		{
			name: "r_frame_rate when avg_frame_rate is unknown, first video wins, every audio track listed",
			kind: source.RTMP,
			json: `{"streams":[{"codec_type":"video","codec_name":"h264","width":1280,"height":720,"avg_frame_rate":"0/0","r_frame_rate":"25/1","sample_aspect_ratio":"0:1"},
				{"codec_type":"video","codec_name":"h264","width":640,"height":360},
				{"codec_type":"audio","codec_name":"aac","channels":2,"sample_rate":"48000","tags":{"language":"ger"}},
				{"codec_type":"data"},
				{"codec_type":"audio","codec_name":"ac3","channels":6,"sample_rate":"48000","tags":{"language":"EN-us","title":"  5.1\tmix\n "}},
				{"codec_type":"audio","codec_name":"aac","channels":2,"sample_rate":"48000","tags":{"language":"english","title":"` + strings.Repeat("é", 70) + `"}}],"format":{"duration":"12.0"}}`,
			want: ladder.SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 25, VideoCodec: "h264", HasAudio: true, AudioCodec: "aac", Channels: 2, SampleRate: 48000,
				AudioTracks: []ladder.AudioTrack{
					{Index: 0, Codec: "aac", Language: "de", Channels: 2, SampleRate: 48000},
					{Index: 1, Codec: "ac3", Language: "en-US", Channels: 6, SampleRate: 48000, Title: "5.1 mix"},
					{Index: 2, Codec: "aac", Channels: 2, SampleRate: 48000, Title: strings.Repeat("é", 64)},
				}},
		},
		{
			name: "implausible rate is unknown",
			kind: source.RTMP,
			json: `{"streams":[{"codec_type":"video","codec_name":"h264","width":1920,"height":1080,"avg_frame_rate":"1000/1","r_frame_rate":"1000/1"}]}`,
			want: ladder.SourceInfo{HasVideo: true, Width: 1920, Height: 1080, VideoCodec: "h264"},
		},
		{
			name: "old rotate tag and odd anamorphic width",
			kind: source.File,
			json: `{"streams":[{"codec_type":"video","codec_name":"h264","width":720,"height":576,"sample_aspect_ratio":"16:11","avg_frame_rate":"25/1","tags":{"rotate":"270"}}],"format":{"duration":"N/A"}}`,
			want: ladder.SourceInfo{HasVideo: true, Width: 576, Height: 1048, FPS: 25, VideoCodec: "h264"},
		},
		{
			name: "upside down keeps its size",
			kind: source.HTTP,
			json: `{"streams":[{"codec_type":"video","codec_name":"hevc","width":1280,"height":720,"avg_frame_rate":"30/1","side_data_list":[{"rotation":-180}]}],"format":{"duration":"60.000000"}}`,
			want: ladder.SourceInfo{HasVideo: true, Width: 1280, Height: 720, FPS: 30, VideoCodec: "hevc", Duration: time.Minute},
		},
		{name: "no streams", kind: source.File, json: `{"streams":[],"format":{}}`, wantErr: ErrNoMedia},
		{name: "only data", kind: source.File, json: `{"streams":[{"codec_type":"data"},{"codec_type":"subtitle"}]}`, wantErr: ErrNoMedia},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseProbe([]byte(tt.json), tt.kind)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseProbe =\n  %+v\nwant\n  %+v", got, tt.want)
			}
		})
	}
	if _, err := parseProbe([]byte("not json"), source.File); err == nil || !strings.Contains(err.Error(), "read ffprobe output") {
		t.Errorf("bad JSON: err = %v", err)
	}
}
