package manifest

import (
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// UTCTiming schemes (ISO/IEC 23009-1 Table 32).
const (
	utcHTTPHead = "urn:mpeg:dash:utc:http-head:2014"
	utcDirect   = "urn:mpeg:dash:utc:direct:2014"
)

// roleScheme is the scheme of Role descriptors (ISO/IEC 23009-1 5.8.5.5).
const roleScheme = "urn:mpeg:dash:role:2011"

// audioChannelScheme signals the number of channels (ISO/IEC 23009-1 5.8.5.4).
const audioChannelScheme = mpd.AUDIO_CHANNEL_CONFIGURATION_MPEG_DASH

// minMinBufferTime is the floor of MPD@minBufferTime.
const minMinBufferTime = 2 * time.Second

// presentationDelay is MPD@suggestedPresentationDelay of a live presentation with
// segments of seg: one segment and a quarter, and never under minMinBufferTime. dash.js
// and Shaka put their playhead that far behind the live edge they compute from the wall
// clock (now minus availabilityStartTime). availabilityStartTime is set from when the
// first segment was listed (package job), so a segment is listed just as that edge reaches
// its end; a player learns of it at its next MPD reload (minimumUpdatePeriod, half a
// segment: updatePeriod) and then fetches it. With one segment of delay the buffer ran
// dry at every segment boundary (dash.js stalled 4 times in 8 s, 3.1 s in all, on an idle
// box); the quarter covers the reload and the fetch. TestGlassToGlass in internal/daemon
// measures it against ffmpeg's own dash muxer (`scripts/latency`).
func presentationDelay(seg time.Duration) time.Duration {
	return max(seg+seg/4, minMinBufferTime)
}

// updatePeriod is MPD@minimumUpdatePeriod of a live presentation with segments of seg:
// half a segment, so that a player hears of a new segment at most that long after it is
// listed (the MPD is a few KB, served no-cache: two reloads a segment per viewer).
func updatePeriod(seg time.Duration) time.Duration { return seg / 2 }

// RenderMPD renders the DASH MPD (manifest.mpd), written directly as the XML that
// dash-mpd's types and encoder would produce.
//
// One Period (id 0, start 0) holds an AdaptationSet of the video tracks (id 0) and one of
// the audio tracks per language and source track (ids from 1; a single language, the
// usual case, is id 1), with lang set when the language is known, a Label when the
// tracks have one (Track.Label) and, when there are several, Role main on the first.
// Every Representation has its own SegmentTemplate with $Number$ addressing and a
// SegmentTimeline listing exactly its segments.
//
// The MPD type follows the presentation:
//   - live, running: dynamic, with minimumUpdatePeriod, availabilityStartTime,
//     publishTime, suggestedPresentationDelay, timeShiftBufferDepth (when there is a
//     window) and UTCTiming;
//   - live, ended: static, with mediaPresentationDuration at the end of the last
//     segment, availabilityStartTime and publishTime kept, and nothing that only a
//     dynamic MPD means (minimumUpdatePeriod, suggestedPresentationDelay,
//     timeShiftBufferDepth, UTCTiming). This is the transition from live to on-demand of
//     DASH-IF IOP 4.6.4, which dash.js and Shaka act on: they stop reloading, buffer to
//     the end and end playback. A dynamic MPD that merely drops minimumUpdatePeriod and
//     gains a mediaPresentationDuration is not enough: dash.js 5 and Shaka 5 (see
//     web/test) then stall at the last segment, waiting for more, and never end;
//   - VOD: static, with mediaPresentationDuration at the end of the last segment of the
//     longest track. A VOD still being transcoded is rendered the same way with what
//     exists so far; a reload shows more.
//
// Clock synchronisation must work when the folder is served by a plain static web
// server, which has no time endpoint. Every HTTP server sends a Date header, so the first
// UTCTiming is urn:mpeg:dash:utc:http-head:2014 with the relative URL "manifest.mpd":
// dash.js (TimeSyncController) and Shaka resolve a relative UTCTiming URL against the
// MPD's base URL, so the HEAD request goes to this very file. Its precision is one
// second. When the page is on another origin, the server must expose Date with
// Access-Control-Expose-Headers, or the browser hides it; for that case, and for players
// that do not resolve relative URLs, urn:mpeg:dash:utc:direct:2014 follows with the time
// this MPD was rendered. That value is at most about one segment duration old when a
// player reads it, which makes the player's clock late, never early: it stays a little
// further from the live edge rather than asking for segments that do not exist yet.
//
// The MPD is rendered after every segment of every live job (about 20 times a second
// with ten live jobs), so appendMPD writes its XML straight into a byte slice. It used to
// be built as dash-mpd structs and encoded with dash-mpd's reflective XML encoder, the
// largest single CPU cost of the daemon: about 65 µs and 192 allocations per rendering
// of a one-rung live job with a 30 s window (BenchmarkRender/mpd), against about 4 µs
// and 6 allocations now. The output is byte for byte what that encoder wrote, with
// two-space indentation and the XML header: TestMPDMatchesEncoder parses every MPD the
// tests render with dash-mpd and checks that encoding it again gives the same bytes.
func RenderMPD(p *Presentation) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("render mpd: %w", err)
	}
	tracks := p.allTracks()
	for _, t := range tracks {
		if err := t.validateSegments(); err != nil {
			return nil, fmt.Errorf("render mpd: %w", err)
		}
	}
	b, err := appendMPD(make([]byte, 0, mpdSizeHint(tracks)), p)
	if err != nil {
		return nil, fmt.Errorf("render mpd: %w", err)
	}
	return b, nil
}

