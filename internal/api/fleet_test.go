package api

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/transcoderd/transcoderd/internal/job"
)

// oneJobFleet is a fleet whose one job, "far", runs on box "b" at apiURL.
type oneJobFleet struct{ apiURL string }

func (f oneJobFleet) Box() string { return "a" }
func (f oneJobFleet) Submit(context.Context, job.Request) (FleetJob, error) {
	return FleetJob{}, nil
}
func (f oneJobFleet) Jobs(context.Context) ([]FleetJob, error) { return nil, nil }
func (f oneJobFleet) Job(_ context.Context, id string) (FleetJob, string, error) {
	if id != "far" {
		return FleetJob{}, "", job.ErrNotFound
	}
	return FleetJob{View: job.View{ID: id}, Box: "b"}, f.apiURL, nil
}
func (f oneJobFleet) Remove(context.Context, string) error      { return nil }
func (f oneJobFleet) Boxes(context.Context) (any, error)        { return nil, nil }
func (f oneJobFleet) Drain(context.Context, string, bool) error { return nil }

// TestForwardToJobsBox: every route of a job another box runs (not only GET and
// DELETE of the job itself) is answered by that box, over HTTPS with a private CA the
// operator names, on connections that are reused from one call to the next.
func TestForwardToJobsBox(t *testing.T) {
	var conns atomic.Int32
	var seen []string
	other := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path+" from "+r.Header.Get(forwarded)+" "+r.Header.Get("Authorization"))
		_ = json.NewEncoder(w).Encode(map[string]string{"answered_by": "b", "path": r.URL.Path})
	}))
	other.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	other.StartTLS()
	defer other.Close()
	roots := x509.NewCertPool()
	roots.AddCert(other.Certificate())

	call := func(s *Server, method, path string) (int, string) {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, nil)
		req.Header.Set("Authorization", "Bearer "+testToken)
		s.Handler().ServeHTTP(rec, req)
		return rec.Code, rec.Body.String()
	}

	s := testServer(t, false)
	s.Fleet = oneJobFleet{apiURL: other.URL}
	s.FleetTLS = &tls.Config{RootCAs: roots}
	for _, c := range []struct{ method, path string }{
		{"GET", "/v1/jobs/far"},
		{"GET", "/v1/jobs/far/events"},
		{"POST", "/v1/jobs/far/ingest/rotate"},
		{"DELETE", "/v1/jobs/far"},
	} {
		code, body := call(s, c.method, c.path)
		if code != http.StatusOK || !strings.Contains(body, `"answered_by":"b"`) {
			t.Errorf("%s %s: %d %s, want the other box's answer", c.method, c.path, code, body)
		}
	}
	if len(seen) != 4 || seen[1] != "GET /v1/jobs/far/events from a Bearer "+testToken {
		t.Errorf("the other box saw %q", seen)
	}
	if n := conns.Load(); n != 1 {
		t.Errorf("%d connections to the other box for 4 calls, want 1 (reused)", n)
	}

	// A job no box has: this box answers, as on a single box.
	if code, body := call(s, "GET", "/v1/jobs/nowhere/events"); code != http.StatusNotFound {
		t.Errorf("events of a job no box has: %d %s, want 404", code, body)
	}

	// Without the CA the other box's certificate is refused, and said so.
	s2 := testServer(t, false)
	s2.Fleet = oneJobFleet{apiURL: other.URL}
	code, body := call(s2, "GET", "/v1/jobs/far/events")
	if code != http.StatusBadGateway || !strings.Contains(body, "certificate") {
		t.Errorf("an untrusted box certificate: %d %s, want 502 naming the certificate", code, body)
	}

	// A box that does not answer: GET and DELETE are answered from the fleet's
	// records, but a purge is not (only the job's box deletes its files).
	gone := httptest.NewServer(http.NotFoundHandler())
	gone.Close()
	s3 := testServer(t, false)
	s3.Fleet = oneJobFleet{apiURL: gone.URL}
	if code, body := call(s3, "DELETE", "/v1/jobs/far"); code != http.StatusOK {
		t.Errorf("DELETE of a job whose box is gone: %d %s, want 200 from the fleet's records", code, body)
	}
	if code, body := call(s3, "DELETE", "/v1/jobs/far?purge=true"); code != http.StatusBadGateway || !strings.Contains(body, "not purged") {
		t.Errorf("purge of a job whose box is gone: %d %s, want 502 saying its files are not purged", code, body)
	}
}
