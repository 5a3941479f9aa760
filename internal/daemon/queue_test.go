package daemon

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestQueueAPI runs two live jobs from a real RTMP source under a CPU cap with room for
// one: the second asks to queue, gets 202 and waits, and starts and produces segments
// once the first is deleted.
func TestQueueAPI(t *testing.T) {
	profiles, _ := filepath.Abs("../../profiles")
	l, err := ladder.NewStore(profiles, nil).Get("test")
	if err != nil {
		t.Fatal(err)
	}
	plan, err := l.Plan(ladder.SourceInfo{HasVideo: true, Width: 640, Height: 360, FPS: 30, HasAudio: true, Channels: 2})
	if err != nil {
		t.Fatal(err)
	}
	limit := 1.5 * cpucap.Estimate(plan, l.Video.Preset)
	d := startDaemon(t, "", func(c *Config) { c.CPULimit = strconv.FormatFloat(limit, 'f', 3, 64) })
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})

	d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"first"}`)
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"refused"}`, &e); code != http.StatusServiceUnavailable {
		t.Errorf("second job without queue: %d %v, want 503", code, e)
	}
	var v job.View
	if code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"second","queue":true}`, &v); code != http.StatusAccepted {
		t.Fatalf("second job with queue: %d %+v, want 202", code, v)
	}
	if v.State != job.Queued || !strings.Contains(v.Waiting, "cores") {
		t.Fatalf("queued job: %+v", v)
	}
	time.Sleep(2 * time.Second) // the first one runs and is measured; the second still waits
	if v = d.job(t, "second"); v.State != job.Queued {
		t.Fatalf("second job while the first runs: %s", v.State)
	}
	if n := value(t, scrapeMetrics(t, d), "transcoderd_jobs", "state", "queued"); n != 1 {
		t.Errorf("transcoderd_jobs{state=\"queued\"} = %v, want 1", n)
	}

	if code := d.call(t, http.MethodDelete, "/v1/jobs/first", "", &v); code != http.StatusOK {
		t.Fatalf("DELETE first: %d", code)
	}
	v = d.waitFor(t, "second", 60*time.Second, "segments of the dequeued job", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= 2*len(v.Renditions)
	})
	if v.Waiting != "" {
		t.Errorf("running job still says it waits: %q", v.Waiting)
	}
}
