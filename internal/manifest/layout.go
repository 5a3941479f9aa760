package manifest

import (
	"math"
	"strconv"
	"strings"
)

// The served layout of a job folder, which players, web servers and the job all rely
// on. Every URI in a manifest is relative, so the folder can be served as it is:
//
//	<job>/master.m3u8            MasterName: the HLS multivariant playlist
//	<job>/manifest.mpd           MPDName: the DASH MPD
//	<job>/<rendition>/index.m3u8 MediaName: the rendition's HLS media playlist
//	<job>/<rendition>/init.mp4   InitName: the rendition's CMAF header
//	<job>/<rendition>/seg_<N>.m4s SegmentName(N): media segment N
const (
	MasterName = "master.m3u8"
	MPDName    = "manifest.mpd"
	MediaName  = "index.m3u8"
	InitName   = "init.mp4"
)

// A segment's file name is segmentPrefix, its number in decimal, segmentSuffix. Use
// SegmentName, SegmentTemplate and ParseSegmentName rather than the parts.
const (
	segmentPrefix = "seg_"
	segmentSuffix = ".m4s"
)

// SegmentName returns the file name of segment n, inside its rendition's folder:
// seg_<n>.m4s.
func SegmentName(n uint64) string { return string(appendSegmentName(nil, n)) }

// appendSegmentName appends SegmentName(n) to b.
func appendSegmentName(b []byte, n uint64) []byte {
	b = append(b, segmentPrefix...)
	b = strconv.AppendUint(b, n, 10)
	return append(b, segmentSuffix...)
}

// SegmentTemplate returns the segment file name with number standing for the
// number: "$Number$" gives DASH's media template, "%d" ffmpeg's pattern.
func SegmentTemplate(number string) string { return segmentPrefix + number + segmentSuffix }

// ParseSegmentName returns the number of the segment whose file name is name, and
// false when name is not one: exactly what SegmentName writes, for a number up to
// math.MaxInt64 (ffmpeg counts segments in a signed 64-bit integer).
func ParseSegmentName(name string) (n uint64, ok bool) {
	digits, ok := strings.CutPrefix(name, segmentPrefix)
	if !ok {
		return 0, false
	}
	if digits, ok = strings.CutSuffix(digits, segmentSuffix); !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	if err != nil || n > math.MaxInt64 || strconv.FormatUint(n, 10) != digits {
		return 0, false
	}
	return n, true
}
