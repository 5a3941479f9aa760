package job

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"time"

	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// Recording (issue 19): a live job with record on keeps every segment after it leaves
// the window. Its manifests slide as always; the segments stay on disk and in the
// index, and so in the store, one key a segment (store.UpdateSegments: a checkpoint
// writes only what is new). The recording is cut into clips (manifest.Cut), each its
// own VOD manifests in <job>/clips/<id>/ over the job's segments by relative path, and
// once the job has ended it is served whole from <job>/recording/.

// The folders of a job's on-demand cuts, in the job folder.
const (
	clipsDir     = "clips"
	recordingDir = "recording"
)

// RecordingView is what GET /v1/jobs/{id} shows of a job's recording.
type RecordingView struct {
	From     time.Time `json:"from"`     // program date-time of the first recorded segment
	To       time.Time `json:"to"`       // of the end of the last
	Duration float64   `json:"duration"` // seconds from From to To (outages included)
	Bytes    int64     `json:"bytes"`    // of every recorded segment, all tracks
	Segments int       `json:"segments"` // recorded, all tracks
	// HLS and DASH are the whole recording's on-demand manifests, relative to the
	// job folder, once the job has ended.
	HLS  string `json:"hls,omitempty"`
	DASH string `json:"dash,omitempty"`
	// Expired is set once record_retention deleted the recording's segments (those
	// clips name excepted).
	Expired bool `json:"expired,omitempty"`
	// Stopped says why the job stopped recording while it goes on live (diskreserve.go).
	Stopped string `json:"stopped,omitempty"`
}

// Clip is one on-demand cut of a job's recording, as the API shows it and the store
// keeps it.
type Clip struct {
	ID string `json:"id"`
	// From and To are the clip's wall-clock extent (program date-time), Duration its
	// length in seconds: the asked range widened to whole segments.
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Duration float64   `json:"duration"`
	// Offset is where the clip starts in the recording, in seconds (from_s).
	Offset float64 `json:"offset"`
	// Asked is the range asked for, as offsets into the recording in seconds.
	Asked [2]float64 `json:"asked"`
	// Rendition is the track whose segments the clip was cut at; FirstSegment and
	// LastSegment are its first and last segment numbers in the clip.
	Rendition       string `json:"rendition"`
	FirstSegment    uint64 `json:"first_segment"`
	LastSegment     uint64 `json:"last_segment"`
	Periods         int    `json:"periods"`         // DASH Periods: ffmpeg runs in the clip
	Discontinuities int    `json:"discontinuities"` // HLS discontinuities inside the clip
	// Omitted names the video renditions left out of the clip's HLS master: they miss
	// part of it (shed); its MPD keeps them where they have segments.
	Omitted []string `json:"omitted,omitempty"`
	// HLS and DASH are the clip's manifests, relative to the job folder.
	HLS     string    `json:"hls"`
	DASH    string    `json:"dash"`
	Created time.Time `json:"created"`
	// Tracks holds, per track, the numbers of the first and last segment the clip
	// lists: what record_retention keeps.
	Tracks map[string][2]uint64 `json:"tracks"`
	// MP4 is the clip's MP4 file, when asked for (clipmp4.go).
	MP4 *ClipMP4 `json:"mp4,omitempty"`
}

// ClipRequest is POST /v1/jobs/{id}/clips: a range as wall-clock times (program
// date-time) or as offsets in seconds into the recording, not both.
type ClipRequest struct {
	ID    string     `json:"id"`
	From  *time.Time `json:"from,omitempty"`
	To    *time.Time `json:"to,omitempty"`
	FromS *float64   `json:"from_s,omitempty"`
	ToS   *float64   `json:"to_s,omitempty"`
	// MP4 asks for one MP4 file of the clip, of the video rendition Rung (empty: the
	// top one present over the whole clip) and the first audio track (clipmp4.go).
	MP4  bool   `json:"mp4,omitempty"`
	Rung string `json:"rung,omitempty"`
}

