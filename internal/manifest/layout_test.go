package manifest

import (
	"errors"
	"testing"
	"time"
)

func TestSegmentName(t *testing.T) {
	tests := []struct {
		run, n uint64
		want   string
	}{
		{0, 0, "seg_0.m4s"}, {0, 7, "seg_7.m4s"}, {0, 86400, "seg_86400.m4s"}, {0, 1<<63 - 1, "seg_9223372036854775807.m4s"},
		{1, 0, "seg_1_0.m4s"}, {1796500000, 42, "seg_1796500000_42.m4s"}, {1<<63 - 1, 1, "seg_9223372036854775807_1.m4s"},
	}
	for _, tt := range tests {
		if got := SegmentName(tt.run, tt.n); got != tt.want {
			t.Errorf("SegmentName(%d, %d) = %q, want %q", tt.run, tt.n, got, tt.want)
		}
		if run, n, ok := ParseSegmentName(tt.want); !ok || run != tt.run || n != tt.n {
			t.Errorf("ParseSegmentName(%q) = %d, %d, %v; want %d, %d, true", tt.want, run, n, ok, tt.run, tt.n)
		}
	}
	for _, tt := range []struct {
		run  uint64
		want string
	}{{0, "seg_$Number$.m4s"}, {9, "seg_9_$Number$.m4s"}} {
		if got := SegmentTemplate(tt.run, "$Number$"); got != tt.want {
			t.Errorf("SegmentTemplate(%d, $Number$) = %q, want %q", tt.run, got, tt.want)
		}
	}
}

// TestInitName: each run has its own init segment; run 0 is the one init.mp4 of the
// versions before run numbers.
func TestInitName(t *testing.T) {
	for _, tt := range []struct {
		run  uint64
		want string
	}{{0, "init.mp4"}, {1, "init_1.mp4"}, {1796500000, "init_1796500000.mp4"}} {
		if got := InitName(tt.run); got != tt.want {
			t.Errorf("InitName(%d) = %q, want %q", tt.run, got, tt.want)
		}
	}
}

// TestParseSegmentNameRefuses checks that only what SegmentName writes is read as a
// segment: a name that reads as run r and number n must be the file SegmentName(r, n),
// or the job would measure another file than the one ffmpeg listed.
func TestParseSegmentNameRefuses(t *testing.T) {
	for _, name := range []string{
		"", "init.mp4", "init_3.mp4", "index.m3u8", "seg_.m4s", "seg_x.m4s", "seg_-1.m4s", "seg_+1.m4s", "seg_01.m4s",
		"seg_1.m4s.tmp", "seg_1.ts", "other_4.m4s", "720p/seg_1.m4s", "seg_ 1.m4s",
		"seg_9223372036854775808.m4s", "seg_18446744073709551616.m4s",
		"seg_0_1.m4s", "seg_01_1.m4s", "seg_1_01.m4s", "seg__1.m4s", "seg_1_.m4s", "seg_1_2_3.m4s", "seg_x_1.m4s",
		"seg_9223372036854775808_1.m4s",
	} {
		if run, n, ok := ParseSegmentName(name); ok {
			t.Errorf("ParseSegmentName(%q) = %d, %d, true; want false", name, run, n)
		}
	}
}

// TestPeriodHoldsOneRun: a DASH Period names the segments and the init segment of one
// run, so segments of two runs in one Period are refused rather than rendered with the
// wrong names.
func TestPeriodHoldsOneRun(t *testing.T) {
	p := Presentation{Ended: true, SegmentDuration: 4 * time.Second}
	vs := inRun(7, segs(0, 3, 0, videoTS, false, seg4s))
	vs[2].Run = 8
	p.Video = []Track{video("720p", "avc1.64001f", 1280, 720, 3_000_000, 0, 0, vs)}
	if _, err := RenderMPD(&p); !errors.Is(err, ErrInvalid) {
		t.Fatalf("RenderMPD of two runs in one period: %v, want ErrInvalid", err)
	}
}
