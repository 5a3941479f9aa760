package job

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/media"
)

// index is the job's own record of every segment on disk, per track. Manifests are
// rendered whole from it; ffmpeg's private playlist is read only to learn which
// segment files are complete, and each segment is then measured from its own boxes.
//
// An index is used by one goroutine at a time (the job's runner); it has no lock.
type index struct {
	live   bool
	record bool // keep every segment: prune deletes none (recording.go)
	// kept holds, per track, the number below which segments are a stopped
	// recording's: prune deletes none of them (diskreserve.go).
	kept     map[string]uint64
	segDur   time.Duration
	window   time.Duration
	grace    time.Duration // how long a segment stays on disk after leaving the window
	tracks   []*track
	ast      time.Time // wall-clock time of media time 0 (live)
	attempt  int       // ffmpeg runs so far; >1 means later segments follow a restart
	run      uint64    // run number of the current ffmpeg run (see beginAttempt); 0 before the first
	epoch    uint64    // the fleet assignment's epoch the job runs at (epochRuns); 0 on a single box
	now      func() time.Time
	fs       fileio.FS                     // reads ffmpeg's playlists and segments
	produced int                           // segments indexed, all tracks
	fresh    []time.Time                   // when ffmpeg closed the segments indexed since the caller last looked
	urgent   bool                          // a run's first segment was indexed: store the changes now
	disc     uint64                        // discontinuities so far: the Disc of the current run's segments
	newRun   bool                          // a restart happened; the next segment indexed begins a discontinuity
	added    map[string][]manifest.Segment // by track, since the caller last looked
	removed  map[string][]uint64           // by track, since the caller last looked
	deleted  []string                      // files deleted by prune, relative to the job folder, since the caller last looked
	atOrigin bool                          // restore keeps segments the folder lacks: a remote origin has them (origin.go)
	// holdAudio is set while the job runs slower than real time: audio segments are
	// then listed only as far as the video has come (see audioLimit).
	holdAudio bool
}

type track struct {
	manifest.Track // Segments holds every segment still on disk, listed or in grace

	dir         string // the rendition folder: init segments and segments
	playlist    string // ffmpeg's own playlist of the track (ffmpeg.PrivatePlaylist); see playlistOf
	privateInit string // where ffmpeg writes the track's init segment (ffmpeg.PrivateInit); see initOf
	init        *media.Init
	initRun     uint64   // the run whose init segment init is
	inits       []uint64 // the runs whose init segments are in dir, oldest first
	last        int64    // highest segment number indexed; -1 before the first
	pruned      uint64
	sumBits     float64
	sumSec      float64
	base        uint64 // timeline offset of the current ffmpeg run, in the track timescale
	haveFirst   bool
	pendingDisc bool
	runStart    time.Duration  // where the current ffmpeg run begins on the presentation timeline
	returning   bool           // a shed rung encoded again: withdrawn until its first new segment
	seen        fileio.Version // of ffmpeg's playlist at the last read: unchanged means nothing new
	listedNext  uint64         // the number after the newest segment the manifests list
	// named is, per manifest on disk that lists the track (namedByPlaylist,
	// namedByMPD), the lowest segment number it names: what is below both may go, a
	// grace period after it stopped being named (releases). Zero until the manifests
	// are written: a restored track keeps everything until then.
	named    [2]uint64
	releases []release
	failing  int64 // the segment that the last poll could not index
	tries    int   // polls that failed to index it
}

// The manifests that name a track's segments, as indexes of track.named.
const (
	namedByPlaylist = iota // its media playlist
	namedByMPD
)

// notNamed is the track.named of a manifest that names none of the track's segments.
const notNamed = math.MaxUint64

// release is when the segments of a track numbered below below stopped being named by
// any manifest on disk.
type release struct {
	below uint64
	at    time.Time
}

// epochRuns is how many run numbers each fleet epoch has: more than the wall-clock
// seconds until the year 2286.
const epochRuns = ffmpeg.TaggedRuns

func newIndex(live bool, segDur, window time.Duration, now func() time.Time) *index {
	grace := 30*time.Second + 3*segDur
	return &index{live: live, segDur: segDur, window: window, grace: grace, now: now}
}

