package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/Eyevinn/mp4ff/bits"
	"github.com/Eyevinn/mp4ff/mp4"

	"github.com/transcoderd/transcoderd/internal/fileio"
)

// ErrTruncated is returned (wrapped) when the data ends inside a box, or a
// moof has no mdat after it: typically a file read while still being written.
var ErrTruncated = errors.New("truncated")

// Segment describes one track of a CMAF media segment: one or more
// moof/mdat pairs, optionally led by styp, sidx, prft or emsg boxes.
// All times are in the track's timescale (Init.Timescale).
type Segment struct {
	// BaseDecodeTime is the tfdt baseMediaDecodeTime of the first fragment.
	BaseDecodeTime uint64
	// Duration is the sum of all sample durations in all fragments.
	Duration uint64
	// Samples is the number of samples in all fragments.
	Samples int
	// FirstIsKeyframe reports whether the first sample is a sync sample.
	FirstIsKeyframe bool
	// Size is the size of the segment in bytes (len of the data parsed).
	Size int64
	// EarliestPresentation is the smallest decode time plus composition
	// offset over all samples: the segment's earliest presentation time
	// before any edit list is applied.
	EarliestPresentation int64
}

// End is the decode time just after the segment's last sample; the next
// segment of a contiguous track starts there.
func (s Segment) End() uint64 { return s.BaseDecodeTime + s.Duration }

// ParseSegmentFile reads the media segment at path and parses it with
// ParseSegment.
func ParseSegmentFile(path string, init *Init) (Segment, error) {
	data, err := fileio.ReadFile(path)
	if err != nil {
		return Segment{}, fmt.Errorf("read media segment: %w", err)
	}
	seg, err := ParseSegment(data, init)
	if err != nil {
		return Segment{}, fmt.Errorf("%s: %w", path, err)
	}
	return seg, nil
}

// ParseSegment parses a CMAF media segment.
//
// init is the track's parsed init segment. It supplies the track ID to read
// and the trex defaults for sample duration, size and flags, which apply
// where neither the trun nor the tfhd carries a value. init may be nil: the
// segment is then read for the track of its first traf, and only tfhd and
// trun values count (fine for ffmpeg's output, which always writes them,
// but not for every packager).
//
// Several moof/mdat pairs are summed; BaseDecodeTime is the first one's tfdt.
// Track fragments of other tracks are ignored. Data that ends inside a box,
// or a moof with no mdat after it (a file still being written, say), gives
// an error wrapping ErrTruncated. An mdat shorter than its samples claim, a
// segment without samples and a track fragment without tfdt are errors too.
//
// A sample is a sync sample (a keyframe) when its sample_is_non_sync_sample
// flag is clear and its sample_depends_on is not 1 (depends on others).
func ParseSegment(data []byte, init *Init) (seg Segment, err error) {
	defer recoverDecode(&seg, &err)
	if err := checkBoxes(data); err != nil {
		return Segment{}, err
	}
	var defaults *mp4.TrexBox
	var trackID uint32
	haveTrack := false
	if init != nil {
		trackID, haveTrack = init.TrackID, true
		defaults = &mp4.TrexBox{
			TrackID:               init.TrackID,
			DefaultSampleDuration: init.defaults.duration,
			DefaultSampleSize:     init.defaults.size,
			DefaultSampleFlags:    init.defaults.flags,
		}
	}

	seg.Size = int64(len(data))
	seg.EarliestPresentation = math.MaxInt64
	fragments, trafs := 0, 0
	// Only the moof boxes are decoded: of an mdat, only its size counts. (Decoding the
	// whole file built a box for every top-level box, the mdat's included, and was most
	// of the cost of indexing a segment.)
	var moof *mp4.MoofBox
	for pos := uint64(0); pos < uint64(len(data)); {
		size, header := boxSize(data[pos:]) // checkBoxes made sure they tile data
		switch string(data[pos+4 : pos+8]) {
		case "moov":
			return Segment{}, errors.New("media segment holds a moov box: parse the init segment with ParseInit")
		case "moof":
			if moof != nil {
				return Segment{}, fmt.Errorf("fragment %d: moof without mdat: %w", fragments+1, ErrTruncated)
			}
			box, err := mp4.DecodeBoxSR(pos, bits.NewFixedSliceReader(data[pos:pos+size]))
			if err != nil {
				return Segment{}, fmt.Errorf("decode media segment: %w", err)
			}
			var ok bool
			if moof, ok = box.(*mp4.MoofBox); !ok {
				return Segment{}, fmt.Errorf("decode media segment: moof decoded as %T", box)
			}
		case "mdat":
			if moof == nil {
				break // not ours to read: no moof describes it
			}
			fragments++
			var sampleBytes uint64
			for _, traf := range moof.Trafs {
				if traf.Tfhd == nil {
					return Segment{}, fmt.Errorf("fragment %d: traf without tfhd", fragments)
				}
				if !haveTrack {
					trackID, haveTrack = traf.Tfhd.TrackID, true
				}
				if traf.Tfhd.TrackID != trackID {
					continue
				}
				if traf.Tfdt == nil {
					return Segment{}, fmt.Errorf("fragment %d: traf for track %d has no tfdt", fragments, trackID)
				}
				decodeTime := traf.Tfdt.BaseMediaDecodeTime()
				if decodeTime > math.MaxInt64/2 {
					return Segment{}, fmt.Errorf("fragment %d: implausible tfdt %d", fragments, decodeTime)
				}
				if trafs == 0 {
					seg.BaseDecodeTime = decodeTime
				}
				trafs++
				for _, trun := range traf.Truns {
					addTrun(&seg, trun, traf.Tfhd, defaults, &decodeTime, &sampleBytes)
				}
			}
			if have := size - header; sampleBytes > have {
				return Segment{}, fmt.Errorf("fragment %d: mdat holds %d bytes but its samples need %d",
					fragments, have, sampleBytes)
			}
			moof = nil
		}
		pos += size
	}
	if moof != nil {
		return Segment{}, fmt.Errorf("fragment %d: moof without mdat: %w", fragments+1, ErrTruncated)
	}
	switch {
	case fragments == 0:
		return Segment{}, errors.New("media segment has no moof box")
	case trafs == 0:
		return Segment{}, fmt.Errorf("media segment has no track fragment for track %d", trackID)
	case seg.Samples == 0:
		return Segment{}, errors.New("media segment has no samples")
	}
	return seg, nil
}

