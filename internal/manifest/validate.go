package manifest

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Errors wrapped by the render functions, so callers can tell bad input from a
// presentation that is not ready yet.
var (
	// ErrInvalid is wrapped when the Presentation breaks a rule a manifest depends on.
	ErrInvalid = errors.New("invalid presentation")
	// ErrNoSegments is wrapped when a track to be listed has no segment yet.
	ErrNoSegments = errors.New("track has no segments")
)

// dateTimeLayout is ISO 8601 / xs:dateTime in UTC with exactly three decimals, used for
// EXT-X-PROGRAM-DATE-TIME and for the MPD's times.
const dateTimeLayout = "2006-01-02T15:04:05.000Z07:00"

func formatTime(t time.Time) string { return string(appendTime(nil, t)) }

// appendTime appends t as formatTime writes it. Layout-driven formatting was half the
// cost of rendering a media playlist, which carries a date-time per segment.
func appendTime(b []byte, t time.Time) []byte {
	t = t.UTC()
	year, month, day := t.Date()
	if year < 0 || year > 9999 {
		return t.AppendFormat(b, dateTimeLayout)
	}
	hour, minute, sec := t.Clock()
	ms := t.Nanosecond() / int(time.Millisecond)
	b = appendDigits(b, year, 4)
	b = append(b, '-')
	b = appendDigits(b, int(month), 2)
	b = append(b, '-')
	b = appendDigits(b, day, 2)
	b = append(b, 'T')
	b = appendDigits(b, hour, 2)
	b = append(b, ':')
	b = appendDigits(b, minute, 2)
	b = append(b, ':')
	b = appendDigits(b, sec, 2)
	b = append(b, '.')
	b = appendDigits(b, ms, 3)
	return append(b, 'Z')
}

// appendDigits appends v, which is not negative, as exactly n decimal digits.
func appendDigits(b []byte, v, n int) []byte {
	b = append(b, "0000"[:n]...)
	for i := len(b) - 1; v > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return b
}

// allTracks lists the video tracks, then the audio tracks.
func (p *Presentation) allTracks() []*Track {
	out := make([]*Track, 0, len(p.Video)+len(p.Audio))
	for i := range p.Video {
		out = append(out, &p.Video[i])
	}
	for i := range p.Audio {
		out = append(out, &p.Audio[i])
	}
	return out
}

// cut reports whether p is an on-demand cut of a job's segments (Root).
func (p *Presentation) cut() bool { return p.Root != "" }

// validate checks what every manifest needs from the presentation and its tracks: the
// properties that end up in URIs, attributes and bandwidth figures. It reports every
// problem at once. Segments are checked by validateSegments, only where they are listed.
func (p *Presentation) validate() error {
	if p == nil {
		return fmt.Errorf("nil presentation: %w", ErrInvalid)
	}
	if len(p.Video) == 0 && len(p.Audio) == 0 {
		return fmt.Errorf("no tracks: %w", ErrInvalid)
	}
	var errs []error
	seen := make(map[string]bool)
	for i := range p.Video {
		errs = append(errs, p.Video[i].validate(Video)...)
	}
	for i := range p.Audio {
		errs = append(errs, p.Audio[i].validate(Audio)...)
	}
	for _, t := range p.allTracks() {
		if seen[t.Name] {
			errs = append(errs, fmt.Errorf("track %q: name used twice: %w", t.Name, ErrInvalid))
		}
		seen[t.Name] = true
	}
	names := make(map[[2]string]bool) // group and NAME of each audio track
	for i := range p.Audio {
		a := &p.Audio[i]
		k := [2]string{audioGroupID(a), audioName(a)}
		if names[k] {
			errs = append(errs, fmt.Errorf("track %q: NAME %q is used twice in group %q: %w", a.Name, k[1], k[0], ErrInvalid))
		}
		names[k] = true
	}
	if p.SegmentDuration < 0 || p.Window < 0 {
		errs = append(errs, fmt.Errorf("negative segment duration or window: %w", ErrInvalid))
	}
	if strings.ReplaceAll(p.Root, "../", "") != "" || p.Start < 0 {
		errs = append(errs, fmt.Errorf("cut root %q is not made of ../ or its start %s is negative: %w", p.Root, p.Start, ErrInvalid))
	}
	if p.cut() && (p.Live || !p.Ended) {
		errs = append(errs, fmt.Errorf("a cut is rendered as a finished on-demand presentation: %w", ErrInvalid))
	}
	return errors.Join(errs...)
}