func (x *index) addTrack(name string, kind manifest.Kind, dir, playlist string, declared int64) *track {
	t := &track{Track: manifest.Track{Name: name, Kind: kind, Declared: declared}, dir: dir, playlist: playlist, last: -1}
	// The rendition folders are the job folder's children (manifest's layout).
	t.privateInit = filepath.Join(filepath.Dir(dir), ffmpeg.PrivateInit(name))
	x.tracks = append(x.tracks, t)
	return t
}

// playlistOf returns ffmpeg's own playlist of the track in run: t.playlist, or for a run
// of a fleet epoch the one that carries the run (ffmpeg.PrivatePlaylistOf), which no
// ffmpeg of another run writes.
func (t *track) playlistOf(run uint64) string {
	if run < ffmpeg.TaggedRuns {
		return t.playlist
	}
	return filepath.Join(filepath.Dir(t.playlist), filepath.Base(ffmpeg.PrivatePlaylistOf(t.Name, run)))
}

// initOf returns where ffmpeg writes the track's init segment in run (see playlistOf).
func (t *track) initOf(run uint64) string {
	if run < ffmpeg.TaggedRuns {
		return t.privateInit
	}
	return filepath.Join(filepath.Dir(t.privateInit), filepath.Base(ffmpeg.PrivateInitOf(t.Name, run)))
}

// beginAttempt prepares the index for a new ffmpeg run and returns, per track, the
// segment number it must start at (each track numbers its segments without gaps, as
// HLS media sequence numbers and DASH $Number$ require). The run gets its number (x.run),
// which its segment and init names hold (manifest's layout): the wall-clock second, or
// the run before's number + 1 if that is later. It grows from run to run, also across a
// restore (the stored segments hold their run) and a file job encoded again; and a job
// made again after a purge, whose index starts empty, still starts past the numbers of
// the job it replaces, whose names caches may still hold (unless the purged job restarted
// more often than once a second on average). A job of a fleet runs at its assignment's
// epoch, whose runs are numbered from epoch×epochRuns: a box that runs it later, at a
// higher epoch, never writes a name that a late writer of an earlier epoch could write.
//
// A restarted ffmpeg writes media time from zero again. Its run is placed on the
// presentation timeline where it really happens: at the wall-clock time since the
// availability start (never before the end of what exists), so program date-times stay
// true and players' live edge stays right after an outage. Its first segment of every
// track is flagged as a discontinuity, and it becomes its own DASH Period.
func (x *index) beginAttempt() map[string]uint64 {
	x.attempt++
	prev := x.run
	x.run = max(x.run+1, x.epoch*epochRuns+uint64(max(x.now().Unix(), 0)))
	next := map[string]uint64{}
	for _, t := range x.tracks {
		if prev >= ffmpeg.TaggedRuns && t.playlist != "" {
			// The run before's own files are read no more (catchUp has read them);
			// left, each run of a fleet job would add one per track.
			_ = os.Remove(t.playlistOf(prev))
			_ = os.Remove(t.initOf(prev))
		}
		next[t.Name] = uint64(t.last + 1)
		t.haveFirst = false
		t.seen = fileio.Version{}
		t.tries = 0
	}
	if x.attempt == 1 || x.produced == 0 {
		return next // nothing on the timeline yet: the run starts it
	}
	at := time.Duration(x.edge() * float64(time.Second))
	if x.live && !x.ast.IsZero() {
		at = max(at, x.now().Sub(x.ast))
	}
	at = at.Round(time.Millisecond)
	x.newRun = true // counted when it writes a segment: runs that wrote none are no break
	for _, t := range x.tracks {
		t.pendingDisc = true
		t.runStart = at
		if t.Timescale > 0 {
			t.base = ticks(at, t.Timescale)
		}
	}
	return next
}

// ticks converts d to a track timescale the way the DASH renderer does, so a run's
// base and its Period start agree to the tick.
func ticks(d time.Duration, timescale uint32) uint64 {
	return uint64(d) * uint64(timescale) / uint64(time.Second)
}

// poll reads what ffmpeg has completed since the last poll. It reports whether anything
// new was indexed. Errors are per track and do not stop the other tracks.
func (x *index) poll() (bool, error) {
	changed := false
	var errs []error
	for _, t := range x.tracks {
		c, err := x.pollTrack(t)
		changed = changed || c
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", t.Name, err))
		}
	}
	return changed, errors.Join(errs...)
}

