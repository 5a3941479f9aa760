package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/Eyevinn/hls-m3u8/m3u8"
)

// hlsVersion is the EXT-X-VERSION of every playlist we write. Media playlists need 6 or
// more for EXT-X-MAP without EXT-X-I-FRAMES-ONLY (RFC 8216bis section 8); 7 is the usual
// version of fMP4 HLS and removes only EXT-X-ALLOW-CACHE, which we never write. The
// multivariant playlist uses nothing that needs more than 4 (hls-m3u8 would say 4 because
// of EXT-X-MEDIA), but it declares the same version: a client must support 7 to play the
// media playlists it points to anyway, and one version across the presentation leaves
// nothing to reconcile.
const hlsVersion = 7

// audioGroup is the GROUP-ID of the audio renditions whose Track.Group is empty.
const audioGroup = "audio"

// RenderMedia renders the HLS media playlist (index.m3u8) of track t of presentation p.
//
// It is written by hand rather than with hls-m3u8's MediaPlaylist, because that type does
// not express what we need cleanly: it keeps segments in a ring buffer sized up front and
// sheds them with Slide (which panics after wrapping in v0.6.5), it writes
// EXT-X-PROGRAM-DATE-TIME with time.RFC3339Nano (variable precision, not fixed
// milliseconds), and it computes EXT-X-TARGETDURATION per playlist, while ours must be the
// same in every playlist of the presentation. The output is parsed back with hls-m3u8's
// decoder in the tests.
//
// Tags: EXT-X-VERSION 7, EXT-X-TARGETDURATION (see targetDuration), EXT-X-MEDIA-SEQUENCE
// (the first listed segment's number), EXT-X-DISCONTINUITY-SEQUENCE when non-zero,
// EXT-X-PLAYLIST-TYPE (none for a live sliding window, EVENT for a live event or a VOD
// still being transcoded, VOD for a finished VOD), EXT-X-INDEPENDENT-SEGMENTS,
// then per segment EXT-X-DISCONTINUITY (except on the first listed segment, whose
// discontinuity the caller counts in the track's DiscontinuitySequence), EXT-X-MAP with
// the init segment of the segment's run on the first segment and wherever the run changes,
// EXT-X-PROGRAM-DATE-TIME on every segment whose wall-clock time is known, EXTINF with
// millisecond precision and the segment URI; EXT-X-ENDLIST once ended.
//
// Program date-time goes on every segment rather than only on the first and after
// discontinuities: each value comes from that segment's own start, so the millisecond
// rounding of EXTINF never adds up into clock drift, and a player may join anywhere in
// the window and still map segments to wall-clock time. It costs one line per segment.
func RenderMedia(p *Presentation, t *Track) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("render media playlist: %w", err)
	}
	if t == nil {
		return nil, fmt.Errorf("render media playlist: nil track: %w", ErrInvalid)
	}
	if t.Kind != Video && t.Kind != Audio {
		return nil, fmt.Errorf("render media playlist: track %q: kind %q: %w", t.Name, t.Kind, ErrInvalid)
	}
	if err := errors.Join(t.validate(t.Kind)...); err != nil {
		return nil, fmt.Errorf("render media playlist: %w", err)
	}
	if err := t.validateSegments(); err != nil {
		return nil, fmt.Errorf("render media playlist: %w", err)
	}
	target, err := targetDuration(p, t)
	if err != nil {
		return nil, fmt.Errorf("render media playlist: %w", err)
	}

	// Appended, not printed: the playlist of every track is rendered after each segment,
	// and fmt took 69 allocations a rendering of a 30-segment window.
	b := make([]byte, 0, 256+100*len(t.Segments))
	b = append(b, "#EXTM3U\n#EXT-X-VERSION:"...)
	b = strconv.AppendInt(b, hlsVersion, 10)
	b = append(b, "\n#EXT-X-TARGETDURATION:"...)
	b = strconv.AppendUint(b, target, 10)
	b = append(b, "\n#EXT-X-MEDIA-SEQUENCE:"...)
	b = strconv.AppendUint(b, t.Segments[0].Number, 10)
	b = append(b, '\n')
	if t.DiscontinuitySequence != 0 {
		b = append(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"...)
		b = strconv.AppendUint(b, t.DiscontinuitySequence, 10)
		b = append(b, '\n')
	}
	switch {
	case p.Live && p.Window > 0:
		// A sliding window: no playlist type, segments leave from the front.
	case p.Live || !p.Ended:
		// A live event keeps everything; a VOD still being transcoded only grows.
		b = append(b, "#EXT-X-PLAYLIST-TYPE:EVENT\n"...)
	default:
		b = append(b, "#EXT-X-PLAYLIST-TYPE:VOD\n"...)
	}
	b = append(b, "#EXT-X-INDEPENDENT-SEGMENTS\n"...)
	// A cut's media playlist is in <cut>/<track>/: its files are the job's, in the
	// job folder's <track>/.
	var dir []byte
	if p.cut() {
		dir = append(append(append([]byte("../"), p.Root...), t.Name...), '/')
	}
	for i, s := range t.Segments {
		if s.Discontinuity && i > 0 {
			b = append(b, "#EXT-X-DISCONTINUITY\n"...)
		}
		if i == 0 || s.Run != t.Segments[i-1].Run {
			b = append(b, "#EXT-X-MAP:URI=\""...)
			b = append(b, dir...)
			b = append(b, InitName(s.Run)...)
			b = append(b, "\"\n"...)
		}
		if !s.ProgramDate.IsZero() {
			b = append(b, "#EXT-X-PROGRAM-DATE-TIME:"...)
			b = appendTime(b, s.ProgramDate)
			b = append(b, '\n')
		}
		ms := millis(s.Duration, t.Timescale)
		b = append(b, "#EXTINF:"...)
		b = strconv.AppendUint(b, ms/1000, 10)
		b = append(b, '.', byte('0'+ms%1000/100), byte('0'+ms%100/10), byte('0'+ms%10), ',', '\n')
		b = append(b, dir...)
		b = appendSegmentName(b, s.Run, s.Number)
		b = append(b, '\n')
	}
	if p.Ended {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	}
	return b, nil
}

