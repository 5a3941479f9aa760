// Command overhead measures what transcoderd itself costs while it runs light live jobs,
// and how soon a segment that ffmpeg closes is named by the manifests. It prints figures;
// it asserts nothing.
//
// It builds the daemon with `go build`, runs it as a separate process with folders of its
// own, serves -jobs live RTSP test sources from this process (testmedia: a gortsplib
// relay per source, fed by an ffmpeg of testsrc2 and a sine), and starts one job per
// source with a tiny ladder: one 96p rung at 100 kbit/s, ultrafast, 1 s segments (-segment), and
// 32 kbit/s mono AAC. Once every job runs and a warm-up has passed, for -duration:
//
//   - the daemon's own RSS (VmRSS of /proc/<pid>/status, every second) and CPU
//     (utime+stime of /proc/<pid>/stat, its threads but not its ffmpeg children);
//   - the latency from a segment closing (its file's modification time) to both its
//     media playlist and the MPD naming it, measured here with inotify on the job
//     folders, and read from the daemon's own histogram
//     (transcoderd_manifest_write_latency_seconds, scraped before and after the window).
//
// The machine's load average and busy cores are printed with them: on a shared box the
// figures move with what else runs.
//
// The daemon's CPU is mostly the kernel's: every manifest is replaced atomically (a new
// temporary file, renamed), so the file system under -dir weighs on it.
//
// Usage: go run ./scripts/overhead [-jobs 10] [-segment 1s] [-warmup 30s] [-duration 60s] [-window 30s] [-dir /tmp] [-keep] [-daemon-args "--flag=value ..."]
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/Eyevinn/dash-mpd/mpd"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

type options struct {
	jobs             int
	warmup, duration time.Duration
	window           string
	segment          string
	keep             bool
	dir              string
	daemonArgs       []string
	sourceW, sourceH int
	sourceFPS        int
}

// The targets, printed next to the figures, and fixed limits of the run.
const (
	rssTargetMB        = 40.0
	cpuTargetPercent   = 1.0
	latencyTargetP99MS = 100.0

	latencyMetric = "transcoderd_manifest_write_latency_seconds"
	startLimit    = 2 * time.Minute  // for every job to run
	stopLimit     = 30 * time.Second // for the daemon to stop on SIGTERM
	sampleEvery   = time.Second      // RSS samples
)