func (x *index) pollTrack(t *track) (bool, error) {
	path := t.playlistOf(x.run)
	v, err := x.fs.Version(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if v == t.seen {
		return false, nil // ffmpeg replaces the file after each segment: same file, nothing new
	}
	data, err := x.fs.ReadFile(path)
	if err != nil {
		return false, err
	}
	t.seen = v
	done := completedSegments(data, x.run)
	if len(done) == 0 {
		return false, nil
	}
	if t.init == nil || t.initRun != x.run {
		if err := x.takeInit(t); err != nil {
			// Cut short (a full disk): the run's segments cannot be played. Given up
			// like a segment, so that ffmpeg runs again and writes it again.
			return false, t.failed(t.last+1, fmt.Errorf("init segment: %w", err))
		}
	}
	changed := false
	for _, n := range done {
		if n <= t.last {
			continue
		}
		if n != t.last+1 {
			// ffmpeg's playlist no longer names the next one: it can never be read.
			return changed, fmt.Errorf("%w: segment %d left ffmpeg's playlist unread", errSegmentLost, t.last+1)
		}
		if err := x.addSegment(t, n); err != nil {
			return changed, t.failed(n, err)
		}
		t.tries = 0
		changed = true
	}
	return changed, nil
}

// maxSegmentTries is how many polls in a row may fail to read or parse a segment that
// ffmpeg has completed before it is given up (errSegmentLost).
const maxSegmentTries = 3

// errSegmentLost is a track's next segment given up: ffmpeg listed it complete, but it
// could not be read or parsed (a truncated file, a full disk) in maxSegmentTries polls,
// or it left ffmpeg's playlist unread. Left as it is, the track would never list
// another segment. The segments after it cannot be listed either: HLS media sequence
// numbers and DASH $Number$ count segments without gaps. So ffmpeg runs again, the
// track going on at the lost number: the lost seconds are a discontinuity in HLS and a
// new Period in DASH, as after any restart, and every number stays gapless.
var errSegmentLost = errors.New("segment lost")

// failed counts a poll that could not index segment n of t, and returns err, wrapped
// in errSegmentLost once n has failed maxSegmentTries times. Until then the next poll
// reads ffmpeg's playlist again, whether or not it changed, and tries n again.
func (t *track) failed(n int64, err error) error {
	t.seen = fileio.Version{}
	if n != t.failing {
		t.failing, t.tries = n, 0
	}
	t.tries++
	if t.tries < maxSegmentTries {
		return err
	}
	return fmt.Errorf("%w after %d tries: %w", errSegmentLost, t.tries, err)
}

// takeInit moves the init segment of the current run from ffmpeg's private folder into
// the rendition folder, under the run's name, and reads it. ffmpeg writes it in place,
// and once its playlist lists a segment the init is whole: a rename makes it appear
// whole, so no player (which learns its name from a manifest) reads a part of one.
func (x *index) takeInit(t *track) error {
	served := filepath.Join(t.dir, manifest.InitName(x.run))
	if err := os.Rename(t.initOf(x.run), served); err != nil {
		if _, statErr := os.Stat(served); !errors.Is(err, fs.ErrNotExist) || statErr != nil {
			return err // not moved already, by a poll that failed after the rename
		}
	}
	in, err := media.ParseInitFile(served)
	if err != nil {
		return err
	}
	t.setInit(in, x.run)
	return nil
}

// setInit makes in, the init segment of run, the track's current one.
func (t *track) setInit(in media.Init, run uint64) {
	t.init, t.initRun = &in, run
	if len(t.inits) == 0 || t.inits[len(t.inits)-1] != run {
		t.inits = append(t.inits, run)
	}
	t.Codecs, t.Timescale = in.Codecs, in.Timescale
	if t.Kind == manifest.Video {
		t.Width, t.Height = in.Width, in.Height
	} else {
		t.Channels, t.SampleRate = in.Channels, in.SampleRate
	}
}

func (x *index) addSegment(t *track, n int64) error {
	path := filepath.Join(t.dir, manifest.SegmentName(x.run, uint64(n)))
	data, closed, err := x.fs.ReadFileModTime(path)
	if err != nil {
		return fmt.Errorf("segment %d: %w", n, err)
	}
	info, err := media.ParseSegment(data, t.init)
	if err != nil {
		return fmt.Errorf("segment %d: %s: %w", n, path, err)
	}
	if !t.haveFirst {
		t.haveFirst = true
		x.urgent = true // a restore continues runs from their stored segments
	}
	start := info.BaseDecodeTime
	if t.runStart > 0 {
		if t.base == 0 && t.Timescale > 0 {
			t.base = ticks(t.runStart, t.Timescale) // the track's timescale was unknown at beginAttempt
		}
		// A restarted ffmpeg starts its timeline again (at ffmpeg.TimeOffset): shift the
		// run onto ours, every track by the same time, so that where each track begins
		// in the run, and so audio and video stay in sync (see ffmpeg's syncOutput).
		start = t.base + info.BaseDecodeTime
	}
	seg := manifest.Segment{
		Number:        uint64(n),
		Start:         start,
		Duration:      info.Duration,
		Size:          info.Size,
		Discontinuity: t.pendingDisc,
		PeriodStart:   t.runStart,
		MediaTime:     info.BaseDecodeTime,
		Run:           x.run,
	}
	if x.newRun {
		x.disc++
		x.newRun = false
	}
	seg.Disc = x.disc
	t.pendingDisc = false
	if t.Withdrawn && t.returning {
		t.Withdrawn, t.returning = false, false // a rung back from shedding: listed again from now on
	}
	if x.live && x.ast.IsZero() {
		// Media time 0 was captured one segment-end ago.
		end := float64(start+info.Duration) / float64(t.Timescale)
		x.ast = x.now().Add(-time.Duration(end * float64(time.Second))).UTC().Truncate(time.Millisecond)
	}
	x.append(t, seg)
	x.fresh = append(x.fresh, closed)
	return nil
}

// append adds seg, the track's next segment, to the index and to the changes to store.
func (x *index) append(t *track, seg manifest.Segment) {
	if x.live {
		seg.ProgramDate = x.ast.Add(time.Duration(float64(seg.Start) / float64(t.Timescale) * float64(time.Second)))
	}
	t.Segments = append(t.Segments, seg)
	t.last = int64(seg.Number)
	x.produced++
	if x.added == nil {
		x.added = map[string][]manifest.Segment{}
	}
	x.added[t.Name] = append(x.added[t.Name], seg)
	t.measure(seg)
}

// averageSlack is how far the measured average bit rate may drift from the one the
// manifests declare before they declare it again. The master playlist changes only with
// these figures; without the slack, a live job would rewrite it with every segment.
const averageSlack = 0.02

// measure adds s to the track's bit rate figures: the peak (rounded up: HLS BANDWIDTH
// must not be below it, not even by a fraction) and the average.
func (t *track) measure(s manifest.Segment) {
	sec := s.Seconds(t.Timescale)
	if sec <= 0 {
		return
	}
	bits := float64(s.Size * 8)
	t.sumBits += bits
	t.sumSec += sec
	t.PeakBandwidth = max(t.PeakBandwidth, int64(math.Ceil(bits/sec)))
	avg := int64(t.sumBits / t.sumSec)
	if d := t.AverageBandwidth; d == 0 || math.Abs(float64(avg)/float64(d)-1) > averageSlack {
		t.AverageBandwidth = avg
	}
}

// restoreTracks puts back the segments a previous daemon indexed for every track (see
// restore); it fails when none of them is on disk.
func (x *index) restoreTracks(segs map[string][]manifest.Segment) error {
	for _, t := range x.tracks {
		if err := x.restore(t, segs[t.Name]); err != nil {
			return err
		}
	}
	if x.produced == 0 {
		return fmt.Errorf("no segment of the stored index is on disk")
	}
	return nil
}

// restore puts back the segments a previous daemon indexed for t (from the store), as
// far as their files are still on disk (or at the origin: atOrigin), and the init segment of the newest one's run.
// Segments stored by a version before run numbers are of run 0, with the names of then
// (init.mp4, seg_<N>.m4s).
func (x *index) restore(t *track, segs []manifest.Segment) error {
	if len(segs) == 0 {
		return nil // nothing of it to resume; restoreTracks fails when no track has any
	}
	run := segs[len(segs)-1].Run
	in, err := media.ParseInitFile(filepath.Join(t.dir, manifest.InitName(run)))
	if err != nil {
		return fmt.Errorf("%s: init segment: %w", t.Name, err)
	}
	for _, s := range segs {
		if len(t.inits) == 0 || t.inits[len(t.inits)-1] != s.Run {
			t.inits = append(t.inits, s.Run) // the older runs' init segments, to prune with their segments
		}
	}
	t.setInit(in, run)
	x.run = max(x.run, run)
	for _, s := range segs {
		if _, err := os.Stat(filepath.Join(t.dir, manifest.SegmentName(s.Run, s.Number))); err != nil && !x.atOrigin {
			continue
		}
		if len(t.Segments) > 0 && s.Number != uint64(t.last)+1 {
			t.Segments = nil // keep the newest unbroken run of numbers (a new array: see presentation)
		}
		t.Segments = append(t.Segments, s)
		t.last = int64(s.Number)
		x.produced++
		x.disc = max(x.disc, s.Disc)
		t.measure(s)
	}
	err = x.catchUp(t)
	// What the previous daemon listed is not known; what it may have listed must not be
	// taken back (see audioLimit).
	t.listedNext = uint64(t.last + 1)
	return err
}

// catchUp indexes the segments that the previous daemon's ffmpeg completed after the
// newest one in the store (segments are stored every few seconds, see persistEvery):
// ffmpeg's playlist still names them. Each must continue the media time of the one
// before it, in the same run; the first that does not, and all after it, are left out
// (the next run writes over them).
func (x *index) catchUp(t *track) error {
	if len(t.Segments) == 0 {
		return nil
	}
	last := t.Segments[len(t.Segments)-1]
	data, err := x.fs.ReadFile(t.playlistOf(last.Run))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s: %w", t.Name, err)
	}
	for _, n := range completedSegments(data, last.Run) {
		if n <= t.last {
			continue
		}
		if n != t.last+1 {
			break
		}
		info, err := media.ParseSegmentFile(filepath.Join(t.dir, manifest.SegmentName(last.Run, uint64(n))), t.init)
		if err != nil || info.BaseDecodeTime != last.MediaTime+last.Duration {
			break
		}
		seg := manifest.Segment{
			Number:      uint64(n),
			Start:       last.Start + last.Duration,
			Duration:    info.Duration,
			Size:        info.Size,
			PeriodStart: last.PeriodStart,
			MediaTime:   info.BaseDecodeTime,
			Disc:        last.Disc,
			Run:         last.Run,
		}
		x.append(t, seg)
		last = seg
	}
	return nil
}

