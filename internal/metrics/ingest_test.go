package metrics

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/transcoderd/transcoderd/internal/ingest"
)

// TestIngestMetrics checks what the hub's counts become: publishers by protocol,
// bytes per job, refusals by reason (every reason exported from the start), takeovers.
func TestIngestMetrics(t *testing.T) {
	m := New(nil, nil)
	var obs ingest.Observer = m
	obs.Publishers(ingest.RTMP, 1)
	obs.Publishers(ingest.RTMP, 1)
	obs.Publishers(ingest.RTMP, -1)
	obs.Received("stage-a", 1000)
	obs.Received("stage-a", 500)
	obs.Rejected("key")
	obs.Rejected("key")
	obs.Rejected("play")
	obs.Takeover()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	want := `
# HELP transcoderd_ingest_bytes_total Media bytes received from the publishers of a push job.
# TYPE transcoderd_ingest_bytes_total counter
transcoderd_ingest_bytes_total{job="stage-a"} 1500
# HELP transcoderd_ingest_publishers Encoders publishing to the ingest hub now, by protocol.
# TYPE transcoderd_ingest_publishers gauge
transcoderd_ingest_publishers{protocol="rtmp"} 1
# HELP transcoderd_ingest_rejected_total Publishers refused by the ingest hub, by reason: key (unknown or missing), app, play, codec, limit (too many failures from the address), passphrase (SRT).
# TYPE transcoderd_ingest_rejected_total counter
transcoderd_ingest_rejected_total{reason="app"} 0
transcoderd_ingest_rejected_total{reason="codec"} 0
transcoderd_ingest_rejected_total{reason="key"} 2
transcoderd_ingest_rejected_total{reason="limit"} 0
transcoderd_ingest_rejected_total{reason="passphrase"} 0
transcoderd_ingest_rejected_total{reason="play"} 1
# HELP transcoderd_ingest_takeovers_total Publishers replaced by a new one with the same key.
# TYPE transcoderd_ingest_takeovers_total counter
transcoderd_ingest_takeovers_total 1
`
	names := []string{"transcoderd_ingest_bytes_total", "transcoderd_ingest_publishers", "transcoderd_ingest_rejected_total", "transcoderd_ingest_takeovers_total"}
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
}
