package manifest

import (
	"testing"
	"time"
)

// benchPresentation is what a light live job renders after every segment: one 96p rung
// and AAC, 1 s segments, a 30 s window (the figures of scripts/overhead).
func benchPresentation() *Presentation {
	const ts = 15360
	p := &Presentation{
		Live: true, AvailabilityStart: ast, PublishTime: ast.Add(200 * time.Second),
		SegmentDuration: time.Second, Window: 30 * time.Second,
	}
	vs := segs(170, 30, 170*ts, ts, true, ts)
	as := segs(170, 30, 85*(48128+47104), audioTS, true, 48128, 47104)
	p.Video = []Track{video("96p", "avc1.64000b", 170, 96, 100_000, 120_000, 95_000, vs)}
	p.Audio = []Track{audio("aac", "", 32_000, 33_000, 32_000, as)}
	return p
}

// BenchmarkRender measures one rendering of each manifest a live job writes after a
// segment: go test -run '^$' -bench . -benchmem ./internal/manifest
func BenchmarkRender(b *testing.B) {
	p := benchPresentation()
	b.Run("mpd", func(b *testing.B) {
		for b.Loop() {
			if _, err := RenderMPD(p); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("media", func(b *testing.B) {
		for b.Loop() {
			if _, err := RenderMedia(p, &p.Video[0]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("master", func(b *testing.B) {
		for b.Loop() {
			if _, err := RenderMaster(p); err != nil {
				b.Fatal(err)
			}
		}
	})
}
