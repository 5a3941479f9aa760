package job

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestShedTopRung runs a live job whose ladder opts into shedding, with a 360p top rung
// above a 90p one, from a real RTMP source, under a CPU cap enforced by a cgroup, as
// the daemon runs its jobs. Once the job keeps up, the test cuts the cap's quota to
// shedCut of what its ffmpeg was using, as a box that got busy would: ffmpeg falls
// behind on any machine, however fast, and the quota runs out in most periods.
// Once it has lost shedLag to real time, the job must restart ffmpeg without 360p: the
// master stops listing it, its playlist is removed, the MPD's new Period leaves it out,
// and the 90p rung goes on with a discontinuity. With the quota given back, 360p must
// come back after the hold-off.
func TestShedTopRung(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a live job for a minute or more")
	}
	limit := float64(cpucap.Cores())
	c := cpucap.New(limit, "/sys/fs/cgroup")
	if c.Mode() == "priority" {
		testmedia.Missing(t, "no writable cgroup (cgroup v2 cpu.max or v1 cpu.cfs_quota_us under /sys/fs/cgroup, as root): the test cannot take CPU from the job")
	}
	t.Cleanup(func() { _ = c.Close() }) // after the manager's clean-up: its ffmpeg is gone by then
	m, j, dir := startShedJob(t, c, "veryfast", "360p, height: 360, bitrate: 600k", 10*time.Second,
		testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	v := waitView(t, j, 60*time.Second, "keeping up, its CPU measured", func(v View) bool {
		return v.State == Running && v.Segments >= 3*len(v.Renditions) && v.CPU > 0 && v.Progress.Speed >= realTime
	})
	pid := lastPID(t, j)
	quota := shedCut * v.CPU
	t.Logf("ffmpeg %d kept up (speed %.2f) on %.2f cores; its cgroup's quota is now %.3f", pid, v.Progress.Speed, v.CPU, quota)
	cut := testmedia.CPUQuotaOf(t, pid)
	cut.Set(t, quota)

	deadline := time.Now().Add(time.Minute)
	for tick := 0; !hasEvent(j, "shed"); tick++ {
		if tick%25 == 0 {
			v := j.View()
			t.Logf("speed %.2f, %.1f s behind, behind %v", v.Progress.Speed, v.Progress.Lag, v.Behind)
		}
		if time.Now().After(deadline) {
			t.Fatalf("not shed a minute after its quota was cut to %.3f cores: %+v\nevents: %+v", quota, j.View(), j.Events())
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, e := range j.Events() {
		if e.Type == "shed" {
			t.Logf("shed: %s", e.Message)
			// The cause is the cap's quota, and the figures say so.
			if !strings.Contains(e.Message, "quota ran out") {
				t.Errorf("shed event %q: want the CPU cap's throttled periods among its figures", e.Message)
			}
		}
	}
	cut.Restore(t) // the box has room again

	// The new run, without 360p, writes its first segments: the manifests follow.
	waitFile(t, 30*time.Second, "90p after the restart", filepath.Join(dir, "90p", manifest.MediaName),
		func(s string) bool { return strings.Contains(s, "#EXT-X-DISCONTINUITY\n") })
	if v := j.View(); !slices.Equal(v.Shed, []string{"360p"}) || strings.Contains(strings.Join(v.FFmpeg, " "), "/360p/") {
		t.Errorf("after shedding: shed %v, ffmpeg %v", v.Shed, v.FFmpeg)
	}
	master := filepath.Join(dir, manifest.MasterName)
	if s := string(readFile(t, master)); strings.Contains(s, "360p/") || !strings.Contains(s, "90p/") {
		t.Errorf("master after shedding:\n%s", s)
	}
	if _, err := os.Stat(filepath.Join(dir, "360p", manifest.MediaName)); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("360p's playlist is still there after shedding: %v", err)
	}
	reps := periodReps(t, filepath.Join(dir, manifest.MPDName))
	if n := len(reps); n < 2 || !slices.Contains(reps[0], "360p") || slices.Contains(reps[n-1], "360p") || !slices.Contains(reps[n-1], "90p") {
		t.Errorf("MPD periods after shedding: %v; want 360p in the first, not in the last", reps)
	}

	// After the hold-off, with room again under the cap, 360p comes back.
	waitView(t, j, 60*time.Second, "360p back", func(v View) bool { return len(v.Shed) == 0 })
	waitFile(t, 30*time.Second, "master with 360p", master, func(s string) bool { return strings.Contains(s, "360p/") })
	// It lists only its new run: after two restarts (shed, back), in discontinuity
	// sequence 2 like the new segments of the other rungs.
	waitFile(t, 30*time.Second, "360p playlist", filepath.Join(dir, "360p", manifest.MediaName),
		func(s string) bool { return strings.Contains(s, "#EXT-X-DISCONTINUITY-SEQUENCE:2\n") })
	reps = periodReps(t, filepath.Join(dir, manifest.MPDName))
	if n := len(reps); n < 3 || !slices.Contains(reps[n-1], "360p") {
		t.Errorf("MPD periods after the rung came back: %v; want 360p in the last", reps)
	}
	var types []string
	for _, e := range j.Events() {
		if e.Type == "shed" || e.Type == "unshed" || e.Type == "behind" {
			types = append(types, e.Type)
		}
	}
	t.Logf("events: %v", types)
	if !slices.Contains(types, "unshed") {
		t.Errorf("no unshed event: %v", types)
	}
	if _, err := m.Stop(context.Background(), "shed"); err != nil {
		t.Fatal(err)
	}
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
}

// shedCut is the share of the CPU it was using that TestShedTopRung leaves the job's
// ffmpeg: far below real time, whatever the machine.
const shedCut = 0.3

// lastPID returns the process ID of the job's running ffmpeg, from its last start event.
func lastPID(t *testing.T, j *Job) int {
	t.Helper()
	pid := 0
	for _, e := range j.Events() {
		if e.Type == "start" {
			pid = e.PID
		}
	}
	if pid == 0 {
		t.Fatalf("no start event: %+v", j.Events())
	}
	return pid
}

// startShedJob starts the live job "shed" on a ladder that opts into shedding, with the
// x264 preset and the top rung given (a YAML flow mapping's fields) above a 90p rung,
// from an RTMP source with opts, under the CPU cap c (nil: none). It returns the
// manager, the job and its folder.
func startShedJob(t *testing.T, c *cpucap.Cap, preset, top string, holdOff time.Duration, opts testmedia.SourceOptions) (*Manager, *Job, string) {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	profiles := t.TempDir()
	yaml := `segment_duration: 1s
window: 30s
video:
  preset: ` + preset + `
  shed_top_rung: true
  renditions:
    - {name: ` + top + `}
    - {name: 90p, height: 90, bitrate: 100k}
audio:
  - {name: aac, codec: aac, bitrate: 64k}
`
	if err := os.WriteFile(filepath.Join(profiles, "shed.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	m := testManager(t, Config{Output: out, Ladders: ladder.NewStore(profiles, nil), CPU: c}, timing{shedHoldOff: holdOff})
	src := testmedia.StartRTMP(t, opts)
	j, err := m.Create(context.Background(), Request{Source: src.URL, Ladder: "shed", ID: "shed"})
	if err != nil {
		t.Fatal(err)
	}
	return m, j, filepath.Join(out, "shed")
}

func hasEvent(j *Job, typ string) bool {
	for _, e := range j.Events() {
		if e.Type == typ {
			return true
		}
	}
	return false
}

func waitView(t *testing.T, j *Job, limit time.Duration, what string, ok func(View) bool) View {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := j.View()
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) || v.State.Ended() {
			t.Fatalf("%s: not reached in %v: %+v", what, limit, v)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func waitFile(t *testing.T, limit time.Duration, what, path string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		b, err := os.ReadFile(path)
		if err == nil && ok(string(b)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %s not as expected in %v (%v):\n%s", what, path, limit, err, b)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// periodReps lists, per Period of the MPD at path, its Representation ids.
func periodReps(t *testing.T, path string) [][]string {
	t.Helper()
	testmedia.ValidateMPD(t, path)
	doc, err := mpd.ReadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	for _, p := range doc.Periods {
		var ids []string
		for _, as := range p.AdaptationSets {
			for _, r := range as.Representations {
				ids = append(ids, r.Id)
			}
		}
		out = append(out, ids)
	}
	return out
}

// TestSlowSourceKeepsRungs runs a live job whose ladder opts into shedding from an RTMP
// source that the test throttles to half real time, as a camera on a poor uplink would.
// The job falls behind and says so, but the box has room and its ffmpeg waits for
// input: it must say that it waits for its source, and keep its top rung, which
// encoding less would not help.
//
// The job tells a slow source from a busy box by the box's figures, so the test needs
// a box with room: it waits for one before it starts (scripts/test runs it on its own:
// beside other packages' tests a 2-core box is busy enough to count as short of CPU),
// and samples the box while the job runs. When the job sheds or blames the CPU while
// work outside the test kept every core busy, it fails and says so with the figures.
func TestSlowSourceKeepsRungs(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a live job for half a minute or more")
	}
	waitForRoom(t, time.Minute)
	box := sampleBox(t)
	_, j, _ := startShedJob(t, nil, "veryfast", "360p, height: 360, bitrate: 600k", 0,
		testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30, Rate: 0.5})
	v := waitView(t, j, 90*time.Second, "flagged behind", func(v View) bool { return v.Behind })
	var msg string
	for _, e := range j.Events() {
		if e.Type == "behind" {
			msg = e.Message
		}
	}
	t.Logf("behind: %s", msg)
	// Shedding would have come at 2 s lost; give it well past that.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && !hasEvent(j, "shed") {
		time.Sleep(200 * time.Millisecond)
	}
	v = j.View()
	crowded := box.stop(v.CPU)
	t.Logf("speed %.2f, %.1f s behind; %s", v.Progress.Speed, v.Progress.Lag, crowded.summary)
	if !strings.Contains(msg, "waits for its source") {
		t.Errorf("behind event %q: want it to say that ffmpeg waits for its source%s", msg, crowded.why)
	}
	if hasEvent(j, "shed") {
		t.Fatalf("shed a rung behind a slow source%s: %+v", crowded.why, j.Events())
	}
	if v.Progress.Speed > 0.7 || v.Progress.Lag < 5 || len(v.Shed) != 0 {
		t.Errorf("at half real time after 25 s or more: speed %.2f, lag %.1f s, shed %v; want about 0.5x, over 5 s, none",
			v.Progress.Speed, v.Progress.Lag, v.Shed)
	}
}

// waitForRoom waits until the box is not short of CPU (cpucap.Load.Short) over a
// second, for up to limit, and fails the test when it never is: the test is about a
// box with room.
func waitForRoom(t *testing.T, limit time.Duration) {
	t.Helper()
	p := cpucap.NewPressure(nil)
	deadline := time.Now().Add(limit)
	for {
		time.Sleep(time.Second)
		l, ok := p.Sample(time.Now())
		if !ok {
			t.Fatal("cannot read the box's CPU figures (/proc/stat)")
		}
		if !l.Short() {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("other work has kept every core of this machine busy for %v (%v): this test tells a slow source from a busy box and needs a box with room; run it alone", limit, l)
		}
	}
}

// boxSampler records the box's CPU load every second while a test runs.
type boxSampler struct {
	done    chan struct{}
	stopped chan struct{}
	loads   []cpucap.Load
}

// crowding is what a boxSampler saw: a summary for the log, and, when the box was short
// of CPU, a reason to add to a failure (else "").
type crowding struct{ summary, why string }

func sampleBox(t *testing.T) *boxSampler {
	b := &boxSampler{done: make(chan struct{}), stopped: make(chan struct{})}
	p := cpucap.NewPressure(nil)
	go func() {
		defer close(b.stopped)
		for {
			select {
			case <-b.done:
				return
			case <-time.After(time.Second):
				if l, ok := p.Sample(time.Now()); ok {
					b.loads = append(b.loads, l)
				}
			}
		}
	}()
	t.Cleanup(func() { b.stop(0) })
	return b
}

// stop ends the sampling; jobCores is what the job's ffmpeg was using, for the message.
func (b *boxSampler) stop(jobCores float64) crowding {
	select {
	case <-b.done:
	default:
		close(b.done)
	}
	<-b.stopped
	short, peak, sum := 0, 0.0, 0.0
	for _, l := range b.loads {
		if l.Short() {
			short++
		}
		peak, sum = max(peak, l.Busy), sum+l.Busy
	}
	mean := sum / float64(max(1, len(b.loads)))
	c := crowding{summary: fmt.Sprintf("the box was %.0f%% busy on average and %.0f%% at peak over %d one-second samples, short of CPU (95%% or more) in %d; the job's ffmpeg used %.2f cores",
		100*mean, 100*peak, len(b.loads), short, jobCores)}
	// The job judges over windows of its own: a box near the threshold in the test's
	// samples may have crossed it in the job's.
	if peak >= 0.9 {
		c.why = fmt.Sprintf(", but %s: other work on this machine crowded the job, and this test needs a box with room (run it alone)", c.summary)
	}
	return c
}