func main() {
	var o options
	flag.IntVar(&o.jobs, "jobs", 10, "live jobs to run")
	flag.DurationVar(&o.warmup, "warmup", 30*time.Second, "wait after every job runs, before measuring")
	flag.DurationVar(&o.duration, "duration", 60*time.Second, "measurement window")
	flag.StringVar(&o.window, "window", "30s", "the ladder's live window (manifests grow with it)")
	flag.StringVar(&o.segment, "segment", "1s", "the ladder's segment duration (the daemon's work is per segment)")
	flag.IntVar(&o.sourceW, "source-width", 192, "test source width")
	flag.IntVar(&o.sourceH, "source-height", 108, "test source height")
	flag.IntVar(&o.sourceFPS, "source-fps", 25, "test source frame rate")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder (daemon log, outputs)")
	flag.StringVar(&o.dir, "dir", os.TempDir(), "where the work folder (and so the daemon's output) goes: the file system matters")
	extra := flag.String("daemon-args", "", "more daemon flags, space-separated, e.g. --cpu-limit=100%")
	flag.Parse()
	o.daemonArgs = strings.Fields(*extra)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tb := &scriptTB{}
	err := run(ctx, o, tb)
	tb.cleanup()
	if err != nil {
		fmt.Fprintln(os.Stderr, "overhead:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, tb *scriptTB) error {
	work, err := os.MkdirTemp(o.dir, "transcoderd-overhead-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work folder:", work)
	} else {
		tb.Cleanup(func() { _ = os.RemoveAll(work) })
	}

	// The daemon, built and run as its own process.
	bin := filepath.Join(work, "transcoderd")
	fmt.Println("building the daemon ...")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/transcoderd").CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run this from the repository root): %w\n%s", err, out)
	}
	profiles := filepath.Join(work, "profiles")
	if err := os.MkdirAll(profiles, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(profiles, "tiny.yaml"), []byte(tinyLadder(o.segment, o.window)), 0o644); err != nil {
		return err
	}
	port, err := testmedia.FreeTCPPort()
	if err != nil {
		return err
	}
	api := "http://127.0.0.1:" + strconv.Itoa(port)
	out := filepath.Join(work, "out")
	args := append([]string{
		"--listen", "127.0.0.1:" + strconv.Itoa(port), "--output", out, "--profiles", profiles,
		"--data", filepath.Join(work, "data"), "--media-root", filepath.Join(work, "media"),
		"--log-format", "json",
	}, o.daemonArgs...)
	logFile, err := os.Create(filepath.Join(work, "daemon.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	daemon := exec.Command(bin, args...)
	daemon.Stdout, daemon.Stderr = logFile, logFile
	// If this program dies, the daemon does too (and its ffmpegs with it).
	daemon.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := daemon.Start(); err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- daemon.Wait() }()
	tb.Cleanup(func() {
		_ = daemon.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopLimit):
			fmt.Fprintln(os.Stderr, "overhead: the daemon did not stop in time; killing it")
			_ = daemon.Process.Kill()
			<-exited
		}
	})
	pid := daemon.Process.Pid
	if err := testmedia.WaitHealthy(ctx, api, exited); err != nil {
		return fmt.Errorf("%w (log: %s)", err, logFile.Name())
	}

	// The sources, and a job per source.
	fmt.Printf("starting %d RTSP sources (%dx%d@%d) and %d jobs ...\n", o.jobs, o.sourceW, o.sourceH, o.sourceFPS, o.jobs)
	ids := make([]string, o.jobs)
	for i := range ids {
		src := testmedia.StartRTSP(tb, testmedia.SourceOptions{Width: o.sourceW, Height: o.sourceH, FPS: o.sourceFPS})
		if tb.failed() {
			return errors.New("a test source did not start")
		}
		ids[i] = fmt.Sprintf("cam%02d", i+1)
		body := fmt.Sprintf(`{"source":%q,"ladder":"tiny","id":%q}`, src.URL, ids[i])
		if err := createJob(api, body); err != nil {
			return err
		}
	}
	views, err := waitRunning(ctx, api, ids, startLimit, exited)
	if err != nil {
		return err
	}
	fmt.Printf("all %d jobs run (%d renditions each); warming up for %v ...\n", len(ids), len(views[0].Renditions), o.warmup)

	// Manifest latency, measured from outside, and the daemon's own histogram.
	watch, err := newLatencyWatch(out, views)
	if err != nil {
		return err
	}
	defer watch.close()
	if !sleep(ctx, o.warmup) {
		return ctx.Err()
	}
	before, err := scrape(api, latencyMetric)
	if err != nil {
		return err
	}

	// The measurement window.
	fmt.Printf("measuring for %v ...\n", o.duration)
	load0 := loadavg()
	busy0, err := machineBusy()
	if err != nil {
		return err
	}
	cpu0, err := procCPU(pid)
	if err != nil {
		return err
	}
	kids0 := childrenCPU(pid)
	watch.open(time.Now())
	began := time.Now()
	var rss []float64
	tick := time.NewTicker(sampleEvery)
	for time.Since(began) < o.duration {
		select {
		case <-ctx.Done():
			tick.Stop()
			return ctx.Err()
		case err := <-exited:
			tick.Stop()
			return fmt.Errorf("the daemon exited: %v (log: %s)", err, logFile.Name())
		case <-tick.C:
			mb, err := procRSS(pid)
			if err != nil {
				return err
			}
			rss = append(rss, mb)
		}
	}
	tick.Stop()
	cpu1, err := procCPU(pid)
	if err != nil {
		return err
	}
	elapsed := time.Since(began)
	kids1 := childrenCPU(pid)
	busy1, _ := machineBusy()
	load1 := loadavg()
	watch.shut(time.Now())
	after, err := scrape(api, latencyMetric)
	if err != nil {
		return err
	}
	hwm, _ := procStatusMB(pid, "VmHWM:")
	final, err := listJobs(api)
	if err != nil {
		return err
	}

	// Figures.
	cpuPct := 100 * (cpu1 - cpu0) / elapsed.Seconds()
	var kidsCPU float64
	for p, t1 := range kids1 {
		if t0, ok := kids0[p]; ok {
			kidsCPU += t1 - t0
		}
	}
	fmt.Printf("\n== transcoderd overhead: %d live jobs, ladder tiny (96p 100k ultrafast + aac 32k, %s segments, window %s)\n", len(ids), o.segment, o.window)
	fmt.Printf("output on %s (%s)\n", work, fsType(work))
	fmt.Printf("machine: %d cores; load average %s at start, %s at end; all processes kept %.2f cores busy\n",
		runtime.NumCPU(), load0, load1, (busy1-busy0)/elapsed.Seconds())
	fmt.Printf("jobs at the end: %s\n", summarize(final))
	fmt.Printf("daemon RSS:  max %.1f MB, mean %.1f MB over %d samples (peak since start, VmHWM: %.1f MB)   target < %.0f MB\n",
		slices.Max(rss), mean(rss), len(rss), hwm, rssTargetMB)
	fmt.Printf("daemon CPU:  %.2f%% of one core over %.0f s (its ffmpeg children: %.0f%% of one core)   target < %.0f%%\n",
		cpuPct, elapsed.Seconds(), 100*kidsCPU/elapsed.Seconds(), cpuTargetPercent)
	own := watch.latencies()
	if len(own) > 0 {
		fmt.Printf("segment closed -> named by its playlist and the MPD (inotify, %d segments): p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms; %.1f%% within %.0f ms   target p99 < %.0f ms\n",
			len(own), quantile(own, 0.5), quantile(own, 0.9), quantile(own, 0.99), slices.Max(own),
			100*fractionWithin(own, latencyTargetP99MS), latencyTargetP99MS, latencyTargetP99MS)
	} else {
		fmt.Println("segment closed -> manifests (inotify): no segment seen in the window")
	}
	if h := delta(before, after); h.count > 0 {
		fmt.Printf("daemon's histogram over the window (%.0f segments): p50 %s, p99 %s (interpolated in buckets); %.1f%% within 100 ms\n",
			h.count, h.quantileMS(0.5), h.quantileMS(0.99), 100*h.within(0.1))
	}
	if n := watch.errors(); n > 0 {
		fmt.Printf("(%d manifest reads failed during the window)\n", n)
	}
	return nil
}

