package encoder

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

func TestResolve(t *testing.T) {
	tests := []struct {
		name        string
		in          string
		want        string // encoder name; "" when an error is expected
		wantErr     string
		unavailable bool
	}{
		{name: "x264", in: "x264", want: "x264"},
		{name: "auto picks software", in: "auto", want: "x264"},
		{name: "empty means auto", in: "", want: "x264"},
		{name: "nvenc", in: "nvenc", want: "nvenc"},
		{name: "qsv", in: "qsv", want: "qsv"},
		{name: "vaapi", in: "vaapi", want: "vaapi"},
		{name: "amf", in: "amf", want: "amf"},
		{name: "vce needs the probe", in: "vce", wantErr: `encoder "vce" must be resolved against the hardware probe to amf or vaapi first: hardware encoder not available`, unavailable: true},
		{name: "unknown", in: "libx265", wantErr: `unknown encoder "libx265"`},
		{name: "case matters", in: "X264", wantErr: `unknown encoder "X264"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc, err := Resolve(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Resolve(%q) error = %v, want it to contain %q", tt.in, err, tt.wantErr)
				}
				if got := errors.Is(err, ErrUnavailable); got != tt.unavailable {
					t.Errorf("errors.Is(err, ErrUnavailable) = %v, want %v", got, tt.unavailable)
				}
				return
			}
			if err != nil {
				t.Fatalf("Resolve(%q): %v", tt.in, err)
			}
			if enc.Name != tt.want {
				t.Errorf("Resolve(%q).Name = %q, want %q", tt.in, enc.Name, tt.want)
			}
		})
	}
}

func TestX264VideoArgs(t *testing.T) {
	rung := ladder.PlannedVideo{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_800_000, MaxRate: 3_000_000, BufSize: 6_000_000, Profile: "main", Encoder: "x264"}
	tests := []struct {
		name    string
		rung    func(r *ladder.PlannedVideo)
		preset  string
		gop     int
		seg     float64
		want    string // space-joined argv
		wantErr string
	}{
		{
			name: "full", preset: "veryfast", gop: 60, seg: 2,
			want: "-c:v libx264 -preset veryfast -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 60 -keyint_min 60 -sc_threshold 0 -flags +cgop -force_key_frames expr:gte(t,n_forced*2)",
		},
		{
			name: "no preset no profile", rung: func(r *ladder.PlannedVideo) { r.Profile = "" }, gop: 45, seg: 1.5,
			want: "-c:v libx264 -b:v 2800k -maxrate 3000k -bufsize 6000k -g 45 -keyint_min 45 -sc_threshold 0 -flags +cgop -force_key_frames expr:gte(t,n_forced*1.5)",
		},
		{
			name: "odd bitrate in bits, unresolved maxrate and bufsize", preset: "fast", gop: 50, seg: 2,
			rung: func(r *ladder.PlannedVideo) { r.Bitrate, r.MaxRate, r.BufSize = 1_234_567, 0, 0 },
			want: "-c:v libx264 -preset fast -profile:v main -b:v 1234567 -maxrate 1234567 -bufsize 2469134 -g 50 -keyint_min 50 -sc_threshold 0 -flags +cgop -force_key_frames expr:gte(t,n_forced*2)",
		},
		{
			name: "tune zerolatency", preset: "superfast", gop: 30, seg: 1, rung: func(r *ladder.PlannedVideo) { r.Tune = "zerolatency" },
			want: "-c:v libx264 -tune zerolatency -preset superfast -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 30 -keyint_min 30 -sc_threshold 0 -flags +cgop -force_key_frames expr:gte(t,n_forced*1)",
		},
		{
			name: "tune film", preset: "slow", gop: 48, seg: 2, rung: func(r *ladder.PlannedVideo) { r.Tune = "film" },
			want: "-c:v libx264 -tune film -preset slow -profile:v main -b:v 2800k -maxrate 3000k -bufsize 6000k -g 48 -keyint_min 48 -sc_threshold 0 -flags +cgop -force_key_frames expr:gte(t,n_forced*2)",
		},
		{name: "bad tune", rung: func(r *ladder.PlannedVideo) { r.Tune = "zerolatency,fastdecode" }, gop: 60, seg: 2, wantErr: `unknown tune "zerolatency,fastdecode"`},
		{name: "bad preset", preset: "turbo", gop: 60, seg: 2, wantErr: `unknown x264 preset "turbo"`},
		{name: "bad profile", rung: func(r *ladder.PlannedVideo) { r.Profile = "high10" }, gop: 60, seg: 2, wantErr: `unknown H.264 profile "high10"`},
		{name: "zero bitrate", rung: func(r *ladder.PlannedVideo) { r.Bitrate = 0 }, gop: 60, seg: 2, wantErr: "bitrate must be greater than zero"},
		{name: "zero gop", gop: 0, seg: 2, wantErr: "gop must be greater than zero"},
		{name: "zero segment", gop: 60, seg: 0, wantErr: "segment duration must be greater than zero"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rung
			if tt.rung != nil {
				tt.rung(&r)
			}
			got, err := mustResolve(t, X264).VideoArgs(r, tt.preset, tt.gop, tt.seg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to contain %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, strings.Fields(tt.want)) {
				t.Errorf("VideoArgs =\n  %s\nwant\n  %s", strings.Join(got, " "), tt.want)
			}
		})
	}
}

func mustResolve(t *testing.T, name string) Backend {
	t.Helper()
	b, err := Resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBits(t *testing.T) {
	tests := []struct {
		in   int64
		want string
	}{{128_000, "128k"}, {2_800_000, "2800k"}, {96_500, "96500"}, {1, "1"}}
	for _, tt := range tests {
		if got := Bits(tt.in); got != tt.want {
			t.Errorf("Bits(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
