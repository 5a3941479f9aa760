package job

import (
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/store"
)

// persist writes the job's record; a failure is logged, never fatal to the stream.
func (j *Job) persist() {
	j.mu.Lock()
	rec := j.storedLocked()
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
