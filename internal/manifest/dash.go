package manifest

import (
	"bytes"
	"fmt"
	"path"
	"slices"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// UTCTiming schemes (ISO/IEC 23009-1 Table 32).
const (
	utcHTTPHead = "urn:mpeg:dash:utc:http-head:2014"
	utcDirect   = "urn:mpeg:dash:utc:direct:2014"
)

// audioChannelScheme signals the number of channels (ISO/IEC 23009-1 5.8.5.4).
const audioChannelScheme = mpd.AUDIO_CHANNEL_CONFIGURATION_MPEG_DASH

// minMinBufferTime is the floor of MPD@minBufferTime.
const minMinBufferTime = 2 * time.Second

// RenderMPD renders the DASH MPD (manifest.mpd) with dash-mpd's types and encoder.
//
// One Period (id 0, start 0) holds an AdaptationSet of the video tracks (id 0) and one of
// the audio tracks per language (ids from 1; a single language, the usual case, is id 1).
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
func RenderMPD(p *Presentation) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("render mpd: %w", err)
	}
	for _, t := range p.allTracks() {
		if err := t.validateSegments(); err != nil {
			return nil, fmt.Errorf("render mpd: %w", err)
		}
	}
	starts := periodStarts(p)
	var end time.Duration
	for _, t := range p.allTracks() {
		for _, s := range slices.Backward(t.Segments) {
			if s.PeriodStart <= starts[len(starts)-1] {
				end = max(end, toDuration(s.Start+s.Duration, t.Timescale))
				break
			}
		}
	}

	m := mpd.NewMPD(mpd.STATIC_TYPE)
	m.Profiles = mpd.PROFILE_LIVE
	m.MinBufferTime = durPtr(max(p.SegmentDuration, minMinBufferTime))
	if p.Live {
		if p.AvailabilityStart.IsZero() || p.PublishTime.IsZero() {
			return nil, fmt.Errorf("render mpd: live presentation without availability start or publish time: %w", ErrInvalid)
		}
		if p.SegmentDuration <= 0 {
			return nil, fmt.Errorf("render mpd: live presentation without segment duration: %w", ErrInvalid)
		}
		m.AvailabilityStartTime = mpd.DateTime(formatTime(p.AvailabilityStart))
		m.PublishTime = mpd.DateTime(formatTime(p.PublishTime))
		if p.Ended {
			// The transition to on-demand of DASH-IF IOP 4.6.4; see the doc comment.
			m.MediaPresentationDuration = durPtr(end)
		} else {
			m.Type = mpd.Ptr(mpd.DYNAMIC_TYPE)
			m.MinimumUpdatePeriod = durPtr(p.SegmentDuration)
			m.SuggestedPresentationDelay = durPtr(3 * p.SegmentDuration)
			if p.Window > 0 {
				m.TimeShiftBufferDepth = durPtr(p.Window)
			}
			m.UTCTimings = []*mpd.DescriptorType{
				mpd.NewDescriptor(utcHTTPHead, MPDName, ""),
				mpd.NewDescriptor(utcDirect, formatTime(p.PublishTime), ""),
			}
		}
	} else {
		m.MediaPresentationDuration = durPtr(end)
	}

	for _, ps := range starts {
		period, err := renderPeriod(p, ps)
		if err != nil {
			return nil, fmt.Errorf("render mpd: %w", err)
		}
		m.Periods = append(m.Periods, period)
	}

	var b bytes.Buffer
	if _, err := m.Write(&b, "  ", true); err != nil {
		return nil, fmt.Errorf("render mpd: encode: %w", err)
	}
	b.WriteByte('\n')
	return b.Bytes(), nil
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
	seen := map[time.Duration]bool{}
	var out []time.Duration
	for _, t := range p.allTracks() {
		for _, s := range t.Segments {
			if !seen[s.PeriodStart] {
				seen[s.PeriodStart] = true
				out = append(out, s.PeriodStart)
			}
		}
	}
	slices.Sort(out)
	if n := len(out); n > 1 && !periodComplete(p, out[n-1]) {
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

// renderPeriod renders the Period of the run that starts at ps, with the tracks' segments
// of that run. A track with no segment in this run is left out of the Period.
func renderPeriod(p *Presentation, ps time.Duration) (*mpd.Period, error) {
	id := "0"
	if ps > 0 {
		id = fmt.Sprintf("p%d", ps.Milliseconds())
	}
	period := &mpd.Period{Id: id, Start: durPtr(ps)}
	pick := func(tracks []Track) []Track {
		var out []Track
		for _, t := range tracks {
			var segs []Segment
			for _, s := range t.Segments {
				if s.PeriodStart == ps {
					segs = append(segs, s)
				}
			}
			if len(segs) > 0 {
				t.Segments = segs
				out = append(out, t)
			}
		}
		return out
	}
	if video := pick(p.Video); len(video) > 0 {
		as, err := videoSet(video)
		if err != nil {
			return nil, err
		}
		period.AdaptationSets = append(period.AdaptationSets, as)
	}
	for i, group := range byLanguage(pick(p.Audio)) {
		as, err := audioSet(uint32(1+i), group)
		if err != nil {
			return nil, err
		}
		period.AdaptationSets = append(period.AdaptationSets, as)
	}
	return period, nil
}

func videoSet(tracks []Track) (*mpd.AdaptationSetType, error) {
	as := mpd.NewAdaptationSetWithParams("video", mpd.MIME_TYPE_VIDEO_MP4, true, 1)
	as.Id = mpd.Ptr(uint32(0))
	var maxNum, maxDen uint64
	for i := range tracks {
		t := &tracks[i]
		rep, err := representation(t)
		if err != nil {
			return nil, err
		}
		rep.Width = uint32(t.Width)
		rep.Height = uint32(t.Height)
		rep.Sar = "1:1"
		as.MaxWidth = max(as.MaxWidth, rep.Width)
		as.MaxHeight = max(as.MaxHeight, rep.Height)
		if t.FrameRate != "" {
			rep.FrameRate = mpd.FrameRateType(t.FrameRate)
			num, den, _ := parseFrameRate(t.FrameRate) // checked by validate
			if maxDen == 0 || num*maxDen > maxNum*den {
				maxNum, maxDen = num, den
				as.MaxFrameRate = t.FrameRate
			}
		}
		as.Representations = append(as.Representations, rep)
	}
	return as, nil
}

func audioSet(id uint32, tracks []*Track) (*mpd.AdaptationSetType, error) {
	as := mpd.NewAdaptationSetWithParams("audio", mpd.MIME_TYPE_AUDIO_MP4, true, 1)
	as.Id = mpd.Ptr(id)
	as.Lang = tracks[0].Language
	for _, t := range tracks {
		rep, err := representation(t)
		if err != nil {
			return nil, err
		}
		rep.AudioSamplingRate = mpd.Ptr(mpd.UIntVectorType(fmt.Sprint(t.SampleRate)))
		rep.AudioChannelConfigurations = []*mpd.DescriptorType{
			mpd.NewDescriptor(audioChannelScheme, fmt.Sprint(t.Channels), ""),
		}
		as.Representations = append(as.Representations, rep)
	}
	return as, nil
}

// byLanguage groups audio tracks by language, in the order languages first appear:
// Representations of one AdaptationSet must be interchangeable, and two languages are not.
func byLanguage(tracks []Track) [][]*Track {
	var groups [][]*Track
	index := make(map[string]int)
	for i := range tracks {
		t := &tracks[i]
		k, ok := index[t.Language]
		if !ok {
			k = len(groups)
			index[t.Language] = k
			groups = append(groups, nil)
		}
		groups[k] = append(groups[k], t)
	}
	return groups
}

// representation builds what video and audio Representations share.
func representation(t *Track) (*mpd.RepresentationType, error) {
	bw, err := toUint32(bandwidth(t), "bandwidth")
	if err != nil {
		return nil, fmt.Errorf("track %q: %w", t.Name, err)
	}
	start := t.Segments[0].Number
	if start > 1<<32-1 {
		return nil, fmt.Errorf("track %q: segment number %d does not fit in startNumber: %w", t.Name, start, ErrInvalid)
	}
	rep := mpd.NewRepresentation()
	rep.Id = t.Name
	rep.Bandwidth = bw
	rep.Codecs = t.Codecs
	st := mpd.NewSegmentTemplate()
	st.Initialization = path.Join(t.Name, InitName)
	st.Media = path.Join(t.Name, "seg_$Number$.m4s")
	st.Timescale = mpd.Ptr(t.Timescale)
	st.StartNumber = mpd.Ptr(uint32(start))
	segs := t.Segments
	if first := segs[0]; first.PeriodStart > 0 {
		// A later run: its timeline is in the file's own media time, and the offset maps
		// it onto the Period: MediaTime - PTO = Start - PeriodStart.
		runStart := uint64(first.PeriodStart) * uint64(t.Timescale) / uint64(time.Second)
		if first.Start < runStart || first.MediaTime < first.Start-runStart {
			return nil, fmt.Errorf("track %q: segment %d is before its period: %w", t.Name, first.Number, ErrInvalid)
		}
		st.PresentationTimeOffset = mpd.Ptr(first.MediaTime - (first.Start - runStart))
		segs = make([]Segment, len(t.Segments))
		for i, s := range t.Segments {
			s.Start = s.MediaTime
			segs[i] = s
		}
	}
	st.SegmentTimeline = timeline(segs)
	rep.SegmentTemplate = st
	return rep, nil
}

// timeline lists segments as S elements: t on the first one and wherever a segment does
// not start where the one before ended (a gap or an overlap), and r for each following
// segment of the same duration that starts where the one before ended.
func timeline(segs []Segment) *mpd.SegmentTimelineType {
	tl := mpd.NewSegmentTimeline()
	var cur *mpd.S
	var next uint64 // where the segment after cur's last one should start
	for i, s := range segs {
		switch {
		case i > 0 && s.Start == next && s.Duration == cur.D:
			cur.R++
		case i > 0 && s.Start == next:
			cur = &mpd.S{D: s.Duration}
			tl.S = append(tl.S, cur)
		default:
			cur = &mpd.S{T: mpd.Ptr(s.Start), D: s.Duration}
			tl.S = append(tl.S, cur)
		}
		next = s.Start + s.Duration
	}
	return tl
}

// toDuration converts a time in timescale units to a time.Duration, without overflow
// for any time within time.Duration's range.
func toDuration(v uint64, timescale uint32) time.Duration {
	ts := uint64(timescale)
	q, r := v/ts, v%ts
	return time.Duration(q)*time.Second + time.Duration(r*uint64(time.Second)/ts)
}

func durPtr(d time.Duration) *mpd.Duration {
	v := mpd.Duration(d)
	return &v
}
