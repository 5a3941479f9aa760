package supervise

import (
	"bytes"
	"strings"
	"sync"
)

// MaxLineLength caps each line a Tail keeps, in bytes; longer lines are cut and
// end in "…".
const MaxLineLength = 1024

// Tail is an io.Writer that keeps the last lines written to it, for ffmpeg's
// stderr: the last line usually says why ffmpeg stopped. Lines end at '\n' or
// '\r'; empty lines are dropped. It is safe for concurrent use.
type Tail struct {
	mu        sync.Mutex
	n         int
	lines     []string
	partial   []byte // the line being written, up to MaxLineLength bytes
	truncated bool   // the line being written was longer than MaxLineLength
	redact    func(string) string
}

// NewTail returns a Tail that keeps the last n lines (at least one).
func NewTail(n int) *Tail {
	return &Tail{n: max(n, 1)}
}

// SetRedactor makes Lines and Last pass every line through f (a source's redactor),
// so that a source's password printed by ffmpeg is never shown. Call it before use.
func (t *Tail) SetRedactor(f func(string) string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.redact = f
}

// Write implements io.Writer. It never fails.
func (t *Tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexAny(p, "\r\n")
		chunk := p
		if i >= 0 {
			chunk = p[:i]
		}
		room := MaxLineLength - len(t.partial)
		if len(chunk) > room {
			chunk = chunk[:room]
			t.truncated = true
		}
		t.partial = append(t.partial, chunk...)
		if i < 0 {
			break
		}
		t.endLine()
		p = p[i+1:]
	}
	return n, nil
}

// endLine moves the line being written to the kept lines.
func (t *Tail) endLine() {
	if line := t.current(); line != "" {
		t.lines = append(t.lines, line)
		if len(t.lines) > t.n {
			copy(t.lines, t.lines[1:])
			t.lines = t.lines[:t.n]
		}
	}
	t.partial = t.partial[:0]
	t.truncated = false
}

// current returns the line being written, cut and marked if it was too long.
func (t *Tail) current() string {
	if !t.truncated {
		return string(t.partial)
	}
	// The cut may have split a UTF-8 sequence.
	return strings.ToValidUTF8(string(t.partial), "") + "…"
}

// Lines returns the kept lines, oldest first, with a last line that has no
// newline yet (ffmpeg killed mid-line) counted as a line.
func (t *Tail) Lines() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]string, 0, len(t.lines)+1)
	out = append(out, t.lines...)
	if line := t.current(); line != "" {
		out = append(out, line)
	}
	if len(out) > t.n {
		out = out[len(out)-t.n:]
	}
	if t.redact != nil {
		for i := range out {
			out[i] = t.redact(out[i])
		}
	}
	return out
}

// Last returns the last line, or "" when nothing was written.
func (t *Tail) Last() string {
	lines := t.Lines()
	if len(lines) == 0 {
		return ""
	}
	return lines[len(lines)-1]
}