// tinyLadder is the benchmark's ladder: as light as a live job gets.
func tinyLadder(segment, window string) string {
	return `description: overhead benchmark, one tiny rung
segment_duration: ` + segment + `
window: ` + window + `
encoder: x264
fallback: none
video:
  codec: h264
  preset: ultrafast
  renditions:
    - {name: 96p, height: 96, bitrate: 100k, profile: baseline}
audio:
  - {name: aac, codec: aac, bitrate: 32k, channels: 1}
audio_only: false
`
}

// scriptTB lets this program use the testmedia sources, which take a testing.TB: it
// implements the methods they call (the embedded nil TB would panic on any other).
type scriptTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	fail     bool
}

func (t *scriptTB) Helper() {}

func (t *scriptTB) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "source: "+format+"\n", args...)
}

func (t *scriptTB) Errorf(format string, args ...any) {
	t.Logf(format, args...)
	t.mu.Lock()
	t.fail = true
	t.mu.Unlock()
}

// Fatalf marks the run failed; run checks after each source it starts.
func (t *scriptTB) Fatalf(format string, args ...any) { t.Errorf(format, args...) }

func (t *scriptTB) Skipf(format string, args ...any) { t.Errorf(format, args...) }

func (t *scriptTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (t *scriptTB) failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.fail
}

// cleanup runs the clean-ups, last registered first.
func (t *scriptTB) cleanup() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}

func createJob(api, body string) error {
	res, err := http.Post(api+"/v1/jobs", "application/json", strings.NewReader(body))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusCreated {
		msg, _ := io.ReadAll(res.Body)
		return fmt.Errorf("POST /v1/jobs %s: %d %s", body, res.StatusCode, bytes.TrimSpace(msg))
	}
	return nil
}

