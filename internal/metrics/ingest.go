package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/transcoderd/transcoderd/internal/ingest"
)

// ingestMetrics are the push-ingest hub's counts, fed by it as they happen.
type ingestMetrics struct {
	publishers *prometheus.GaugeVec
	bytes      *prometheus.CounterVec
	rejected   *prometheus.CounterVec
	takeovers  prometheus.Counter
}

// ingestReasons are always exported by transcoderd_ingest_rejected_total, at 0 until
// the first refusal of each.
var ingestReasons = []string{"key", "app", "play", "codec", "limit", "passphrase"}

func newIngestMetrics() ingestMetrics {
	opts := func(name, help string) prometheus.Opts {
		return prometheus.Opts{Namespace: Namespace, Name: name, Help: help}
	}
	m := ingestMetrics{
		publishers: prometheus.NewGaugeVec(prometheus.GaugeOpts(opts("ingest_publishers", "Encoders publishing to the ingest hub now, by protocol.")), []string{"protocol"}),
		bytes:      prometheus.NewCounterVec(prometheus.CounterOpts(opts("ingest_bytes_total", "Media bytes received from the publishers of a push job.")), []string{"job"}),
		rejected:   prometheus.NewCounterVec(prometheus.CounterOpts(opts("ingest_rejected_total", "Publishers refused by the ingest hub, by reason: key (unknown or missing), app, play, codec, limit (too many failures from the address), passphrase (SRT).")), []string{"reason"}),
		takeovers:  prometheus.NewCounter(prometheus.CounterOpts(opts("ingest_takeovers_total", "Publishers replaced by a new one with the same key."))),
	}
	m.publishers.WithLabelValues(string(ingest.RTMP))
	for _, r := range ingestReasons {
		m.rejected.WithLabelValues(r)
	}
	return m
}

func (m ingestMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.publishers, m.bytes, m.rejected, m.takeovers}
}

// Publishers implements ingest.Observer.
func (m *Metrics) Publishers(p ingest.Protocol, delta int) {
	m.ingest.publishers.WithLabelValues(string(p)).Add(float64(delta))
}

// Received implements ingest.Observer.
func (m *Metrics) Received(job string, n int) { m.ingest.bytes.WithLabelValues(job).Add(float64(n)) }

// Rejected implements ingest.Observer.
func (m *Metrics) Rejected(reason string) { m.ingest.rejected.WithLabelValues(reason).Inc() }

// Takeover implements ingest.Observer.
func (m *Metrics) Takeover() { m.ingest.takeovers.Inc() }

var _ ingest.Observer = (*Metrics)(nil)