// mpdSizeHint is a generous estimate of the size of the MPD of tracks, so that appendMPD
// rarely has to grow its buffer: 50 bytes per S element (most take 30 to 50), 1 KiB per
// Representation with its AdaptationSet and Period share, and 1 KiB for the rest.
func mpdSizeHint(tracks []*Track) int {
	n := 1024
	for _, t := range tracks {
		n += 1024 + 4*len(t.Name) + 50*len(t.Segments)
	}
	return n
}

// Indentation of the MPD's elements, two spaces a level as dash-mpd's encoder writes
// with the indent "  ".
const (
	indentPeriod         = "  "
	indentAdaptationSet  = "    "
	indentRepresentation = "      "
	indentTemplate       = "        " // SegmentTemplate and AudioChannelConfiguration
	indentTimeline       = "          "
	indentS              = "            "
)

// appendMPD appends the MPD of p to b: the XML header, then the MPD element with its
// attributes in the order of dash-mpd's MPD struct, its Periods and its UTCTimings.
// Leaf elements are written with an end tag (<S ...></S>) as that encoder does,
// attribute values are escaped as it escapes them (appendEscaped), and the attributes
// that those structs mark omitempty are left out when zero or empty.
//
// p must have passed validate and each of its tracks validateSegments: appendMPD relies
// on every track having segments, and on track names being plain path elements, so that
// name + "/" + file is what path.Join would make of them.
func appendMPD(b []byte, p *Presentation) ([]byte, error) {
	starts := periodStarts(p)
	var end time.Duration
	for _, list := range [][]Track{p.Video, p.Audio} {
		for i := range list {
			for _, s := range slices.Backward(list[i].Segments) {
				if s.PeriodStart <= starts[len(starts)-1] {
					end = max(end, toDuration(s.Start+s.Duration, list[i].Timescale))
					break
				}
			}
		}
	}
	if p.Live {
		if p.AvailabilityStart.IsZero() || p.PublishTime.IsZero() {
			return nil, fmt.Errorf("live presentation without availability start or publish time: %w", ErrInvalid)
		}
		if p.SegmentDuration <= 0 {
			return nil, fmt.Errorf("live presentation without segment duration: %w", ErrInvalid)
		}
	}
	// An ended live presentation is static: the transition to on-demand of DASH-IF IOP
	// 4.6.4; see RenderMPD.
	dynamic := p.Live && !p.Ended

	b = append(b, `<?xml version="1.0" encoding="UTF-8"?>`+"\n<MPD"...)
	b = appendAttr(b, "xmlns", mpd.DASH_NAMESPACE)
	b = appendAttr(b, "profiles", mpd.PROFILE_LIVE)
	if dynamic {
		b = appendAttr(b, "type", mpd.DYNAMIC_TYPE)
	} else {
		b = appendAttr(b, "type", mpd.STATIC_TYPE)
	}
	if p.Live {
		b = appendTimeAttr(b, "availabilityStartTime", p.AvailabilityStart)
		b = appendTimeAttr(b, "publishTime", p.PublishTime)
	}
	if !dynamic {
		b = appendDurationAttr(b, "mediaPresentationDuration", end-p.Start)
	} else {
		b = appendDurationAttr(b, "minimumUpdatePeriod", updatePeriod(p.SegmentDuration))
	}
	b = appendDurationAttr(b, "minBufferTime", max(p.SegmentDuration, minMinBufferTime))
	if dynamic {
		if p.Window > 0 {
			b = appendDurationAttr(b, "timeShiftBufferDepth", p.Window)
		}
		b = appendDurationAttr(b, "suggestedPresentationDelay", presentationDelay(p.SegmentDuration))
	}
	b = append(b, ">\n"...)

	for _, ps := range starts {
		var err error
		if b, err = appendPeriod(b, p, ps); err != nil {
			return nil, err
		}
	}

	if dynamic {
		b = appendDescriptor(b, indentPeriod, "UTCTiming", utcHTTPHead, MPDName)
		// The same with the time this MPD was rendered, appended without a string.
		b = append(b, indentPeriod+"<UTCTiming"...)
		b = appendAttr(b, "schemeIdUri", utcDirect)
		b = appendTimeAttr(b, "value", p.PublishTime)
		b = append(b, "></UTCTiming>\n"...)
	}
	return append(b, "</MPD>\n"...), nil
}

