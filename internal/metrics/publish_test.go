package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/transcoderd/transcoderd/internal/publish"
)

// TestPublishMetrics checks what the publisher's reports become: failures by op (both
// exported from the start), the queue, and upload latency by kind.
func TestPublishMetrics(t *testing.T) {
	m := New(nil, nil)
	var obs publish.Observer = m
	obs.Failed("put")
	obs.Failed("put")
	obs.Pending(5)
	obs.Pending(-2)
	obs.Uploaded(publish.KindSegment, 7*time.Millisecond)
	obs.Uploaded(publish.KindSegment, 3*time.Second)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	want := `
# HELP transcoderd_publish_failures_total Requests to the origin that failed (each is retried), by op: put or delete.
# TYPE transcoderd_publish_failures_total counter
transcoderd_publish_failures_total{op="delete"} 0
transcoderd_publish_failures_total{op="put"} 2
# HELP transcoderd_publish_queue Uploads and deletes waiting for the origin, all jobs together; it grows while the origin is down.
# TYPE transcoderd_publish_queue gauge
transcoderd_publish_queue 3
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "transcoderd_publish_failures_total", "transcoderd_publish_queue"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(m.publish.latency); n != 2 {
		t.Errorf("%d latency series, want 2 (segment, manifest)", n)
	}
}
