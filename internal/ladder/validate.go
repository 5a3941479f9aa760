package ladder

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// MinRecordRetention is the shortest record_retention a ladder may set. The daemon's
// tests lower it, to see recordings expire in seconds.
var MinRecordRetention = time.Hour

// isBad reports whether the value at path, or anything enclosing it, was
// already reported, so that one mistake is not reported twice.
func (d *decoder) isBad(path string) bool {
	for {
		if d.bad[path] {
			return true
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return d.bad[""]
		}
		path = path[:i]
	}
}

// check reports a problem at path unless ok or the value at path could not
// be decoded. It does not mark the value: a wrong value is still known and
// still compared with its neighbours.
func (d *decoder) check(ok bool, path, format string, args ...any) {
	if !ok && !d.isBad(path) {
		d.addf(d.line(path), path, format, args...)
	}
}

// validate checks what the types alone cannot: ranges, order and the
// relations between keys. It runs after decoding, over whatever was decoded.
func (d *decoder) validate(l *Ladder) {
	if d.bad[""] {
		return
	}
	seg := l.SegmentDuration
	d.check(seg >= minSegment && seg <= maxSegment, "segment_duration",
		"%s is out of range: use %s to %s", seg, minSegment, maxSegment)
	segOK := !d.isBad("segment_duration") && seg >= minSegment && seg <= maxSegment
	w := l.Window
	switch {
	case w < 0:
		d.check(false, "window", "%s is negative: use 0 to keep every segment", w)
	case w > maxWindow:
		d.check(false, "window", "%s is longer than %s", w, maxWindow)
	case w != 0 && segOK && w < minWindowFactor*seg:
		d.check(false, "window", "%s is shorter than %d segments (%s): use 0 to keep every segment or at least %s",
			w, minWindowFactor, minWindowFactor*seg, minWindowFactor*seg)
	}
	d.check(l.RecordRetention >= 0, "record_retention", "%s is negative: use 0 to keep a recording until its job is purged", l.RecordRetention)
	d.check(l.RecordRetention <= 0 || l.RecordRetention >= MinRecordRetention, "record_retention",
		"%s is shorter than %s: a recording is for publishing after the event; use e.g. 7d", l.RecordRetention, MinRecordRetention)

	d.check(l.Video.MaxFPS >= 0 && l.Video.MaxFPS <= maxFPS, "video.max_fps",
		"%g is out of range: use 0 (the source rate) or at most %d", l.Video.MaxFPS, maxFPS)

	names := map[string]string{} // rendition name -> key path of its first use
	useName := func(path, name string) {
		if d.isBad(path) {
			return
		}
		if !ValidName(name) {
			d.check(false, path, "%q is not a valid name: use 1 to 64 of a-z, 0-9, _ and -", name)
			return
		}
		if first, dup := names[name]; dup {
			d.check(false, path, "%q is already the name of %s", name, strings.TrimSuffix(first, ".name"))
			return
		}
		names[name] = path
	}

	rungs := l.Video.Renditions
	base := "video.renditions"
	d.check(!l.Video.ShedTopRung || len(rungs) >= 2, "video.shed_top_rung",
		"needs at least two video renditions: shedding the top one must leave one")
	d.check(len(rungs) <= maxVideoRungs, base, "%d renditions, at most %d are allowed", len(rungs), maxVideoRungs)
	for i, r := range rungs {
		p := index(base, i)
		if d.isBad(p) {
			continue
		}
		useName(p+".name", r.Name)
		d.check(r.Height%2 == 0, p+".height", "%d is odd: heights must be even", r.Height)
		d.check(r.Height >= minHeight && r.Height <= maxHeight, p+".height",
			"%d is out of range: use %d to %d", r.Height, minHeight, maxHeight)
		d.check(r.Bitrate >= minVideoBitrate, p+".bitrate",
			"%s bits per second is too low for video (did you mean %sk?)", formatBitrate(r.Bitrate), formatBitrate(r.Bitrate))
		if r.MaxRate != 0 && !d.isBad(p+".bitrate") {
			d.check(r.MaxRate >= r.Bitrate, p+".maxrate", "%s is lower than the bitrate (%s)",
				formatBitrate(r.MaxRate), formatBitrate(r.Bitrate))
		}
		if i == 0 || d.isBad(index(base, i-1)) {
			continue
		}
		up := rungs[i-1]
		if !d.isBad(index(base, i-1) + ".height") {
			d.check(r.Height < up.Height, p+".height", "%d is not lower than the rung above (%d): list rungs from the tallest down",
				r.Height, up.Height)
		}
		if !d.isBad(index(base, i-1) + ".bitrate") {
			d.check(r.Bitrate < up.Bitrate, p+".bitrate", "%s is not lower than the rung above (%s): list rungs from the highest bitrate down",
				formatBitrate(r.Bitrate), formatBitrate(up.Bitrate))
		}
	}

	d.check(len(l.Audio) <= maxAudioRungs, "audio", "%d renditions, at most %d are allowed", len(l.Audio), maxAudioRungs)
	for i, a := range l.Audio {
		p := index("audio", i)
		if d.isBad(p) {
			continue
		}
		useName(p+".name", a.Name)
		d.check(a.Bitrate >= minAudioBitrate, p+".bitrate",
			"%s bits per second is too low for audio (did you mean %sk?)", formatBitrate(a.Bitrate), formatBitrate(a.Bitrate))
		d.check(slices.Contains(channelSets, a.Channels), p+".channels", "%d is not 1 or 2", a.Channels)
		d.check(slices.Contains(sampleRates, a.SampleRate), p+".sample_rate", "%d is not 44100 or 48000", a.SampleRate)
		d.check(a.Track >= 0 && a.Track <= maxTrack, p+".track", "%d is out of range: use 0 (the first audio track) to %d", a.Track, maxTrack)
	}
	d.checkTracks(l, names)

	if len(rungs) == 0 && len(l.Audio) == 0 && !d.isBad(base) && !d.isBad("audio") {
		d.check(false, base, "a ladder needs at least one video rendition or one audio rendition")
	}
	if l.AudioOnly && len(l.Audio) == 0 && !d.isBad("audio") {
		d.check(false, "audio_only", "true needs at least one audio rendition")
	}
}

