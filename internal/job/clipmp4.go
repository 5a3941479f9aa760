package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/export"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// A clip's MP4 file (issue 19): with "mp4": true, a clip is also remuxed into one
// progressive MP4 of one video rung and the first audio track (export.MP4: -c copy,
// faststart), <job>/clips/<id>/<id>.mp4, for upload elsewhere. It is written in the
// background, one file at a time per daemon (mp4Slots): a remux costs little CPU (about
// 0.17 s a minute of clip) but reads and writes the whole clip. The clip shows its
// progress until it is written and keeps its final state in the store. A daemon that
// stops during an export writes it again from the start once restarted (resumeExports):
// nothing of it was lost but time. Deleting the clip cancels its export and removes
// the file with the clip's folder.

// The states of ClipMP4.
const (
	mp4Writing = "writing"
	mp4Done    = "done"
	mp4Failed  = "failed"
)

// mp4Slots is how many MP4 files the daemon writes at once.
const mp4Slots = 1

// ClipMP4 is the state of a clip's MP4 file. It is never changed once made: an update
// replaces it (the API and the store read it without the job's lock).
type ClipMP4 struct {
	State  string  `json:"state"` // writing, done or failed
	Rung   string  `json:"rung"`  // the video rendition in the file
	DoneS  float64 `json:"done_s"`
	TotalS float64 `json:"total_s"` // the file's duration: the clip's runs, less the time between them
	Bytes  int64   `json:"bytes,omitempty"`
	URL    string  `json:"url"` // relative to the job folder
	Error  string  `json:"error,omitempty"`
}

// errClipDeleted ends the export of a clip deleted (or purged with its job).
var errClipDeleted = errors.New("clip deleted")

// exportRun is an export in progress, under Job.mu.
type exportRun struct {
	cancel context.CancelCauseFunc
	done   chan struct{}
}

// mp4Of returns what a clip c asks of an MP4 file, cut as cut: its rung checked, or the
// top rung present over the whole clip when none is asked for. A rung not in the clip,
// or missing part of it (shed), is ErrInvalid naming those that can be asked for.
func mp4Of(req ClipRequest, cut *manifest.Presentation) (*ClipMP4, error) {
	if !req.MP4 {
		if req.Rung != "" {
			return nil, fmt.Errorf("%w: rung is the video rendition of the clip's MP4 file: ask for \"mp4\": true", ErrInvalid)
		}
		return nil, nil
	}
	var whole []string
	for _, t := range cut.Video {
		if !t.Withdrawn {
			whole = append(whole, t.Name)
		}
	}
	rung := req.Rung
	switch {
	case len(cut.Video) == 0 && rung == "":
		// An audio-only ladder: the file has the audio.
	case len(whole) == 0:
		return nil, fmt.Errorf("%w: no video rendition spans the whole clip: none can be written as one MP4", ErrInvalid)
	case rung == "":
		rung = whole[0]
	case !slices.Contains(whole, rung):
		return nil, fmt.Errorf("%w: rung %q does not span the whole clip: ask for one of %s", ErrInvalid, rung, strings.Join(whole, ", "))
	}
	return &ClipMP4{State: mp4Writing, Rung: rung, URL: path.Join(clipsDir, req.ID, req.ID+".mp4")}, nil
}

// startExport writes the MP4 file of clip id of j in the background. A daemon closing
// starts none: the next one does (resumeExports).
func (m *Manager) startExport(j *Job, id string) {
	ctx, cancel := context.WithCancelCause(context.Background())
	run := &exportRun{cancel: cancel, done: make(chan struct{})}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		cancel(errDaemonStopping)
		return
	}
	j.mu.Lock()
	if j.exports == nil {
		j.exports = map[string]*exportRun{}
	}
	j.exports[id] = run
	j.mu.Unlock()
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(run.done)
		defer cancel(nil)
		err := m.writeMP4(ctx, j, id)
		j.mu.Lock()
		if j.exports[id] == run {
			delete(j.exports, id)
		}
		j.mu.Unlock()
		switch cause := context.Cause(ctx); {
		case errors.Is(cause, errDaemonStopping):
			// Still writing in the store: the next daemon writes it again.
		case errors.Is(cause, errClipDeleted), errors.Is(err, errClipDeleted):
		default:
			j.endExport(id, err)
		}
	}()
}

