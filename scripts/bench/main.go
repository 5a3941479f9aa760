// Command bench measures what running an encode as a transcoderd job costs over running
// its ffmpeg by hand, and what the one-process ladder saves over one ffmpeg per rendition.
// It generates a 20 s 1080p30 source and encodes it with a ladder (default:
// profiles/default.yaml):
//
//  1. as a VOD job of the daemon, built and run as its own process, once per CPU limit
//     (-limits, default "100%,90%"): the time from the POST to the job's own end time,
//     with the job polled once a second, and how often the CPU cap's cgroup throttled it;
//  2. the job's own ffmpeg argv, run by hand, after the daemon has stopped: the box is
//     idle but for it;
//  3. one ffmpeg per rendition, all at once, each decoding the source (-naive=false skips).
//
// Each is run one after the other, never beside another, and -runs repeats the whole
// series. Run it on an idle box: the load average is printed with the figures.
//
// Usage: go run ./scripts/bench [-ladder default] [-seconds 20] [-limits 100%,90%] [-runs 1] [-keep]
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
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

type options struct {
	ladder  string
	seconds int
	limits  []string
	runs    int
	naive   bool
	keep    bool
}

func main() {
	var o options
	flag.StringVar(&o.ladder, "ladder", "default", "ladder from profiles/")
	flag.IntVar(&o.seconds, "seconds", 20, "length of the generated 1080p30 source")
	limits := flag.String("limits", "100%,90%", "the daemon's --cpu-limit for each job run, comma-separated")
	flag.IntVar(&o.runs, "runs", 1, "how many times to repeat the whole series")
	flag.BoolVar(&o.naive, "naive", true, "also time one ffmpeg per rendition")
	flag.BoolVar(&o.keep, "keep", false, "keep the work folder")
	flag.Parse()
	o.limits = strings.Split(*limits, ",")
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// result is one timed run.
type result struct {
	name      string
	wall      time.Duration
	throttled string // the cap's cgroup: "N of M periods", or why it is not known
	phases    string // a job's time before its ffmpeg started, its ffmpeg's, and after
	cpu       string // CPU seconds: ffmpeg's, and the daemon's own
}

func run(o options) error {
	work, err := os.MkdirTemp("", "transcoderd-bench-")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Println("work folder:", work)
	} else {
		defer os.RemoveAll(work)
	}
	media := filepath.Join(work, "media")
	if err := os.MkdirAll(media, 0o755); err != nil {
		return err
	}
	sample := filepath.Join(media, "sample.mp4")
	fmt.Printf("generating %d s of 1080p30 (testsrc2 + noise, sine) ...\n", o.seconds)
	if err := sh("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=1920x1080:rate=30,noise=alls=20:allf=t+u,format=yuv420p",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-t", strconv.Itoa(o.seconds),
		"-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-g", "60", "-c:a", "aac", "-b:a", "192k", sample); err != nil {
		return err
	}
	profiles, err := filepath.Abs("profiles")
	if err != nil {
		return err
	}
	bin := filepath.Join(work, "transcoderd")
	fmt.Println("building the daemon ...")
	if out, err := exec.Command("go", "build", "-o", bin, "./cmd/transcoderd").CombinedOutput(); err != nil {
		return fmt.Errorf("go build (run this from the repository root): %w\n%s", err, out)
	}
	fmt.Printf("load average before: %s\n", loadavg())

	var all [][]result
	var argv []string // the job's ffmpeg argv, from its first run
	for r := 0; r < o.runs; r++ {
		var jobs []result
		runJobs := func() error {
			for i, limit := range o.limits {
				d := daemon{bin: bin, work: filepath.Join(work, fmt.Sprintf("run%d-%d", r, i)), profiles: profiles, media: media, limit: limit}
				res, a, err := d.job(o.ladder)
				if err != nil {
					return fmt.Errorf("job at --cpu-limit %s: %w", limit, err)
				}
				jobs, argv = append(jobs, res), a
			}
			return nil
		}
		// The jobs run first in even runs (the first gives the argv to run by hand) and
		// after the hand run in odd ones, so that a drift of the box's speed over the
		// series weighs on both sides.
		jobsFirst := r%2 == 0
		if jobsFirst {
			if err := runJobs(); err != nil {
				return err
			}
		}
		hand, err := byHand(append([]string(nil), argv...), filepath.Join(work, fmt.Sprintf("run%d-byhand", r)))
		if err != nil {
			return err
		}
		if !jobsFirst {
			if err := runJobs(); err != nil {
				return err
			}
		}
		series := append(jobs, hand)
		if o.naive {
			res, err := naive(sample, profiles, o.ladder, filepath.Join(work, fmt.Sprintf("run%d-naive", r)))
			if err != nil {
				return err
			}
			series = append(series, res)
		}
		all = append(all, series)
	}
	fmt.Printf("load average after: %s\n", loadavg())
	report(o, all)
	return nil
}

