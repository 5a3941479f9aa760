package encoder

import (
	"slices"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

func TestHardwareVideoArgs(t *testing.T) {
	vbr := ladder.PlannedVideo{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_800_000, MaxRate: 3_000_000, BufSize: 6_000_000, Profile: "main"}
	cbr := ladder.PlannedVideo{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000, Profile: "baseline"}
	tests := []struct {
		name   string
		enc    string
		r      ladder.PlannedVideo
		preset string
		want   string
	}{
		{name: "nvenc vbr", enc: NVENC, r: vbr, preset: "veryfast",
			want: "-c:v h264_nvenc -preset p3 -profile:v main -rc vbr -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 2 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "nvenc cbr baseline, maxrate and bufsize resolved", enc: NVENC, r: cbr, preset: "placebo",
			want: "-c:v h264_nvenc -preset p7 -profile:v baseline -rc cbr -b:v 800k -maxrate 800k -bufsize 1600k -g 60 -keyint_min 60 -bf 0 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "qsv", enc: QSV, r: vbr, preset: "ultrafast",
			want: "-c:v h264_qsv -preset veryfast -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 2 -forced_idr 1 -adaptive_i 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "vaapi constrained baseline", enc: VAAPI, r: cbr, preset: "medium",
			want: "-c:v h264_vaapi -quality 4 -profile:v constrained_baseline -rc_mode CBR -b:v 800k -maxrate 800k -bufsize 1600k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "vaapi no preset no profile", enc: VAAPI, r: ladder.PlannedVideo{Name: "a", Bitrate: 1_000_000, MaxRate: 2_000_000, BufSize: 2_000_000},
			want: "-c:v h264_vaapi -rc_mode VBR -b:v 1000k -maxrate 2000k -bufsize 2000k -g 60 -keyint_min 60 -bf 2 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "amf", enc: AMF, r: vbr, preset: "slow",
			want: "-c:v h264_amf -usage transcoding -quality quality -profile:v main -rc vbr_peak -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
		// Tune zerolatency: each backend's low-latency options and no B-frames,
		// even for main; other tunes are x264's only.
		{name: "nvenc zerolatency", enc: NVENC, r: tuned(vbr, "zerolatency"), preset: "veryfast",
			want: "-c:v h264_nvenc -tune ll -zerolatency 1 -preset p3 -profile:v main -rc vbr -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "nvenc film ignored", enc: NVENC, r: tuned(vbr, "film"), preset: "veryfast",
			want: "-c:v h264_nvenc -preset p3 -profile:v main -rc vbr -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 2 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "qsv zerolatency", enc: QSV, r: tuned(vbr, "zerolatency"), preset: "ultrafast",
			want: "-c:v h264_qsv -async_depth 1 -preset veryfast -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -forced_idr 1 -adaptive_i 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "vaapi zerolatency", enc: VAAPI, r: tuned(vbr, "zerolatency"), preset: "medium",
			want: "-c:v h264_vaapi -async_depth 1 -quality 4 -profile:v main -rc_mode VBR -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "amf zerolatency", enc: AMF, r: tuned(vbr, "zerolatency"), preset: "slow",
			want: "-c:v h264_amf -usage lowlatency -quality quality -profile:v main -rc vbr_peak -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "amf grain ignored", enc: AMF, r: tuned(vbr, "grain"), preset: "slow",
			want: "-c:v h264_amf -usage transcoding -quality quality -profile:v main -rc vbr_peak -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := mustResolve(t, tt.enc).VideoArgs(tt.r, tt.preset, 60, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, strings.Fields(tt.want)) {
				t.Errorf("VideoArgs =\n  %s\nwant\n  %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}

// tuned is r with tune.
func tuned(r ladder.PlannedVideo, tune string) ladder.PlannedVideo {
	r.Tune = tune
	return r
}

func TestTuneNotes(t *testing.T) {
	video := []ladder.PlannedVideo{
		{Name: "1080p", Encoder: NVENC, Tune: "zerolatency"},
		{Name: "720p", Encoder: X264, Tune: "zerolatency"},
		{Name: "480p", Encoder: QSV, Tune: "zerolatency"},
		{Name: "360p", Encoder: VAAPI, Tune: "film"},
		{Name: "240p", Encoder: AMF, Tune: "zerolatency"},
		{Name: "144p", Encoder: NVENC},
	}
	want := []string{
		"rung 1080p: nvenc: tune zerolatency as -tune ll -zerolatency 1 and no B-frames",
		"rung 480p: qsv: tune zerolatency as -async_depth 1 and no B-frames",
		"rung 360p: vaapi: tune film applies to x264 only: ignored",
		"rung 240p: amf: tune zerolatency as -usage lowlatency and no B-frames",
	}
	if got := TuneNotes(video); !slices.Equal(got, want) {
		t.Errorf("TuneNotes =\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// Every tune the ladder accepts is one of libx264's, passed on as -tune.
func TestX264TunesMatchTheLadder(t *testing.T) {
	l, err := ladder.Parse("t", "t.yaml", []byte("video:\n  tune: zerolatency\n  renditions: [{name: a, height: 360, bitrate: 800k}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := x264Tunes[l.Video.Tune]; !slices.Equal(got, []string{"-tune", "zerolatency"}) {
		t.Errorf("x264Tunes[zerolatency] = %q", got)
	}
	for name := range x264Tunes {
		if _, err := ladder.Parse("t", "t.yaml", []byte("video:\n  tune: "+name+"\n  renditions: [{name: a, height: 360, bitrate: 800k}]\n")); err != nil {
			t.Errorf("the ladder refuses x264 tune %q: %v", name, err)
		}
	}
}

func TestHardwareVideoArgsErrors(t *testing.T) {
	r := ladder.PlannedVideo{Name: "720p", Bitrate: 1_000_000, Profile: "high10", Tune: "lowlatency"}
	for _, name := range []string{NVENC, QSV, VAAPI, AMF} {
		_, err := mustResolve(t, name).VideoArgs(r, "turbo", 0, 0)
		if err == nil {
			t.Fatalf("%s accepted a bad rung", name)
		}
		for _, want := range []string{`unknown preset "turbo" for ` + name, `unknown H.264 profile "high10"`, `unknown tune "lowlatency"`, "gop must be greater than zero", "segment duration must be greater than zero"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", name, err, want)
			}
		}
	}
}

// Every x264 preset the ladder accepts maps to a value for every backend.
func TestPresetMapsAreComplete(t *testing.T) {
	for name := range x264Presets {
		for _, m := range []map[string]string{nvencPresets, qsvPresets, vaapiQuality, amfQuality} {
			if m[name] == "" {
				t.Errorf("preset %q has no mapping in %v", name, m)
			}
		}
	}
}
