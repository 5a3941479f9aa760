package store

import (
	"testing"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// BenchmarkCheckpointRecording measures what a job's checkpoint (UpdateSegments with
// one new segment a track) costs once the store holds the index of a recorded
// 10-hour event: 2 s segments, 4 tracks, 72 000 segments. Each segment is a key of its
// own, so a checkpoint writes what is new, not the whole index.
func BenchmarkCheckpointRecording(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	tracks := []string{"1080p", "720p", "360p", "aac"}
	const perTrack = 18_000
	for from := uint64(0); from < perTrack; from += 1000 {
		var changes []SegmentChange
		for _, tr := range tracks {
			c := SegmentChange{Track: tr}
			for n := from; n < from+1000; n++ {
				c.Added = append(c.Added, manifest.Segment{Number: n, Start: n * 180000, Duration: 180000, Size: 500_000, Run: 1796500000})
			}
			changes = append(changes, c)
		}
		if err := s.UpdateSegments("rec", changes); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := range b.N {
		n := uint64(perTrack + i)
		var changes []SegmentChange
		for _, tr := range tracks {
			changes = append(changes, SegmentChange{Track: tr, Added: []manifest.Segment{{Number: n, Start: n * 180000, Duration: 180000, Size: 500_000, Run: 1796500000}}})
		}
		if err := s.UpdateSegments("rec", changes); err != nil {
			b.Fatal(err)
		}
	}
}
