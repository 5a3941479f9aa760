package store

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// backend is what Store and Memory both do.
type backend interface {
	PutJob(id string, record any) error
	Jobs() (map[string]json.RawMessage, error)
	DeleteJob(id string) error
	UpdateSegments(id string, changes []SegmentChange) error
	ClearSegments(id string) error
	Segments(id string) (map[string][]manifest.Segment, error)
}

// TestStoreRoundTrip runs Store, reopened as a restarted daemon sees it, and Memory
// through the same writes and reads.
func TestStoreRoundTrip(t *testing.T) {
	dir := t.TempDir()
	open := func(t *testing.T) backend {
		s, err := Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	mem := NewMemory()
	tests := []struct {
		name   string
		open   func(t *testing.T) backend
		reopen func(t *testing.T, b backend) backend
	}{
		{"bbolt", open, func(t *testing.T, b backend) backend {
			if err := b.(*Store).Close(); err != nil {
				t.Fatal(err)
			}
			return open(t)
		}},
		{"memory", func(*testing.T) backend { return mem }, func(_ *testing.T, b backend) backend { return b }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { roundTrip(t, tc.open(t), tc.reopen) })
	}
}

func roundTrip(t *testing.T, s backend, reopen func(*testing.T, backend) backend) {
	type rec struct{ State string }
	if err := s.PutJob("cam1", rec{"running"}); err != nil {
		t.Fatal(err)
	}
	segs := []manifest.Segment{
		{Number: 9, Start: 900, Duration: 100, Size: 5, ProgramDate: time.Unix(9, 0).UTC()},
		{Number: 10, Start: 1000, Duration: 100, Size: 6, Discontinuity: true, PeriodStart: time.Second, MediaTime: 7},
		{Number: 256, Start: 25600, Duration: 100}, // key order is numeric, not lexical
	}
	if err := s.UpdateSegments("cam1", []SegmentChange{{Track: "720p", Added: segs}, {Track: "aac", Added: segs[:1]}}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateSegments("cam1", []SegmentChange{{Track: "aac", Removed: []uint64{9}}}); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s) // what a restarted daemon sees
	jobs, err := s.Jobs()
	if err != nil || string(jobs["cam1"]) != `{"State":"running"}` {
		t.Fatalf("Jobs = %s, %v", jobs, err)
	}
	got, err := s.Segments("cam1")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got["720p"], segs) || len(got["aac"]) != 0 {
		t.Fatalf("Segments = %+v", got)
	}
	if err := s.ClearSegments("cam1"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Segments("cam1"); len(got) != 0 {
		t.Fatalf("segments after ClearSegments: %v", got)
	}
	if err := s.UpdateSegments("cam1", []SegmentChange{{Track: "720p", Added: segs}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteJob("cam1"); err != nil {
		t.Fatal(err)
	}
	if jobs, _ := s.Jobs(); len(jobs) != 0 {
		t.Fatalf("after DeleteJob: %v", jobs)
	}
	if got, _ := s.Segments("cam1"); len(got) != 0 {
		t.Fatalf("segments after DeleteJob: %v", got)
	}
}

func TestOpenLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := Open(dir); err == nil || !strings.Contains(err.Error(), "another transcoderd") {
		t.Fatalf("second Open: %v", err)
	}
}
