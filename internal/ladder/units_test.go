package ladder

import (
	"strings"
	"testing"
	"time"
)

func TestParseBitrate(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    int64
		wantErr string // fragment of the error; empty means success
	}{
		{name: "kilo", in: "5000k", want: 5_000_000},
		{name: "kilo upper case", in: "128K", want: 128_000},
		{name: "mega", in: "5M", want: 5_000_000},
		{name: "mega lower case", in: "5m", want: 5_000_000},
		{name: "fractional mega", in: "1.5M", want: 1_500_000},
		{name: "fractional kilo", in: "2.5k", want: 2_500},
		{name: "many decimals", in: "1.000001M", want: 1_000_001},
		{name: "bare bits", in: "800000", want: 800_000},
		{name: "leading zeros", in: "0800k", want: 800_000},
		{name: "upper limit", in: "1000M", want: maxBitrate},
		{name: "zero", in: "0", wantErr: "greater than zero"},
		{name: "zero kilo", in: "0k", wantErr: "greater than zero"},
		{name: "empty", in: "", wantErr: "not a bitrate"},
		{name: "suffix only", in: "k", wantErr: "not a bitrate"},
		{name: "unknown suffix", in: "5G", wantErr: "not a bitrate"},
		{name: "kbps", in: "5000kbps", wantErr: "not a bitrate"},
		{name: "space", in: "5000 k", wantErr: "not a bitrate"},
		{name: "negative", in: "-5k", wantErr: "not a bitrate"},
		{name: "plus sign", in: "+5k", wantErr: "not a bitrate"},
		{name: "exponent", in: "1e6", wantErr: "not a bitrate"},
		{name: "hex", in: "0x10", wantErr: "not a bitrate"},
		{name: "underscore", in: "1_000k", wantErr: "not a bitrate"},
		{name: "dot without fraction", in: "5.k", wantErr: "not a bitrate"},
		{name: "fraction without whole", in: ".5M", wantErr: "not a bitrate"},
		{name: "two dots", in: "1.2.3M", wantErr: "not a bitrate"},
		{name: "fraction of a bit", in: "1.5", wantErr: "not a whole number"},
		{name: "fraction of a kilobit", in: "1.0005k", wantErr: "not a whole number"},
		{name: "above the limit", in: "1001M", wantErr: "too large"},
		{name: "overflow", in: "99999999999999999999999M", wantErr: "too large"},
		{name: "too many decimals", in: "1.0000001M", wantErr: "too many decimals"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBitrate(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseBitrate(%q) = %d, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseBitrate(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestFormatBitrate(t *testing.T) {
	tests := []struct {
		name string
		in   int64
		want string
	}{
		{"kilobits", 5_000_000, "5000k"},
		{"odd bits", 1_500_001, "1500001"},
		{"zero", 0, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := formatBitrate(tt.in); got != tt.want {
				t.Errorf("formatBitrate(%d) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.in > 0 {
				if back, err := parseBitrate(formatBitrate(tt.in)); err != nil || back != tt.in {
					t.Errorf("round trip of %d gave %d, %v", tt.in, back, err)
				}
			}
		})
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr string
	}{
		{name: "seconds", in: "2s", want: 2 * time.Second},
		{name: "milliseconds", in: "500ms", want: 500 * time.Millisecond},
		{name: "minutes", in: "15m", want: 15 * time.Minute},
		{name: "hours", in: "1h", want: time.Hour},
		{name: "compound", in: "1h30m", want: 90 * time.Minute},
		{name: "fractional", in: "1.5s", want: 1500 * time.Millisecond},
		{name: "bare zero", in: "0", want: 0},
		{name: "zero with unit", in: "0s", want: 0},
		{name: "bare number", in: "2", wantErr: "use a unit, e.g. 2s"},
		{name: "bare fraction", in: "1.5", wantErr: "use a unit"},
		{name: "bare negative", in: "-1", wantErr: "use a unit"},
		{name: "bare zero with decimals", in: "0.0", wantErr: "use a unit"},
		{name: "unknown unit", in: "2w", wantErr: "not a duration"},
		{name: "days", in: "7d", want: 7 * 24 * time.Hour},
		{name: "days with a fraction", in: "1.5d", wantErr: "not a duration"},
		{name: "too many days", in: "999999999999d", wantErr: "too many days"},
		{name: "words", in: "two seconds", wantErr: "not a duration"},
		{name: "empty", in: "", wantErr: "not a duration"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("parseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
		})
	}
}