// pending is the most segments of one track indexed since the last takeChanges.
func (x *index) pending() int {
	n := 0
	for _, segs := range x.added {
		n = max(n, len(segs))
	}
	return n
}

// takeChanges returns what was indexed and pruned since the last call, per track.
func (x *index) takeChanges() (added map[string][]manifest.Segment, removed map[string][]uint64) {
	added, removed = x.added, x.removed
	x.added, x.removed = nil, nil
	return added, removed
}

// ready reports whether every track has its init segment and at least one segment
// (a shed rung aside: it may have none).
func (x *index) ready() bool {
	for _, t := range x.tracks {
		if !t.Withdrawn && (t.init == nil || len(t.Segments) == 0) {
			return false
		}
	}
	return len(x.tracks) > 0
}

// edge is the end of the newest media, in seconds of presentation time.
func (x *index) edge() float64 {
	var e float64
	for _, t := range x.tracks {
		if v := t.endSeconds(); v > e {
			e = v
		}
	}
	return e
}

// prune drops from the index and from disk the segments that no manifest on disk has
// named for the grace period. Players that loaded a manifest just before a segment left
// it can still fetch that segment for the grace period; a segment that a served manifest
// names is never deleted, however far it is behind the edge (after an outage, a track
// whose new run has no segment yet keeps its manifests, and its old segments, until it
// has one). Call it after the manifests are written.
func (x *index) prune() []error {
	if !x.live || x.window <= 0 || x.record {
		return nil
	}
	now := x.now()
	var errs []error
	for _, t := range x.tracks {
		below := t.released(now, now.Add(-x.grace))
		a := 0
		for a < len(t.Segments) && t.Segments[a].Number < x.kept[t.Name] {
			a++
		}
		k := a
		for k < len(t.Segments) && t.Segments[k].Number < below {
			s := t.Segments[k]
			if err := x.delete(t, manifest.SegmentName(s.Run, s.Number)); err != nil {
				errs = append(errs, err)
			}
			t.pruned++
			if x.removed == nil {
				x.removed = map[string][]uint64{}
			}
			x.removed[t.Name] = append(x.removed[t.Name], s.Number)
			k++
		}
		if a == 0 {
			t.Segments = t.Segments[k:]
		} else if k > a {
			// A new array: the recording's snapshot shares the old one.
			t.Segments = append(t.Segments[:a:a], t.Segments[k:]...)
		}
		errs = append(errs, x.pruneInits(t)...)
	}
	return errs
}

