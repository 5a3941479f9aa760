package source

import (
	"errors"
	"strings"
	"testing"
)

// TestParseTransport checks ?transport= on RTSP sources: the transport it
// chooses, the URL ffmpeg gets without it (the rest kept as written), what is
// shown, and the refusals, each a 400 (ErrInvalid).
func TestParseTransport(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		url       string // what ffmpeg opens
		transport Transport
		display   string
		wantErr   string
	}{
		{name: "none is auto", in: "rtsp://cam.lan/s", url: "rtsp://cam.lan/s", transport: TransportAuto, display: "rtsp://cam.lan/s"},
		{name: "udp", in: "rtsp://cam.lan/s?transport=udp", url: "rtsp://cam.lan/s", transport: TransportUDP, display: "rtsp://cam.lan/s?transport=udp"},
		{name: "tcp", in: "rtsp://cam.lan/s?transport=tcp", url: "rtsp://cam.lan/s", transport: TransportTCP},
		{name: "auto", in: "rtsp://cam.lan/s?transport=auto", url: "rtsp://cam.lan/s", transport: TransportAuto},
		{name: "rtsps", in: "rtsps://cam.lan/s?transport=tcp", url: "rtsps://cam.lan/s", transport: TransportTCP},
		{name: "upper-case scheme", in: "RTSP://cam.lan/s?transport=udp", url: "RTSP://cam.lan/s", transport: TransportUDP, display: "rtsp://cam.lan/s?transport=udp"},
		{
			name: "the camera's own query kept as written, in order",
			in:   "rtsp://cam.lan/cam/realmonitor?channel=1&transport=udp&subtype=0&name=a%20b",
			url:  "rtsp://cam.lan/cam/realmonitor?channel=1&subtype=0&name=a%20b", transport: TransportUDP,
			display: "rtsp://cam.lan/cam/realmonitor?channel=xxxxx&name=xxxxx&subtype=xxxxx&transport=udp",
		},
		{name: "escaped key", in: "rtsp://cam.lan/s?%74ransport=udp", url: "rtsp://cam.lan/s", transport: TransportUDP},
		{name: "fragment kept", in: "rtsp://cam.lan/s?transport=udp#x", url: "rtsp://cam.lan/s#x", transport: TransportUDP},
		{name: "a ? in the fragment is no query", in: "rtsp://cam.lan/s#a?transport=bogus", url: "rtsp://cam.lan/s#a?transport=bogus", transport: TransportAuto},
		{name: "password still masked", in: "rtsp://admin:hunter2@cam.lan/s?transport=udp", url: "rtsp://admin:hunter2@cam.lan/s", transport: TransportUDP, display: "rtsp://admin:xxxxx@cam.lan/s?transport=udp"},
		{name: "other keys are not ours", in: "rtsp://cam.lan/s?transports=x", url: "rtsp://cam.lan/s?transports=x", transport: TransportAuto},
		{name: "bad value", in: "rtsp://cam.lan/s?transport=sctp", wantErr: "?transport= must be tcp, udp or auto"},
		{name: "upper-case value", in: "rtsp://cam.lan/s?transport=TCP", wantErr: "must be tcp, udp or auto (lower case)"},
		{name: "empty value", in: "rtsp://cam.lan/s?transport=", wantErr: "must be tcp, udp or auto"},
		{name: "no value", in: "rtsp://cam.lan/s?transport", wantErr: "must be tcp, udp or auto"},
		{name: "twice", in: "rtsp://cam.lan/s?transport=tcp&transport=udp", wantErr: "given 2 times"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Parse(tc.in, "")
			if tc.wantErr != "" {
				if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Parse(%q) = %+v, %v; want ErrInvalid containing %q", tc.in, got, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Parse(%q): %v", tc.in, err)
			}
			if got.URL != tc.url || got.Transport != tc.transport || got.Kind != RTSP {
				t.Errorf("Parse(%q) = URL %q transport %q kind %q, want %q %q rtsp", tc.in, got.URL, got.Transport, got.Kind, tc.url, tc.transport)
			}
			if tc.display != "" && got.Display != tc.display {
				t.Errorf("Display = %q, want %q", got.Display, tc.display)
			}
		})
	}
}

// TestTransportOnlyRTSP: the parameter is transcoderd's on RTSP URLs only; on
// other schemes it belongs to the server and stays, masked like any query value.
func TestTransportOnlyRTSP(t *testing.T) {
	for _, in := range []string{"https://origin.example/live.m3u8?transport=udp", "srt://h:9000?transport=udp", "rtmp://h/live?transport=bogus"} {
		got, err := Parse(in, "")
		if err != nil {
			t.Fatalf("Parse(%q): %v", in, err)
		}
		if got.URL != in || got.Transport != "" {
			t.Errorf("Parse(%q) = URL %q transport %q, want the URL as given and no transport", in, got.URL, got.Transport)
		}
		if strings.Contains(got.Display, "udp") || strings.Contains(got.Display, "bogus") {
			t.Errorf("Display %q shows a query value of a non-RTSP source", got.Display)
		}
	}
}

// TestRedactTransport: ?transport= of an RTSP URL is shown when it is a
// transport, masked when it is anything else; Redactor leaves ffmpeg's "tcp"
// and "udp" alone.
func TestRedactTransport(t *testing.T) {
	for in, want := range map[string]string{
		"rtsp://h/s?transport=udp":             "rtsp://h/s?transport=udp",
		"rtsps://h/s?transport=tcp&token=abc":  "rtsps://h/s?token=xxxxx&transport=tcp",
		"rtsp://h/s?transport=s3cret":          "rtsp://h/s?transport=xxxxx",
		"rtsp://h/s?transport=tcp&transport=x": "rtsp://h/s?transport=xxxxx",
		"http://h/s?transport=udp":             "http://h/s?transport=xxxxx",
	} {
		if got := Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	mask := Redactor("rtsp://u:hunter2@h/s?transport=udp&token=sekrit")
	line := "[rtsp @ 0x1] method SETUP failed: 461 (udp, tcp) token sekrit pw hunter2"
	if got, want := mask(line), "[rtsp @ 0x1] method SETUP failed: 461 (udp, tcp) token xxxxx pw xxxxx"; got != want {
		t.Errorf("mask(%q) = %q, want %q", line, got, want)
	}
}
