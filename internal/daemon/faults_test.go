package daemon

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFaults runs one live job from a real RTMP source through the failures that take
// streams down in the field, one after the other: ffmpeg killed, ffmpeg hung (SIGSTOP),
// the source gone for 10 s. After each, the job must come back by itself within a bound,
// with the same presentation continuing: segment numbers keep counting, a discontinuity
// marks the break, the manifests stay valid, and no ffmpeg is left behind at the end.
func TestFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("fault tests take about a minute")
	}
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"faults"}`)
	dir := filepath.Join(d.out, v.ID)
	segmentsAtLeast := func(n int) func(job.View) bool {
		return func(v job.View) bool { return v.State == job.Running && v.Segments >= n }
	}
	v = d.waitFor(t, v.ID, 60*time.Second, "first segments", segmentsAtLeast(3*len(v.Renditions)))

	faults := []struct {
		name  string
		bound time.Duration // from the fault to new segments
		do    func(t *testing.T, pid int)
	}{
		{"ffmpeg killed", 20 * time.Second, func(t *testing.T, pid int) {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
		}},
		{"ffmpeg hung", 30 * time.Second, func(t *testing.T, pid int) {
			// A stopped process is alive and silent: only stall detection can see it.
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
		}},
		{"source away 10s", 35 * time.Second, func(t *testing.T, _ int) {
			src.Pause()
			time.Sleep(10 * time.Second)
			src.Resume()
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			before := d.job(t, v.ID)
			pid := ffmpegPID(t, dir)
			began := time.Now()
			f.do(t, pid)
			after := d.waitFor(t, v.ID, f.bound, "recovery", func(v job.View) bool {
				return v.Restarts > before.Restarts && v.State == job.Running && v.Segments >= before.Segments+2*len(v.Renditions)
			})
			t.Logf("%s: back with new segments after %v (restarts %d)", f.name, time.Since(began).Round(100*time.Millisecond), after.Restarts)
			if pid2 := ffmpegPID(t, dir); pid2 == pid {
				t.Errorf("the same ffmpeg (%d) is still running", pid)
			}
		})
	}

	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/faults/events", "", &events)
	kinds := map[string]int{}
	for _, e := range events.Events {
		kinds[e.Type]++
	}
	if kinds["start"] < 4 || kinds["exit"] < 3 || kinds["restart"] < 3 || kinds["stall"] < 1 {
		t.Errorf("events by type %v, want >= 4 starts, 3 exits, 3 restarts, 1 stall", kinds)
	}

	// The presentation is continuous: every playlist counts on without a gap in its
	// numbers and marks each restart; the MPD has a Period per run still listed.
	for name, disc := range checkContinuous(t, checkOutputs(t, dir, d.job(t, v.ID))) {
		if disc < 3 {
			t.Errorf("%s: %d discontinuities listed, want 3", name, disc)
		}
	}
	if m := checkMPD(t, dir); len(m.Periods) < 4 {
		t.Errorf("MPD has %d periods, want one per ffmpeg run (4)", len(m.Periods))
	}

	if code := d.call(t, http.MethodDelete, "/v1/jobs/faults", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Fatalf("DELETE: %d %s", code, v.State)
	}
	if pids := processesWriting(t, dir); len(pids) > 0 {
		t.Errorf("ffmpeg left behind: %v", pids)
	}
	if data := readFile(t, filepath.Join(dir, "180p", manifest.MediaName)); !strings.HasSuffix(strings.TrimSpace(string(data)), "#EXT-X-ENDLIST") {
		t.Errorf("stopped playlist does not end with EXT-X-ENDLIST")
	}
}

// ffmpegPID returns the pid of the one ffmpeg writing into dir.
func ffmpegPID(t *testing.T, dir string) int {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if pids := processesWriting(t, dir); len(pids) == 1 {
			pid, err := strconv.Atoi(pids[0])
			if err != nil {
				t.Fatal(err)
			}
			return pid
		}
		if time.Now().After(deadline) {
			t.Fatalf("no single ffmpeg writing %s", dir)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