// validate checks one track as a member of the kind list it was found in.
func (t *Track) validate(kind Kind) []error {
	var errs []error
	bad := func(msg string) {
		errs = append(errs, fmt.Errorf("track %q: %s: %w", t.Name, msg, ErrInvalid))
	}
	if !validName(t.Name) {
		bad("name must be made of letters, digits, '.', '_' or '-' and not start with '.'")
	}
	if t.Kind != kind {
		bad(fmt.Sprintf("kind %q listed as %s", t.Kind, kind))
	}
	if !validToken(t.Codecs, false) {
		bad(fmt.Sprintf("codecs %q is not one RFC 6381 codec", t.Codecs))
	}
	if t.Timescale == 0 {
		bad("timescale is 0")
	}
	if t.Declared < 0 || t.PeakBandwidth < 0 || t.AverageBandwidth < 0 {
		bad("negative bandwidth")
	}
	if bandwidth(t) == 0 {
		bad("no bandwidth: neither declared nor measured")
	}
	switch kind {
	case Video:
		if t.Width <= 0 || t.Height <= 0 {
			bad(fmt.Sprintf("size %dx%d", t.Width, t.Height))
		}
		if t.FrameRate != "" {
			if _, _, err := parseFrameRate(t.FrameRate); err != nil {
				bad(err.Error())
			}
		}
	case Audio:
		if t.Channels <= 0 {
			bad(fmt.Sprintf("%d channels", t.Channels))
		}
		if t.SampleRate <= 0 {
			bad(fmt.Sprintf("sample rate %d", t.SampleRate))
		}
		if t.Language != "" && !validToken(t.Language, true) {
			bad(fmt.Sprintf("language %q is not a BCP 47 tag", t.Language))
		}
		if t.Label != "" && !validLabel(t.Label) {
			bad(fmt.Sprintf("label %q is not one line of printable text without quotes", t.Label))
		}
		if t.Group != "" && !validName(t.Group) {
			bad(fmt.Sprintf("group %q must be made of letters, digits, '.', '_' or '-'", t.Group))
		}
		if t.SourceTrack < 0 {
			bad(fmt.Sprintf("source track %d", t.SourceTrack))
		}
	}
	return errs
}

// validateSegments checks the listed segments of a track: numbered consecutively (HLS
// and DASH $Number$ both derive a segment's number from its position), each with a
// duration, and starting later than the one before.
func (t *Track) validateSegments() error {
	if len(t.Segments) == 0 {
		return fmt.Errorf("track %q: %w", t.Name, ErrNoSegments)
	}
	for i, s := range t.Segments {
		if s.Duration == 0 {
			return fmt.Errorf("track %q: segment %d has no duration: %w", t.Name, s.Number, ErrInvalid)
		}
		if i == 0 {
			continue
		}
		prev := t.Segments[i-1]
		if s.Number != prev.Number+1 {
			return fmt.Errorf("track %q: segment %d follows segment %d: %w", t.Name, s.Number, prev.Number, ErrInvalid)
		}
		if s.Start <= prev.Start {
			return fmt.Errorf("track %q: segment %d starts at %d, not after segment %d at %d: %w",
				t.Name, s.Number, s.Start, prev.Number, prev.Start, ErrInvalid)
		}
		if s.PeriodStart == prev.PeriodStart && s.Run != prev.Run {
			// A DASH Period names one run's segments and init segment.
			return fmt.Errorf("track %q: segment %d of run %d is in the period of run %d: %w",
				t.Name, s.Number, s.Run, prev.Run, ErrInvalid)
		}
	}
	return nil
}

// validName accepts the folder names the ladder allows, and a little more.
func validName(s string) bool {
	if s == "" || s[0] == '.' {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '_', r == '-', r == '.':
		default:
			return false
		}
	}
	return true
}

// validToken accepts a codec string (letters, digits, '.', '-', '_', '+') or, with
// lang, a BCP 47 tag (letters, digits, '-'): nothing that could break a quoted HLS
// attribute or need escaping in XML.
func validToken(s string, lang bool) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-':
		case !lang && (r == '.' || r == '_' || r == '+'):
		default:
			return false
		}
	}
	return true
}

// validLabel accepts a track label: valid UTF-8, printable, no double quote (it is
// quoted in HLS) and not blank.
func validLabel(s string) bool {
	if !utf8.ValidString(s) || strings.TrimSpace(s) == "" {
		return false
	}
	for _, r := range s {
		if r == '"' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// parseFrameRate parses a DASH frameRate ("30" or "30000/1001").
func parseFrameRate(s string) (num, den uint64, err error) {
	n, d, hasDen := strings.Cut(s, "/")
	num, err = strconv.ParseUint(n, 10, 32)
	if err != nil || num == 0 {
		return 0, 0, fmt.Errorf("frame rate %q is not N or N/D", s)
	}
	den = 1
	if hasDen {
		den, err = strconv.ParseUint(d, 10, 32)
		if err != nil || den == 0 {
			return 0, 0, fmt.Errorf("frame rate %q is not N or N/D", s)
		}
	}
	return num, den, nil
}

// bandwidth is what a track may need at worst: the declared bandwidth while nothing was
// measured, and never less than the peak segment bitrate actually produced.
func bandwidth(t *Track) int64 {
	return max(t.PeakBandwidth, t.Declared)
}

// toUint32 converts a bandwidth or number for a library field that holds 32 bits.
func toUint32(v int64, what string) (uint32, error) {
	if v < 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("%s %d does not fit in 32 bits: %w", what, v, ErrInvalid)
	}
	return uint32(v), nil
}

// millis converts a duration in timescale units to whole milliseconds, rounded half up,
// without overflowing for any uint64 duration.
func millis(d uint64, timescale uint32) uint64 {
	ts := uint64(timescale)
	q, r := d/ts, d%ts
	return q*1000 + (r*1000+ts/2)/ts
}

// roundSeconds rounds a time.Duration to whole seconds, half up.
func roundSeconds(d time.Duration) uint64 {
	if d <= 0 {
		return 0
	}
	return uint64((d + time.Second/2) / time.Second)
}
