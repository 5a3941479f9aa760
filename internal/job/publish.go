package job

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// How a running job learns of new segments. ffmpeg renames its private playlist into
// place after closing each segment; the rename wakes the job (internal/dirwatch), which
// indexes what is new and renders the manifests at once; checkInterval paces the checks
// that need no event (stalls, CPU measurement, speed), and a safety poll when no rename
// woke the job since the last check. Where inotify is unavailable, the job polls every
// Config.PollInterval instead and makes those checks at the same pace.
//
// A job does not wait for the other tracks' segments of the same instant to render once
// for all: behind a network source, video segments often close a few hundred
// milliseconds after the audio ones, and every segment is to be named as soon as it is
// closed. (Waiting 10 ms for renames that come together cost more CPU in timer
// wake-ups than the manifest writes it saved.)
const checkInterval = time.Second

// beat ticks at the multiples of its interval on the wall clock (whole seconds for
// checkInterval): the same instants in every job. Ten jobs with tickers of their own,
// started at scattered times, wake the daemon ten times a second, and each wake-up of an
// idle Go process costs far more than the check it runs (a context switch, and the
// runtime's sysmon thread polling at its shortest period for a while after); on a beat
// the runtime fires their timers in one pass.
type beat struct {
	every time.Duration
	now   func() time.Time
	t     *time.Timer
	C     <-chan time.Time
}

func newBeat(every time.Duration, now func() time.Time) *beat {
	t := time.NewTimer(untilBeat(now(), every))
	return &beat{every: every, now: now, t: t, C: t.C}
}

// next arms the beat for the next multiple of its interval; call it after each tick.
func (b *beat) next() { b.t.Reset(untilBeat(b.now(), b.every)) }

func (b *beat) stop() { b.t.Stop() }

// untilBeat returns the time from now to the next multiple of every.
func untilBeat(now time.Time, every time.Duration) time.Duration {
	return now.Truncate(every).Add(every).Sub(now)
}

// watch subscribes wake to the renames of ffmpeg's playlists, all in the job's
// ffmpeg.PrivateDir. It returns false, having subscribed nothing, when the job must
// poll instead.
func (r *runner) watch(wake chan<- struct{}) (stop func(), ok bool) {
	w := r.watcher()
	if w == nil {
		return func() {}, false
	}
	stop, err := w.Watch(filepath.Join(r.j.dir, ffmpeg.PrivateDir), wake)
	if err != nil {
		r.log.Warn().Err(err).Dur("poll", r.timing.poll).Msg("cannot watch ffmpeg's playlists; polling them")
		return func() {}, false
	}
	return stop, true
}

// refresh indexes what ffmpeg has completed and publishes it: manifests, metrics, store.
// It reports whether every track was polled without error.
func (r *runner) refresh() bool {
	changed, err := r.idx.poll()
	if err != nil {
		r.log.Warn().Err(err).Msg("index segments")
	}
	if errors.Is(err, errSegmentLost) && r.lost == nil {
		r.lost = err // the child's loop acts on it (checkLost)
	}
	if changed {
		r.publish()
	}
	return err == nil
}

// holdAudio sets whether the manifests hold audio to the video (index.audioLimit).
// When the hold ends, they list the held segments at once rather than with the next
// segment.
func (r *runner) holdAudio(on bool) {
	was := r.idx.holdAudio
	r.idx.holdAudio = on
	if was && !on {
		r.publish()
	}
}

// publish renders the manifests for the segments indexed since the last publish, then
// drops the segments that no manifest on disk has named for the grace period (files
// before manifests: a manifest never names a deleted segment), and records both.
func (r *runner) publish() {
	// Deferred calls run last first: the latency is taken when the manifests are
	// written, before the store's fsync.
	defer r.persistSegments(false)
	defer r.observeLatency()
	if s := r.j.state(); s == Starting || s == Reconnecting {
		r.j.update(func(v *View) { v.Error = "" })
		r.j.setState(Running)
	}
	if err := r.render(false); err != nil {
		r.log.Error().Err(err).Msg("render manifests")
	}
	r.stopRecording()
	r.snapshotRecording()
	for _, err := range r.idx.prune() {
		r.log.Warn().Err(err).Msg("delete old segment")
	}
	if len(r.idx.deleted) > 0 {
		r.pub.Removed(r.idx.deleted...)
		r.idx.deleted = r.idx.deleted[:0]
	}
}

// observeLatency reports, for the segments indexed by the last poll, the time from
// ffmpeg closing each (its file's modification time) to now, when the manifests naming
// it have been written.
func (r *runner) observeLatency() {
	fresh := r.idx.fresh
	r.idx.fresh = r.idx.fresh[:0]
	now := r.now()
	for _, closed := range fresh {
		r.observer.ManifestsWritten(r.j.id, now.Sub(closed))
	}
}

