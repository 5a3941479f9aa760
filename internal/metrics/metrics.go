// Package metrics exposes transcoderd's Prometheus metrics on a registry of its own:
// jobs by state, and per job its restarts, stalls, segments, live encoding figures,
// whether it is behind real time and how many rungs it has shed
// (read from the job manager at scrape time), the latency from a segment closing to the
// manifests naming it (fed by the job manager as it happens), CPU used against the
// limit, whether each recording job records and the output's free space, the push-ingest hub's publishers, bytes, refusals and takeovers (fed by the
// hub), the publisher's upload latency, failures and queue (fed by it), and the Go
// runtime and process collectors.
package metrics

import (
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/transcoderd/transcoderd/internal/diskspace"
	"github.com/transcoderd/transcoderd/internal/job"
)

// Namespace prefixes every metric of transcoderd's own.
const Namespace = "transcoderd"

// LatencyBuckets are the upper bounds, in seconds, of the manifest latency histogram:
// fine from 1 ms to 500 ms, closest around the 100 ms target, and coarse above, where
// only an overloaded box goes.
var LatencyBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.2, 0.25, 0.5, 1, 2.5, 5}

// Lister is what the metrics read jobs from; *job.Manager is one.
type Lister interface {
	List() []job.View
}

// CPUFunc reports the CPU that the jobs use and the limit they run under, both in
// cores (1.5 is one and a half cores).
type CPUFunc func() (used, limit float64)

// knownStates are always exported by transcoderd_jobs, at 0 when no job is in them, so
// that a query for a state has a series to read before the first job reaches it.
var knownStates = []job.State{job.Queued, job.Starting, job.Waiting, job.Running, job.Reconnecting, job.Stopping, job.Finished, job.Stopped, job.Failed}

// Metrics is the daemon's metrics: a prometheus.Collector of the jobs' figures, the
// job.Observer of manifest latency, and the registry and HTTP handler that serve them.
// Its methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry
	latency prometheus.Histogram
	ingest  ingestMetrics
	publish publishMetrics

	mu     sync.Mutex
	jobs   Lister
	cpu    CPUFunc
	output string // the output folder, whose free space is exported; "" for none

	jobsByState, jobState, restarts, stalls, segments, lost   *prometheus.Desc
	fps, speed, lag, bitrate, behind, shed, cpuUsed, cpuLimit *prometheus.Desc
	recording, outputFree                                     *prometheus.Desc
}

// New returns the metrics of jobs, with the CPU figures of cpu. Either may be nil and
// set later with SetJobs and SetCPU; until then no job and no CPU metrics are exported.
func New(jobs Lister, cpu CPUFunc) *Metrics {
	desc := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(Namespace, "", name), help, labels, nil)
	}
	m := &Metrics{
		reg:  prometheus.NewRegistry(),
		jobs: jobs,
		cpu:  cpu,
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: Namespace,
			Name:      "manifest_write_latency_seconds",
			Help:      "Time from ffmpeg closing a segment to every manifest that names it being written.",
			Buckets:   LatencyBuckets,
		}),
		jobsByState: desc("jobs", "Jobs the daemon knows, by state.", "state"),
		jobState:    desc("job_state", "The state of each job: 1 for its current state.", "job", "state"),
		restarts:    desc("job_restarts_total", "Times the job's ffmpeg was started again after it exited or stalled.", "job"),
		stalls:      desc("job_stalls_total", "Times the job's ffmpeg was killed for making no progress.", "job"),
		segments:    desc("job_segments_total", "Segments the job has written, all renditions together.", "job"),
		lost:        desc("job_segments_lost_total", "Segments the job's ffmpeg wrote that could not be read, skipped with a restart of ffmpeg (a truncated file, a full disk).", "job"),
		fps:         desc("job_fps", "Frames per second the job's ffmpeg encodes now; 0 when it is not running.", "job"),
		speed:       desc("job_speed_ratio", "Encoding speed as a multiple of real time; below 1 a live job falls behind; 0 when it is not running.", "job"),
		lag:         desc("job_lag_seconds", "Real time a live job's ffmpeg has lost since it last kept up; viewers stall once it passes their buffer. 0 when it is not running.", "job"),
		bitrate:     desc("job_bitrate_bits_per_second", "Output bitrate that the job's ffmpeg reports; 0 when it is not running.", "job"),
		behind:      desc("job_behind", "1 while a live job has run slower than real time for 10 s, else 0.", "job"),
		shed:        desc("job_rungs_shed", "Video rungs a live job does not encode now to keep up (video.shed_top_rung).", "job"),
		cpuUsed:     desc("cpu_used_cores", "CPU that the jobs use, in cores."),
		cpuLimit:    desc("cpu_limit_cores", "CPU limit that the jobs run under, in cores."),
		recording:   desc("job_recording", "A recording job (record: true): 1 while it records, 0 once its recording stopped (free space below --record-min-free).", "job"),
		outputFree:  desc("output_free_bytes", "Bytes free on the output folder's file system (to unprivileged writers)."),
		ingest:      newIngestMetrics(),
		publish:     newPublishMetrics(),
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.latency,
		(*jobCollector)(m),
	)
	m.reg.MustRegister(m.ingest.collectors()...)
	m.reg.MustRegister(m.publish.collectors()...)
	return m
}

