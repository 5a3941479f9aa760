package job

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
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
	st := j.m.cfg.Store
	j.mu.Lock()
	rec := record{Format: recordFormat, Request: j.req, Ladder: j.ladder, Plan: j.plan, AST: j.ast, PID: j.pid, View: j.view, Input: j.view.Input}
	j.mu.Unlock()
	if err := st.PutJob(j.id, rec); err != nil {
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
func (j *Job) persistSegments(idx *index, force bool) {
	st := j.m.cfg.Store
	if !force && !idx.urgent && time.Since(j.persistedAt) < persistEvery && idx.pending() < ffmpeg.PlaylistSize/2 {
		return
	}
	idx.urgent = false
	j.persistedAt = time.Now()
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
	if err := st.UpdateSegments(j.id, changes); err != nil {
		j.log.Error().Err(err).Msg("persist segment index")
	}
	if !idx.ast.IsZero() {
		j.mu.Lock()
		changed := !j.ast.Equal(idx.ast)
		j.ast = idx.ast
		j.mu.Unlock()
		if changed {
			j.persist()
		}
	}
}

// Restore brings back the jobs of a previous run of the daemon: an ffmpeg it left
// behind is killed, ended jobs are listed as they ended, and jobs that had not ended
// are started again: a live job continues its presentation in the same folder, a file
// job starts over.
func (m *Manager) Restore(ctx context.Context) error {
	recs, err := m.cfg.Store.Jobs()
	if err != nil {
		return fmt.Errorf("read stored jobs: %w", err)
	}
	m.mu.Lock()
	m.restoring = true // the queue waits until every running job holds its cores again
	m.mu.Unlock()
	for id, raw := range recs {
		rec, err := decodeRecord(raw)
		if err != nil {
			m.cfg.Log.Error().Err(err).Str("job", id).Msg("unreadable stored job: skipped")
			continue
		}
		dir := filepath.Join(m.cfg.Output, id)
		if rec.PID > 0 && killOrphan(rec.PID, dir) {
			m.cfg.Log.Warn().Str("job", id).Int("pid", rec.PID).Msg("killed the ffmpeg a previous daemon left running")
		}
		if err := m.restoreOne(ctx, id, rec, dir); err != nil {
			m.cfg.Log.Error().Err(err).Str("job", id).Msg("restore job")
		}
	}
	m.mu.Lock()
	slices.SortFunc(m.queue, func(a, b *Job) int {
		if c := a.view.Created.Compare(b.view.Created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	m.restoring = false
	m.mu.Unlock()
	m.admitQueued()
	return nil
}

func (m *Manager) restoreOne(ctx context.Context, id string, rec record, dir string) error {
	if rec.Ladder == nil {
		return fmt.Errorf("stored job has no ladder")
	}
	src, err := source.Parse(rec.Request.Source, m.cfg.MediaRoot)
	if err != nil {
		rec.View.State = Failed
		rec.View.Error = "not resumed: " + err.Error()
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	j := &Job{
		id: id, req: rec.Request, src: src, ladder: rec.Ladder, dir: dir,
		log: m.cfg.Log.With().Str("job", id).Logger(), m: m,
		ctx: rctx, cancel: cancel, done: make(chan struct{}),
		view: rec.View, plan: rec.Plan, ast: rec.AST,
	}
	// What the last ffmpeg run was doing does not hold for the next one.
	j.view.Progress, j.view.Behind, j.view.Shed = Progress{}, false, nil
	for i := range j.view.Renditions {
		j.view.Renditions[i].Shed = false
	}
	m.mu.Lock()
	m.jobs[id] = j
	m.mu.Unlock()
	if j.view.State.Ended() {
		close(j.done)
		cancel()
		if err != nil {
			j.persist()
		}
		return nil
	}
	if j.view.State == Queued && src.Live {
		plan := nominalPlan(rec.Ladder)
		if rec.Input != nil {
			if p, err := rec.Ladder.Plan(*rec.Input); err == nil {
				plan = p
			}
		}
		j.cost = cpucap.Estimate(plan, rec.Ladder.Video.Preset)
		m.mu.Lock()
		m.queue = append(m.queue, j) // in order of creation once all are restored
		m.mu.Unlock()
		j.event(Event{Type: "restore", Message: "still queued after a daemon restart"})
		return nil
	}
	j.view.State = Starting // it was running, reconnecting, stopping for a daemon restart, or queued without a cap now
	j.view.Waiting = ""
	start := startState{info: rec.Input}
	if src.Live && rec.Plan != nil {
		segs, err := m.cfg.Store.Segments(id)
		if err != nil {
			return err
		}
		start = startState{info: rec.Input, plan: rec.Plan, segments: segs, ast: rec.AST}
	}
	if cap := m.cfg.CPU; src.Live {
		j.cost = cpucap.Estimate(nominalPlan(rec.Ladder), rec.Ladder.Video.Preset)
		if err := cap.Admit(id, j.cost); err != nil {
			m.cfg.Log.Warn().Err(err).Str("job", id).Msg("resuming a job over the CPU limit: it was admitted before the restart")
			cap.Reserve(id, j.cost)
		}
	}
	j.event(Event{Type: "restore", Message: "resumed after a daemon restart"})
	j.log.Info().Bool("live", src.Live).Msg("resuming job after a daemon restart")
	m.mu.Lock()
	m.launchLocked(j, start)
	m.mu.Unlock()
	return nil
}

// killOrphan kills the process group of pid if pid is still an ffmpeg writing into dir
// (a daemon killed with -9 whose child outlived it). It reports whether it killed one.
func killOrphan(pid int, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "ffmpeg" && !strings.Contains(args[0], "ffmpeg") {
		return false
	}
	if !strings.Contains(string(cmdline), dir+string(filepath.Separator)) {
		return false
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return true
}