// pruneInits deletes the init segments of the runs of t that have no segment left on
// disk (never the current run's). After a recording stopped (kept), it deletes none:
// the recorded segments below kept may be of runs the index no longer lists (a
// restart keeps only its newest unbroken run of numbers), and their clips need their
// init segments; retention or a purge deletes them.
func (x *index) pruneInits(t *track) []error {
	if _, stopped := x.kept[t.Name]; stopped {
		return nil
	}
	var errs []error
	for len(t.inits) > 0 && t.inits[0] != t.initRun && (len(t.Segments) == 0 || t.inits[0] != t.Segments[0].Run) {
		if err := x.delete(t, manifest.InitName(t.inits[0])); err != nil {
			errs = append(errs, err)
		}
		t.inits = t.inits[1:]
	}
	return errs
}

// delete removes the file name of t's rendition folder, and notes it in x.deleted.
func (x *index) delete(t *track, name string) error {
	err := x.fs.Remove(filepath.Join(t.dir, name))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	x.deleted = append(x.deleted, t.Name+"/"+name)
	return nil
}

// name records that manifest m (namedByPlaylist, namedByMPD) of track name, as now on
// disk, lists the segments of listed (nil: none).
func (x *index) name(track string, m int, listed *manifest.Track) {
	for _, t := range x.tracks {
		if t.Name != track {
			continue
		}
		t.named[m] = notNamed
		if listed != nil && len(listed.Segments) > 0 {
			t.named[m] = listed.Segments[0].Number
		}
	}
}

