package gpu

import (
	"errors"
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
		enc    Encoder
		r      ladder.PlannedVideo
		preset string
		want   string
	}{
		{name: "nvenc vbr", enc: NVENC{}, r: vbr, preset: "veryfast",
			want: "-c:v h264_nvenc -preset p3 -profile:v main -rc vbr -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 2 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "nvenc cbr baseline, maxrate and bufsize resolved", enc: NVENC{}, r: cbr, preset: "placebo",
			want: "-c:v h264_nvenc -preset p7 -profile:v baseline -rc cbr -b:v 800k -maxrate 800k -bufsize 1600k -g 60 -keyint_min 60 -bf 0 -forced-idr 1 -no-scenecut 1 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "qsv", enc: QSV{}, r: vbr, preset: "ultrafast",
			want: "-c:v h264_qsv -preset veryfast -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 2 -forced_idr 1 -adaptive_i 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "vaapi constrained baseline", enc: VAAPI{}, r: cbr, preset: "medium",
			want: "-c:v h264_vaapi -quality 4 -profile:v constrained_baseline -rc_mode CBR -b:v 800k -maxrate 800k -bufsize 1600k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "vaapi no preset no profile", enc: VAAPI{}, r: ladder.PlannedVideo{Name: "a", Bitrate: 1_000_000, MaxRate: 2_000_000, BufSize: 2_000_000},
			want: "-c:v h264_vaapi -rc_mode VBR -b:v 1000k -maxrate 2000k -bufsize 2000k -g 60 -keyint_min 60 -bf 2 -force_key_frames expr:gte(t,n_forced*2)"},
		{name: "amf", enc: AMF{}, r: vbr, preset: "slow",
			want: "-c:v h264_amf -usage transcoding -quality quality -profile:v main -rc vbr_peak -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -bf 0 -force_key_frames expr:gte(t,n_forced*2)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.enc.VideoArgs(tt.r, tt.preset, 60, 2)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, strings.Fields(tt.want)) {
				t.Errorf("VideoArgs =\n  %s\nwant\n  %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func TestHardwareVideoArgsErrors(t *testing.T) {
	r := ladder.PlannedVideo{Name: "720p", Bitrate: 1_000_000, Profile: "high10"}
	for _, enc := range []Encoder{NVENC{}, QSV{}, VAAPI{}, AMF{}} {
		_, err := enc.VideoArgs(r, "turbo", 0, 0)
		if err == nil {
			t.Fatalf("%s accepted a bad rung", enc.Name())
		}
		for _, want := range []string{`unknown preset "turbo" for ` + enc.Name(), `unknown H.264 profile "high10"`, "gop must be greater than zero", "segment duration must be greater than zero"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %q lacks %q", enc.Name(), err, want)
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

func TestFilterGraph(t *testing.T) {
	two := []ladder.PlannedVideo{
		{Name: "720p", Width: 1280, Height: 720, Encoder: "nvenc"},
		{Name: "360p", Width: 640, Height: 360, Encoder: "x264"},
	}
	soft := []ladder.PlannedVideo{{Name: "360p", Width: 640, Height: 360, Encoder: "x264"}}
	tests := []struct {
		name    string
		fps     string
		rungs   []ladder.PlannedVideo
		hw      Hardware
		want    string
		wantErr string
		unavail bool
	}{
		{name: "software one rung", fps: "25", rungs: soft, want: "[0:v:0]fps=25,scale=640:360:flags=bicubic,setsar=1,format=yuv420p[v0]"},
		{name: "cuda mixed", fps: "30000/1001", rungs: two, hw: Hardware{Type: FramesCUDA, Device: "0"},
			want: "[0:v:0]fps=30000/1001,format=nv12|cuda,hwupload,split=2[s0][s1];[s0]scale_cuda=w=1280:h=720:format=nv12,setsar=1[v0];" +
				"[s1]scale_cuda=w=640:h=360:format=nv12,hwdownload,format=nv12,setsar=1,format=yuv420p[v1]"},
		{name: "scale_npp", fps: "30", rungs: two[:1], hw: Hardware{Type: FramesCUDA, Device: "1", Scaler: "scale_npp"},
			want: "[0:v:0]fps=30,format=nv12|cuda,hwupload,scale_npp=w=1280:h=720:format=nv12,setsar=1[v0]"},
		{name: "amf reads system memory from vaapi frames", fps: "30", rungs: []ladder.PlannedVideo{{Name: "a", Width: 640, Height: 360, Encoder: "amf"}},
			hw:   Hardware{Type: FramesVAAPI, Device: node128, Decode: true},
			want: "[0:v:0]fps=30,format=nv12|vaapi,hwupload,scale_vaapi=w=640:h=360:format=nv12,hwdownload,format=nv12,setsar=1,format=nv12[v0]"},
		{name: "nvenc without device", fps: "30", rungs: two, wantErr: `rung "720p": encoder nvenc needs cuda frames but the job has no hardware device`, unavail: true},
		{name: "scale_npp on vaapi", fps: "30", rungs: soft, hw: Hardware{Type: FramesVAAPI, Device: node128, Scaler: "scale_npp"}, wantErr: `scaler "scale_npp" needs cuda frames`},
		{name: "half set", fps: "30", rungs: soft, hw: Hardware{Device: "0"}, wantErr: "without a frame type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := FilterGraph(tt.fps, tt.rungs, tt.hw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				if errors.Is(err, ErrUnavailable) != tt.unavail {
					t.Errorf("errors.Is(ErrUnavailable) = %v", !tt.unavail)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("graph =\n  %s\nwant\n  %s", got, tt.want)
			}
		})
	}
}

func TestHardwareInputArgs(t *testing.T) {
	tests := []struct {
		hw   Hardware
		want string
	}{
		{hw: Hardware{}, want: ""},
		{hw: Hardware{Type: FramesCUDA, Device: "1", Decode: true}, want: "-init_hw_device cuda=hw:1 -filter_hw_device hw -hwaccel cuda -hwaccel_device hw -hwaccel_output_format cuda"},
		{hw: Hardware{Type: FramesVAAPI, Device: node128}, want: "-init_hw_device vaapi=hw:/dev/dri/renderD128 -filter_hw_device hw"},
		{hw: Hardware{Type: FramesQSV, Device: node129}, want: "-init_hw_device vaapi=va:/dev/dri/renderD129 -init_hw_device qsv=hw@va -filter_hw_device hw"},
	}
	for _, tt := range tests {
		if got := strings.Join(tt.hw.InputArgs(), " "); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.hw, got, tt.want)
		}
	}
}