// targetDuration is EXT-X-TARGETDURATION for every playlist of p: the largest EXTINF of
// any listed segment of any track (and of extra, which may not be one of p's tracks),
// rounded to the nearest whole second, and never less than the ladder's segment duration
// rounded the same way. That is the rule of RFC 8216 (section 4.3.3.1) for the versions
// 6 and later that we declare: each EXTINF, rounded to the nearest integer, must not
// exceed the target duration. The EXTINF compared is the value written, in milliseconds.
//
// Rounding up instead would be valid too, but costly: AAC frames never fill a 1 s
// segment exactly, so a 1 s ladder has audio segments of 1.003 s or so, and rounding up
// would declare 2 s. Players size their live delay from the target duration (hls.js and
// Shaka hold back 3 target durations), so that doubles the latency of every variant.
func targetDuration(p *Presentation, extra *Track) (uint64, error) {
	var maxMS uint64
	tracks := p.allTracks()
	if extra != nil {
		tracks = append(tracks, extra)
	}
	for _, t := range tracks {
		if t.Timescale == 0 {
			return 0, fmt.Errorf("track %q: timescale is 0: %w", t.Name, ErrInvalid)
		}
		for _, s := range t.Segments {
			maxMS = max(maxMS, millis(s.Duration, t.Timescale))
		}
	}
	target := (maxMS + 500) / 1000
	return max(target, roundSeconds(p.SegmentDuration), 1), nil
}

// mediaURI is the URI of a track's media playlist relative to the job folder.
func mediaURI(t *Track) string { return path.Join(t.Name, MediaName) }