// checkTracks checks the entries with tracks: all. Either every audio entry takes
// every track or none does: the renditions of each such entry are one HLS rendition
// group, and the groups of a master playlist must hold the same tracks (RFC 8216
// 4.3.4.1.1), which entries of one track would break. The renditions of such an entry
// are named <name>_0 to <name>_7, so those names must be free; names holds the names
// in use and where.
func (d *decoder) checkTracks(l *Ladder, names map[string]string) {
	first := -1 // the first entry with tracks: all
	for i, a := range l.Audio {
		if a.Tracks == "all" && !d.isBad(index("audio", i)) {
			first = i
			break
		}
	}
	if first < 0 {
		return
	}
	for i, a := range l.Audio {
		p := index("audio", i)
		if d.isBad(p) {
			continue
		}
		if a.Tracks != "all" {
			d.check(false, p, "takes one track, but %s takes every track (tracks: all): use tracks: all on every audio entry or on none", index("audio", first))
			continue
		}
		if d.isBad(p + ".name") {
			continue
		}
		last := a.Name + "_" + strconv.Itoa(maxAudioTracks-1)
		if !ValidName(last) {
			d.check(false, p+".name", "%q is too long for tracks: all, whose renditions are named %s_0 to %s: use at most %d characters",
				a.Name, a.Name, last, 64-len(last)+len(a.Name))
			continue
		}
		for k := range maxAudioTracks {
			n := a.Name + "_" + strconv.Itoa(k)
			if at, used := names[n]; used {
				d.check(false, p+".name", "tracks: all names its renditions %s_0 to %s, but %q is already the name of %s",
					a.Name, last, n, strings.TrimSuffix(at, ".name"))
				break
			}
			names[n] = p + ".name"
		}
	}
}