// nameInMPD records what the MPD rendered from p, now on disk, lists of every track.
func (x *index) nameInMPD(p *manifest.Presentation) {
	listed := map[string]*manifest.Track{}
	for _, tracks := range [][]manifest.Track{p.Video, p.Audio} {
		for i := range tracks {
			listed[tracks[i].Name] = &tracks[i]
		}
	}
	for _, t := range x.tracks {
		x.name(t.Name, namedByMPD, listed[t.Name])
	}
}

// released notes, at now, the segments of t that no manifest on disk names any more,
// and returns the number below which every segment has been unnamed since cutoff.
func (t *track) released(now, cutoff time.Time) uint64 {
	low := min(t.named[namedByPlaylist], t.named[namedByMPD])
	if low == notNamed {
		low = uint64(t.last + 1) // neither manifest lists the track (a withdrawn rung out of the window)
	}
	if n := len(t.releases); low > 0 && (n == 0 || low > t.releases[n-1].below) {
		t.releases = append(t.releases, release{below: low, at: now})
	}
	var below uint64
	i := 0
	for i < len(t.releases) && !t.releases[i].at.After(cutoff) {
		below = t.releases[i].below
		i++
	}
	t.releases = t.releases[i:]
	return below
}

// presentation builds what the manifest package renders, trimmed to the window.
func (x *index) presentation(ended bool) *manifest.Presentation {
	p := &manifest.Presentation{
		Live:              x.live,
		Ended:             ended,
		AvailabilityStart: x.ast,
		PublishTime:       x.now().UTC().Truncate(time.Millisecond),
		SegmentDuration:   x.segDur,
		Window:            x.window,
	}
	limit := x.audioLimit(ended)
	for _, t := range x.tracks {
		mt, ok := x.listing(t, limit)
		if !ok {
			continue
		}
		if mt.Kind == manifest.Video {
			p.Video = append(p.Video, mt)
		} else {
			p.Audio = append(p.Audio, mt)
		}
	}
	return p
}