// RenderMaster renders the HLS multivariant playlist (master.m3u8) with hls-m3u8's
// MasterPlaylist.
//
// Audio tracks become EXT-X-MEDIA renditions: one rendition group per Track.Group
// ("audio" when empty), in the order the groups first appear, holding one rendition
// per track, NAME its Label (else its Name), LANGUAGE its Language, the group's first
// track DEFAULT=YES and all AUTOSELECT=YES. (hls-m3u8 writes them sorted by group and
// NAME; players go by DEFAULT, not by order.) Each video track becomes an
// EXT-X-STREAM-INF, in the order of p.Video (highest first), once per audio group
// (RFC 8216 4.3.4.1.1 and Apple's authoring examples: a group is one encoding of every
// language, so each video rendition is offered with each), whose BANDWIDTH is the
// largest sum of peak bitrates of any playable combination: the video track's plus
// the highest audio track's of the group, each the larger of what was measured and
// what was declared, so it is never below the peak segment bitrate actually produced.
// AVERAGE-BANDWIDTH is the same sum of measured averages and is left out until every
// track involved was measured. With AudioOnly, or when there is no video at all, an
// audio-only variant per group comes last.
func RenderMaster(p *Presentation) ([]byte, error) {
	if err := p.validate(); err != nil {
		return nil, fmt.Errorf("render master playlist: %w", err)
	}
	groups := masterGroups(p)

	mp := m3u8.NewMasterPlaylist()
	mp.SetIndependentSegments(true)
	for i := range p.Video {
		v := &p.Video[i]
		if v.Withdrawn {
			continue
		}
		for _, g := range groups {
			params, err := variantParams(bandwidth(v)+g.peak, averageOf(v.AverageBandwidth, g.avg, g.measured),
				strings.Join(append([]string{v.Codecs}, g.codecs...), ","), g.id, g.alts)
			if err != nil {
				return nil, fmt.Errorf("render master playlist: track %q: %w", v.Name, err)
			}
			params.Resolution = fmt.Sprintf("%dx%d", v.Width, v.Height)
			if v.FrameRate != "" {
				num, den, _ := parseFrameRate(v.FrameRate) // checked by validate
				params.FrameRate = float64(num) / float64(den)
			}
			mp.Append(mediaURI(v), nil, params)
		}
	}
	if len(p.Audio) > 0 && (p.AudioOnly || len(p.Video) == 0) {
		for _, g := range groups {
			avg := int64(0)
			if g.measured {
				avg = g.avg
			}
			params, err := variantParams(g.peak, avg, strings.Join(g.codecs, ","), g.id, g.alts)
			if err != nil {
				return nil, fmt.Errorf("render master playlist: audio-only variant: %w", err)
			}
			mp.Append(mediaURI(g.first), nil, params)
		}
	}
	// The library raises the version to 4 when a variant has alternatives; we declare the
	// presentation-wide version instead (see hlsVersion). It needs no more than that.
	if v, reason := mp.CalcMinVersion(); v > hlsVersion {
		return nil, fmt.Errorf("render master playlist: needs version %d (%s): %w", v, reason, ErrInvalid)
	}
	mp.SetVersion(hlsVersion)
	return bytes.Clone(mp.Encode().Bytes()), nil
}

// masterGroup is one audio rendition group of the master playlist and the figures its
// variants add to the video's.
type masterGroup struct {
	id       string // GROUP-ID; "" for the one pseudo-group of a presentation without audio
	alts     []*m3u8.Alternative
	first    *Track // the group's first track: the URI of its audio-only variant
	peak     int64  // the largest bandwidth of its tracks
	avg      int64  // the largest measured average of its tracks
	measured bool   // every track of the group has a measured average
	codecs   []string
}