// recording is a recording job's record, under Job.mu.
type recording struct {
	// p holds every recorded segment of every track, with the tracks' outlines as
	// the job's manifests have them. Its segment slices share the index's arrays,
	// their capacity cut (see index.listing): the runner only appends past them.
	p       *manifest.Presentation
	clips   []Clip
	expired bool
	stop    recordStop // set once recording stopped (diskreserve.go)
}

// stored is what the store keeps of rec; nil for nil.
func (rec *recording) stored() *storedRecording {
	if rec == nil {
		return nil
	}
	s := &storedRecording{Clips: rec.clips, Expired: rec.expired, Stop: rec.stop}
	if rec.p != nil {
		s.SegDur, s.Audio = rec.p.SegmentDuration.Seconds(), rec.p.AudioOnly
		for _, t := range append(slices.Clone(rec.p.Video), rec.p.Audio...) {
			t.Segments = nil
			s.Tracks = append(s.Tracks, t)
		}
	}
	return s
}

// restored is the recording of s, with the segments of the stored index.
func (s *storedRecording) restored(segs map[string][]manifest.Segment) *recording {
	rec := &recording{clips: s.Clips, expired: s.Expired, stop: s.Stop}
	if len(s.Tracks) == 0 {
		return rec
	}
	segs = rec.stop.recorded(segs)
	rec.p = &manifest.Presentation{SegmentDuration: seconds(s.SegDur), AudioOnly: s.Audio}
	for _, t := range s.Tracks {
		t.Segments = segs[t.Name]
		if len(t.Segments) == 0 {
			continue
		}
		if t.Kind == manifest.Video {
			rec.p.Video = append(rec.p.Video, t)
		} else {
			rec.p.Audio = append(rec.p.Audio, t)
		}
	}
	return rec
}

// records reports whether a job of req on ladder l, of a live source, records.
func records(req Request, l *ladder.Ladder, live bool) bool {
	if !live {
		return false
	}
	if req.Record != nil {
		return *req.Record
	}
	return l.Record
}

// snapshotRecording gives the job what its index holds now: every recorded segment.
func (r *runner) snapshotRecording() {
	if r.j.rec == nil || !r.idx.record {
		return // a recording stopped keeps what it had (diskreserve.go)
	}
	p := &manifest.Presentation{SegmentDuration: r.idx.segDur, AudioOnly: r.plan.AudioOnly}
	for _, t := range r.idx.tracks {
		if t.init == nil || len(t.Segments) == 0 {
			continue
		}
		mt := t.Track
		mt.Segments = t.Segments[:len(t.Segments):len(t.Segments)]
		if mt.Kind == manifest.Video {
			p.Video = append(p.Video, mt)
		} else {
			p.Audio = append(p.Audio, mt)
		}
	}
	r.j.mu.Lock()
	r.j.rec.p = p
	r.j.mu.Unlock()
}

// writeRecording writes the whole recording's on-demand manifests into
// <job>/recording/, once the job has ended.
func (r *runner) writeRecording() {
	if r.j.rec == nil {
		return
	}
	r.snapshotRecording()
	r.j.mu.Lock()
	p := r.j.rec.p
	r.j.mu.Unlock()
	if p == nil {
		return
	}
	start, end, _ := manifest.Span(p)
	cut, _, err := manifest.Cut(p, "../", start, end)
	if err == nil {
		err = writeCut(r.fs, filepath.Join(r.j.dir, recordingDir), cut)
	}
	if err != nil {
		r.log.Error().Err(err).Msg("write the recording's manifests")
	}
}

