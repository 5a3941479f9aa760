package job

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/transcoderd/transcoderd/internal/diskspace"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// The disk reserve of recordings (issue 19). A recording keeps every segment until the
// disk would fill, so the daemon keeps Config.RecordMinFree free on the output's file
// system from recordings: a recording job is refused (ErrNoSpace) while less is free,
// and once free space falls below it while jobs run, every recording stops (not the
// live streams): from then on each job's window cleanup deletes what leaves its window
// as for a job that does not record, and the recording keeps what it had, with the
// clips cut from it (its segments are never deleted; clips can still be cut of it). It
// does not start again when space comes back: a recording with a hole in the middle,
// segments missing inside one ffmpeg run, is not one that players or a clip's MP4 would
// take for a whole; a new recording job is accepted again once free space is back
// above the reserve.

// recordStop is a recording stopped: why, and per track the number below which its
// segments are the recording's.
type recordStop struct {
	Why  string            `json:"why,omitempty"`
	Kept map[string]uint64 `json:"kept,omitempty"`
}

// recorded keeps of segs (a track's stored segments) those of the recording.
func (s recordStop) recorded(segs map[string][]manifest.Segment) map[string][]manifest.Segment {
	if s.Why == "" || s.Kept == nil {
		return segs // recording, or stopped before the runner carried it out
	}
	out := map[string][]manifest.Segment{}
	for name, list := range segs {
		k := 0
		for k < len(list) && list[k].Number < s.Kept[name] {
			k++
		}
		out[name] = list[:k:k]
	}
	return out
}

// checkReserve refuses a job that records while the output's file system has less than
// the reserve free.
func (m *Manager) checkReserve(records bool) error {
	if !records {
		return nil
	}
	err := diskspace.Check(m.cfg.Output, m.cfg.RecordMinFree)
	if err == nil && m.diskLow.Load() {
		// Back above the reserve, but not yet by the watcher's margin: the recordings
		// it stopped are still stopped, and so is a new one.
		err = fmt.Errorf("%w: free space on the file system of %s has not yet come back above the reserve by its margin", diskspace.ErrLow, m.cfg.Output)
	}
	if errors.Is(err, diskspace.ErrLow) {
		return fmt.Errorf("%w: a recording job needs the reserve free (--record-min-free): %w", ErrNoSpace, err)
	}
	return err
}

// watchReserve starts, once, the watcher of free space against the reserve; there is
// none without a reserve.
func (m *Manager) watchReserve() {
	if m.cfg.RecordMinFree == 0 {
		return
	}
	m.diskOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		m.diskStop = cancel
		w := &diskspace.Watcher{Path: m.cfg.Output, Reserve: m.cfg.RecordMinFree, Interval: m.cfg.DiskCheck}
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			w.Run(ctx, m.onDisk)
		}()
	})
}

// onDisk stops every recording when free space falls below the reserve.
func (m *Manager) onDisk(s diskspace.Status) {
	log := m.cfg.Log.With().Uint64("free", s.Free).Uint64("reserve", s.Reserve).Logger()
	switch {
	case s.Err != nil:
		log.Warn().Err(s.Err).Msg("free space of the output folder unknown: recordings go on")
		return
	case !s.Low:
		m.diskLow.Store(false)
		log.Info().Msg("free space above the recordings' reserve")
		return
	}
	m.diskLow.Store(true)
	why := fmt.Sprintf("%s (%d bytes) free on the output's file system, below the reserve of %s (%d bytes, --record-min-free)",
		diskspace.FormatSize(s.Free), s.Free, diskspace.FormatSize(s.Reserve), s.Reserve)
	log.Warn().Msg("free space below the recordings' reserve: every recording stops; the live streams go on")
	m.mu.Lock()
	jobs := slices.Collect(maps.Values(m.jobs))
	m.mu.Unlock()
	for _, j := range jobs {
		j.mu.Lock()
		stop := j.rec != nil && j.rec.stop.Why == "" && !j.view.State.Ended()
		if stop {
			j.rec.stop.Why = why
		}
		j.mu.Unlock()
		if stop {
			j.event(Event{Type: "recording", Message: "recording stopped: " + why + "; the live stream goes on, and what was recorded is kept"})
			j.log.Warn().Msg("recording stopped: " + why)
			j.persist()
		}
	}
}

// stopRecording ends the recording of a job whose recording was stopped (onDisk): the
// recording keeps what the index holds now, and from now on the index prunes what
// leaves the window, sparing the recording's segments.
func (r *runner) stopRecording() {
	if !r.idx.record {
		return
	}
	r.j.mu.Lock()
	stopped := r.j.rec.stop.Why != ""
	r.j.mu.Unlock()
	if !stopped {
		return
	}
	r.snapshotRecording()
	kept := map[string]uint64{}
	for _, t := range r.idx.tracks {
		kept[t.Name] = uint64(t.last + 1)
	}
	r.idx.record, r.idx.kept = false, kept
	r.j.mu.Lock()
	r.j.rec.stop.Kept = kept
	r.j.mu.Unlock()
	r.j.persist()
}
