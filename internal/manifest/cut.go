package manifest

import (
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrOutOfRange is wrapped by Cut when the range asked for is not (or not wholly)
// within the segments given.
var ErrOutOfRange = errors.New("range outside the recording")

// CutInfo says what Cut took: the segments of the reference track (the first video
// track, else the first audio track) that the cut starts and ends with, and the cut's
// real extent, which is the asked range widened to whole segments.
type CutInfo struct {
	Track       string        // the reference track
	First, Last Segment       // its first and last segment in the cut
	Start, End  time.Duration // the cut on the job's presentation timeline
	// From and To are the wall-clock times of Start and End (program date-time); zero
	// when the segments have none.
	From, To        time.Time
	Periods         int      // DASH Periods: ffmpeg runs in the cut
	Discontinuities int      // HLS discontinuities inside the cut
	Omitted         []string // video tracks with a run missing in the cut: not in the HLS master
}

// Span returns the extent of the segments of rec on its presentation timeline: the
// earliest start and the latest end of any track. ok is false when rec has no segment.
func Span(rec *Presentation) (start, end time.Duration, ok bool) {
	for _, t := range rec.allTracks() {
		if len(t.Segments) == 0 || t.Timescale == 0 {
			continue
		}
		s := toDuration(t.Segments[0].Start, t.Timescale)
		last := t.Segments[len(t.Segments)-1]
		e := toDuration(last.Start+last.Duration, t.Timescale)
		if !ok || s < start {
			start = s
		}
		end = max(end, e)
		ok = true
	}
	return start, end, ok
}

// Cut returns the on-demand presentation of the segments of rec (a job's every
// segment, its tracks' outlines as its manifests have them) that hold the range [from,
// to) of its presentation timeline, to be rendered in a folder root away from the job
// folder (Presentation.Root). Nothing is encoded again, and nothing copied: the cut
// lists the job's own segments.
//
// It is cut at segment boundaries: the smallest run of whole segments of the reference
// track (see reference) that contains the range (a range that begins in a gap, an outage, starts with
// the segment after it). The other tracks list the segments whose middle falls in the
// reference's extent, so that audio, whose segments do not end where video's do, is
// never more than half a segment off. The runs inside the range stay as they were:
// each is a DASH Period, and an HLS discontinuity where it begins. A video track that
// misses one of the runs (a rung shed for a while) cannot say so in HLS: it is marked
// Withdrawn, so the master leaves it out, and the MPD lists it in the Periods it has.
func Cut(rec *Presentation, root string, from, to time.Duration) (*Presentation, CutInfo, error) {
	start, end, ok := Span(rec)
	switch {
	case !ok:
		return nil, CutInfo{}, fmt.Errorf("%w: nothing recorded yet", ErrOutOfRange)
	case to <= from:
		return nil, CutInfo{}, fmt.Errorf("%w: the range ends (%s) before it starts (%s)", ErrOutOfRange, to, from)
	case from < start || to > end:
		return nil, CutInfo{}, fmt.Errorf("%w: %s to %s asked, %s to %s recorded", ErrOutOfRange, from, to, start, end)
	}
	ref := reference(rec)
	i := slices.IndexFunc(ref.Segments, func(s Segment) bool { return toDuration(s.Start+s.Duration, ref.Timescale) > from })
	j := len(ref.Segments) - 1
	for j >= 0 && toDuration(ref.Segments[j].Start, ref.Timescale) >= to {
		j--
	}
	if i < 0 || j < i {
		return nil, CutInfo{}, fmt.Errorf("%w: no segment of %s between %s and %s (an outage)", ErrOutOfRange, ref.Name, from, to)
	}
	first, last := ref.Segments[i], ref.Segments[j]
	info := CutInfo{
		Track: ref.Name, First: first, Last: last,
		Start: toDuration(first.Start, ref.Timescale), End: toDuration(last.Start+last.Duration, ref.Timescale),
	}
	if !first.ProgramDate.IsZero() {
		info.From = first.ProgramDate
		info.To = last.ProgramDate.Add(toDuration(last.Duration, ref.Timescale))
	}
	p := &Presentation{Ended: true, SegmentDuration: rec.SegmentDuration, AudioOnly: rec.AudioOnly, Root: root, Start: info.Start}
	for _, t := range rec.allTracks() {
		ct, ok := cutTrack(t, info.Start, info.End, first.Disc, last.Disc)
		if !ok {
			continue
		}
		p.Start = min(p.Start, toDuration(ct.Segments[0].Start, ct.Timescale))
		if ct.Withdrawn {
			info.Omitted = append(info.Omitted, ct.Name)
		}
		if ct.Kind == Video {
			p.Video = append(p.Video, ct)
		} else {
			p.Audio = append(p.Audio, ct)
		}
	}
	info.Periods = len(periodStarts(p))
	for _, s := range ref.Segments[i+1 : j+1] {
		if s.Discontinuity {
			info.Discontinuities++
		}
	}
	return p, info, nil
}

// reference is the track whose segment boundaries a cut of rec follows: the video
// track that reaches furthest (a rung shed for a while may end early), the first of
// them on a tie; else, in an audio-only ladder, the audio track that does.
func reference(rec *Presentation) *Track {
	var ref *Track
	var end time.Duration
	for _, t := range rec.allTracks() {
		if len(t.Segments) == 0 || t.Timescale == 0 || ref != nil && ref.Kind == Video && t.Kind != Video {
			continue
		}
		last := t.Segments[len(t.Segments)-1]
		if e := toDuration(last.Start+last.Duration, t.Timescale); ref == nil || e > end {
			ref, end = t, e
		}
	}
	return ref // never nil: Span found a track with segments
}

// cutTrack returns t with the segments whose middle is in [start, end); ok is false
// when it has none there. A video track is Withdrawn when its segments do not span
// every run from the discontinuity sequence first to last without a gap.
func cutTrack(t *Track, start, end time.Duration, first, last uint64) (Track, bool) {
	if t.Timescale == 0 {
		return Track{}, false
	}
	mid := func(s Segment) time.Duration { return toDuration(s.Start+s.Duration/2, t.Timescale) }
	a := slices.IndexFunc(t.Segments, func(s Segment) bool { return mid(s) >= start })
	if a < 0 {
		return Track{}, false
	}
	b := a
	for b < len(t.Segments) && mid(t.Segments[b]) < end {
		b++
	}
	if b == a {
		return Track{}, false
	}
	ct := *t
	ct.Segments = t.Segments[a:b:b]
	ct.DiscontinuitySequence = ct.Segments[0].Disc
	ct.Withdrawn = false
	if ct.Kind == Video {
		gap := ct.Segments[0].Disc != first || ct.Segments[len(ct.Segments)-1].Disc != last
		for k := 1; k < len(ct.Segments) && !gap; k++ {
			gap = ct.Segments[k].Disc > ct.Segments[k-1].Disc+1
		}
		ct.Withdrawn = gap
	}
	return ct, true
}
