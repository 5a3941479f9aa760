// Package source decides whether a source string from the API may be handed to ffmpeg,
// what kind of source it is (Kind) and, for RTSP, over which transport (Transport), and
// masks what in it may be a secret before it is shown (Redact, Redactor). It depends on
// the standard library only, so that any package may import it.
//
// Network sources are URLs with an allowed scheme; "push", "push:rtmp" and "push:srt"
// are fed by an encoder publishing to the daemon (Push); files are paths relative to the media
// root that must resolve, after symlinks, to a regular file inside it. Everything else is
// refused with an error that says why, before any process is started.
package source

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"unicode"
)

// ErrInvalid is wrapped by every refusal, so callers can answer 400.
var ErrInvalid = errors.New("invalid source")

// Source is a source that passed validation.
type Source struct {
	// URL is what ffmpeg opens: the URL as given (less an RTSP source's
	// ?transport=, see TransportParam), or the absolute resolved path of a file.
	URL string
	// Display is what the user gave, with what may be a secret masked (see
	// [Redact]); safe to log and return.
	Display string
	Kind    Kind
	// Live is true for every network source: it has no end, and a drop is retried.
	Live bool
	// Transport is an RTSP source's transport, TransportAuto unless the URL chose
	// one (TransportParam); empty for other kinds.
	Transport Transport
}

var schemes = map[string]Kind{
	"rtmp":  RTMP,
	"rtmps": RTMP,
	"rtsp":  RTSP,
	"rtsps": RTSP,
	"srt":   SRT,
	"http":  HTTP,
	"https": HTTP,
}

// MaxLen bounds the length of a source string.
const MaxLen = 4096

// Parse validates raw against the allowed schemes and, for files, against mediaRoot.
func Parse(raw, mediaRoot string) (Source, error) {
	if raw == "" {
		return Source{}, invalid("source is empty")
	}
	if len(raw) > MaxLen {
		return Source{}, invalid("source is longer than %d bytes", MaxLen)
	}
	if strings.HasPrefix(raw, "-") {
		return Source{}, invalid("source must not start with '-'")
	}
	for _, r := range raw {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return Source{}, invalid("source must not contain spaces or control characters")
		}
	}
	if PushProtocols(raw) != nil {
		return Source{URL: PushInput, Display: raw, Kind: Push, Live: true}, nil
	}
	if i := strings.Index(raw, ":"); i > 0 && isScheme(raw[:i]) {
		return parseURL(raw)
	}
	return parseFile(raw, mediaRoot)
}

func parseURL(raw string) (Source, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return Source{}, invalid("cannot parse URL: %v", err)
	}
	scheme := strings.ToLower(u.Scheme)
	kind, ok := schemes[scheme]
	if !ok {
		return Source{}, invalid("scheme %q is not allowed: use rtmp, rtmps, rtsp, rtsps, srt, http, https, or a file path relative to the media root", u.Scheme)
	}
	if u.Host == "" || u.Hostname() == "" {
		return Source{}, invalid("%s URL has no host", scheme)
	}
	src := Source{URL: raw, Display: Redact(raw), Kind: kind, Live: true}
	if kind == RTSP {
		if src.URL, src.Transport, err = takeTransport(raw, u); err != nil {
			return Source{}, err
		}
	}
	return src, nil
}

func parseFile(raw, mediaRoot string) (Source, error) {
	if mediaRoot == "" {
		return Source{}, invalid("file sources are disabled: no media root is set")
	}
	if filepath.IsAbs(raw) {
		return Source{}, invalid("file %q must be a path relative to the media root", raw)
	}
	root, err := filepath.Abs(mediaRoot)
	if err != nil {
		return Source{}, fmt.Errorf("media root: %w", err)
	}
	root, err = filepath.EvalSymlinks(root)
	if err != nil {
		return Source{}, invalid("media root %s is not readable: %v", mediaRoot, err)
	}
	joined := filepath.Join(root, filepath.FromSlash(raw))
	if !inside(root, joined) {
		// Refused before touching the disk, so the answer says nothing of what exists outside.
		return Source{}, invalid("file %q resolves outside the media root", raw)
	}
	resolved, err := filepath.EvalSymlinks(joined)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Source{}, invalid("file %q does not exist in the media root", raw)
		}
		return Source{}, invalid("file %q: %v", raw, err)
	}
	if !inside(root, resolved) {
		return Source{}, invalid("file %q resolves outside the media root", raw)
	}
	fi, err := os.Stat(resolved)
	if err != nil {
		return Source{}, invalid("file %q: %v", raw, err)
	}
	if !fi.Mode().IsRegular() {
		return Source{}, invalid("%q is not a regular file", raw)
	}
	return Source{URL: resolved, Display: raw, Kind: File, Live: false}, nil
}

// inside reports whether path is root or below it; both must be clean and absolute.
func inside(root, path string) bool {
	rel, err := filepath.Rel(root, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// isScheme reports whether s has the syntax of a URL scheme (RFC 3986), so that
// "concat:a|b" or "file:x" are judged as URLs with a refused scheme, not as file names.
func isScheme(s string) bool {
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}
