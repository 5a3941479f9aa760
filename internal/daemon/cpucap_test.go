package daemon

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestCPUCap runs the default ladder on a 1080p file (ffmpeg would take every core it can
// get) under a cap of 1 core, and measures what ffmpeg really uses. It also checks that a
// live job whose ladder cannot fit under the cap is refused with 503 and a reason.
func TestCPUCap(t *testing.T) {
	if testing.Short() {
		t.Skip("measures CPU for several seconds")
	}
	testmedia.RequireCgroup(t, "the cap cannot be enforced here")
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	profiles, _ := filepath.Abs("../../profiles")
	c := Config{
		Listen: "127.0.0.1:0", Output: filepath.Join(dir, "out"), Profiles: profiles, Data: filepath.Join(dir, "data"),
		MediaRoot: filepath.Join(dir, "media"), FFmpeg: "ffmpeg", FFprobe: "ffprobe", CPULimit: "1",
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, c, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel), func(a string) { addr <- a })
	}()
	d := &daemon{api: "http://" + <-addr, out: c.Output, mediaRoot: c.MediaRoot}
	t.Cleanup(func() { cancel(); <-done })

	// Admission: a live 1080p ladder needs about 3.3 cores; 1 is allowed.
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"rtmp://127.0.0.1:1/live/x","ladder":"default"}`, &e); code != http.StatusServiceUnavailable ||
		!strings.Contains(e["error"], "limit of 1.00") || !strings.Contains(e["error"], "needs about") {
		t.Errorf("live job over the cap: %d %v", code, e)
	}

	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "big.mp4"), testmedia.SampleOptions{Width: 1920, Height: 1080, Duration: 8 * time.Second})
	d.create(t, `{"source":"big.mp4","ladder":"default","id":"heavy"}`)
	pid := ffmpegPID(t, filepath.Join(d.out, "heavy"))
	time.Sleep(time.Second) // past start-up
	cpu0, t0 := cpuSeconds(t, pid), time.Now()
	time.Sleep(6 * time.Second)
	cpu1, t1 := cpuSeconds(t, pid), time.Now()
	cores := (cpu1 - cpu0) / t1.Sub(t0).Seconds()
	t.Logf("ffmpeg used %.2f cores over %v under a 1-core cap (box: %d cores)", cores, t1.Sub(t0).Round(time.Millisecond), cpucap.Cores())
	if cores > 1.1 {
		t.Errorf("ffmpeg used %.2f cores under a cap of 1", cores)
	}
	if cores < 0.05 { // a busy box gives it less, but it must have worked
		t.Errorf("ffmpeg used only %.2f cores: the measurement saw no work", cores)
	}
	v := d.waitFor(t, "heavy", 3*time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	if v.CPU <= 0 || v.CPU > 1.1 {
		t.Errorf("job reports cpu %.2f", v.CPU)
	}
}

// cpuSeconds reads the user+system CPU time of pid from /proc.
func cpuSeconds(t *testing.T, pid int) float64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ is 100 on Linux
}
