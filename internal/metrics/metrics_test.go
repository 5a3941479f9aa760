package metrics

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/transcoderd/transcoderd/internal/job"
)

// fakeJobs lists a fixed set of views.
type fakeJobs []job.View

func (f fakeJobs) List() []job.View { return f }

// jobNames are the metrics read from the job list.
var jobNames = []string{
	"transcoderd_jobs", "transcoderd_job_state", "transcoderd_job_restarts_total",
	"transcoderd_job_stalls_total", "transcoderd_job_segments_total", "transcoderd_job_segments_lost_total", "transcoderd_job_fps",
	"transcoderd_job_speed_ratio", "transcoderd_job_lag_seconds", "transcoderd_job_bitrate_bits_per_second",
	"transcoderd_job_behind", "transcoderd_job_rungs_shed",
	"transcoderd_cpu_used_cores", "transcoderd_cpu_limit_cores",
}

const help = `
# HELP transcoderd_jobs Jobs the daemon knows, by state.
# TYPE transcoderd_jobs gauge
# HELP transcoderd_job_state The state of each job: 1 for its current state.
# TYPE transcoderd_job_state gauge
# HELP transcoderd_job_restarts_total Times the job's ffmpeg was started again after it exited or stalled.
# TYPE transcoderd_job_restarts_total counter
# HELP transcoderd_job_stalls_total Times the job's ffmpeg was killed for making no progress.
# TYPE transcoderd_job_stalls_total counter
# HELP transcoderd_job_segments_total Segments the job has written, all renditions together.
# TYPE transcoderd_job_segments_total counter
# HELP transcoderd_job_segments_lost_total Segments the job's ffmpeg wrote that could not be read, skipped with a restart of ffmpeg (a truncated file, a full disk).
# TYPE transcoderd_job_segments_lost_total counter
# HELP transcoderd_job_fps Frames per second the job's ffmpeg encodes now; 0 when it is not running.
# TYPE transcoderd_job_fps gauge
# HELP transcoderd_job_speed_ratio Encoding speed as a multiple of real time; below 1 a live job falls behind; 0 when it is not running.
# TYPE transcoderd_job_speed_ratio gauge
# HELP transcoderd_job_lag_seconds Real time a live job's ffmpeg has lost since it last kept up; viewers stall once it passes their buffer. 0 when it is not running.
# TYPE transcoderd_job_lag_seconds gauge
# HELP transcoderd_job_bitrate_bits_per_second Output bitrate that the job's ffmpeg reports; 0 when it is not running.
# TYPE transcoderd_job_bitrate_bits_per_second gauge
# HELP transcoderd_job_behind 1 while a live job has run slower than real time for 10 s, else 0.
# TYPE transcoderd_job_behind gauge
# HELP transcoderd_job_rungs_shed Video rungs a live job does not encode now to keep up (video.shed_top_rung).
# TYPE transcoderd_job_rungs_shed gauge
# HELP transcoderd_cpu_used_cores CPU that the jobs use, in cores.
# TYPE transcoderd_cpu_used_cores gauge
# HELP transcoderd_cpu_limit_cores CPU limit that the jobs run under, in cores.
# TYPE transcoderd_cpu_limit_cores gauge
`