// periodStarts lists the distinct PeriodStart values of the listed segments, in order:
// one DASH Period per ffmpeg run still in the window.
//
// The newest Period is left out while it is incomplete: while a track that is still
// encoded (not Withdrawn) has no segment in it yet, and no track has holdBack segments
// in it. After a restart, the tracks' first segments close one by one (behind a network
// source, video a few hundred milliseconds after audio), and a Period that a player
// first sees without its video is one it never plays: dash.js 5 builds the Period's
// stream from the AdaptationSets it first lists and fails on the video set that comes
// later ("Cannot read properties of null (reading 'id')" in its video StreamProcessor),
// stalling at the end of the Period before. The wait ends after holdBack segments so
// that a track which produces nothing in a run (a rung whose encoder fails) does not
// hold the others back for ever.
func periodStarts(p *Presentation) []time.Duration {
	var out []time.Duration
	for _, list := range [][]Track{p.Video, p.Audio} {
		for i := range list {
			for _, s := range list[i].Segments {
				if !slices.Contains(out, s.PeriodStart) { // a handful of Periods at most
					out = append(out, s.PeriodStart)
				}
			}
		}
	}
	slices.Sort(out)
	if n := len(out); n > 1 && !p.cut() && !periodComplete(p, out[n-1]) {
		out = out[:n-1]
	}
	return out
}

// holdBack is how many segments a track may have in a new Period before the Period is
// listed without the tracks that have none yet.
const holdBack = 3

// periodComplete reports whether every track still encoded has a segment in the Period
// that starts at ps, or some track already has holdBack segments in it.
func periodComplete(p *Presentation, ps time.Duration) bool {
	complete, most := true, 0
	for _, t := range p.allTracks() {
		n := 0
		for _, s := range slices.Backward(t.Segments) {
			if s.PeriodStart != ps {
				break
			}
			n++
		}
		most = max(most, n)
		if n == 0 && !t.Withdrawn {
			complete = false
		}
	}
	return complete || most >= holdBack
}

// inPeriod reports whether t has a segment in the Period that starts at ps.
func inPeriod(t *Track, ps time.Duration) bool {
	for _, s := range t.Segments {
		if s.PeriodStart == ps {
			return true
		}
	}
	return false
}

// appendPeriod appends the Period of the run that starts at ps, with the tracks'
// segments of that run. A track with no segment in this run is left out of the Period.
func appendPeriod(b []byte, p *Presentation, ps time.Duration) ([]byte, error) {
	b = append(b, indentPeriod+`<Period id="`...)
	if ps > 0 {
		b = append(b, 'p')
		b = strconv.AppendInt(b, ps.Milliseconds(), 10)
	} else {
		b = append(b, '0')
	}
	b = append(b, '"')
	b = appendDurationAttr(b, "start", max(ps-p.Start, 0)) // a cut's timeline starts with it
	b = append(b, ">\n"...)
	var err error
	if b, err = appendVideoSet(b, p, ps); err != nil {
		return nil, err
	}
	// One AdaptationSet per language and source track, in the order they first appear:
	// Representations of one AdaptationSet must be interchangeable, and two languages,
	// or two tracks of one language (a film and its commentary), are not. The
	// bitrates of one track are its Representations.
	var firsts []int // the first track of each audio set
	for i := range p.Audio {
		if inPeriod(&p.Audio[i], ps) && firstOfSet(p.Audio, i, ps) {
			firsts = append(firsts, i)
		} // else not in this Period, or in the set of an earlier track
	}
	for k, i := range firsts {
		// With several sets, the first is the default, as the first is in HLS
		// (DEFAULT=YES): Role main, which dash.js and Shaka start with; without it dash.js
		// starts with the set of the highest bitrate, whichever language that is.
		if b, err = appendAudioSet(b, p, uint64(k+1), p.Audio[i:], ps, k == 0 && len(firsts) > 1); err != nil {
			return nil, err
		}
	}
	return append(b, indentPeriod+"</Period>\n"...), nil
}