func listJobs(api string) ([]job.View, error) {
	res, err := http.Get(api + "/v1/jobs")
	if err != nil {
		return nil, err
	}
	defer res.Body.Close()
	var l struct {
		Jobs []job.View `json:"jobs"`
	}
	if err := json.NewDecoder(res.Body).Decode(&l); err != nil {
		return nil, fmt.Errorf("GET /v1/jobs: %w", err)
	}
	return l.Jobs, nil
}

// waitRunning waits until every job runs and has written two segments per rendition.
func waitRunning(ctx context.Context, api string, ids []string, limit time.Duration, exited <-chan error) ([]job.View, error) {
	deadline := time.Now().Add(limit)
	for {
		views, err := listJobs(api)
		if err != nil {
			return nil, err
		}
		ready := 0
		for _, v := range views {
			if v.State == job.Failed {
				return nil, fmt.Errorf("job %s failed: %s", v.ID, v.Error)
			}
			if v.State == job.Running && len(v.Renditions) > 0 && v.Segments >= 2*len(v.Renditions) {
				ready++
			}
		}
		if ready == len(ids) {
			return views, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("after %v only %d of %d jobs run: %s", limit, ready, len(ids), summarize(views))
		}
		select {
		case err := <-exited:
			return nil, fmt.Errorf("the daemon exited: %v", err)
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func summarize(views []job.View) string {
	n := map[job.State]int{}
	restarts, stalls := 0, 0
	for _, v := range views {
		n[v.State]++
		restarts += v.Restarts
		stalls += v.Stalls
	}
	var parts []string
	for s, c := range n {
		parts = append(parts, fmt.Sprintf("%d %s", c, s))
	}
	slices.Sort(parts)
	return fmt.Sprintf("%s; %d restarts, %d stalls in all", strings.Join(parts, ", "), restarts, stalls)
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times: 100 on every Linux ABI.
const clockTick = 100.0

// procCPU returns the CPU seconds (user + system) the process has used, all its threads,
// not its children.
func procCPU(pid int) (float64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseFloat(f[11], 64) // field 14 of proc(5)
	stime, err2 := strconv.ParseFloat(f[12], 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return (utime + stime) / clockTick, nil
}

func procRSS(pid int) (float64, error) { return procStatusMB(pid, "VmRSS:") }

// procStatusMB reads a kB line of /proc/<pid>/status, in MB (10^6 bytes).
func procStatusMB(pid int, key string) (float64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			if err != nil {
				return 0, fmt.Errorf("%s %q: %w", key, rest, err)
			}
			return kb * 1024 / 1e6, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, key)
}

// childrenCPU returns the CPU seconds of each direct child of pid (its ffmpegs).
func childrenCPU(pid int) map[int]float64 {
	out := map[int]float64{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	for _, t := range tasks {
		data, err := os.ReadFile(t)
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(data)) {
			if c, err := strconv.Atoi(f); err == nil {
				if s, err := procCPU(c); err == nil {
					out[c] = s
				}
			}
		}
	}
	return out
}

// machineBusy returns the CPU seconds all cores have spent not idle since boot.
func machineBusy() (float64, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line) // cpu user nice system idle iowait irq softirq steal ...
	if len(f) < 5 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	var busy float64
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest times are already in user
			continue
		}
		n, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, err
		}
		busy += n
	}
	return busy / clockTick, nil
}

// fsType names the file system that holds path, from /proc/self/mounts (the longest
// mount point that is a prefix of path).
func fsType(path string) string {
	data, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "?"
	}
	best, typ := "", "?"
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mp := f[1]
		if (path == mp || strings.HasPrefix(path, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, typ = mp, f[2]
		}
	}
	return typ
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// quantile returns the q-quantile of xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(q*float64(len(s))+0.999999) - 1
	return s[min(max(i, 0), len(s)-1)]
}

func fractionWithin(xs []float64, limit float64) float64 {
	n := 0
	for _, x := range xs {
		if x <= limit {
			n++
		}
	}
	return float64(n) / float64(len(xs))
}

// hist is a scraped cumulative histogram.
type hist struct {
	bounds []float64 // upper bounds, ascending, +Inf last
	counts []float64 // cumulative
	count  float64
}