// render writes every manifest that has something to say. The MPD of a VOD job is
// written once, when it ends; a live MPD follows every new segment.
func (r *runner) render(ended bool) error {
	idx, dir := r.idx, r.j.dir
	p := idx.presentation(ended)
	errs := r.renderMedia(p)
	codecs := map[string]string{}
	for _, t := range idx.tracks {
		codecs[t.Name] = t.Codecs
	}
	r.j.update(func(v *View) {
		v.Segments = idx.produced
		for i := range v.Renditions {
			v.Renditions[i].Codecs = codecs[v.Renditions[i].Name]
		}
	})
	if !idx.ready() {
		return errors.Join(errs...)
	}
	if !manifest.SameMaster(r.master, p) {
		data, err := manifest.RenderMaster(p)
		if err == nil {
			err = r.write(filepath.Join(dir, manifest.MasterName), data, func() []string { return playlistFiles(p) })
		}
		if err == nil {
			r.master = outline(p)
		}
		errs = append(errs, err)
	}
	if idx.live || ended {
		data, err := manifest.RenderMPD(p)
		if err == nil {
			err = r.write(filepath.Join(dir, manifest.MPDName), data, func() []string { return segmentFiles(p.Video, p.Audio) })
		}
		if err == nil {
			idx.nameInMPD(p)
		}
		errs = append(errs, err)
	}
	if ended {
		r.writeRecording()
	}
	return errors.Join(errs...)
}

// renderMedia writes the media playlist of every track with segments, and removes
// those of withdrawn (shed) rungs; the index learns what each playlist names.
func (r *runner) renderMedia(p *manifest.Presentation) []error {
	idx, dir := r.idx, r.j.dir
	var errs []error
	for _, tr := range append(append([]manifest.Track(nil), p.Video...), p.Audio...) {
		if tr.Withdrawn {
			// Players on a shed rung get a 404 at their next reload and switch.
			err := r.remove(filepath.Join(dir, tr.Name, manifest.MediaName))
			if err == nil {
				idx.name(tr.Name, namedByPlaylist, nil)
			}
			errs = append(errs, err)
			continue
		}
		if tr.Codecs == "" || len(tr.Segments) == 0 {
			continue
		}
		data, err := manifest.RenderMedia(p, &tr)
		if err == nil {
			err = r.write(filepath.Join(dir, tr.Name, manifest.MediaName), data, func() []string { return segmentFiles([]manifest.Track{tr}) })
		}
		if err == nil {
			idx.name(tr.Name, namedByPlaylist, &tr)
		}
		errs = append(errs, err)
	}
	return errs
}

// outline is p without its segments: all manifest.SameMaster compares, without holding
// on to the segment lists of the index as it was.
func outline(p *manifest.Presentation) *manifest.Presentation {
	o := *p
	o.Video, o.Audio = slices.Clone(p.Video), slices.Clone(p.Audio)
	for _, tracks := range [][]manifest.Track{o.Video, o.Audio} {
		for i := range tracks {
			tracks[i].Segments = nil
		}
	}
	return &o
}

// write replaces a manifest atomically, unless it already holds exactly data (a rendition
// whose playlist did not change, a master whose figures did not move), and hands it to
// the publisher with names, which lists the files it names (called only by a publisher
// that delivers them).
func (r *runner) write(path string, data []byte, names func() []string) error {
	if bytes.Equal(r.written[path], data) {
		return nil
	}
	if err := r.fs.WriteAtomic(path, data); err != nil {
		return err
	}
	r.written[path] = data
	r.pub.Manifest(r.rel(path), data, names)
	return nil
}

// rel returns path, inside the job folder, relative to it with slashes (the publisher's
// paths).
func (r *runner) rel(path string) string {
	rel, err := filepath.Rel(r.j.dir, path)
	if err != nil {
		return path // never: every path the runner serves is inside its folder
	}
	return filepath.ToSlash(rel)
}

// segmentFiles lists, relative to the job folder, the files that a media playlist or
// MPD listing tracks names: each track's segments, and the init segments of their runs.
func segmentFiles(tracks ...[]manifest.Track) []string {
	var names []string
	for _, list := range tracks {
		for _, tr := range list {
			var run uint64
			for i, s := range tr.Segments {
				if i == 0 || s.Run != run {
					run = s.Run
					names = append(names, tr.Name+"/"+manifest.InitName(run))
				}
				names = append(names, tr.Name+"/"+manifest.SegmentName(s.Run, s.Number))
			}
		}
	}
	return names
}

// playlistFiles lists, relative to the job folder, the media playlists that the master
// playlist of p names: those of the tracks not withdrawn.
func playlistFiles(p *manifest.Presentation) []string {
	var names []string
	for _, tr := range append(slices.Clone(p.Video), p.Audio...) {
		if !tr.Withdrawn {
			names = append(names, tr.Name+"/"+manifest.MediaName)
		}
	}
	return names
}

// remove deletes a manifest the job wrote, once.
func (r *runner) remove(path string) error {
	if _, ok := r.written[path]; !ok {
		return nil
	}
	delete(r.written, path)
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	r.pub.Manifest(r.rel(path), nil, nil)
	return nil
}