// writeMP4 waits for an export slot and writes clip id's MP4 file.
func (m *Manager) writeMP4(ctx context.Context, j *Job, id string) error {
	select {
	case m.mp4Slots <- struct{}{}:
		defer func() { <-m.mp4Slots }()
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	in, err := j.exportClip(id)
	if err != nil {
		return err
	}
	out := filepath.Join(j.dir, clipsDir, id, id+".mp4")
	return export.MP4(ctx, m.cfg.FFmpeg, in, out, func(done, total time.Duration) {
		j.updateMP4(id, func(x *ClipMP4) { x.DoneS, x.TotalS = done.Seconds(), total.Seconds() })
	})
}

// endExport records how the export of clip id ended, unless the clip is gone.
func (j *Job) endExport(id string, err error) {
	var size int64
	if err == nil {
		st, serr := os.Stat(filepath.Join(j.dir, clipsDir, id, id+".mp4"))
		if err = serr; err == nil {
			size = st.Size()
		}
	}
	found := j.updateMP4(id, func(x *ClipMP4) {
		x.State, x.Bytes = mp4Done, size
		if err != nil {
			x.State, x.Error = mp4Failed, err.Error()
		}
	})
	if !found {
		return
	}
	if err != nil {
		j.event(Event{Type: "clip", Message: fmt.Sprintf("clip %s: mp4 failed: %v", id, err)})
	} else {
		j.event(Event{Type: "clip", Message: fmt.Sprintf("clip %s: mp4 written, %d bytes", id, size)})
	}
	j.persist()
}

// updateMP4 replaces the MP4 state of clip id by a copy that fn changed; it reports
// whether the clip is there. The clips' slice is replaced, not written into: the store
// and the API may be reading it.
func (j *Job) updateMP4(id string, fn func(*ClipMP4)) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec == nil {
		return false
	}
	k := slices.IndexFunc(j.rec.clips, func(c Clip) bool { return c.ID == id })
	if k < 0 || j.rec.clips[k].MP4 == nil {
		return false
	}
	x := *j.rec.clips[k].MP4
	fn(&x)
	clips := slices.Clone(j.rec.clips)
	clips[k].MP4 = &x
	j.rec.clips = clips
	return true
}

// stopExport cancels the export of clip id, if one runs, for cause, and waits for it to
// end; "" stops every one of the job's.
func (j *Job) stopExport(id string, cause error) {
	j.mu.Lock()
	var runs []*exportRun
	for name, run := range j.exports {
		if id == "" || name == id {
			runs = append(runs, run)
		}
	}
	j.mu.Unlock()
	for _, run := range runs {
		run.cancel(cause)
		<-run.done
	}
}

// resumeExports starts again the exports a previous daemon left writing.
func (m *Manager) resumeExports(j *Job) {
	if j.rec == nil {
		return
	}
	for _, c := range j.rec.clips {
		if c.MP4 != nil && c.MP4.State == mp4Writing {
			j.event(Event{Type: "clip", Message: "clip " + c.ID + ": mp4 written again after a daemon restart"})
			m.startExport(j, c.ID)
		}
	}
}

// exportClip returns what export.MP4 writes of clip id: its rung's segments and the
// first audio track's that the clip lists (Clip.Tracks), by run, each run with its
// own init segment. A run that one of the two tracks lacks in the clip (at its ends)
// is left out.
func (j *Job) exportClip(id string) (export.Clip, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	k := -1
	if j.rec != nil {
		k = slices.IndexFunc(j.rec.clips, func(c Clip) bool { return c.ID == id })
	}
	if k < 0 || j.rec.p == nil || j.rec.clips[k].MP4 == nil {
		return export.Clip{}, fmt.Errorf("clip %q: %w", id, errClipDeleted)
	}
	c := j.rec.clips[k]
	var video, audio export.Track
	for _, t := range j.rec.p.Video {
		if t.Name == c.MP4.Rung {
			video = j.exportTrack(t, c.Tracks[t.Name])
		}
	}
	for _, t := range j.rec.p.Audio {
		if _, ok := c.Tracks[t.Name]; ok && len(audio.Runs) == 0 {
			audio = j.exportTrack(t, c.Tracks[t.Name])
		}
	}
	if len(video.Runs) == 0 && c.MP4.Rung != "" {
		return export.Clip{}, fmt.Errorf("clip %q: the recording has no segment of %s in it", id, c.MP4.Rung)
	}
	if len(video.Runs) > 0 && len(audio.Runs) > 0 {
		video.Runs, audio.Runs = commonRuns(video.Runs, audio.Runs)
	}
	return export.Clip{Video: video, Audio: audio}, nil
}

// exportTrack returns the segments of t numbered in span, by run.
func (j *Job) exportTrack(t manifest.Track, span [2]uint64) export.Track {
	var out export.Track
	last := uint64(0)
	for _, s := range t.Segments {
		if s.Number < span[0] || s.Number > span[1] {
			continue
		}
		if len(out.Runs) == 0 || s.Run != last {
			out.Runs = append(out.Runs, export.Run{Init: filepath.Join(j.dir, t.Name, manifest.InitName(s.Run))})
			last = s.Run
		}
		r := &out.Runs[len(out.Runs)-1]
		r.Segments = append(r.Segments, filepath.Join(j.dir, t.Name, manifest.SegmentName(s.Run, s.Number)))
	}
	return out
}

// commonRuns keeps the runs of a and b that both have (their init segments are of the
// same run number), in order.
func commonRuns(a, b []export.Run) ([]export.Run, []export.Run) {
	run := func(r export.Run) string { return filepath.Base(r.Init) }
	keep := func(rs, other []export.Run) []export.Run {
		return slices.DeleteFunc(slices.Clone(rs), func(r export.Run) bool {
			return !slices.ContainsFunc(other, func(o export.Run) bool { return run(o) == run(r) })
		})
	}
	return keep(a, b), keep(b, a)
}
