//go:build srtbench

package srt_test

// TestReceiveCost measures what receiving one publisher's 6 Mbit/s SRT stream costs
// this listener, side by side with libsrt's own receiver (srt-live-transmit, the
// reference implementation, in C++) on the same box: rounds alternate between the two,
// each taking the same ffmpeg/libsrt publisher for a measured window on a listener
// bound to every address (as the daemon binds); the listener discards the stream,
// srt-live-transmit writes it to /dev/null (a system call per packet).
// The figure is the receiver's CPU time over the window: getrusage for this process,
// the scheduler's run time of each thread (/proc/PID/task/*/schedstat) for
// srt-live-transmit, whose threads live as long as it does. scripts/srtbench runs it;
// it is not part of CI.
//
// SRTBENCH_SECONDS is the window (20), SRTBENCH_ROUNDS the rounds of each (3).

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/srt"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

func TestReceiveCost(t *testing.T) {
	window := time.Duration(envInt(t, "SRTBENCH_SECONDS", 20)) * time.Second
	rounds := envInt(t, "SRTBENCH_ROUNDS", 3)
	slt, err := exec.LookPath("srt-live-transmit")
	if err != nil {
		t.Fatal("srt-live-transmit (Debian's srt-tools) is the reference receiver: ", err)
	}
	file := encodeFile(t)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("srtbench: one publisher, 6 Mbit/s MPEG-TS in 1316-byte packets, 120 ms latency, %v measured after 3 s, %d CPUs, load average %s",
		window, runtime.NumCPU(), load)
	var ours, ref []float64
	for i := range rounds {
		a := receiveOurs(t, file, window)
		b := receiveLibsrt(t, slt, file, window)
		ours, ref = append(ours, a), append(ref, b)
		fmt.Printf("round %d: internal/srt %.2f %% of a core, srt-live-transmit %.2f %%\n", i+1, a, b)
	}
	fmt.Printf("median:  internal/srt %.2f %% of a core, srt-live-transmit %.2f %%\n", median(ours), median(ref))
}

// receiveOurs runs a listener in this process that takes one publisher and discards
// its stream; it returns the process's CPU over the window, in per cent of a core.
func receiveOurs(t *testing.T, file string, window time.Duration) float64 {
	l, err := srt.Listen(":0", srt.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var got int64
	done := make(chan struct{})
	go func() {
		defer close(done)
		r, err := l.Accept()
		if err != nil {
			return
		}
		c, err := r.Accept()
		if err != nil {
			return
		}
		got, _ = io.Copy(io.Discard, c)
	}()
	port := l.Addr().(*net.UDPAddr).Port
	pub := publishLoop(t, file, fmt.Sprintf("srt://127.0.0.1:%d?streamid=publish:bench&pkt_size=1316", port))
	time.Sleep(settle)
	c0, t0 := cpuTime(), time.Now()
	time.Sleep(window)
	cpu := float64(cpuTime()-c0) / float64(time.Since(t0)) * 100
	stop(pub)
	l.Close()
	<-done
	if min := int64(window.Seconds()) * 6e6 / 8 * 8 / 10; got < min {
		t.Errorf("internal/srt received %d bytes, want at least %d", got, min)
	}
	return cpu
}

// receiveLibsrt runs srt-live-transmit as a listener that takes one publisher and
// writes its stream to /dev/null; it returns that process's CPU over the window.
func receiveLibsrt(t *testing.T, slt, file string, window time.Duration) float64 {
	port := freeUDPPort(t)
	rx := exec.Command(slt, "-q", fmt.Sprintf("srt://:%d?mode=listener&latency=120", port), "file://con")
	rx.Stdout = devNull(t)
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	defer stop(rx)
	time.Sleep(300 * time.Millisecond) // listening
	pub := publishLoop(t, file, fmt.Sprintf("srt://127.0.0.1:%d?pkt_size=1316", port))
	time.Sleep(settle)
	r0, t0 := runTime(t, rx.Process.Pid), time.Now()
	time.Sleep(window)
	cpu := float64(runTime(t, rx.Process.Pid)-r0) / float64(time.Since(t0)) * 100
	// A publisher that was not taken exits (ffmpeg's SRT caller gives up).
	if !testmedia.Running(pub.Process.Pid) {
		t.Error("the publisher to srt-live-transmit exited: it was not taken")
	}
	stop(pub)
	return cpu
}

// settle is how long a publisher runs before the window: connected, steady.
const settle = 3 * time.Second

// devNull is /dev/null, open for writing until the test's end.
func devNull(t *testing.T) *os.File {
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// cpuTime is the CPU time this process used, user and system (threads that ended
// included).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// publishLoop starts ffmpeg sending file to url in real time, looped.
func publishLoop(t *testing.T, file, url string) *exec.Cmd {
	cmd := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-re", "-stream_loop", "-1",
		"-i", file, "-c", "copy", "-f", "mpegts", url)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd
}

func stop(cmd *exec.Cmd) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	_ = cmd.Wait()
}

// runTime is the time pid's threads have run, in ns, as the scheduler counts it.
func runTime(t *testing.T, pid int) int64 {
	tasks, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(tasks) == 0 {
		t.Fatalf("no threads of %d: %v", pid, err)
	}
	var sum int64
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // a thread that ended
		}
		n, _ := strconv.ParseInt(strings.Fields(string(b))[0], 10, 64)
		sum += n
	}
	return sum
}

// encodeFile encodes the publisher's 10 s file once: 1280x720 at 30 fps, x264 CBR
// at 5872 kbit/s (noise keeps it from coming in under) and 128 kbit/s AAC.
func encodeFile(t *testing.T) string {
	file := filepath.Join(t.TempDir(), "publisher.ts")
	out, err := exec.Command("ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error",
		"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30", "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", "10", "-vf", "noise=alls=20:allf=t",
		"-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", "-g", "60", "-keyint_min", "60", "-bf", "0",
		"-b:v", "5872k", "-minrate", "5872k", "-maxrate", "5872k", "-bufsize", "5872k", "-x264-params", "nal-hrd=cbr",
		"-c:a", "aac", "-b:a", "128k", "-f", "mpegts", file).CombinedOutput()
	if err != nil {
		t.Fatalf("encode the publisher's file: %v: %s", err, out)
	}
	return file
}

func freeUDPPort(t *testing.T) int {
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	return s[len(s)/2]
}

func envInt(t *testing.T, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, s)
	}
	return n
}
