package source

// Kind is how a source is reached. Parse decides it from the URL scheme; the ffmpeg
// package maps it to input options and a protocol whitelist.
type Kind string

// Source kinds.
const (
	// RTMP pulls rtmp:// or rtmps://.
	RTMP Kind = "rtmp"
	// RTSP pulls rtsp:// or rtsps://, RTP over TCP or UDP (see Transport).
	RTSP Kind = "rtsp"
	// SRT pulls srt://. libsrt takes its options from the URL query, not from
	// command-line options, so timeouts go there, in microseconds:
	// srt://host:9000?mode=caller&timeout=10000000.
	SRT Kind = "srt"
	// HTTP pulls an HLS playlist over http:// or https://.
	HTTP Kind = "http"
	// File reads a local file, as fast as ffmpeg can (no -re).
	File Kind = "file"
	// Push is fed by an encoder that publishes to the daemon's ingest hub
	// (internal/ingest): ffmpeg reads MPEG-TS from a pipe the hub writes (PushInput).
	Push Kind = "push"
)

// PushInput is what ffmpeg opens for a push source: the pipe the daemon's ingest hub
// writes, inherited as descriptor 3.
const PushInput = "pipe:3"

// pushSources are the push sources a request may name, with the protocols each lets a
// publisher use.
var pushSources = map[string][]string{
	"push":      {"rtmp", "srt"},
	"push:rtmp": {"rtmp"},
	"push:srt":  {"srt"},
}

// PushProtocols returns the protocols a push source ("push", "push:rtmp", "push:srt")
// lets a publisher use; nil for any other source.
func PushProtocols(raw string) []string { return pushSources[raw] }