func TestJobMetrics(t *testing.T) {
	cases := []struct {
		name string
		jobs Lister
		cpu  CPUFunc
		want string
	}{
		{
			name: "no job manager, no CPU figures",
			want: "",
		},
		{
			name: "no jobs",
			jobs: fakeJobs{},
			want: `
transcoderd_jobs{state="failed"} 0
transcoderd_jobs{state="finished"} 0
transcoderd_jobs{state="queued"} 0
transcoderd_jobs{state="reconnecting"} 0
transcoderd_jobs{state="running"} 0
transcoderd_jobs{state="starting"} 0
transcoderd_jobs{state="stopped"} 0
transcoderd_jobs{state="stopping"} 0
transcoderd_jobs{state="waiting"} 0
`,
		},
		{
			name: "CPU used and limit",
			cpu:  func() (float64, float64) { return 0.75, 1.5 },
			want: `
transcoderd_cpu_used_cores 0.75
transcoderd_cpu_limit_cores 1.5
`,
		},
		{
			name: "a job in every kind of state",
			jobs: fakeJobs{
				{ID: "cam1", State: job.Running, Segments: 42, Restarts: 2, Stalls: 1, Behind: true, Shed: []string{"1080p"},
					Progress: job.Progress{FPS: 29.97, Speed: 0.91, Lag: 2.5, Bitrate: 812.5}},
				{ID: "cam2", State: job.Running, Segments: 7, SegmentsLost: 1},
				{ID: "cam3", State: job.Reconnecting, Segments: 30, Restarts: 5,
					Progress: job.Progress{FPS: 30, Speed: 1, Lag: 4, Bitrate: 700}}, // of its last run
				{ID: "vod", State: job.Finished, Segments: 12,
					Progress: job.Progress{FPS: 300, Speed: 10, Bitrate: 2000}},
				{ID: "bad", State: job.Failed, Restarts: 2},
			},
			want: `
transcoderd_jobs{state="failed"} 1
transcoderd_jobs{state="finished"} 1
transcoderd_jobs{state="queued"} 0
transcoderd_jobs{state="reconnecting"} 1
transcoderd_jobs{state="running"} 2
transcoderd_jobs{state="starting"} 0
transcoderd_jobs{state="stopped"} 0
transcoderd_jobs{state="stopping"} 0
transcoderd_jobs{state="waiting"} 0
transcoderd_job_state{job="cam1",state="running"} 1
transcoderd_job_state{job="cam2",state="running"} 1
transcoderd_job_state{job="cam3",state="reconnecting"} 1
transcoderd_job_state{job="vod",state="finished"} 1
transcoderd_job_state{job="bad",state="failed"} 1
transcoderd_job_restarts_total{job="cam1"} 2
transcoderd_job_restarts_total{job="cam2"} 0
transcoderd_job_restarts_total{job="cam3"} 5
transcoderd_job_restarts_total{job="vod"} 0
transcoderd_job_restarts_total{job="bad"} 2
transcoderd_job_stalls_total{job="cam1"} 1
transcoderd_job_stalls_total{job="cam2"} 0
transcoderd_job_stalls_total{job="cam3"} 0
transcoderd_job_stalls_total{job="vod"} 0
transcoderd_job_stalls_total{job="bad"} 0
transcoderd_job_segments_total{job="cam1"} 42
transcoderd_job_segments_total{job="cam2"} 7
transcoderd_job_segments_total{job="cam3"} 30
transcoderd_job_segments_total{job="vod"} 12
transcoderd_job_segments_total{job="bad"} 0
transcoderd_job_segments_lost_total{job="cam1"} 0
transcoderd_job_segments_lost_total{job="cam2"} 1
transcoderd_job_segments_lost_total{job="cam3"} 0
transcoderd_job_segments_lost_total{job="vod"} 0
transcoderd_job_segments_lost_total{job="bad"} 0
transcoderd_job_fps{job="cam1"} 29.97
transcoderd_job_fps{job="cam2"} 0
transcoderd_job_fps{job="cam3"} 0
transcoderd_job_fps{job="vod"} 0
transcoderd_job_fps{job="bad"} 0
transcoderd_job_speed_ratio{job="cam1"} 0.91
transcoderd_job_speed_ratio{job="cam2"} 0
transcoderd_job_speed_ratio{job="cam3"} 0
transcoderd_job_speed_ratio{job="vod"} 0
transcoderd_job_speed_ratio{job="bad"} 0
transcoderd_job_lag_seconds{job="cam1"} 2.5
transcoderd_job_lag_seconds{job="cam2"} 0
transcoderd_job_lag_seconds{job="cam3"} 0
transcoderd_job_lag_seconds{job="vod"} 0
transcoderd_job_lag_seconds{job="bad"} 0
transcoderd_job_bitrate_bits_per_second{job="cam1"} 812500
transcoderd_job_bitrate_bits_per_second{job="cam2"} 0
transcoderd_job_bitrate_bits_per_second{job="cam3"} 0
transcoderd_job_bitrate_bits_per_second{job="vod"} 0
transcoderd_job_bitrate_bits_per_second{job="bad"} 0
transcoderd_job_behind{job="cam1"} 1
transcoderd_job_behind{job="cam2"} 0
transcoderd_job_behind{job="cam3"} 0
transcoderd_job_behind{job="vod"} 0
transcoderd_job_behind{job="bad"} 0
transcoderd_job_rungs_shed{job="cam1"} 1
transcoderd_job_rungs_shed{job="cam2"} 0
transcoderd_job_rungs_shed{job="cam3"} 0
transcoderd_job_rungs_shed{job="vod"} 0
transcoderd_job_rungs_shed{job="bad"} 0
`,
		},
		{
			name: "a state the metrics do not know yet is counted too",
			jobs: fakeJobs{{ID: "q", State: job.State("paused")}},
			want: `
transcoderd_jobs{state="failed"} 0
transcoderd_jobs{state="finished"} 0
transcoderd_jobs{state="paused"} 1
transcoderd_jobs{state="queued"} 0
transcoderd_jobs{state="reconnecting"} 0
transcoderd_jobs{state="running"} 0
transcoderd_jobs{state="starting"} 0
transcoderd_jobs{state="stopped"} 0
transcoderd_jobs{state="stopping"} 0
transcoderd_jobs{state="waiting"} 0
transcoderd_job_state{job="q",state="paused"} 1
transcoderd_job_restarts_total{job="q"} 0
transcoderd_job_stalls_total{job="q"} 0
transcoderd_job_segments_total{job="q"} 0
transcoderd_job_segments_lost_total{job="q"} 0
transcoderd_job_fps{job="q"} 0
transcoderd_job_speed_ratio{job="q"} 0
transcoderd_job_lag_seconds{job="q"} 0
transcoderd_job_bitrate_bits_per_second{job="q"} 0
transcoderd_job_behind{job="q"} 0
transcoderd_job_rungs_shed{job="q"} 0
`,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := New(tc.jobs, tc.cpu)
			srv := httptest.NewServer(m.Handler())
			defer srv.Close()
			want := ""
			if tc.want != "" {
				want = help + tc.want
			}
			if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), jobNames...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestSetters checks that the jobs and CPU figures set last after New are the ones
// scraped, and that SetCPU(nil) stops the CPU metrics.
func TestSetters(t *testing.T) {
	m := New(nil, nil)
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	m.SetCPU(func() (float64, float64) { return 0.5, 2 })
	m.SetCPU(func() (float64, float64) { return 1.25, 2 })
	m.SetJobs(fakeJobs{{ID: "a", State: job.Starting}})
	want := help + `
transcoderd_cpu_used_cores 1.25
transcoderd_cpu_limit_cores 2
transcoderd_jobs{state="failed"} 0
transcoderd_jobs{state="finished"} 0
transcoderd_jobs{state="queued"} 0
transcoderd_jobs{state="reconnecting"} 0
transcoderd_jobs{state="running"} 0
transcoderd_jobs{state="starting"} 1
transcoderd_jobs{state="stopped"} 0
transcoderd_jobs{state="stopping"} 0
transcoderd_jobs{state="waiting"} 0
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "transcoderd_jobs", "transcoderd_cpu_used_cores", "transcoderd_cpu_limit_cores"); err != nil {
		t.Error(err)
	}
	m.SetCPU(nil)
	if n := scrapeCount(t, srv.URL, "transcoderd_cpu_"); n != 0 {
		t.Errorf("after SetCPU(nil): %d lines of CPU metrics, want none", n)
	}
}

func TestManifestLatency(t *testing.T) {
	m := New(nil, nil)
	var obs job.Observer = m
	for _, d := range []time.Duration{
		-3 * time.Millisecond, // a coarse mtime after now: counted as 0
		2 * time.Millisecond,
		40 * time.Millisecond,
		90 * time.Millisecond,
		110 * time.Millisecond,
		2 * time.Second,
		6 * time.Second,
	} {
		obs.ManifestsWritten("cam1", d)
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	want := `
# HELP transcoderd_manifest_write_latency_seconds Time from ffmpeg closing a segment to every manifest that names it being written.
# TYPE transcoderd_manifest_write_latency_seconds histogram
transcoderd_manifest_write_latency_seconds_bucket{le="0.001"} 1
transcoderd_manifest_write_latency_seconds_bucket{le="0.0025"} 2
transcoderd_manifest_write_latency_seconds_bucket{le="0.005"} 2
transcoderd_manifest_write_latency_seconds_bucket{le="0.01"} 2
transcoderd_manifest_write_latency_seconds_bucket{le="0.025"} 2
transcoderd_manifest_write_latency_seconds_bucket{le="0.05"} 3
transcoderd_manifest_write_latency_seconds_bucket{le="0.075"} 3
transcoderd_manifest_write_latency_seconds_bucket{le="0.1"} 4
transcoderd_manifest_write_latency_seconds_bucket{le="0.125"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="0.15"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="0.2"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="0.25"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="0.5"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="1"} 5
transcoderd_manifest_write_latency_seconds_bucket{le="2.5"} 6
transcoderd_manifest_write_latency_seconds_bucket{le="5"} 6
transcoderd_manifest_write_latency_seconds_bucket{le="+Inf"} 7
transcoderd_manifest_write_latency_seconds_sum 8.242
transcoderd_manifest_write_latency_seconds_count 7
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "transcoderd_manifest_write_latency_seconds"); err != nil {
		t.Error(err)
	}
}

// TestRuntimeCollectors checks that the Go and process collectors are registered, and
// that the handler speaks the Prometheus text format.
func TestRuntimeCollectors(t *testing.T) {
	srv := httptest.NewServer(New(fakeJobs{}, nil).Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	for _, name := range []string{"go_goroutines ", "go_memstats_heap_inuse_bytes ", "process_resident_memory_bytes ", "process_cpu_seconds_total "} {
		if !strings.Contains(string(body), "\n"+name) {
			t.Errorf("no %s in the scrape", strings.TrimSpace(name))
		}
	}
}

// scrapeCount counts the sample lines of a scrape that start with prefix.
func scrapeCount(t *testing.T, url, prefix string) int {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	n := 0
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, prefix) {
			n++
		}
	}
	return n
}
