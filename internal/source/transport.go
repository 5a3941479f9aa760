package source

import (
	"net/url"
	"strings"
)

// Transport is how an RTSP source's media (RTP) reaches ffmpeg: interleaved in the
// RTSP session's TCP connection, or as UDP datagrams to local ports that ffmpeg
// opens for each stream.
type Transport string

// RTSP transports.
const (
	// TransportAuto tries TCP first and pulls over UDP when the server refuses TCP
	// (461 Unsupported Transport, as VLC's server and many cameras answer). TCP
	// comes first because it crosses NAT and firewalls and loses nothing; UDP
	// through them is lossy or blocked.
	TransportAuto Transport = "auto"
	// TransportTCP pulls RTP interleaved in the RTSP connection, and only so.
	TransportTCP Transport = "tcp"
	// TransportUDP pulls RTP over UDP, and only so.
	TransportUDP Transport = "udp"
)

// TransportParam is the query parameter of an rtsp:// or rtsps:// source that
// chooses its transport: ?transport=tcp, udp or auto (the default). It is
// transcoderd's, not the server's: Parse takes it out of the URL that ffmpeg opens.
// Its value is not a secret: Redact shows it.
const TransportParam = "transport"

// transports are the values TransportParam takes.
var transports = map[string]Transport{"auto": TransportAuto, "tcp": TransportTCP, "udp": TransportUDP}

// takeTransport removes every TransportParam pair from the query of raw, an RTSP
// URL that parsed as u, and returns the URL without them and the transport they
// chose: TransportAuto when there is none. The rest of the URL is kept as written,
// in its order and its escapes: a camera may be particular about its own query.
func takeTransport(raw string, u *url.URL) (string, Transport, error) {
	var keep, values []string
	for _, pair := range strings.Split(u.RawQuery, "&") {
		k, v, _ := strings.Cut(pair, "=")
		if key, err := url.QueryUnescape(k); err != nil || key != TransportParam {
			keep = append(keep, pair)
			continue
		}
		values = append(values, v)
	}
	if len(values) == 0 {
		return raw, TransportAuto, nil
	}
	if len(values) > 1 {
		return "", "", invalid("?%s= is given %d times: give it once, as tcp, udp or auto", TransportParam, len(values))
	}
	t, ok := transports[values[0]]
	if !ok {
		return "", "", invalid("?%s= must be tcp, udp or auto (lower case)", TransportParam)
	}
	// raw is <before>?<RawQuery>[#<fragment>], RawQuery as given (url.Parse keeps it).
	before, rest, _ := strings.Cut(raw, "?")
	frag := strings.TrimPrefix(rest, u.RawQuery)
	stripped := before
	if len(keep) > 0 {
		stripped += "?" + strings.Join(keep, "&")
	}
	return stripped + frag, t, nil
}

// shownTransport reports whether Redact may show the value of query key k of a URL
// with the given scheme: TransportParam of an RTSP URL, with a single value that
// is one of the transports (anything else may be what the user meant as a secret).
func shownTransport(scheme, k string, values []string) bool {
	if schemes[strings.ToLower(scheme)] != RTSP || k != TransportParam || len(values) != 1 {
		return false
	}
	_, ok := transports[values[0]]
	return ok
}
