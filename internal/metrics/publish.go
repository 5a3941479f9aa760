package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/transcoderd/transcoderd/internal/publish"
)

// publishMetrics are the publisher's figures (--publish http://...), fed by it as they
// happen.
type publishMetrics struct {
	latency *prometheus.HistogramVec
	failed  *prometheus.CounterVec
	pending prometheus.Gauge
}

// PublishBuckets are the upper bounds, in seconds, of the upload latency histogram.
var PublishBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

func newPublishMetrics() publishMetrics {
	m := publishMetrics{
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: Namespace, Name: "publish_upload_seconds", Buckets: PublishBuckets,
			Help: "Time one successful PUT to the origin took, by kind: segment (media and init segments) or manifest.",
		}, []string{"kind"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "publish_failures_total",
			Help: "Requests to the origin that failed (each is retried), by op: put or delete.",
		}, []string{"op"}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "publish_queue",
			Help: "Uploads and deletes waiting for the origin, all jobs together; it grows while the origin is down.",
		}),
	}
	for _, k := range []string{publish.KindSegment, publish.KindManifest} {
		m.latency.WithLabelValues(k)
	}
	for _, op := range []string{"put", "delete"} {
		m.failed.WithLabelValues(op)
	}
	return m
}

func (m publishMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.latency, m.failed, m.pending}
}

// Uploaded implements publish.Observer.
func (m *Metrics) Uploaded(kind string, took time.Duration) {
	m.publish.latency.WithLabelValues(kind).Observe(took.Seconds())
}

// Failed implements publish.Observer.
func (m *Metrics) Failed(op string) { m.publish.failed.WithLabelValues(op).Inc() }

// Pending implements publish.Observer.
func (m *Metrics) Pending(delta int) { m.publish.pending.Add(float64(delta)) }

var _ publish.Observer = (*Metrics)(nil)
