package export

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/media"
)

// track is one track of the file: its runs and, per run, what to add to each tfdt.
type track struct {
	runs      []Run
	timescale uint32
	shifts    []int64 // in the track's timescale
}

// span is where one run of one track begins and ends, in its own media time.
type span struct {
	first, end uint64 // tfdt of its first segment; end of its last
}

// plan checks c and works out each track's shifts (see the package comment) and the
// clip's duration.
func plan(c Clip) ([]*track, time.Duration, error) {
	var tracks []*track
	var spans [][]span // per track, per run
	for _, in := range []struct {
		name string
		t    Track
	}{{"video", c.Video}, {"audio", c.Audio}} {
		if len(in.t.Runs) == 0 {
			continue
		}
		t, s, err := readTrack(in.t)
		if err != nil {
			return nil, 0, fmt.Errorf("%s: %w", in.name, err)
		}
		tracks, spans = append(tracks, t), append(spans, s)
	}
	switch {
	case len(tracks) == 0:
		return nil, 0, errors.New("the clip has no track")
	case len(tracks) == 2 && len(c.Video.Runs) != len(c.Audio.Runs):
		return nil, 0, fmt.Errorf("video has %d runs, audio %d: want the same", len(c.Video.Runs), len(c.Audio.Runs))
	}
	var offset time.Duration // where the run begins in the file
	for k := range tracks[0].runs {
		start, end := time.Duration(1<<63-1), time.Duration(0)
		for i, t := range tracks {
			start = min(start, toDuration(spans[i][k].first, t.timescale))
			end = max(end, toDuration(spans[i][k].end, t.timescale)+time.Nanosecond) // rounded up
		}
		for i, t := range tracks {
			shift := int64(toTicks(offset, t.timescale)) - int64(toTicks(start, t.timescale))
			if k > 0 {
				// Rounding to ticks must not start a run before the last one ended.
				prevEnd := int64(spans[i][k-1].end) + t.shifts[k-1]
				shift = max(shift, prevEnd-int64(spans[i][k].first))
			}
			t.shifts = append(t.shifts, shift)
		}
		offset += end - start
	}
	return tracks, offset, nil
}

// readTrack checks that the runs of t can share one sample entry and reads where each
// begins and ends.
func readTrack(t Track) (*track, []span, error) {
	out := &track{runs: t.Runs}
	var spans []span
	var entry []byte
	var first media.Init
	for k, r := range t.Runs {
		if len(r.Segments) == 0 {
			return nil, nil, fmt.Errorf("run %d has no segments", k+1)
		}
		in, stsd, err := readInit(r.Init)
		if err != nil {
			return nil, nil, err
		}
		if k == 0 {
			entry, first, out.timescale = stsd, in, in.Timescale
		} else if !bytes.Equal(stsd, entry) || in.Timescale != first.Timescale || in.TrackID != first.TrackID {
			return nil, nil, fmt.Errorf("%s (%s) after %s (%s): %w", r.Init, in.Codecs, t.Runs[0].Init, first.Codecs, ErrCodecChange)
		}
		s0, err := media.ParseSegmentFile(r.Segments[0], &in)
		if err != nil {
			return nil, nil, err
		}
		s1, err := media.ParseSegmentFile(r.Segments[len(r.Segments)-1], &in)
		if err != nil {
			return nil, nil, err
		}
		if s1.End() < s0.BaseDecodeTime {
			return nil, nil, fmt.Errorf("run %d ends (%s) before it begins", k+1, r.Segments[len(r.Segments)-1])
		}
		spans = append(spans, span{first: s0.BaseDecodeTime, end: s1.End()})
	}
	return out, spans, nil
}

// readInit parses the init segment at path and returns its sample description box.
func readInit(path string) (media.Init, []byte, error) {
	data, err := fileio.ReadFile(path)
	if err != nil {
		return media.Init{}, nil, err
	}
	in, err := media.ParseInit(data)
	if err != nil {
		return media.Init{}, nil, fmt.Errorf("%s: %w", path, err)
	}
	stsd, err := findBox(data, "moov", "trak", "mdia", "minf", "stbl", "stsd")
	if err != nil || stsd == nil {
		return media.Init{}, nil, fmt.Errorf("%s: no sample description: %v", path, err)
	}
	return in, stsd, nil
}

// toDuration converts ticks of timescale to a Duration, rounded down.
func toDuration(ticks uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	return time.Duration(ticks/ts)*time.Second + time.Duration(ticks%ts*uint64(time.Second)/ts)
}

// toTicks converts d to ticks of timescale, rounded down.
func toTicks(d time.Duration, timescale uint32) uint64 {
	ts := uint64(timescale)
	sec, frac := uint64(d/time.Second), uint64(d%time.Second)
	return sec*ts + frac*ts/uint64(time.Second)
}