// sameSet reports whether two audio tracks belong in one AdaptationSet: the same
// language and the same source track.
func sameSet(a, b *Track) bool {
	return a.Language == b.Language && a.SourceTrack == b.SourceTrack
}

// firstOfSet reports whether no track before tracks[i] with segments in the Period
// that starts at ps belongs in the AdaptationSet of tracks[i].
func firstOfSet(tracks []Track, i int, ps time.Duration) bool {
	for j := range i {
		if sameSet(&tracks[j], &tracks[i]) && inPeriod(&tracks[j], ps) {
			return false
		}
	}
	return true
}

// appendVideoSet appends the AdaptationSet (id 0) of the video tracks that have segments
// in the Period that starts at ps, if there are any.
func appendVideoSet(b []byte, p *Presentation, ps time.Duration) ([]byte, error) {
	tracks := p.Video
	var (
		found               bool
		maxWidth, maxHeight uint32
		maxFrameRate        string
		maxNum, maxDen      uint64
	)
	for i := range tracks {
		t := &tracks[i]
		if !inPeriod(t, ps) {
			continue
		}
		found = true
		maxWidth = max(maxWidth, uint32(t.Width))
		maxHeight = max(maxHeight, uint32(t.Height))
		if t.FrameRate != "" {
			num, den, _ := parseFrameRate(t.FrameRate) // checked by validate
			if maxDen == 0 || num*maxDen > maxNum*den {
				maxNum, maxDen = num, den
				maxFrameRate = t.FrameRate
			}
		}
	}
	if !found {
		return b, nil
	}
	b = append(b, indentAdaptationSet+`<AdaptationSet id="0" contentType="video"`...)
	if maxWidth != 0 {
		b = appendUintAttr(b, "maxWidth", uint64(maxWidth))
	}
	if maxHeight != 0 {
		b = appendUintAttr(b, "maxHeight", uint64(maxHeight))
	}
	if maxFrameRate != "" {
		b = appendAttr(b, "maxFrameRate", maxFrameRate)
	}
	b = append(b, ` segmentAlignment="true" mimeType="`+mpd.MIME_TYPE_VIDEO_MP4+`" startWithSAP="1">`+"\n"...)
	for i := range tracks {
		if !inPeriod(&tracks[i], ps) {
			continue
		}
		var err error
		if b, err = appendRepresentation(b, p, &tracks[i], true, ps); err != nil {
			return nil, err
		}
	}
	return append(b, indentAdaptationSet+"</AdaptationSet>\n"...), nil
}

// appendAudioSet appends an AdaptationSet of audio tracks: tracks[0] and the tracks
// after it of its set (sameSet), among those with segments in the Period that starts
// at ps.
func appendAudioSet(b []byte, p *Presentation, id uint64, tracks []Track, ps time.Duration, main bool) ([]byte, error) {
	lang := tracks[0].Language
	b = append(b, indentAdaptationSet+"<AdaptationSet"...)
	b = appendUintAttr(b, "id", id)
	if lang != "" {
		b = appendAttr(b, "lang", lang)
	}
	b = append(b, ` contentType="audio" segmentAlignment="true" mimeType="`+mpd.MIME_TYPE_AUDIO_MP4+`" startWithSAP="1">`+"\n"...)
	if l := tracks[0].Label; l != "" {
		// What players list the set under, as HLS NAME: two sets of one language (a
		// film and its commentary) differ only in it.
		b = append(b, indentRepresentation+"<Label>"...)
		b = appendEscaped(b, l) // as character data too, but for tab and newline, which validLabel refuses
		b = append(b, "</Label>\n"...)
	}
	if main {
		b = appendDescriptor(b, indentRepresentation, "Role", roleScheme, "main")
	}
	for i := range tracks {
		if !sameSet(&tracks[i], &tracks[0]) || !inPeriod(&tracks[i], ps) {
			continue
		}
		var err error
		if b, err = appendRepresentation(b, p, &tracks[i], false, ps); err != nil {
			return nil, err
		}
	}
	return append(b, indentAdaptationSet+"</AdaptationSet>\n"...), nil
}

