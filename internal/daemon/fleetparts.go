package daemon

import (
	"encoding/base64"
	"maps"
	"math/bits"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// partSpan is how many segment numbers of a track one checkpoint part covers: the
// part a live job adds to is at most partSpan segments (about 13 KB), whatever the
// length of its window or recording.
const partSpan = 64

// segParts is a job's segment index as the parts of its fleet checkpoint
// (cluster.CheckpointPart), kept from the changes the job's runner stores, so that a
// checkpoint writes only the parts that changed. A part is kept whole in memory only
// while it can still grow (the last of its track); an older one is known by which of
// its numbers it holds as stored and which are still in the index: the checkpoint's
// head lists the difference (gone), and a part with none left is deleted.
//
// A segParts is used under its fleetStore's lock.
type segParts struct {
	epoch  uint64
	base   bool // write every part anew from the store (first checkpoint at the epoch, or a change to a closed part)
	clean  bool // the parts of the job's other epochs were deleted
	tracks map[string]map[uint64]*part
}

// part is the segments of one track whose numbers fall in [k·partSpan, (k+1)·partSpan).
type part struct {
	segs    []manifest.Segment // while it can still grow; nil once closed
	present uint64             // bit i: segment k·partSpan+i is in the index
	stored  uint64             // bit i: it is in the part as stored
	rev     uint64             // revision of the stored part; 0: not stored
	gen     uint64             // changes so far: a write clears dirty only if none came since
	dirty   bool
}

func newSegParts(epoch uint64) *segParts {
	return &segParts{epoch: epoch, base: true, tracks: map[string]map[uint64]*part{}}
}

func (p *segParts) part(track string, k uint64) *part {
	t := p.tracks[track]
	if t == nil {
		t = map[uint64]*part{}
		p.tracks[track] = t
	}
	pt := t[k]
	if pt == nil {
		pt = &part{}
		t[k] = pt
	}
	return pt
}

// apply records one store update of the job's index.
func (p *segParts) apply(changes []store.SegmentChange) {
	for _, c := range changes {
		for _, seg := range c.Added {
			pt := p.part(c.Track, seg.Number/partSpan)
			if pt.segs == nil && pt.rev != 0 {
				p.base = true // a closed part grows: rewrite from the store
				continue
			}
			pt.segs = putSegment(pt.segs, seg)
			pt.present |= bitOf(seg.Number)
			pt.gen++
			pt.dirty = true
		}
		for _, n := range c.Removed {
			pt := p.tracks[c.Track][n/partSpan]
			if pt == nil {
				continue
			}
			pt.present &^= bitOf(n)
			if pt.segs != nil {
				pt.segs = slices.DeleteFunc(pt.segs, func(s manifest.Segment) bool { return s.Number == n })
				pt.gen++
				pt.dirty = true
			}
		}
	}
}

// rebuild replaces the parts by the whole index, idx: every part is written again
// (at the revisions already stored, where there are some).
func (p *segParts) rebuild(idx map[string][]manifest.Segment) {
	old := p.tracks
	p.tracks = map[string]map[uint64]*part{}
	for track, segs := range idx {
		for _, seg := range segs {
			pt := p.part(track, seg.Number/partSpan)
			pt.segs = append(pt.segs, seg)
			pt.present |= bitOf(seg.Number)
		}
	}
	for track, t := range p.tracks {
		for k, pt := range t {
			if o := old[track][k]; o != nil {
				pt.rev, pt.stored, pt.gen = o.rev, o.stored, o.gen+1
			}
			pt.dirty = true
		}
	}
	for track, t := range old { // parts no longer in the index: pending deletes what was stored
		for k, o := range t {
			if _, ok := p.tracks[track][k]; !ok && o.rev != 0 {
				pt := p.part(track, k)
				pt.rev, pt.stored = o.rev, o.stored
			}
		}
	}
	p.base = false
}

// partWrite is one part to write (segs) or delete (segs nil) at rev.
type partWrite struct {
	track string
	k     uint64
	name  string
	segs  []manifest.Segment
	rev   uint64
	gen   uint64
}

// pending lists the parts to write or delete.
func (p *segParts) pending() []partWrite {
	var out []partWrite
	for track, t := range p.tracks {
		for k, pt := range t {
			switch {
			case pt.present == 0 && pt.rev != 0:
				out = append(out, partWrite{track: track, k: k, name: partName(track, k), rev: pt.rev, gen: pt.gen})
			case pt.dirty && pt.segs != nil:
				out = append(out, partWrite{track: track, k: k, name: partName(track, k), segs: slices.Clone(pt.segs), rev: pt.rev, gen: pt.gen})
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// done records a write (rev > 0) or deletion (rev 0) of w. A part written that is not
// its track's last is closed: it will not grow, and is not kept in memory.
func (p *segParts) done(w partWrite, rev uint64) {
	t := p.tracks[w.track]
	pt := t[w.k]
	if pt == nil {
		return
	}
	if w.segs == nil {
		if pt.present == 0 {
			delete(t, w.k)
		} else {
			pt.rev, pt.stored = 0, 0
		}
		return
	}
	pt.rev = rev
	pt.stored = 0
	for _, s := range w.segs {
		pt.stored |= bitOf(s.Number)
	}
	if pt.gen == w.gen {
		pt.dirty = false
		if last := slices.Max(slices.Collect(maps.Keys(t))); w.k < last {
			pt.segs = nil
		}
	}
}

// gone lists, by track, the segment numbers the stored parts hold that are no longer
// in the index: the loader leaves them out.
func (p *segParts) gone() map[string][]uint64 {
	out := map[string][]uint64{}
	for track, t := range p.tracks {
		for k, pt := range t {
			for m := pt.stored &^ pt.present; m != 0; m &= m - 1 {
				out[track] = append(out[track], k*partSpan+uint64(bits.TrailingZeros64(m)))
			}
		}
		slices.Sort(out[track])
	}
	return out
}

func bitOf(n uint64) uint64 { return 1 << (n % partSpan) }

// putSegment puts seg into segs, in number order, replacing one of the same number.
func putSegment(segs []manifest.Segment, seg manifest.Segment) []manifest.Segment {
	i, found := slices.BinarySearchFunc(segs, seg.Number, func(s manifest.Segment, n uint64) int {
		switch {
		case s.Number < n:
			return -1
		case s.Number > n:
			return 1
		}
		return 0
	})
	if found {
		segs[i] = seg
		return segs
	}
	return slices.Insert(segs, i, seg)
}

// partName is a part's name in its key: the track's name, base64url (key tokens allow
// only [-/_=a-zA-Z0-9]), and the part's number.
func partName(track string, k uint64) string {
	return base64.RawURLEncoding.EncodeToString([]byte(track)) + "." + strconv.FormatUint(k, 10)
}

// partTrack is the track a part's name names.
func partTrack(name string) (string, bool) {
	enc, _, ok := strings.Cut(name, ".")
	b, err := base64.RawURLEncoding.DecodeString(enc)
	return string(b), ok && err == nil
}

// fromParts is a job's index from its checkpoint's parts, less the numbers gone.
func fromParts(parts map[string][]manifest.Segment, gone map[string][]uint64) map[string][]manifest.Segment {
	idx := map[string][]manifest.Segment{}
	for name, segs := range parts {
		track, ok := partTrack(name)
		if !ok {
			continue
		}
		for _, s := range segs {
			if !slices.Contains(gone[track], s.Number) {
				idx[track] = append(idx[track], s)
			}
		}
	}
	for _, segs := range idx {
		sort.Slice(segs, func(i, j int) bool { return segs[i].Number < segs[j].Number })
	}
	return idx
}
