package encoder

import (
	"errors"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

const (
	node128 = "/dev/dri/renderD128"
	node129 = "/dev/dri/renderD129"
)

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
