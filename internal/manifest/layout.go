package manifest

import (
	"math"
	"strconv"
	"strings"
)

// The served layout of a job folder, which players, web servers and the job all rely
// on. Every URI in a manifest is relative, so the folder can be served as it is:
//
//	<job>/master.m3u8                   MasterName: the HLS multivariant playlist
//	<job>/manifest.mpd                  MPDName: the DASH MPD
//	<job>/<rendition>/index.m3u8        MediaName: the rendition's HLS media playlist
//	<job>/<rendition>/init_<R>.mp4      InitName(R): the CMAF header of ffmpeg run R
//	<job>/<rendition>/seg_<R>_<N>.m4s   SegmentName(R, N): media segment N, written by run R
//
// Every ffmpeg run of a job has a run number R of its own (job: growing, and never
// reused, not even by a job of the same id after a purge), and writes its own init
// segment: the segments of a run are played with the parameter sets of their own
// encoder (an NVENC run and the x264 run after a fallback differ), and a player never
// reads an init that a later run rewrites. A segment's name holds its run too: a file
// job encoded again after a failure, and a job made again after a purge, number their
// segments from 0 again, and segments are served as immutable, so a name once served
// must never stand for other bytes.
//
// Run 0 is the layout of the versions before run numbers (init.mp4, seg_<N>.m4s): the
// names of the stored segments of a job that such a version wrote.
const (
	MasterName = "master.m3u8"
	MPDName    = "manifest.mpd"
	MediaName  = "index.m3u8"
)

// The parts of the init and segment file names. Use InitName, SegmentName,
// SegmentTemplate and ParseSegmentName rather than the parts.
const (
	legacyInitName = "init.mp4"
	initPrefix     = "init_"
	initSuffix     = ".mp4"
	segmentPrefix  = "seg_"
	segmentSuffix  = ".m4s"
)

// InitName returns the file name of the init segment of run, inside its rendition's
// folder: init_<run>.mp4, or init.mp4 for run 0.
func InitName(run uint64) string {
	if run == 0 {
		return legacyInitName
	}
	return initPrefix + strconv.FormatUint(run, 10) + initSuffix
}

// SegmentName returns the file name of segment n of run, inside its rendition's
// folder: seg_<run>_<n>.m4s, or seg_<n>.m4s for run 0.
func SegmentName(run, n uint64) string { return string(appendSegmentName(nil, run, n)) }

// appendSegmentName appends SegmentName(run, n) to b.
func appendSegmentName(b []byte, run, n uint64) []byte {
	b = appendSegmentPrefix(b, run)
	b = strconv.AppendUint(b, n, 10)
	return append(b, segmentSuffix...)
}

// appendSegmentPrefix appends what comes before the number in a segment name of run.
func appendSegmentPrefix(b []byte, run uint64) []byte {
	b = append(b, segmentPrefix...)
	if run == 0 {
		return b
	}
	b = strconv.AppendUint(b, run, 10)
	return append(b, '_')
}

// SegmentTemplate returns the segment file name of run with number standing for the
// number: "$Number$" gives DASH's media template, "%d" ffmpeg's pattern.
func SegmentTemplate(run uint64, number string) string {
	return string(appendSegmentPrefix(nil, run)) + number + segmentSuffix
}

// ParseSegmentName returns the run and number of the segment whose file name is name,
// and false when name is not one: exactly what SegmentName writes, for numbers up to
// math.MaxInt64 (ffmpeg counts segments in a signed 64-bit integer).
func ParseSegmentName(name string) (run, n uint64, ok bool) {
	rest, ok := strings.CutPrefix(name, segmentPrefix)
	if !ok {
		return 0, 0, false
	}
	if rest, ok = strings.CutSuffix(rest, segmentSuffix); !ok {
		return 0, 0, false
	}
	if r, digits, two := strings.Cut(rest, "_"); two {
		if run, ok = parseNumber(r); !ok || run == 0 {
			return 0, 0, false
		}
		rest = digits
	}
	if n, ok = parseNumber(rest); !ok {
		return 0, 0, false
	}
	return run, n, true
}

// parseNumber reads a decimal number as strconv.FormatUint writes it, up to
// math.MaxInt64.
func parseNumber(digits string) (uint64, bool) {
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > math.MaxInt64 || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return n, true
}
