//go:build ingestbench

package ingest_test

// TestIngestBench measures what the hub costs per publisher: CPU time and memory of
// this process (the hub runs in it) while publishers stream a 6 Mbit/s file to it over
// RTMP and each stream's pipe is read by `wc -c` (as ffmpeg would read it). The
// publishers are ffmpeg copying a file encoded once (-re -stream_loop -1 -c copy), and
// the readers are child processes: neither counts in this process's CPU time
// (getrusage RUSAGE_SELF). scripts/ingestbench runs it; it is not part of CI.
//
// INGESTBENCH_SECONDS is the measured window (20), INGESTBENCH_PUBLISHERS the
// publisher counts, in turn ("0 1 10"); 0 measures the hub with no publisher.
// INGESTBENCH_PROTOCOL=srt publishes over SRT (MPEG-TS in 1316-byte packets) instead.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ingest"
)

// benchBitrate is the publishers' bitrate, video and audio, in kbit/s.
const (
	benchVideoKbps = 5872
	benchAudioKbps = 128
	benchSource    = 10 * time.Second // the file's length, looped
)

func TestIngestBench(t *testing.T) {
	window := time.Duration(envInt(t, "INGESTBENCH_SECONDS", 20)) * time.Second
	counts := []int{0, 1, 10}
	if s := os.Getenv("INGESTBENCH_PUBLISHERS"); s != "" {
		counts = nil
		for _, f := range strings.Fields(s) {
			n, err := strconv.Atoi(f)
			if err != nil || n < 0 {
				t.Fatalf("INGESTBENCH_PUBLISHERS=%q: want counts of publishers (0: the idle hub)", s)
			}
			counts = append(counts, n)
		}
	}
	file := encodeBenchFile(t)
	obs := &byteCounter{bytes: map[string]int64{}}
	proto := ingest.RTMP
	if os.Getenv("INGESTBENCH_PROTOCOL") == "srt" {
		proto = ingest.SRT
	}
	h, err := ingest.New(ingest.Config{RTMPListen: "127.0.0.1:0", SRTListen: "127.0.0.1:0", Log: zerolog.Nop(), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("ingestbench: %s, %d kbit/s per publisher (1280x720 30 fps, 2 s GOP, AAC), %v measured after 5 s, %d CPUs, load average %s",
		proto, benchVideoKbps+benchAudioKbps, window, runtime.NumCPU(), load)
	fmt.Printf("%-10s %-14s %-14s %-14s %-14s %-14s %s\n", "publishers", "hub CPU %core", "per publisher", "peak RSS Δ MB", "per publisher", "live heap Δ MB", "per publisher / bitrate seen")
	for _, n := range counts {
		r := runBench(t, h, obs, proto, file, n, window)
		if n == 0 {
			fmt.Printf("%-10s %-14.2f\n", "0 (idle)", r.cpu*100)
			continue
		}
		fmt.Printf("%-10d %-14.2f %-14.3f %-14.1f %-14.2f %-14.1f %.2f / %.2f Mbit/s\n", n, r.cpu*100, r.cpu*100/float64(n),
			r.rss/1e6, r.rss/1e6/float64(n), r.heap/1e6, r.heap/1e6/float64(n), r.bitrate/1e6)
		if per := r.cpu * 100 / float64(n); per > 1 {
			fmt.Printf("  over the target of 1 %% of a core per publisher (%.2f %%)\n", per)
		}
		if per := r.rss / 1e6 / float64(n); per > 10 {
			fmt.Printf("  over the target of 10 MB per publisher (%.1f MB)\n", per)
		}
	}
}

// benchResult is what one run measured: CPU in cores; memory growth in bytes (the
// resident set's peak over the window, the heap in use after a collection); the mean
// bitrate the hub received per publisher, in bit/s.
type benchResult struct {
	cpu, rss, heap, bitrate float64
}

// benchRuns counts runBench's runs: a count given twice gets new job ids.
var benchRuns int

// runBench streams n publishers to h for window (after a warm-up) and measures.
func runBench(t *testing.T, h *ingest.Hub, obs *byteCounter, proto ingest.Protocol, file string, n int, window time.Duration) benchResult {
	t.Helper()
	benchRuns++
	rss0, heap0 := memory(t)
	var pubs []*exec.Cmd
	var readers []*reader
	defer func() {
		for _, p := range pubs {
			_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL)
			_ = p.Wait()
		}
	}()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("bench-%d-%d-%d", benchRuns, n, i) // the counter counts per id
		key, hash, err := ingest.NewKey()
		if err != nil {
			t.Fatal(err)
		}
		st, err := h.Add(ids[i], hash, []ingest.Protocol{proto})
		if err != nil {
			t.Fatal(err)
		}
		format, url := "flv", fmt.Sprintf("rtmp://%s/%s/%s", h.RTMPAddr(), ingest.App, key)
		if proto == ingest.SRT {
			format, url = "mpegts", fmt.Sprintf("srt://%s?streamid=publish:%s&pkt_size=1316", h.SRTAddr(), key)
		}
		cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1", "-i", file, "-c", "copy", "-f", format, url)
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		pubs = append(pubs, cmd)
		readers = append(readers, openReader(t, st))
	}
	time.Sleep(5 * time.Second) // past the publishers' start (gortmplib reads 2 s of tracks)
	in0 := obs.total(ids)
	cpu0, began := cpuTime(), time.Now()
	var rss int64 // the most over the window, as the collector lets it grow
	for time.Since(began) < window {
		time.Sleep(time.Second)
		rss = max(rss, residentSet(t))
	}
	cpu, wall := cpuTime()-cpu0, time.Since(began)
	in := obs.total(ids) - in0
	all := float64(obs.total(ids))
	_, heap := memory(t)
	for _, id := range ids {
		h.Remove(id) // ends the pipes: each reader says what it read
	}
	var out int64
	for _, r := range readers {
		out += r.wait(t)
	}
	if n == 0 {
		return benchResult{cpu: cpu.Seconds() / wall.Seconds()}
	}
	if in == 0 || float64(out) < 0.9*all {
		t.Errorf("%d publishers: the hub received %d bytes in the window and %.0f in all, its pipes carried %d: want most of it through", n, in, all, out)
	}
	seen := float64(in) * 8 / wall.Seconds() / float64(n)
	if want := float64(benchVideoKbps+benchAudioKbps) * 1000; seen < 0.8*want {
		t.Errorf("%d publishers: %.2f Mbit/s each, want about %.2f", n, seen/1e6, want/1e6)
	}
	return benchResult{cpu: cpu.Seconds() / wall.Seconds(), rss: float64(rss - rss0), heap: float64(heap - heap0), bitrate: seen}
}

