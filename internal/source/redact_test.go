package source

import (
	"net/url"
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{name: "file path", in: "/media/a:b.mp4", want: "/media/a:b.mp4"},
		{name: "plain url", in: "rtmp://cam.example/live/cam", want: "rtmp://cam.example/live/cam"},
		{name: "password", in: "rtsp://admin:hunter2@10.0.0.9:554/s", want: "rtsp://admin:xxxxx@10.0.0.9:554/s"},
		{name: "query values", in: "srt://h:9000?mode=caller&passphrase=sekrit123", want: "srt://h:9000?mode=xxxxx&passphrase=xxxxx"},
		{name: "fragment", in: "rtmp://:aa!00aa@0#:aa!00aa@", want: "rtmp://:xxxxx@0#xxxxx"},
		{name: "password in the path", in: "rtmp://u:s3cret@h/live/s3cret", want: "rtmp://u:xxxxx@h/live/xxxxx"},
		{name: "password as user name", in: "rtsp://admin:admin@h/s", want: "rtsp://xxxxx:xxxxx@h/s"},
		{name: "escaped password in the path", in: "rtmp://u:a%2Fb@h/x/a%2Fb", want: "rtmp://u:xxxxx@h/x/xxxxx"},
		{name: "password inside the mask", in: "rtmp://u:xx@h/xx", want: "rtmp://u:xxxxx@h/xx"},
		{name: "escaped path kept as given", in: "rtmp://h/live%2Fkey", want: "rtmp://h/live%2Fkey"},
		{name: "replacement makes a new match", in: "rtmp://u:xa@h/xxaa", want: "rtmp://u:xxxxx@h/xxxxxxxxxx"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Redact(tt.in); got != tt.want {
				t.Errorf("Redact(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// TestRedactHidesPassword checks that no form of the password is left anywhere in
// what Redact returns, for sources that repeat it in other parts or other escapes.
func TestRedactHidesPassword(t *testing.T) {
	for _, in := range []string{
		"rtmp://u:x%3F@h/x%3F?",
		"rtmp://u:x%2F@h/x%2F/",
		"rtmp://u:a%2Fb@h/x/a%2fb",
		"rtmp://u:s3cret@h/%733cret",
		"rtsp://a%3Ab:a%3Ab@h/s",
		"rtsp://a%40b:a%40b@h/s",
		"srt://u:a+b@h:9000?a%2Bb=1",
		"rtmp://u:hunter2@h/live#hunter2",
		"rtmp://u:hunter2@hunter2.example/live",
	} {
		u, err := url.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		pw, _ := u.User.Password()
		got := Redact(in)
		for _, form := range []string{pw, url.PathEscape(pw), url.QueryEscape(pw), strings.ToLower(url.PathEscape(pw))} {
			if strings.Contains(got, form) {
				t.Errorf("Redact(%q) = %q shows the password as %q", in, got, form)
			}
		}
	}
}

func TestRedactor(t *testing.T) {
	src := "srt://cam:hunter2@10.0.0.9:9000?mode=caller&passphrase=sekrit123&latency=1"
	mask := Redactor(src)
	tests := []struct{ in, want string }{
		{src + ": Connection refused", Redact(src) + ": Connection refused"},
		{"[srt @ 0x1] passphrase sekrit123 rejected by 10.0.0.9", "[srt @ 0x1] passphrase xxxxx rejected by 10.0.0.9"},
		{"auth hunter2 failed; latency 1 ms", "auth xxxxx failed; latency 1 ms"},
	}
	for _, tt := range tests {
		if got := mask(tt.in); got != tt.want {
			t.Errorf("mask(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	short := Redactor("rtsp://u:a1@h/s")
	if got := short("rtsp://u:a1@h:554/s: 401; a1 is fine"); got != "rtsp://u:xxxxx@h:554/s: 401; a1 is fine" {
		t.Errorf("short password: %q", got)
	}
	if got := Redactor("rtmp://h/live")("rtmp://h/live: EOF"); got != "rtmp://h/live: EOF" {
		t.Errorf("nothing to mask: %q", got)
	}
}