func scrape(api, name string) (hist, error) {
	res, err := http.Get(api + "/metrics")
	if err != nil {
		return hist{}, err
	}
	defer res.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(res.Body)
	if err != nil {
		return hist{}, fmt.Errorf("GET /metrics: %w", err)
	}
	f, ok := fams[name]
	if !ok || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		return hist{}, fmt.Errorf("GET /metrics has no histogram %s", name)
	}
	return histOf(f.GetMetric()[0].GetHistogram()), nil
}

func histOf(h *dto.Histogram) hist {
	var out hist
	for _, b := range h.GetBucket() {
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.counts = append(out.counts, float64(b.GetCumulativeCount()))
	}
	out.count = float64(h.GetSampleCount())
	return out
}

// delta is what was observed between two scrapes of the same histogram.
func delta(a, b hist) hist {
	out := hist{bounds: b.bounds, count: b.count - a.count}
	for i := range b.counts {
		c := b.counts[i]
		if i < len(a.counts) {
			c -= a.counts[i]
		}
		out.counts = append(out.counts, c)
	}
	return out
}

// quantile estimates the q-quantile the way PromQL's histogram_quantile does: linear
// within the bucket it falls in.
func (h hist) quantile(q float64) float64 {
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, ub := range h.bounds {
		if h.counts[i] >= rank {
			if h.counts[i] == below {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/(h.counts[i]-below)
		}
		lower, below = ub, h.counts[i]
	}
	return lower // past the last finite bound
}

// quantileMS formats quantile in milliseconds; past the last finite bound, it says so.
func (h hist) quantileMS(q float64) string {
	v := h.quantile(q)
	if len(h.bounds) > 1 && v >= h.bounds[len(h.bounds)-2] {
		return fmt.Sprintf("> %.0f ms", 1000*h.bounds[len(h.bounds)-2])
	}
	return fmt.Sprintf("%.1f ms", 1000*v)
}

// within returns the fraction of samples at or under the bucket bound le.
func (h hist) within(le float64) float64 {
	for i, ub := range h.bounds {
		if ub == le {
			return h.counts[i] / h.count
		}
	}
	return 0
}

// latencyWatch measures, with inotify on the job folders, when each segment is first
// named by its rendition's media playlist and by the MPD, against its file's
// modification time (when ffmpeg closed it: ffmpeg writes a temporary file and renames
// it). Manifests are replaced by rename, so each new version is one IN_MOVED_TO event.
type latencyWatch struct {
	fd    int
	out   string
	wds   map[int32]string // watch descriptor -> folder, relative to out
	done  chan struct{}
	mu    sync.Mutex
	seen  map[string]time.Time // "job/track/n" -> when the playlist named it
	inMPD map[string]time.Time // "job/track/n" -> when the MPD named it
	last  map[string]int64     // "job/track" or "mpd:job/track" -> highest number named so far
	run   map[string]uint64    // "job/track" -> the run of the newest segment the playlist names
	from  time.Time            // segments closed before this are not counted
	to    time.Time
	lat   []float64 // ms
	fails int
}

func newLatencyWatch(out string, views []job.View) (*latencyWatch, error) {
	fd, err := syscall.InotifyInit1(syscall.IN_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("inotify: %w", err)
	}
	w := &latencyWatch{fd: fd, out: out, wds: map[int32]string{}, done: make(chan struct{}),
		seen: map[string]time.Time{}, inMPD: map[string]time.Time{}, last: map[string]int64{}, run: map[string]uint64{}}
	add := func(rel string) error {
		wd, err := syscall.InotifyAddWatch(fd, filepath.Join(out, rel), syscall.IN_MOVED_TO)
		if err != nil {
			return fmt.Errorf("inotify watch %s: %w", rel, err)
		}
		w.wds[int32(wd)] = rel
		return nil
	}
	for _, v := range views {
		if err := add(v.ID); err != nil {
			return nil, err
		}
		for _, r := range v.Renditions {
			if err := add(filepath.Join(v.ID, r.Name)); err != nil {
				return nil, err
			}
		}
	}
	go w.read()
	return w, nil
}

// open starts counting segments closed from t on; shut stops at t.
func (w *latencyWatch) open(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.from = t
}

func (w *latencyWatch) shut(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.to = t
}

func (w *latencyWatch) close() {
	_ = syscall.Close(w.fd)
}

func (w *latencyWatch) latencies() []float64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.lat)
}

