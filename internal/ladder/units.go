package ladder

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// maxBitrate bounds every rate a ladder may hold (bitrate, maxrate, bufsize),
// far above any real H.264 or AAC stream and far below int64 overflow.
const maxBitrate = 1_000_000_000

var errBitrateSyntax = errors.New("use e.g. 5000k, 1.5M or 800000")

// parseBitrate reads a bit rate written as a decimal number with an optional
// k (x1000) or M (x1000000) suffix, either case: "5000k", "5M", "1.5M",
// "800000". The result is in bits per second, whole, > 0 and <= maxBitrate.
func parseBitrate(s string) (int64, error) {
	num, mult := s, int64(1)
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			num, mult = s[:n-1], 1_000
		case 'm', 'M':
			num, mult = s[:n-1], 1_000_000
		}
	}
	whole, frac, hasDot := strings.Cut(num, ".")
	if !isDigits(whole) || (hasDot && !isDigits(frac)) {
		return 0, fmt.Errorf("%q is not a bitrate: %w", s, errBitrateSyntax)
	}
	// Ten digits before the point and six after are more than any valid
	// value needs, and keep the arithmetic below far from overflow.
	if len(strings.TrimLeft(whole, "0")) > 10 {
		return 0, fmt.Errorf("%s is too large: at most %s", s, formatBitrate(maxBitrate))
	}
	if len(frac) > 6 {
		return 0, fmt.Errorf("%s has too many decimals", s)
	}
	w, err := strconv.ParseInt(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a bitrate: %w", s, errBitrateSyntax)
	}
	if w > maxBitrate/mult {
		return 0, fmt.Errorf("%s is too large: at most %s", s, formatBitrate(maxBitrate))
	}
	v := w * mult
	if hasDot {
		f, err := strconv.ParseInt(frac, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a bitrate: %w", s, errBitrateSyntax)
		}
		den := int64(1)
		for range len(frac) {
			den *= 10
		}
		if f*mult%den != 0 {
			return 0, fmt.Errorf("%s is not a whole number of bits per second", s)
		}
		v += f * mult / den
	}
	if v <= 0 {
		return 0, fmt.Errorf("%s must be greater than zero", s)
	}
	if v > maxBitrate {
		return 0, fmt.Errorf("%s is too large: at most %s", s, formatBitrate(maxBitrate))
	}
	return v, nil
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// formatBitrate writes a bit rate the way ladders usually do: "5000k" when it
// is a whole number of kilobits, else the plain number.
func formatBitrate(v int64) string {
	if v != 0 && v%1000 == 0 {
		return strconv.FormatInt(v/1000, 10) + "k"
	}
	return strconv.FormatInt(v, 10)
}

// ParseBitrate reads a bit rate as ladder files write it ("5000k", "1.5M",
// "800000"), for settings outside ladders such as the daemon's limits.
func ParseBitrate(s string) (int64, error) { return parseBitrate(s) }

// FormatBitrate writes a bit rate as ladder files do: "5000k", or the plain number.
func FormatBitrate(v int64) string { return formatBitrate(v) }

// parseDuration reads a Go duration ("2s", "500ms", "15m", "1h30m"), whole days ("7d") or the
// bare "0". Any other bare number is refused: seconds or minutes would be a
// guess.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	if isNumber(s) {
		return 0, fmt.Errorf("%s has no unit: use a unit, e.g. 2s", s)
	}
	if days, ok := strings.CutSuffix(s, "d"); ok && isDigits(days) {
		// Days, which Go's durations lack: a recording's retention (7d).
		n, err := strconv.ParseInt(days, 10, 64)
		if err != nil || n > math.MaxInt64/int64(24*time.Hour) {
			return 0, fmt.Errorf("%q is not a duration: too many days", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration: use e.g. 2s, 500ms or 15m", s)
	}
	return d, nil
}

// isNumber reports whether s is a plain decimal number such as "2", "-1" or "1.5".
func isNumber(s string) bool {
	s = strings.TrimPrefix(strings.TrimPrefix(s, "-"), "+")
	whole, frac, hasDot := strings.Cut(s, ".")
	if hasDot {
		return (whole == "" || isDigits(whole)) && (frac == "" || isDigits(frac)) && whole+frac != ""
	}
	return isDigits(whole)
}