// appendRepresentation appends the Representation of t in the Period that starts at ps,
// a video or an audio one, with its SegmentTemplate and SegmentTimeline.
func appendRepresentation(b []byte, p *Presentation, t *Track, video bool, ps time.Duration) ([]byte, error) {
	bw, err := toUint32(bandwidth(t), "bandwidth")
	if err != nil {
		return nil, fmt.Errorf("track %q: %w", t.Name, err)
	}
	first := t.Segments[slices.IndexFunc(t.Segments, func(s Segment) bool { return s.PeriodStart == ps })]
	if first.Number > 1<<32-1 {
		return nil, fmt.Errorf("track %q: segment number %d does not fit in startNumber: %w", t.Name, first.Number, ErrInvalid)
	}
	var pto uint64
	origin := max(ps, p.Start) // where the Period begins on the job's timeline
	if origin > 0 {
		// A later run: its timeline is in the file's own media time, and the offset maps
		// it onto the Period: MediaTime - PTO = Start - origin. The first run's timeline
		// is Start (= MediaTime); a cut's first Period begins where the cut does.
		runStart := uint64(origin) * uint64(t.Timescale) / uint64(time.Second)
		media := first.MediaTime
		if ps == 0 {
			media = first.Start
		}
		if first.Start < runStart || media < first.Start-runStart {
			return nil, fmt.Errorf("track %q: segment %d is before its period: %w", t.Name, first.Number, ErrInvalid)
		}
		pto = media - (first.Start - runStart)
	}

	b = append(b, indentRepresentation+"<Representation"...)
	b = appendAttr(b, "id", t.Name)
	b = appendUintAttr(b, "bandwidth", uint64(bw))
	if video {
		if w := uint32(t.Width); w != 0 {
			b = appendUintAttr(b, "width", uint64(w))
		}
		if h := uint32(t.Height); h != 0 {
			b = appendUintAttr(b, "height", uint64(h))
		}
		b = append(b, ` sar="1:1"`...)
		if t.FrameRate != "" {
			b = appendAttr(b, "frameRate", t.FrameRate)
		}
	} else {
		b = appendIntAttr(b, "audioSamplingRate", int64(t.SampleRate))
	}
	if t.Codecs != "" {
		b = appendAttr(b, "codecs", t.Codecs)
	}
	b = append(b, ">\n"...)
	if !video {
		b = appendDescriptor(b, indentTemplate, "AudioChannelConfiguration",
			audioChannelScheme, strconv.Itoa(t.Channels))
	}

	// The Period is one ffmpeg run: its segments and its init segment are those of
	// the run (see layout.go).
	b = append(b, indentTemplate+`<SegmentTemplate media="`...)
	b = append(b, p.Root...) // a cut's: made of ../ (validate), nothing to escape
	b = appendEscaped(b, t.Name)
	b = append(b, '/')
	b = append(appendSegmentPrefix(b, first.Run), "$Number$"+segmentSuffix+`" initialization="`...)
	b = append(b, p.Root...)
	b = appendEscaped(b, t.Name)
	b = append(b, '/')
	b = append(b, InitName(first.Run)...)
	b = append(b, '"')
	b = appendUintAttr(b, "startNumber", first.Number)
	b = appendUintAttr(b, "timescale", uint64(t.Timescale))
	if origin > 0 {
		b = appendUintAttr(b, "presentationTimeOffset", pto)
	}
	b = append(b, ">\n"...)
	b = appendTimeline(b, t.Segments, ps)
	b = append(b, indentTemplate+"</SegmentTemplate>\n"...)
	return append(b, indentRepresentation+"</Representation>\n"...), nil
}

// timelineS is one S element of a SegmentTimeline.
type timelineS struct {
	t    uint64 // start; written only when hasT
	hasT bool
	d    uint64 // duration
	r    int    // how many segments follow that start where the one before ended and last d
}