// listing is what the manifests list of t: its segments in the window, audio held to
// limit (audioLimit). ok is false when there is nothing to list yet.
func (x *index) listing(t *track, limit float64) (manifest.Track, bool) {
	if t.init == nil || len(t.Segments) == 0 {
		return manifest.Track{}, false // nothing to say about it yet; the master waits for ready()
	}
	n := len(t.Segments)
	if t.Kind == manifest.Audio && limit > 0 {
		for n > 0 && t.Segments[n-1].Number >= t.listedNext && segEnd(t.Segments[n-1], t.Timescale) > limit {
			n--
		}
		if n == 0 {
			return manifest.Track{}, false
		}
	}
	// Each track's window ends at its own newest listed segment: a track's listing
	// changes only with its own segments, not when another track's segment closes
	// first. A withdrawn rung has no new segments: its window follows the others.
	from := 0.0
	if x.live && x.window > 0 {
		end := segEnd(t.Segments[n-1], t.Timescale)
		if t.Withdrawn {
			end = x.edge()
		}
		from = end - x.window.Seconds()
	}
	// Found by bisection: a recording job's track holds every segment of the event.
	k := sort.Search(n, func(i int) bool { return segEnd(t.Segments[i], t.Timescale) > from })
	// A track that sat out a whole run (a shed rung) cannot say so in HLS: one
	// EXT-X-DISCONTINUITY counts one. Its listing starts after the gap.
	for i := n - 1; i > k; i-- {
		if t.Segments[i].Disc > t.Segments[i-1].Disc+1 {
			k = i
			break
		}
	}
	if k == n {
		return manifest.Track{}, false
	}
	t.listedNext = max(t.listedNext, t.Segments[n-1].Number+1)
	mt := t.Track
	// Not copied: the manifests are rendered from p at once, and the index only ever
	// appends to a track's segments or reslices them. The capacity is cut so that an
	// append to one cannot write into the other.
	mt.Segments = t.Segments[k:n:n]
	mt.DiscontinuitySequence = mt.Segments[0].Disc // its own tag is not written
	return mt, true
}

// audioLimit returns, while holdAudio is set (the job runs slower than real time), the
// latest end an audio segment not yet listed may have to be listed: half a segment
// past the end of the video track furthest behind. It returns 0 when audio is not held.
//
// ffmpeg encodes audio with little delay and video with a look-ahead of a second or
// two; at real time that lead costs nothing, but when ffmpeg runs slow it grows to
// seconds, and players fetch audio that far ahead of any video. Chromium then plays on
// with the audio alone for up to 3 s when the video runs dry, and dash.js 5 sometimes
// never resumes after that: the playhead sits past the video it stopped at, inside the
// buffered range, for good (see TestShedPlayers). Held to the video, audio and video
// run dry together, and every player waits for both and plays on. The hold never
// takes back a segment a manifest already lists.
func (x *index) audioLimit(ended bool) float64 {
	if !x.holdAudio || !x.live || ended {
		return 0
	}
	end := 0.0
	for _, t := range x.tracks {
		// A rung with nothing in the current run yet (or for good) holds nothing back.
		if t.Kind != manifest.Video || t.Withdrawn || len(t.Segments) == 0 || t.Segments[len(t.Segments)-1].Disc != x.disc {
			continue
		}
		if e := t.endSeconds(); end == 0 || e < end {
			end = e
		}
	}
	if end == 0 {
		return 0 // no video in this run (an audio-only ladder, or none yet): nothing to wait for
	}
	return end + x.segDur.Seconds()/2
}

func (t *track) endSeconds() float64 {
	if len(t.Segments) == 0 || t.Timescale == 0 {
		return 0
	}
	return segEnd(t.Segments[len(t.Segments)-1], t.Timescale)
}

// segEnd is the end of s in seconds of presentation time.
func segEnd(s manifest.Segment, timescale uint32) float64 {
	return float64(s.Start+s.Duration) / float64(timescale)
}

// completedSegments lists the numbers of the segments of run that an ffmpeg HLS playlist
// names, in order. ffmpeg rewrites that playlist (atomically: a temporary file renamed
// into place) after closing a segment, so every file it names is complete.
func completedSegments(playlist []byte, run uint64) []int64 {
	var out []int64
	sc := bufio.NewScanner(bytes.NewReader(playlist))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if r, n, ok := manifest.ParseSegmentName(filepath.Base(line)); ok && r == run {
			out = append(out, int64(n))
		}
	}
	return out
}
