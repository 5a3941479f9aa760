package job

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// CreateClip cuts a clip of the job's recording (see recording.go) and writes its
// manifests. A range not yet encoded, or outside the recording, is ErrInvalid; a clip
// id in use, ErrConflict.
func (m *Manager) CreateClip(id string, req ClipRequest) (Clip, error) {
	j, err := m.Get(id)
	if err != nil {
		return Clip{}, err
	}
	if !ladder.ValidName(req.ID) {
		return Clip{}, fmt.Errorf("%w: clip id %q must match [a-z0-9_-]{1,64}", ErrInvalid, req.ID)
	}
	j.clipMu.Lock() // one clip written at a time per job: ids stay unique
	defer j.clipMu.Unlock()
	j.mu.Lock()
	rec := j.rec
	if rec == nil {
		j.mu.Unlock()
		return Clip{}, errNotRecording(id)
	}
	p, live, expired := rec.p, !j.view.State.Ended(), rec.expired
	taken := slices.ContainsFunc(rec.clips, func(c Clip) bool { return c.ID == req.ID })
	j.mu.Unlock()
	switch {
	case taken:
		return Clip{}, fmt.Errorf("%w: clip %q exists", ErrConflict, req.ID)
	case expired:
		return Clip{}, fmt.Errorf("%w: the recording expired (record_retention)", ErrInvalid)
	case p == nil:
		return Clip{}, fmt.Errorf("%w: nothing recorded yet", ErrInvalid)
	}
	c, cut, err := cutClip(req, p, live)
	if err != nil {
		return Clip{}, err
	}
	if c.MP4, err = mp4Of(req, cut); err != nil {
		return Clip{}, err
	}
	c.Created = j.now().UTC()
	if err := writeCut(m.deps.fs, filepath.Join(j.dir, clipsDir, req.ID), cut); err != nil {
		return Clip{}, fmt.Errorf("write clip %q: %w", req.ID, err)
	}
	j.mu.Lock()
	rec.clips = append(rec.clips, c)
	j.mu.Unlock()
	j.event(Event{Type: "clip", Message: fmt.Sprintf("clip %s: %.3f s from segment %d to %d of %s", c.ID, c.Duration, c.FirstSegment, c.LastSegment, c.Rendition)})
	j.persist()
	if c.MP4 != nil {
		m.startExport(j, c.ID)
	}
	return c, nil
}

// cutClip cuts the clip req asks for of the recording p; live says the job still
// encodes, so that a range past the end is "not yet" rather than "outside".
func cutClip(req ClipRequest, p *manifest.Presentation, live bool) (Clip, *manifest.Presentation, error) {
	from, to, err := clipRange(req, p)
	if err != nil {
		return Clip{}, nil, err
	}
	start, end, _ := manifest.Span(p)
	cut, info, err := manifest.Cut(p, "../../", from, to)
	if err != nil {
		if live && to > end && from >= start && to > from {
			return Clip{}, nil, fmt.Errorf("%w: the range ends %.1f s after what is encoded so far: cut it once it is", ErrInvalid, (to - end).Seconds())
		}
		return Clip{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	c := Clip{
		ID: req.ID, From: info.From.UTC(), To: info.To.UTC(), Duration: (info.End - info.Start).Round(time.Millisecond).Seconds(),
		Offset:    (info.Start - start).Round(time.Millisecond).Seconds(),
		Asked:     [2]float64{(from - start).Round(time.Millisecond).Seconds(), (to - start).Round(time.Millisecond).Seconds()},
		Rendition: info.Track, FirstSegment: info.First.Number, LastSegment: info.Last.Number,
		Periods: info.Periods, Discontinuities: info.Discontinuities, Omitted: info.Omitted,
		HLS:    path.Join(clipsDir, req.ID, manifest.MasterName),
		DASH:   path.Join(clipsDir, req.ID, manifest.MPDName),
		Tracks: map[string][2]uint64{},
	}
	for _, t := range append(slices.Clone(cut.Video), cut.Audio...) {
		c.Tracks[t.Name] = [2]uint64{t.Segments[0].Number, t.Segments[len(t.Segments)-1].Number}
	}
	return c, cut, nil
}

// Clips lists the job's clips, oldest first.
func (m *Manager) Clips(id string) ([]Clip, error) {
	j, err := m.Get(id)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec == nil {
		return nil, errNotRecording(id)
	}
	return append([]Clip{}, j.rec.clips...), nil
}

// DeleteClip removes a clip: its manifests and its MP4 file (an export in progress is
// cancelled), never the segments (the recording's).
func (m *Manager) DeleteClip(id, clip string) (Clip, error) {
	j, err := m.Get(id)
	if err != nil {
		return Clip{}, err
	}
	j.clipMu.Lock()
	defer j.clipMu.Unlock()
	j.mu.Lock()
	var c Clip
	k := -1
	if j.rec != nil {
		k = slices.IndexFunc(j.rec.clips, func(c Clip) bool { return c.ID == clip })
	}
	if k >= 0 {
		c = j.rec.clips[k]
		j.rec.clips = slices.Delete(slices.Clone(j.rec.clips), k, k+1)
	}
	j.mu.Unlock()
	if k < 0 {
		return Clip{}, fmt.Errorf("%w: job %q has no clip %q", ErrNotFound, id, clip)
	}
	j.persist()
	j.stopExport(clip, errClipDeleted)
	dir := filepath.Join(j.dir, clipsDir, clip)
	if err := os.RemoveAll(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
		return c, fmt.Errorf("delete clip %q: %w", clip, err)
	}
	j.event(Event{Type: "clip", Message: "clip " + clip + " deleted"})
	return c, nil
}
