package ffmpeg

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

// realEnd is a -progress block captured from ffmpeg 5.1 (Debian 12) at the end
// of an 8 s encode.
const realEnd = `frame=240
fps=100.71
stream_0_0_q=-1.0
bitrate=N/A
total_size=N/A
out_time_us=8000000
out_time_ms=8000000
out_time=00:00:08.000000
dup_frames=0
drop_frames=0
speed=3.36x
progress=end
`

func TestReadProgress(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []Progress
	}{
		{
			name: "captured final block",
			in:   realEnd,
			want: []Progress{{Frame: 240, FPS: 100.71, OutTime: 8 * time.Second, Speed: 3.36, End: true}},
		},
		{
			name: "two blocks are independent",
			in: "frame=30\nfps=0.00\nbitrate= 812.4kbits/s\ntotal_size=98304\nout_time_us=1000000\ndup_frames=2\ndrop_frames=1\nspeed=1.01x\nprogress=continue\n" +
				"frame=60\nout_time_us=2000000\nprogress=continue\n",
			want: []Progress{
				{Frame: 30, Bitrate: 812.4, TotalSize: 98304, OutTime: time.Second, DupFrames: 2, DropFrames: 1, Speed: 1.01},
				{Frame: 60, OutTime: 2 * time.Second},
			},
		},
		{
			name: "N/A everywhere reads as zero",
			in:   "frame=0\nfps=N/A\nbitrate=N/A\ntotal_size=N/A\nout_time_us=N/A\nout_time_ms=N/A\nout_time=N/A\nspeed=N/A\nprogress=continue\n",
			want: []Progress{{}},
		},
		{
			name: "out_time_ms is microseconds when out_time_us is missing",
			in:   "out_time_ms=1500000\nprogress=continue\n",
			want: []Progress{{OutTime: 1500 * time.Millisecond}},
		},
		{
			name: "out_time clock when both numbers are missing",
			in:   "out_time=01:02:03.250000\nprogress=continue\n",
			want: []Progress{{OutTime: time.Hour + 2*time.Minute + 3250*time.Millisecond}},
		},
		{
			name: "negative time before the first frame is zero",
			in:   "out_time_us=-9223372036854775807\nout_time=-2562047788:00:54.775807\nprogress=continue\n",
			want: []Progress{{}},
		},
		{
			name: "CRLF, spaces and junk lines are tolerated",
			in:   "frame= 12\r\nthis is not a pair\r\n\r\nspeed= 0.5x\r\nfps=inf\r\nprogress=continue\r\n",
			want: []Progress{{Frame: 12, Speed: 0.5}},
		},
		{
			name: "a block cut short is dropped",
			in:   "frame=1\nprogress=continue\nframe=2\nfps=3",
			want: []Progress{{Frame: 1}},
		},
		{name: "empty input", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []Progress
			if err := ReadProgress(strings.NewReader(tt.in), func(p Progress) { got = append(got, p) }); err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("got %d blocks %+v, want %d %+v", len(got), got, len(tt.want), tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("block %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestReadProgressReadError(t *testing.T) {
	boom := errors.New("pipe broke")
	r := io.MultiReader(strings.NewReader("frame=1\nprogress=continue\n"), iotest.ErrReader(boom))
	var n int
	err := ReadProgress(r, func(Progress) { n++ })
	if !errors.Is(err, boom) {
		t.Errorf("err = %v, want %v", err, boom)
	}
	if n != 1 {
		t.Errorf("got %d blocks before the error, want 1", n)
	}
}