// addTrun adds the samples of trun to seg, resolving each field from the
// trun, else the tfhd default, else the trex default (ISO/IEC 14496-12
// 8.8.3, 8.8.7, 8.8.8). decodeTime advances past each sample; sampleBytes
// grows by each sample's size.
func addTrun(seg *Segment, trun *mp4.TrunBox, tfhd *mp4.TfhdBox, trex *mp4.TrexBox,
	decodeTime, sampleBytes *uint64) {
	var defDur, defSize, defFlags uint32
	if trex != nil {
		defDur, defSize, defFlags = trex.DefaultSampleDuration, trex.DefaultSampleSize, trex.DefaultSampleFlags
	}
	if tfhd.HasDefaultSampleDuration() {
		defDur = tfhd.DefaultSampleDuration
	}
	if tfhd.HasDefaultSampleSize() {
		defSize = tfhd.DefaultSampleSize
	}
	if tfhd.HasDefaultSampleFlags() {
		defFlags = tfhd.DefaultSampleFlags
	}
	firstFlags, hasFirstFlags := trun.FirstSampleFlags()
	for i, s := range trun.Samples {
		dur, size, flags := s.Dur, s.Size, s.Flags
		if !trun.HasSampleDuration() {
			dur = defDur
		}
		if !trun.HasSampleSize() {
			size = defSize
		}
		if !trun.HasSampleFlags() {
			flags = defFlags
			if i == 0 && hasFirstFlags {
				flags = firstFlags
			}
		}
		var cto int64
		if trun.HasSampleCompositionTimeOffset() {
			cto = int64(s.CompositionTimeOffset) // signed in trun version 1
			if trun.Version == 0 {
				cto = int64(uint32(s.CompositionTimeOffset))
			}
		}
		if seg.Samples == 0 {
			seg.FirstIsKeyframe = isSync(flags)
		}
		if pt := int64(*decodeTime) + cto; pt < seg.EarliestPresentation {
			seg.EarliestPresentation = pt
		}
		seg.Samples++
		seg.Duration += uint64(dur)
		*decodeTime += uint64(dur)
		*sampleBytes += uint64(size)
	}
}

// isSync reports whether sample flags mark a sync sample.
func isSync(flags uint32) bool {
	sf := mp4.DecodeSampleFlags(flags)
	return !sf.SampleIsNonSync && sf.SampleDependsOn != 1
}

// topLevelBoxes are the box types expected at the top level of a CMAF
// init or media segment. A cut one is reported as truncated; any other box
// that overruns the data is reported as garbage.
var topLevelBoxes = map[string]bool{
	"ftyp": true, "styp": true, "moov": true, "moof": true, "mdat": true, "sidx": true, "ssix": true,
	"prft": true, "emsg": true, "free": true, "skip": true, "uuid": true, "meta": true, "mfra": true,
}

// boxSize returns the size and header size of the box at the start of b, whose header
// checkBoxes has checked.
func boxSize(b []byte) (size, header uint64) {
	if size = uint64(binary.BigEndian.Uint32(b)); size == 1 {
		return binary.BigEndian.Uint64(b[8:]), 16
	}
	return size, 8
}

// checkBoxes checks that the top-level boxes of data tile it exactly, so
// that a cut anywhere is reported as ErrTruncated. (mp4ff accepts an mdat
// running past the end of its input, to allow parsing the head of a file.)
func checkBoxes(data []byte) error {
	for pos := uint64(0); pos < uint64(len(data)); {
		rest := uint64(len(data)) - pos
		if rest < 8 {
			return fmt.Errorf("%d bytes at offset %d, too few for a box header: %w", rest, pos, ErrTruncated)
		}
		size := uint64(binary.BigEndian.Uint32(data[pos:]))
		header := uint64(8)
		switch size {
		case 0:
			return fmt.Errorf("box at offset %d runs to end of file (size 0): unsupported", pos)
		case 1:
			if rest < 16 {
				return fmt.Errorf("box header at offset %d: %w", pos, ErrTruncated)
			}
			size, header = binary.BigEndian.Uint64(data[pos+8:]), 16
		}
		if size < header {
			return fmt.Errorf("box at offset %d: size %d smaller than its header", pos, size)
		}
		if typ := string(data[pos+4 : pos+8]); size > rest {
			if !topLevelBoxes[typ] {
				return fmt.Errorf("not an mp4 box at offset %d (type %q, size %d)", pos, typ, size)
			}
			return fmt.Errorf("box %q at offset %d claims %d bytes, %d remain: %w", typ, pos, size, rest, ErrTruncated)
		}
		pos += size
	}
	return nil
}
