//go:build srtbench

package srt_test

// TestReceiveCost measures what receiving one publisher's 6 Mbit/s SRT stream costs
// this listener, side by side with libsrt's own receiver (srt-live-transmit, the
// reference implementation, in C++) on the same box: rounds alternate between the two,
// each taking the same ffmpeg/libsrt publisher for a measured window, its stream
// thrown away. The figure is the receiver's CPU time (the scheduler's run time of every
// thread, /proc/PID/task/*/schedstat) over the window. scripts/srtbench runs it; it is
// not part of CI.
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
	l, err := srt.Listen("127.0.0.1:0", srt.Config{})
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
	pub := publishLoop(t, file, fmt.Sprintf("srt://%s?streamid=publish:bench&pkt_size=1316", l.Addr()))
	cpu := measure(t, os.Getpid(), window)
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
	out, err := os.CreateTemp(t.TempDir(), "slt")
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	rx := exec.Command(slt, "-q", fmt.Sprintf("srt://127.0.0.1:%d?mode=listener&latency=120", port), "file://con")
	rx.Stdout = out
	if err := rx.Start(); err != nil {
		t.Fatal(err)
	}
	defer stop(rx)
	time.Sleep(300 * time.Millisecond) // listening
	pub := publishLoop(t, file, fmt.Sprintf("srt://127.0.0.1:%d?pkt_size=1316", port))
	cpu := measure(t, rx.Process.Pid, window)
	stop(pub)
	if fi, err := out.Stat(); err != nil || fi.Size() < int64(window.Seconds())*6e6/8*8/10 {
		t.Errorf("srt-live-transmit wrote %v bytes (%v), want most of the stream", fi.Size(), err)
	}
	return cpu
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

// measure waits 3 s for the stream to settle, then returns what pid's threads ran over
// window, in per cent of a core.
func measure(t *testing.T, pid int, window time.Duration) float64 {
	time.Sleep(3 * time.Second)
	r0, t0 := runTime(t, pid), time.Now()
	time.Sleep(window)
	r1, t1 := runTime(t, pid), time.Now()
	return float64(r1-r0) / float64(t1.Sub(t0)) * 100
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
