package api

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/job"
)

// FuzzDecodeStrict feeds arbitrary bodies and content types to the job request
// decoder. It must never panic; it accepts a body only when the body is one
// JSON value, within MaxBody, whose every field is one of job.Request's, and
// what it decodes is what a strict decoder reads from that body; every refusal
// has a message.
func FuzzDecodeStrict(f *testing.F) {
	for _, s := range []struct{ ct, body string }{
		{"application/json", `{"source":"rtmp://127.0.0.1/live/cam","ladder":"default","id":"cam-1"}`},
		{"", `{"source":"talks/keynote.mp4"}`},
		{"application/x-www-form-urlencoded", `{"ladder":"test"}`},
		{"application/json; charset=utf-8", `{"source":"a.mp4","priority":1}`},
		{"text/plain", `{}`},
		{"application/json", `{"source":"a"}{"source":"b"}`},
		{"application/json", `{"source":"a"}]`},
		{"application/json", `[{"source":"a"}]`},
		{"application/json", `{"Source":"a","SOURCE":"b"}`},
		{"application/json", `{"source":"a","source":"b"}`},
		{"application/json", `null`},
		{"application/json", ""},
		{"application/json", `{"source":"\u0000-i"}`},
		{"application/json", `{"id":123}`},
		{"application/json", strings.Repeat(" ", MaxBody) + `{}`},
	} {
		f.Add(s.ct, []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		r := httptest.NewRequest(http.MethodPost, "/v1/jobs", bytes.NewReader(body))
		if contentType != "" {
			r.Header.Set("Content-Type", contentType)
		}
		var req job.Request
		err := decodeStrict(httptest.NewRecorder(), r, &req)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("a refusal without a message")
			}
			return
		}
		if len(body) > MaxBody {
			t.Fatalf("accepted a body of %d bytes", len(body))
		}
		if !json.Valid(body) {
			t.Fatalf("accepted a body that is not one JSON value: %q", body)
		}
		var again job.Request
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&again); err != nil || again != req {
			t.Fatalf("decoded %+v, a strict decoder reads %+v (%v) from %q", req, again, err, body)
		}
	})
}
