package job

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// Retention (issue 19): a ladder's record_retention expires the recording of an ended
// job that long after it ended. The segments and init files that no clip and no final
// live manifest names are deleted, dropped from the stored index, and recording/ is
// removed; the clips stay playable. A timer is set when the job ends and when a daemon
// restores an ended job (at once when the time has passed).

// scheduleExpiry sets the timer that expires j's recording; nothing for a job that
// does not record, has expired, or whose ladder keeps recordings (0).
func (m *Manager) scheduleExpiry(j *Job) {
	keep := j.ladder.RecordRetention
	j.mu.Lock()
	rec, ended := j.rec, j.view.Ended
	j.mu.Unlock()
	if keep <= 0 || rec == nil || rec.expired || ended == nil {
		return
	}
	wait := max(ended.Add(keep).Sub(j.now()), 0)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return
	}
	if m.expiries == nil {
		m.expiries = map[*Job]*time.Timer{}
	}
	m.expiries[j] = time.AfterFunc(wait, func() {
		m.mu.Lock()
		if m.closed {
			m.mu.Unlock()
			return
		}
		delete(m.expiries, j)
		m.wg.Add(1) // Close waits for it
		m.mu.Unlock()
		defer m.wg.Done()
		m.expireRecording(j)
	})
	j.log.Info().Time("at", ended.Add(keep)).Msg("recording expires (record_retention)")
}

// stopExpiries stops every expiry timer; m.mu is held.
func (m *Manager) stopExpiries() {
	for j, t := range m.expiries {
		t.Stop()
		delete(m.expiries, j)
	}
}

// expireRecording deletes what of j's recording nothing names any more (see
// namedSegments), keeps the rest in its index, and marks it expired.
func (m *Manager) expireRecording(j *Job) {
	if cur, err := m.Get(j.id); err != nil || cur != j {
		return // removed or purged since
	}
	j.clipMu.Lock() // no clip is cut meanwhile
	defer j.clipMu.Unlock()
	j.mu.Lock()
	rec := j.rec
	if rec == nil || rec.expired {
		j.mu.Unlock()
		return
	}
	p, clips := rec.p, slices.Clone(rec.clips)
	j.mu.Unlock()
	var kept *manifest.Presentation
	var drop map[string][]uint64
	errs := []error{}
	if p != nil {
		keep, liveRuns, err := namedSegments(j.dir, p, clips)
		if err != nil {
			j.log.Error().Err(err).Msg("recording not expired")
			return
		}
		kept, drop, errs = removeUnnamed(j.dir, p, keep, liveRuns)
		if err := j.store.UpdateSegments(j.id, segmentChanges(drop)); err != nil {
			errs = append(errs, fmt.Errorf("stored index: %w", err))
		}
	}
	j.mu.Lock()
	rec.p, rec.expired = kept, true
	j.mu.Unlock()
	if err := os.RemoveAll(filepath.Join(j.dir, recordingDir)); err != nil {
		errs = append(errs, err)
	}
	j.persist()
	n := 0
	for _, nums := range drop {
		n += len(nums)
	}
	j.event(Event{Type: "recording", Message: fmt.Sprintf("recording expired (record_retention %s): %d segments deleted, those of %d clips and the final live manifests kept", j.ladder.RecordRetention, n, len(clips))})
	if err := errors.Join(errs...); err != nil {
		j.log.Warn().Err(err).Msg("expire recording")
	}
}

// namedSegments returns what still names a segment of p: the clips (their tracks'
// first to last numbers) and the job's final live media playlists; and the runs, by
// track, of the segments those playlists name (after a recording stopped, some are not
// the recording's: their runs' init segments stay all the same).
func namedSegments(dir string, p *manifest.Presentation, clips []Clip) (func(track string, n uint64) bool, map[string]map[uint64]bool, error) {
	live := map[string]map[uint64]bool{}
	liveRuns := map[string]map[uint64]bool{}
	for _, t := range append(slices.Clone(p.Video), p.Audio...) {
		data, err := os.ReadFile(filepath.Join(dir, t.Name, manifest.MediaName))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, nil, fmt.Errorf("final live playlist: %w", err)
		}
		live[t.Name], liveRuns[t.Name] = map[uint64]bool{}, map[uint64]bool{}
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			if run, n, ok := manifest.ParseSegmentName(filepath.Base(sc.Text())); ok {
				live[t.Name][n], liveRuns[t.Name][run] = true, true
			}
		}
	}
	return func(track string, n uint64) bool {
		if live[track][n] {
			return true
		}
		return slices.ContainsFunc(clips, func(c Clip) bool {
			r, ok := c.Tracks[track]
			return ok && n >= r[0] && n <= r[1]
		})
	}, liveRuns, nil
}

// removeUnnamed deletes the segment files of p that keep does not name, and the init
// files of runs left without a segment, recorded or named by a live playlist
// (liveRuns); it returns p with what is left and the numbers deleted, per track.
func removeUnnamed(dir string, p *manifest.Presentation, keep func(string, uint64) bool, liveRuns map[string]map[uint64]bool) (*manifest.Presentation, map[string][]uint64, []error) {
	kept := &manifest.Presentation{SegmentDuration: p.SegmentDuration, AudioOnly: p.AudioOnly}
	drop := map[string][]uint64{}
	var errs []error
	remove := func(name string) {
		if err := os.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, t := range append(slices.Clone(p.Video), p.Audio...) {
		used := map[uint64]bool{} // the runs of the segments kept
		var segs []manifest.Segment
		for _, s := range t.Segments {
			if keep(t.Name, s.Number) {
				segs, used[s.Run] = append(segs, s), true
				continue
			}
			remove(filepath.Join(dir, t.Name, manifest.SegmentName(s.Run, s.Number)))
			drop[t.Name] = append(drop[t.Name], s.Number)
		}
		for _, s := range t.Segments {
			if !used[s.Run] && !liveRuns[t.Name][s.Run] {
				used[s.Run] = true // once
				remove(filepath.Join(dir, t.Name, manifest.InitName(s.Run)))
			}
		}
		if len(segs) == 0 {
			continue
		}
		t.Segments = segs
		if t.Kind == manifest.Video {
			kept.Video = append(kept.Video, t)
		} else {
			kept.Audio = append(kept.Audio, t)
		}
	}
	return kept, drop, errs
}