// encodeBenchFile encodes the publishers' file once, at the bench's bitrate (noise
// keeps x264 from coming in under it).
func encodeBenchFile(t *testing.T) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "publisher.flv")
	v, a := strconv.Itoa(benchVideoKbps)+"k", strconv.Itoa(benchAudioKbps)+"k"
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.Itoa(int(benchSource.Seconds())), "-vf", "noise=alls=20:allf=t",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-bf", "0",
		"-b:v", v, "-minrate", v, "-maxrate", v, "-bufsize", v, "-x264-params", "nal-hrd=cbr",
		"-c:a", "aac", "-b:a", a, "-f", "flv", file).CombinedOutput()
	if err != nil {
		t.Fatalf("encode the publishers' file: %v: %s", err, out)
	}
	return file
}

// reader is `wc -c` reading a stream's pipe, as a job's ffmpeg would.
type reader struct {
	cmd *exec.Cmd
	out bytes.Buffer
}

// openReader waits for the stream's publisher and starts a reader on its pipe.
func openReader(t *testing.T, st *ingest.Stream) *reader {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := st.Wait(ctx); err != nil {
		t.Fatalf("no publisher: %v", err)
	}
	pipe, err := st.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer pipe.Close()
	r := &reader{cmd: exec.Command("wc", "-c")}
	r.cmd.Stdin, r.cmd.Stdout = pipe, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return r
}

// wait returns how many bytes the reader read, once its pipe has ended.
func (r *reader) wait(t *testing.T) int64 {
	t.Helper()
	if err := r.cmd.Wait(); err != nil {
		t.Fatalf("wc -c: %v", err)
	}
	n, err := strconv.ParseInt(strings.TrimSpace(r.out.String()), 10, 64)
	if err != nil {
		t.Fatalf("wc -c said %q", r.out.String())
	}
	return n
}

// byteCounter is the hub's observer: media bytes received per stream.
type byteCounter struct {
	mu    sync.Mutex
	bytes map[string]int64
}

func (c *byteCounter) Publishers(ingest.Protocol, int) {}
func (c *byteCounter) Rejected(string)                 {}
func (c *byteCounter) Takeover()                       {}
func (c *byteCounter) Received(job string, n int) {
	c.mu.Lock()
	c.bytes[job] += int64(n)
	c.mu.Unlock()
}

func (c *byteCounter) get(id string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes[id]
}

func (c *byteCounter) total(ids []string) int64 {
	var n int64
	for _, id := range ids {
		n += c.get(id)
	}
	return n
}

// cpuTime is the CPU time this process used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memory is this process's resident set and Go heap in use, after a collection that
// returns what it freed to the system.
func memory(t *testing.T) (rss, heap int64) {
	t.Helper()
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return residentSet(t), int64(ms.HeapInuse)
}

// residentSet is this process's resident set (VmRSS), in bytes.
func residentSet(t *testing.T) int64 {
	t.Helper()
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}
