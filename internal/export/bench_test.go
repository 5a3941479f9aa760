package export

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// BenchmarkMP4 exports a clip of TRANSCODERD_EXPORT_MINUTES minutes (10 when unset) of
// the test ladder's top rung (360p, 600 kbit/s, 1 s segments) and its audio, encoded
// once beforehand with the daemon's own argv, and reports the seconds of export per
// minute of clip:
//
//	go test -run '^$' -bench BenchmarkMP4 -benchtime 3x ./internal/export
func BenchmarkMP4(b *testing.B) {
	testmedia.RequireFFmpeg(b)
	minutes := 10
	if s := os.Getenv("TRANSCODERD_EXPORT_MINUTES"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			b.Fatalf("TRANSCODERD_EXPORT_MINUTES=%q: want a positive number", s)
		}
		minutes = n
	}
	dir := b.TempDir()
	v, a := encodeRun(b, dir, testPlan(b), 1, 0, time.Duration(minutes)*time.Minute)
	c := Clip{Video: Track{Runs: []Run{v}}, Audio: Track{Runs: []Run{a}}}
	out := filepath.Join(dir, "clip.mp4")
	var total time.Duration
	b.ResetTimer()
	for b.Loop() {
		if err := MP4(context.Background(), "", c, out, func(_, t time.Duration) { total = t }); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	st, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	perOp := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(perOp/total.Minutes(), "s/clip-min")
	b.ReportMetric(float64(st.Size())/1e6, "MB")
	b.Logf("%d segments per track, %.1f min clip, %.1f MB file, %.2f s per export", len(v.Segments), total.Minutes(), float64(st.Size())/1e6, perOp)
}