// SetJobs sets where the job metrics are read from.
func (m *Metrics) SetJobs(jobs Lister) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.jobs = jobs
}

// SetCPU sets where the CPU metrics are read from; nil stops exporting them.
func (m *Metrics) SetCPU(cpu CPUFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.cpu = cpu
}

// SetOutput sets the output folder whose free space is exported.
func (m *Metrics) SetOutput(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.output = dir
}

// Registry returns the registry the metrics are served from, for more collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus text format (or OpenMetrics, when the
// scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	// One metric that cannot be collected must not hide the others.
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{EnableOpenMetrics: true, ErrorHandling: promhttp.ContinueOnError})
}

// ManifestsWritten implements job.Observer.
func (m *Metrics) ManifestsWritten(_ string, sinceSegmentClosed time.Duration) {
	// A file's modification time has the kernel's coarse clock: it may read as a
	// little later than the time.Now after it.
	m.latency.Observe(max(sinceSegmentClosed, 0).Seconds())
}

var _ job.Observer = (*Metrics)(nil)

// jobCollector reads the job and CPU figures at scrape time.
type jobCollector Metrics

// Describe implements prometheus.Collector.
func (c *jobCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.jobsByState, c.jobState, c.restarts, c.stalls, c.segments, c.lost, c.fps, c.speed, c.lag, c.bitrate, c.behind, c.shed, c.cpuUsed, c.cpuLimit, c.recording, c.outputFree} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *jobCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	jobs, cpu, output := c.jobs, c.cpu, c.output
	c.mu.Unlock()

	if free, err := diskspace.Free(output); output != "" && err == nil {
		ch <- constMetric(c.outputFree, prometheus.GaugeValue, float64(free))
	}
	if cpu != nil {
		used, limit := cpu()
		ch <- constMetric(c.cpuUsed, prometheus.GaugeValue, used)
		ch <- constMetric(c.cpuLimit, prometheus.GaugeValue, limit)
	}
	if jobs == nil {
		return
	}
	views := jobs.List()
	byState := map[job.State]int{}
	for _, s := range knownStates {
		byState[s] = 0
	}
	for _, v := range views {
		byState[v.State]++
		ch <- constMetric(c.jobState, prometheus.GaugeValue, 1, v.ID, string(v.State))
		ch <- constMetric(c.restarts, prometheus.CounterValue, float64(v.Restarts), v.ID)
		ch <- constMetric(c.stalls, prometheus.CounterValue, float64(v.Stalls), v.ID)
		ch <- constMetric(c.lost, prometheus.CounterValue, float64(v.SegmentsLost), v.ID)
		ch <- constMetric(c.segments, prometheus.CounterValue, float64(v.Segments), v.ID)
		// A job between ffmpeg runs, or ended, keeps the figures of its last run: they
		// are not what it does now.
		p := v.Progress
		if v.State == job.Reconnecting || v.State.Ended() {
			p = job.Progress{}
		}
		ch <- constMetric(c.fps, prometheus.GaugeValue, p.FPS, v.ID)
		ch <- constMetric(c.speed, prometheus.GaugeValue, p.Speed, v.ID)
		ch <- constMetric(c.lag, prometheus.GaugeValue, p.Lag, v.ID)
		ch <- constMetric(c.bitrate, prometheus.GaugeValue, p.Bitrate*1000, v.ID) // ffmpeg reports kbit/s
		behind := 0.0
		if v.Behind && !v.State.Ended() {
			behind = 1
		}
		ch <- constMetric(c.behind, prometheus.GaugeValue, behind, v.ID)
		ch <- constMetric(c.shed, prometheus.GaugeValue, float64(len(v.Shed)), v.ID)
		if r := v.Recording; r != nil {
			on := 0.0
			if r.Stopped == "" {
				on = 1
			}
			ch <- constMetric(c.recording, prometheus.GaugeValue, on, v.ID)
		}
	}
	for s, n := range byState {
		ch <- constMetric(c.jobsByState, prometheus.GaugeValue, float64(n), string(s))
	}
}

// constMetric is prometheus.MustNewConstMetric without the panic: a label value that is
// not valid UTF-8 makes an invalid metric, which fails the scrape with its error.
func constMetric(d *prometheus.Desc, t prometheus.ValueType, v float64, labels ...string) prometheus.Metric {
	m, err := prometheus.NewConstMetric(d, t, v, labels...)
	if err != nil {
		return prometheus.NewInvalidMetric(d, err)
	}
	return m
}