// report prints each series, each job's time over the hand run's of its series, and
// the median of those ratios over the series.
func report(o options, all [][]result) {
	fmt.Printf("\nladder %s, %d s of 1080p30, %d cores (GOMAXPROCS %d)\n", o.ladder, o.seconds, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	ratios := map[string][]float64{}
	var names []string
	for r, series := range all {
		if len(all) > 1 {
			fmt.Printf("run %d\n", r+1)
		}
		var hand time.Duration
		for _, res := range series {
			if res.name == handName {
				hand = res.wall
			}
		}
		for _, res := range series {
			ratio := res.wall.Seconds() / hand.Seconds()
			if _, ok := ratios[res.name]; !ok {
				names = append(names, res.name)
			}
			ratios[res.name] = append(ratios[res.name], ratio)
			fmt.Printf("  %-52s %7.2f s  %6.3fx by hand", res.name, res.wall.Seconds(), ratio)
			if res.throttled != "" {
				fmt.Printf("   throttled %s", res.throttled)
			}
			fmt.Println()
			for _, detail := range []string{res.phases, res.cpu} {
				if detail != "" {
					fmt.Printf("  %-52s %s\n", "", detail)
				}
			}
		}
	}
	if len(all) > 1 {
		fmt.Printf("median over %d runs\n", len(all))
		for _, name := range names {
			if name != handName {
				fmt.Printf("  %-52s %6.3fx by hand\n", name, median(ratios[name]))
			}
		}
	}
	fmt.Println("targets: job at --cpu-limit 100% <= 1.03x by hand; at 90%, no more than the cap's own share (<= 1.12x)")
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

const handName = "the job's ffmpeg argv by hand"

// daemon is one transcoderd process with its own folders.
type daemon struct {
	bin, work, profiles, media, limit string
}

// job runs one VOD job of sample.mp4 on ladderName to its end and returns the time
// from the POST to the job's end, and the job's ffmpeg argv (without the binary).
func (d daemon) job(ladderName string) (result, []string, error) {
	port, err := testmedia.FreeTCPPort()
	if err != nil {
		return result{}, nil, err
	}
	api := "http://127.0.0.1:" + strconv.Itoa(port)
	cmd := exec.Command(d.bin, "--listen", "127.0.0.1:"+strconv.Itoa(port), "--output", filepath.Join(d.work, "out"),
		"--profiles", d.profiles, "--data", filepath.Join(d.work, "data"), "--media-root", d.media,
		"--cpu-limit", d.limit, "--log-format", "json")
	logs := &testmedia.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, nil, err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}()
	if err := testmedia.WaitHealthy(context.Background(), api, exited); err != nil {
		return result{}, nil, fmt.Errorf("%w\n%s", err, logs.String())
	}
	cpu0, err := procCPU(cmd.Process.Pid)
	if err != nil {
		return result{}, nil, err
	}
	began := time.Now()
	v, err := call(http.MethodPost, api+"/v1/jobs", fmt.Sprintf(`{"source":"sample.mp4","ladder":%q,"id":"bench"}`, ladderName))
	if err != nil {
		return result{}, nil, err
	}
	// One light request a second: the poll must not compete with ffmpeg. The job's own
	// end time, not the poll's, ends the measure.
	for v.Ended == nil {
		time.Sleep(time.Second)
		if v, err = call(http.MethodGet, api+"/v1/jobs/bench", ""); err != nil {
			return result{}, nil, err
		}
	}
	if v.State != "finished" {
		return result{}, nil, fmt.Errorf("job %s: %s", v.State, v.Error)
	}
	res := result{
		name:      fmt.Sprintf("transcoderd VOD job, --cpu-limit %s (POST to end)", d.limit),
		wall:      v.Ended.Sub(began),
		throttled: throttled(logs.String()),
		phases:    phases(api, began, *v.Ended),
	}
	// The job has ended: its ffmpeg (and ffprobe) have been waited for, and count in
	// the daemon's children.
	if cpu1, err := procCPU(cmd.Process.Pid); err == nil {
		res.cpu = fmt.Sprintf("CPU: ffmpeg and ffprobe %.2f s, the daemon %.2f s", cpu1.children-cpu0.children, cpu1.self-cpu0.self)
	}
	jobDir := filepath.Join(d.work, "out", "bench")
	argv := make([]string, 0, len(v.FFmpeg))
	for _, a := range v.FFmpeg[1:] {
		argv = append(argv, strings.ReplaceAll(a, jobDir, "{dir}"))
	}
	return res, argv, nil
}

// phases reads the job's events for when its ffmpeg started and exited, and returns
// the time before, during and after it.
func phases(api string, began, ended time.Time) string {
	res, err := http.Get(api + "/v1/jobs/bench/events")
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	var body struct {
		Events []struct {
			Time time.Time `json:"time"`
			Type string    `json:"type"`
		} `json:"events"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		return err.Error()
	}
	var start, exit time.Time
	for _, e := range body.Events {
		switch {
		case e.Type == "start" && start.IsZero():
			start = e.Time
		case e.Type == "exit":
			exit = e.Time
		}
	}
	if start.IsZero() || exit.IsZero() {
		return "no start and exit events"
	}
	return fmt.Sprintf("%.2f s before ffmpeg, %.2f s of ffmpeg, %.2f s after", start.Sub(began).Seconds(), exit.Sub(start).Seconds(), ended.Sub(exit).Seconds())
}

// throttled reads the CPU cap's cgroup, which the daemon names in its "CPU cap" log
// line, for how many of its CFS periods ran out of quota.
func throttled(log string) string {
	sc := bufio.NewScanner(strings.NewReader(log))
	for sc.Scan() {
		var line struct {
			Message string `json:"message"`
			Cgroup  string `json:"cgroup"`
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || !strings.HasPrefix(line.Message, "CPU cap") {
			continue
		}
		if line.Cgroup == "" {
			return "(no cgroup)"
		}
		stat, err := os.ReadFile(filepath.Join(line.Cgroup, "cpu.stat"))
		if err != nil {
			return "(" + err.Error() + ")"
		}
		f := map[string]string{}
		for _, l := range strings.Split(string(stat), "\n") {
			if k, v, ok := strings.Cut(l, " "); ok {
				f[k] = v
			}
		}
		return f["nr_throttled"] + " of " + f["nr_periods"] + " periods"
	}
	return "(the daemon logged no CPU cap)"
}

// byHand runs the job's argv in a fresh folder, on a box where nothing else runs.
func byHand(argv []string, dir string) (result, error) {
	for i, a := range argv {
		argv[i] = strings.ReplaceAll(a, "{dir}", dir)
	}
	for _, d := range handDirs(argv) {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return result{}, err
		}
	}
	began := time.Now()
	cmd := exec.Command("ffmpeg", argv...)
	var stderr bytes.Buffer
	cmd.Stderr, cmd.Stdout = &stderr, io.Discard
	if err := cmd.Run(); err != nil {
		return result{}, fmt.Errorf("ffmpeg: %w: %s", err, stderr.String())
	}
	wall := time.Since(began)
	used := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return result{name: handName, wall: wall, cpu: fmt.Sprintf("CPU: ffmpeg %.2f s", used.Seconds())}, nil
}

// cpuTimes are a process's CPU seconds: its own, and its waited-for children's.
type cpuTimes struct{ self, children float64 }

// procCPU reads /proc/<pid>/stat: utime and stime, cutime and cstime, in clock ticks
// of 1/100 s.
func procCPU(pid int) (cpuTimes, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	// The command name, in parentheses, may hold spaces: count fields after it.
	f := strings.Fields(string(data[bytes.LastIndexByte(data, ')')+1:]))
	tick := func(i int) float64 { v, _ := strconv.ParseFloat(f[i], 64); return v / 100 }
	return cpuTimes{self: tick(11) + tick(12), children: tick(13) + tick(14)}, nil
}

// handDirs returns the folders ffmpeg writes into: those of its segments and playlists.
func handDirs(argv []string) []string {
	var dirs []string
	for i, a := range argv {
		if i > 0 && (argv[i-1] == "-hls_segment_filename") || strings.HasSuffix(a, ".m3u8") {
			dirs = append(dirs, filepath.Dir(a))
		}
	}
	return dirs
}

// naive runs one ffmpeg per rendition, all at once, each decoding the source.
func naive(sample, profiles, ladderName, dir string) (result, error) {
	l, err := ladder.Load(filepath.Join(profiles, ladderName+".yaml"))
	if err != nil {
		return result{}, err
	}
	info, err := ffmpeg.Probe(context.Background(), "ffprobe", sample, source.File)
	if err != nil {
		return result{}, err
	}
	plan, err := l.Plan(info)
	if err != nil {
		return result{}, err
	}
	var runs [][]string
	for _, rung := range plan.Video {
		p := plan
		p.Video, p.Audio, p.AudioOnly = []ladder.PlannedVideo{rung}, nil, false
		runs = append(runs, mustArgs(sample, p, l, filepath.Join(dir, rung.Name)))
	}
	for _, a := range plan.Audio {
		p := plan
		p.Video, p.Audio = nil, []ladder.Audio{a}
		runs = append(runs, mustArgs(sample, p, l, filepath.Join(dir, a.Name)))
	}
	began := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, len(runs))
	for i, argv := range runs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = sh("ffmpeg", argv...) }()
	}
	wg.Wait()
	return result{name: "one ffmpeg per rendition, all at once", wall: time.Since(began)}, errors.Join(errs...)
}

func mustArgs(src string, p ladder.Plan, l *ladder.Ladder, dir string) []string {
	argv, err := ffmpeg.BuildArgs(ffmpeg.Job{Source: src, Kind: source.File, Plan: p, Preset: l.Video.Preset, Dir: dir})
	if err != nil {
		panic(err) // the plan came from a ladder that validated
	}
	for _, d := range handDirs(argv) {
		_ = os.MkdirAll(d, 0o755)
	}
	return argv
}

func sh(name string, args ...string) error {
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, stderr.String())
	}
	return nil
}

// view is what the bench reads of a job.
type view struct {
	State  string     `json:"state"`
	Error  string     `json:"error"`
	FFmpeg []string   `json:"ffmpeg"`
	Ended  *time.Time `json:"ended"`
}

func call(method, url, body string) (view, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return view{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return view{}, err
	}
	defer res.Body.Close()
	var v view
	data, _ := io.ReadAll(res.Body)
	if res.StatusCode >= 300 {
		return v, fmt.Errorf("%s %s: %s: %s", method, url, res.Status, data)
	}
	return v, json.Unmarshal(data, &v)
}

func loadavg() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	return strings.Join(strings.Fields(string(data))[:3], " ")
}