// appendTimeline appends the SegmentTimeline of the segments of segs that are in the
// Period that starts at ps: S elements with t on the first segment and wherever a segment
// does not start where the one before ended (a gap or an overlap), and r for each
// following segment of the same duration that starts where the one before ended. In a
// later Period (ps > 0), the times are the segments' MediaTime.
func appendTimeline(b []byte, segs []Segment, ps time.Duration) []byte {
	b = append(b, indentTimeline+"<SegmentTimeline>\n"...)
	var (
		cur  timelineS
		open bool   // cur holds at least one segment
		next uint64 // where the segment after cur's last one should start
	)
	for _, s := range segs {
		if s.PeriodStart != ps {
			continue
		}
		start := s.Start
		if ps > 0 {
			start = s.MediaTime
		}
		switch {
		case open && start == next && s.Duration == cur.d:
			cur.r++
		case open && start == next:
			b = appendS(b, cur)
			cur = timelineS{d: s.Duration}
		default:
			if open {
				b = appendS(b, cur)
			}
			cur = timelineS{t: start, hasT: true, d: s.Duration}
		}
		open = true
		next = start + s.Duration
	}
	if open {
		b = appendS(b, cur)
	}
	return append(b, indentTimeline+"</SegmentTimeline>\n"...)
}

// appendS appends one S element; d and r are left out when zero, as the encoder does.
func appendS(b []byte, s timelineS) []byte {
	b = append(b, indentS+"<S"...)
	if s.hasT {
		b = appendUintAttr(b, "t", s.t)
	}
	if s.d != 0 {
		b = appendUintAttr(b, "d", s.d)
	}
	if s.r != 0 {
		b = appendIntAttr(b, "r", int64(s.r))
	}
	return append(b, "></S>\n"...)
}

// appendDescriptor appends a descriptor element (UTCTiming, AudioChannelConfiguration)
// with its schemeIdUri and value.
func appendDescriptor(b []byte, indent, name, scheme, value string) []byte {
	b = append(b, indent...)
	b = append(b, '<')
	b = append(b, name...)
	b = appendAttr(b, "schemeIdUri", scheme)
	if value != "" {
		b = appendAttr(b, "value", value)
	}
	b = append(b, "></"...)
	b = append(b, name...)
	return append(b, ">\n"...)
}

// appendAttr appends the attribute name="value", with value escaped.
func appendAttr(b []byte, name, value string) []byte {
	return append(appendEscaped(attrStart(b, name), value), '"')
}

// appendUintAttr appends the attribute name="v".
func appendUintAttr(b []byte, name string, v uint64) []byte {
	return append(strconv.AppendUint(attrStart(b, name), v, 10), '"')
}

// appendIntAttr appends the attribute name="v".
func appendIntAttr(b []byte, name string, v int64) []byte {
	return append(strconv.AppendInt(attrStart(b, name), v, 10), '"')
}

// appendTimeAttr appends the attribute name="t" with t as formatTime writes it, which
// needs no escaping.
func appendTimeAttr(b []byte, name string, t time.Time) []byte {
	return append(appendTime(attrStart(b, name), t), '"')
}

// appendDurationAttr appends the attribute name="d" with d as an xs:duration, formatted
// by dash-mpd (its Duration.String), whose digits and letters need no escaping.
func appendDurationAttr(b []byte, name string, d time.Duration) []byte {
	v := mpd.Duration(d)
	return append(append(attrStart(b, name), v.String()...), '"')
}

// attrStart appends the start of an attribute, up to the opening quote of its value.
func attrStart(b []byte, name string) []byte {
	b = append(b, ' ')
	b = append(b, name...)
	return append(b, `="`...)
}

// appendEscaped appends s escaped as dash-mpd's XML printer escapes attribute values
// (printer.EscapeString in github.com/Eyevinn/dash-mpd/xml): the characters ", ', &,
// < and >, tab, newline and carriage return as references, and what is not an
// XML character (a control character, invalid UTF-8) as U+FFFD.
func appendEscaped(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		if c := s[i]; c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\'' && c != '&' && c != '<' && c != '>' {
			i++ // the common case: printable ASCII that stays as it is
			continue
		}
		r, width := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch r {
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			if isXMLChar(r) && (r != utf8.RuneError || width > 1) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// isXMLChar reports whether r is a Char of XML 1.0 (section 2.2).
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// toDuration converts a time in timescale units to a time.Duration, without overflow
// for any time within time.Duration's range.
func toDuration(v uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	q, r := v/ts, v%ts
	return time.Duration(q)*time.Second + time.Duration(r*uint64(time.Second)/ts)
}