func (w *latencyWatch) errors() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fails
}

func (w *latencyWatch) read() {
	buf := make([]byte, 64<<10)
	for {
		n, err := syscall.Read(w.fd, buf)
		if err != nil || n <= 0 {
			return // closed
		}
		at := time.Now()
		for off := 0; off+syscall.SizeofInotifyEvent <= n; {
			ev := (*syscall.InotifyEvent)(unsafe.Pointer(&buf[off]))
			nameBytes := buf[off+syscall.SizeofInotifyEvent : off+syscall.SizeofInotifyEvent+int(ev.Len)]
			name := string(bytes.TrimRight(nameBytes, "\x00"))
			off += syscall.SizeofInotifyEvent + int(ev.Len)
			dir, ok := w.wds[ev.Wd]
			if !ok {
				continue
			}
			switch name {
			case manifest.MediaName:
				w.playlist(dir, at)
			case manifest.MPDName:
				w.mpd(dir, at)
			}
		}
	}
}

// playlist reads the media playlist of dir ("job/track") and records the new segments.
func (w *latencyWatch) playlist(dir string, at time.Time) {
	data, err := os.ReadFile(filepath.Join(w.out, dir, manifest.MediaName))
	if err != nil {
		w.fail()
		return
	}
	var hi int64 = -1
	var run uint64
	for _, line := range strings.Split(string(data), "\n") {
		if r, n, ok := manifest.ParseSegmentName(strings.TrimSpace(line)); ok && int64(n) > hi {
			hi, run = int64(n), r
		}
	}
	w.mu.Lock()
	w.run[dir] = run
	w.mu.Unlock()
	w.named(dir, hi, at, false)
}

// mpd reads the MPD of dir ("job") and records, per representation, the new segments.
func (w *latencyWatch) mpd(dir string, at time.Time) {
	m, err := mpd.ReadFromFile(filepath.Join(w.out, dir, manifest.MPDName))
	if err != nil {
		w.fail()
		return
	}
	hi := map[string]int64{}
	for _, p := range m.Periods {
		for _, as := range p.AdaptationSets {
			for _, r := range as.Representations {
				st := r.SegmentTemplate
				if st == nil || st.SegmentTimeline == nil {
					continue
				}
				var n int64
				for _, s := range st.SegmentTimeline.S {
					n += 1 + int64(s.R)
				}
				start := int64(0)
				if st.StartNumber != nil {
					start = int64(*st.StartNumber)
				}
				if last, ok := hi[r.Id]; !ok || start+n-1 > last {
					hi[r.Id] = start + n - 1
				}
			}
		}
	}
	for track, n := range hi {
		w.named(dir+"/"+track, n, at, true)
	}
}

// named records that the manifest (the MPD when inMPD, else the playlist) names the
// segments of key ("job/track") up to hi, and measures those that both now name.
func (w *latencyWatch) named(key string, hi int64, at time.Time, inMPD bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lastKey, mine, other := key, w.seen, w.inMPD
	if inMPD {
		lastKey, mine, other = "mpd:"+key, w.inMPD, w.seen
	}
	last, ok := w.last[lastKey]
	if !ok {
		// The first version seen: what it names was named before the watch began.
		w.last[lastKey] = hi
		return
	}
	for n := last + 1; n <= hi; n++ {
		seg := key + "/" + strconv.FormatInt(n, 10)
		mine[seg] = at
		both, ok := other[seg]
		if !ok {
			continue
		}
		delete(w.seen, seg)
		delete(w.inMPD, seg)
		both = later(both, at)
		fi, err := os.Stat(filepath.Join(w.out, key, manifest.SegmentName(w.run[key], uint64(n))))
		if err != nil {
			w.fails++
			continue
		}
		closed := fi.ModTime()
		if w.from.IsZero() || closed.Before(w.from) || (!w.to.IsZero() && closed.After(w.to)) {
			continue
		}
		w.lat = append(w.lat, float64(both.Sub(closed))/float64(time.Millisecond))
	}
	if hi > last {
		w.last[lastKey] = hi
	}
}

func (w *latencyWatch) fail() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.fails++
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