// masterGroups returns the audio groups of p in the order they first appear, or one
// empty group when p has no audio, so that each video variant is written once.
func masterGroups(p *Presentation) []*masterGroup {
	if len(p.Audio) == 0 {
		return []*masterGroup{{measured: true}}
	}
	var groups []*masterGroup
	byID := map[string]*masterGroup{}
	for i := range p.Audio {
		a := &p.Audio[i]
		id := audioGroupID(a)
		g := byID[id]
		if g == nil {
			g = &masterGroup{id: id, first: a, measured: true}
			byID[id] = g
			groups = append(groups, g)
		}
		g.alts = append(g.alts, &m3u8.Alternative{
			Type:       "AUDIO",
			GroupId:    id,
			Name:       audioName(a),
			Language:   a.Language,
			Default:    g.first == a,
			Autoselect: true,
			Channels:   &m3u8.Channels{Amount: a.Channels},
			URI:        mediaURI(a),
		})
		g.peak = max(g.peak, bandwidth(a))
		g.avg = max(g.avg, a.AverageBandwidth)
		g.measured = g.measured && a.AverageBandwidth > 0
		g.codecs = appendUnique(g.codecs, a.Codecs)
	}
	return groups
}

// audioGroupID is the GROUP-ID of an audio track.
func audioGroupID(a *Track) string {
	if a.Group != "" {
		return a.Group
	}
	return audioGroup
}

// audioName is the NAME of an audio track.
func audioName(a *Track) string {
	if a.Label != "" {
		return a.Label
	}
	return a.Name
}

// SameMaster reports whether RenderMaster renders a and b alike: whether they differ
// only in what the master playlist does not show (segments, times, the discontinuity
// sequence). A live job, which renders with every segment, renders the master only when
// this reports a change: its figures move far less often than its segments come.
func SameMaster(a, b *Presentation) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.AudioOnly != b.AudioOnly || len(a.Video) != len(b.Video) || len(a.Audio) != len(b.Audio) || a.Root != b.Root || a.Start != b.Start ||
		a.SegmentDuration < 0 != (b.SegmentDuration < 0) || a.Window < 0 != (b.Window < 0) { // validate's checks
		return false
	}
	for i := range a.Video {
		if !sameOutline(&a.Video[i], &b.Video[i]) {
			return false
		}
	}
	for i := range a.Audio {
		if !sameOutline(&a.Audio[i], &b.Audio[i]) {
			return false
		}
	}
	return true
}

// sameOutline compares every field of two tracks but their segments and discontinuity
// sequence, and SourceTrack, which only the MPD shows (TestSameMaster checks that no
// field is forgotten).
func sameOutline(a, b *Track) bool {
	return a.Name == b.Name && a.Kind == b.Kind && a.Codecs == b.Codecs && a.Timescale == b.Timescale &&
		a.Width == b.Width && a.Height == b.Height && a.FrameRate == b.FrameRate &&
		a.Channels == b.Channels && a.SampleRate == b.SampleRate && a.Language == b.Language &&
		a.Label == b.Label && a.Group == b.Group &&
		a.Declared == b.Declared && a.PeakBandwidth == b.PeakBandwidth &&
		a.AverageBandwidth == b.AverageBandwidth && a.Withdrawn == b.Withdrawn
}

// averageOf is a variant's AVERAGE-BANDWIDTH: the video average plus the audio one, or 0
// (left out) unless both were measured.
func averageOf(video, audio int64, audioMeasured bool) int64 {
	if video <= 0 || !audioMeasured {
		return 0
	}
	return video + audio
}

func variantParams(peak, avg int64, codecs, group string, alts []*m3u8.Alternative) (m3u8.VariantParams, error) {
	bw, err := toUint32(peak, "bandwidth")
	if err != nil {
		return m3u8.VariantParams{}, err
	}
	ab, err := toUint32(avg, "average bandwidth")
	if err != nil {
		return m3u8.VariantParams{}, err
	}
	return m3u8.VariantParams{
		Bandwidth:        bw,
		AverageBandwidth: ab,
		Codecs:           codecs,
		Audio:            group,
		Alternatives:     alts,
	}, nil
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
