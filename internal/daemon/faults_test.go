package daemon

import (
	"bytes"
	"net/http"
	"os"
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
//
// It also measures, from outside, how fast the job recovers: from the fault (or from
// the source's return) to the first segment of the new run listed in a media playlist,
// and for the hang, to the stall the daemon reports. Issue 16 set the targets in
// segment durations: kill → new segments within 2 s + one segment, a hang detected
// within 3 segments, source back → new segments within one segment + 3 s. They are
// behaviours, not performance figures, so they are asserted, with recoverySlack for a
// loaded box; the figures are logged for the README.
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

	playlist := filepath.Join(dir, "180p", manifest.MediaName)
	faults := []struct {
		name   string
		bound  time.Duration                         // from the fault to new segments
		target time.Duration                         // issue 16's: from the fault (or the source's return) to the first new segment listed
		detect time.Duration                         // issue 16's: from the fault to the stall reported; 0 when none is expected
		do     func(t *testing.T, pid int) time.Time // makes the fault; returns when the target starts counting
	}{
		{"ffmpeg killed", 20 * time.Second, 2*time.Second + testSegment, 0, func(t *testing.T, pid int) time.Time {
			if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}},
		{"ffmpeg hung", 30 * time.Second, 2*time.Second + 4*testSegment, 3 * testSegment, func(t *testing.T, pid int) time.Time {
			// A stopped process is alive and silent: only stall detection can see it.
			if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
				t.Fatal(err)
			}
			return time.Now()
		}},
		{"source away 10s", 35 * time.Second, 3*time.Second + testSegment, 0, func(t *testing.T, _ int) time.Time {
			src.Pause()
			time.Sleep(10 * time.Second)
			src.Resume()
			return time.Now()
		}},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			before := d.job(t, v.ID)
			pid := ffmpegPID(t, dir)
			runs := discontinuities(readFile(t, playlist))
			began := time.Now()
			from := f.do(t, pid)
			first := firstNewRun(t, playlist, runs, f.bound)
			after := d.waitFor(t, v.ID, f.bound, "recovery", func(v job.View) bool {
				return v.Restarts > before.Restarts && v.State == job.Running && v.Segments >= before.Segments+2*len(v.Renditions)
			})
			t.Logf("%s: first new segment listed %v after the fault, %v after the target's start (target %v); back with 2 new segments per rendition after %v (restarts %d)",
				f.name, first.Sub(began).Round(10*time.Millisecond), first.Sub(from).Round(10*time.Millisecond), f.target,
				time.Since(began).Round(100*time.Millisecond), after.Restarts)
			if got := first.Sub(from); got > f.target+recoverySlack {
				t.Errorf("%s: first new segment listed %v after the fault, want within %v (+%v slack)", f.name, got.Round(10*time.Millisecond), f.target, recoverySlack)
			}
			if f.detect > 0 {
				stall := stallAfter(t, d, v.ID, began)
				t.Logf("%s: stall reported %v after the fault (target %v)", f.name, stall.Sub(began).Round(10*time.Millisecond), f.detect)
				if got := stall.Sub(began); got > f.detect+recoverySlack {
					t.Errorf("%s: stall reported %v after the fault, want within %v (+%v slack)", f.name, got.Round(10*time.Millisecond), f.detect, recoverySlack)
				}
			}
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

// testSegment is the segment duration of profiles/test.yaml.
const testSegment = time.Second

// recoverySlack is what TestFaults allows beyond issue 16's recovery targets: a busy
// test box starts ffmpeg and its source more slowly, and the playlist is polled.
const recoverySlack = 1500 * time.Millisecond

// discontinuities counts the runs of ffmpeg a media playlist marks.
func discontinuities(playlist []byte) int {
	return bytes.Count(playlist, []byte("#EXT-X-DISCONTINUITY\n"))
}

// firstNewRun polls a media playlist until it lists a segment after more than runs
// discontinuities, and returns when it saw it.
func firstNewRun(t *testing.T, playlist string, runs int, limit time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		data, err := os.ReadFile(playlist)
		if err == nil && discontinuities(data) > runs {
			tail := data[bytes.LastIndex(data, []byte("#EXT-X-DISCONTINUITY\n")):]
			if bytes.Contains(tail, []byte(".m4s")) {
				return time.Now()
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lists no segment of a new run after %v", playlist, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stallAfter returns when the job last reported a stall after since.
func stallAfter(t *testing.T, d *daemon, id string, since time.Time) time.Time {
	t.Helper()
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &events)
	for _, e := range events.Events {
		if e.Type == "stall" && e.Time.After(since) {
			return e.Time
		}
	}
	t.Fatalf("no stall reported after %v", since.Format(time.StampMilli))
	return time.Time{}
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
