package manifest

import "testing"

func TestSegmentName(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{{0, "seg_0.m4s"}, {7, "seg_7.m4s"}, {86400, "seg_86400.m4s"}, {1<<63 - 1, "seg_9223372036854775807.m4s"}}
	for _, tt := range tests {
		if got := SegmentName(tt.n); got != tt.want {
			t.Errorf("SegmentName(%d) = %q, want %q", tt.n, got, tt.want)
		}
		if n, ok := ParseSegmentName(tt.want); !ok || n != tt.n {
			t.Errorf("ParseSegmentName(%q) = %d, %v; want %d, true", tt.want, n, ok, tt.n)
		}
	}
	if got := SegmentTemplate("$Number$"); got != "seg_$Number$.m4s" {
		t.Errorf("SegmentTemplate($Number$) = %q", got)
	}
}

// TestParseSegmentNameRefuses checks that only what SegmentName writes is read as a
// segment: a name that reads as number n must be the file SegmentName(n), or the job
// would measure another file than the one ffmpeg listed.
func TestParseSegmentNameRefuses(t *testing.T) {
	for _, name := range []string{
		"", "init.mp4", "index.m3u8", "seg_.m4s", "seg_x.m4s", "seg_-1.m4s", "seg_+1.m4s", "seg_01.m4s",
		"seg_1.m4s.tmp", "seg_1.ts", "other_4.m4s", "720p/seg_1.m4s", "seg_ 1.m4s",
		"seg_9223372036854775808.m4s", "seg_18446744073709551616.m4s",
	} {
		if n, ok := ParseSegmentName(name); ok {
			t.Errorf("ParseSegmentName(%q) = %d, true; want false", name, n)
		}
	}
}
