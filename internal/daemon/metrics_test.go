package daemon

import (
	"io"
	"net/http"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestMetrics runs a short live job and checks what GET /metrics says about it while it
// runs and once it is stopped.
func TestMetrics(t *testing.T) {
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"metered"}`)
	v = d.waitFor(t, v.ID, 90*time.Second, "3 segments per rendition", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= 3*len(v.Renditions)
	})

	m := scrapeMetrics(t, d)
	if got := value(t, m, "transcoderd_jobs", "state", "running"); got != 1 {
		t.Errorf(`transcoderd_jobs{state="running"} = %v, want 1`, got)
	}
	if got := value(t, m, "transcoderd_job_state", "job", "metered"); got != 1 {
		t.Errorf(`transcoderd_job_state{job="metered"} = %v, want 1`, got)
	}
	segments := value(t, m, "transcoderd_job_segments_total", "job", "metered")
	if segments < float64(v.Segments) {
		t.Errorf("transcoderd_job_segments_total = %v, but the job had already written %d", segments, v.Segments)
	}
	if got := value(t, m, "transcoderd_job_speed_ratio", "job", "metered"); got <= 0 {
		t.Errorf("transcoderd_job_speed_ratio of a running job = %v, want > 0", got)
	}
	h := histogram(t, m, "transcoderd_manifest_write_latency_seconds")
	if h.GetSampleCount() == 0 {
		t.Errorf("manifest latency histogram has no samples after %v segments", segments)
	} else {
		t.Logf("manifest latency: %d segments, mean %.1f ms", h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()))
	}
	if got := value(t, m, "process_resident_memory_bytes"); got <= 0 {
		t.Errorf("process_resident_memory_bytes = %v: the process collector is missing", got)
	}

	if code := d.call(t, http.MethodDelete, "/v1/jobs/metered", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Fatalf("DELETE: %d, state %s", code, v.State)
	}
	m = scrapeMetrics(t, d)
	for _, c := range []struct {
		name, label, value string
		want               float64
	}{
		{"transcoderd_jobs", "state", "running", 0},
		{"transcoderd_jobs", "state", "finished", 1},
		{"transcoderd_job_fps", "job", "metered", 0},
		{"transcoderd_job_speed_ratio", "job", "metered", 0},
	} {
		if got := value(t, m, c.name, c.label, c.value); got != c.want {
			t.Errorf(`after stop: %s{%s=%q} = %v, want %v`, c.name, c.label, c.value, got, c.want)
		}
	}
	if got := value(t, m, "transcoderd_job_segments_total", "job", "metered"); got < segments {
		t.Errorf("after stop: transcoderd_job_segments_total = %v, was %v while running", got, segments)
	}
}

// scrapeMetrics reads GET /metrics and parses it as the Prometheus text format.
func scrapeMetrics(t *testing.T, d *daemon) map[string]*dto.MetricFamily {
	t.Helper()
	res, err := http.Get(d.api + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("GET /metrics: %d %s", res.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		t.Fatalf("GET /metrics does not parse: %v", err)
	}
	return fams
}

// value returns the value of the sample of family name whose label has the given
// value (or its only sample, with no label given), failing the test when there is none.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, label ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no %s in /metrics", name)
	}
	for _, m := range f.GetMetric() {
		if len(label) == 2 && !hasLabel(m, label[0], label[1]) {
			continue
		}
		switch {
		case m.GetGauge() != nil:
			return m.GetGauge().GetValue()
		case m.GetCounter() != nil:
			return m.GetCounter().GetValue()
		case m.GetUntyped() != nil:
			return m.GetUntyped().GetValue()
		}
	}
	t.Fatalf("no %s%v in /metrics", name, label)
	return 0
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}

func histogram(t *testing.T, fams map[string]*dto.MetricFamily, name string) *dto.Histogram {
	t.Helper()
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		t.Fatalf("no histogram %s in /metrics", name)
	}
	return f.GetMetric()[0].GetHistogram()
}
