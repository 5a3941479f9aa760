package store

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// Memory keeps what Store keeps, in memory: for a job manager whose jobs need not
// survive the process (tests). It encodes as Store does, so that what reads back is
// the same. Safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	jobs     map[string][]byte
	segments map[string]map[string]map[uint64][]byte // job → track → number → segment
}

// NewMemory returns an empty Memory.
func NewMemory() *Memory {
	return &Memory{jobs: map[string][]byte{}, segments: map[string]map[string]map[uint64][]byte{}}
}

// PutJob stores a job record (any JSON-encodable value) under id, replacing it.
func (m *Memory) PutJob(id string, record any) error {
	data, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", id, err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs[id] = data
	return nil
}

// Jobs returns every job record, raw, by id.
func (m *Memory) Jobs() (map[string]json.RawMessage, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]json.RawMessage{}
	for id, data := range m.jobs {
		out[id] = slices.Clone(data)
	}
	return out, nil
}

// DeleteJob forgets a job and its segment index.
func (m *Memory) DeleteJob(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.jobs, id)
	delete(m.segments, id)
	return nil
}

// UpdateSegments applies a job's index changes.
func (m *Memory) UpdateSegments(id string, changes []SegmentChange) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	job := m.segments[id]
	if job == nil {
		job = map[string]map[uint64][]byte{}
		m.segments[id] = job
	}
	for _, c := range changes {
		track := job[c.Track]
		if track == nil {
			track = map[uint64][]byte{}
			job[c.Track] = track
		}
		for _, seg := range c.Added {
			data, err := json.Marshal(seg)
			if err != nil {
				return err
			}
			track[seg.Number] = data
		}
		for _, n := range c.Removed {
			delete(track, n)
		}
	}
	return nil
}

// ClearSegments forgets a job's segment index (a file job starting over).
func (m *Memory) ClearSegments(id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.segments, id)
	return nil
}

// Segments returns a job's segment index by track, each in number order.
func (m *Memory) Segments(id string) (map[string][]manifest.Segment, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string][]manifest.Segment{}
	for name, track := range m.segments[id] {
		for _, n := range slices.Sorted(maps.Keys(track)) {
			var seg manifest.Segment
			if err := json.Unmarshal(track[n], &seg); err != nil {
				return nil, fmt.Errorf("job %s track %s: %w", id, name, err)
			}
			out[name] = append(out[name], seg)
		}
	}
	return out, nil
}