// recordingViewLocked is what the job shows of its recording; nil when it records
// nothing. j.mu is held.
func (j *Job) recordingViewLocked() *RecordingView {
	rec := j.rec
	if rec == nil {
		return nil
	}
	v := &RecordingView{Expired: rec.expired, Stopped: rec.stop.Why}
	if rec.p == nil {
		return v
	}
	first := true
	for _, t := range append(slices.Clone(rec.p.Video), rec.p.Audio...) {
		for _, s := range t.Segments {
			v.Bytes += s.Size
		}
		v.Segments += len(t.Segments)
		if len(t.Segments) == 0 || t.Segments[0].ProgramDate.IsZero() {
			continue
		}
		last := t.Segments[len(t.Segments)-1]
		to := last.ProgramDate.Add(time.Duration(last.Seconds(t.Timescale) * float64(time.Second)))
		if first || t.Segments[0].ProgramDate.Before(v.From) {
			v.From = t.Segments[0].ProgramDate
		}
		if first || to.After(v.To) {
			v.To = to
		}
		first = false
	}
	v.Duration = v.To.Sub(v.From).Round(time.Millisecond).Seconds()
	if j.view.State.Ended() && !rec.expired {
		v.HLS, v.DASH = path.Join(recordingDir, manifest.MasterName), path.Join(recordingDir, manifest.MPDName)
	}
	return v
}

// errNotRecording is what clip calls answer for a job without a recording.
func errNotRecording(id string) error {
	return fmt.Errorf("%w: job %q does not record (record: true in its ladder or its request)", ErrInvalid, id)
}

// clipRange turns a clip request into a range of the recording's presentation
// timeline: wall-clock times through the program date-time of its segments, offsets
// from the start of the recording.
func clipRange(req ClipRequest, p *manifest.Presentation) (from, to time.Duration, err error) {
	start, _, ok := manifest.Span(p)
	if !ok {
		return 0, 0, fmt.Errorf("%w: nothing recorded yet", ErrInvalid)
	}
	switch {
	case req.From != nil && req.To != nil && req.FromS == nil && req.ToS == nil:
		ast, ok := availabilityStart(p)
		if !ok {
			return 0, 0, fmt.Errorf("%w: the recording has no program date-time: use from_s and to_s", ErrInvalid)
		}
		return req.From.Sub(ast), req.To.Sub(ast), nil
	case req.FromS != nil && req.ToS != nil && req.From == nil && req.To == nil:
		return start + seconds(*req.FromS), start + seconds(*req.ToS), nil
	}
	return 0, 0, fmt.Errorf("%w: give from and to (RFC 3339 times) or from_s and to_s (seconds into the recording)", ErrInvalid)
}

// availabilityStart is the wall-clock time of the presentation timeline's 0, as the
// segments' program date-times say (index.append).
func availabilityStart(p *manifest.Presentation) (time.Time, bool) {
	for _, t := range append(slices.Clone(p.Video), p.Audio...) {
		if len(t.Segments) > 0 && !t.Segments[0].ProgramDate.IsZero() {
			s := t.Segments[0]
			return s.ProgramDate.Add(-time.Duration(float64(s.Start) / float64(t.Timescale) * float64(time.Second))), true
		}
	}
	return time.Time{}, false
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// writeCut renders the on-demand manifests of the cut p into dir (a folder of the job
// folder, root away from it): master, MPD, and a media playlist per track the master
// lists, each replaced atomically.
func writeCut(fs fileio.FS, dir string, p *manifest.Presentation) error {
	files := map[string][]byte{}
	var err error
	if files[manifest.MasterName], err = manifest.RenderMaster(p); err != nil {
		return err
	}
	if files[manifest.MPDName], err = manifest.RenderMPD(p); err != nil {
		return err
	}
	for _, t := range append(slices.Clone(p.Video), p.Audio...) {
		if t.Withdrawn {
			continue
		}
		if files[filepath.Join(t.Name, manifest.MediaName)], err = manifest.RenderMedia(p, &t); err != nil {
			return err
		}
	}
	for name, data := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			return err
		}
		if err := fs.WriteAtomic(filepath.Join(dir, name), data); err != nil {
			return err
		}
	}
	return nil
}

// segmentChanges lists, per track of p, the segment numbers to drop from the store.
func segmentChanges(drop map[string][]uint64) []store.SegmentChange {
	var out []store.SegmentChange
	for name, nums := range drop {
		out = append(out, store.SegmentChange{Track: name, Removed: nums})
	}
	slices.SortFunc(out, func(a, b store.SegmentChange) int { return cmpString(a.Track, b.Track) })
	return out
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
