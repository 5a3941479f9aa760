package job

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/store"
)

// record is what the store keeps of a job: enough to list it after a restart and, for a
// job that had not ended, to resume it exactly as it ran (same ladder as read then,
// same plan, same presentation timeline).
type record struct {
	Format  int                `json:"format"` // recordFormat when written
	Request Request            `json:"request"`
	Ladder  *ladder.Ladder     `json:"ladder"`
	Plan    *ladder.Plan       `json:"plan,omitempty"`
	AST     time.Time          `json:"availability_start,omitzero"`
	PID     int                `json:"pid,omitempty"` // the ffmpeg running when this was written
	View    View               `json:"view"`
	Input   *ladder.SourceInfo `json:"input,omitempty"`
}

// recordFormat is the version of the record's JSON. Format 1, which had no "format"
// key, wrote durations as Go does: nanoseconds, or a string such as "1m2.3s" for
// progress.out_time. Format 2 writes seconds, as the API does.
const recordFormat = 2

// decodeRecord reads a stored record of any format.
func decodeRecord(raw []byte) (record, error) {
	var head struct {
		Format int `json:"format"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return record{}, err
	}
	if head.Format < 2 {
		var err error
		if raw, err = upgradeRecord1(raw); err != nil {
			return record{}, fmt.Errorf("record of format 1: %w", err)
		}
	}
	var rec record
	err := json.Unmarshal(raw, &rec)
	return rec, err
}

// upgradeRecord1 rewrites a record of format 1 in format 2: its durations in seconds.
func upgradeRecord1(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var rec map[string]any
	if err := dec.Decode(&rec); err != nil {
		return nil, err
	}
	nanos := [][]string{
		{"ladder", "segment_duration"}, {"ladder", "window"}, {"plan", "segment_duration"},
		{"input", "duration"}, {"view", "input", "duration"},
	}
	for _, path := range nanos {
		parent, key, v := lookup(rec, path)
		if v == nil {
			continue
		}
		n, ok := v.(json.Number)
		ns, err := n.Int64()
		if !ok || err != nil {
			return nil, fmt.Errorf("%s: %v is not a number of nanoseconds", strings.Join(path, "."), v)
		}
		parent[key] = json.Number(strconv.FormatFloat(time.Duration(ns).Seconds(), 'f', -1, 64))
	}
	// What the last run was doing: a value that does not read is dropped, not fatal.
	for _, path := range [][]string{{"view", "progress", "out_time"}, {"view", "out_time"}} {
		parent, key, v := lookup(rec, path)
		if v == nil {
			continue
		}
		s, _ := v.(string)
		d, _ := time.ParseDuration(s)
		parent[key] = d.Seconds()
	}
	rec["format"] = 2
	return json.Marshal(rec)
}

// lookup finds path in nested objects: the object holding the last key, the key, and
// its value (nil when absent).
func lookup(obj map[string]any, path []string) (map[string]any, string, any) {
	for _, k := range path[:len(path)-1] {
		next, ok := obj[k].(map[string]any)
		if !ok {
			return nil, "", nil
		}
		obj = next
	}
	key := path[len(path)-1]
	return obj, key, obj[key]
}

// persist writes the job's record; a failure is logged, never fatal to the stream.
func (j *Job) persist() {
	j.mu.Lock()
	rec := record{Format: recordFormat, Request: j.req, Ladder: j.ladder, Plan: j.plan, AST: j.ast, PID: j.pid, View: j.view, Input: j.view.Input}
	j.mu.Unlock()
	if err := j.store.PutJob(j.id, rec); err != nil {
		j.log.Error().Err(err).Msg("persist job")
	}
}

// persistEvery is how often a job writes its segment index to the store. Each write is
// an fsync; with one per segment, ten light live jobs spent more CPU in the store than
// in anything else. Segments published since the last write are not lost to a crash:
// ffmpeg's own playlist still lists them, and a restore catches up from it (catchUp),
// which holds as long as fewer than ffmpeg.PlaylistSize segments wait here.
const persistEvery = 5 * time.Second

// persistSegments writes what was indexed and pruned since the last write, when it is
// time to (persistEvery, a run's first segment, or half of ffmpeg's playlist waiting),
// or now with force.
func (r *runner) persistSegments(force bool) {
	idx := r.idx
	now := r.now()
	if !force && !idx.urgent && now.Sub(r.persistedAt) < persistEvery && idx.pending() < ffmpeg.PlaylistSize/2 {
		return
	}
	idx.urgent = false
	r.persistedAt = now
	added, removed := idx.takeChanges()
	if len(added) == 0 && len(removed) == 0 {
		return
	}
	var changes []store.SegmentChange
	for _, t := range idx.tracks {
		if len(added[t.Name]) > 0 || len(removed[t.Name]) > 0 {
			changes = append(changes, store.SegmentChange{Track: t.Name, Added: added[t.Name], Removed: removed[t.Name]})
		}
	}
	if err := r.store.UpdateSegments(r.j.id, changes); err != nil {
		r.log.Error().Err(err).Msg("persist segment index")
	}
	if !idx.ast.IsZero() && r.j.setAST(idx.ast) {
		r.j.persist()
	}
}
