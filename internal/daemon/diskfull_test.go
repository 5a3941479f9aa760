package daemon

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestDiskFull runs a live job from a real RTMP source into a small tmpfs, fills it
// (a filler file leaves ffmpeg a few seconds of room), then frees the room again. The
// job must not freeze: a segment cut short is given up and ffmpeg runs again
// (segments_lost), or ffmpeg that failed to write is restarted with the full disk
// named as the reason; once there is room, new segments come. At every poll, the media
// playlists and the MPD name only files on disk; at the end the MPD is valid.
func TestDiskFull(t *testing.T) {
	if testing.Short() {
		t.Skip("the disk-full test takes about half a minute")
	}
	out := mountTmpfs(t, 16<<20)
	d := startDaemon(t, "", func(c *Config) { c.Output = out })
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"full"}`)
	dir := filepath.Join(out, v.ID)
	v = d.waitFor(t, v.ID, 60*time.Second, "first segments", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= 3*len(v.Renditions)
	})

	// Leave ffmpeg about two seconds of its output (about 110 kB/s), then watch it run
	// into the wall.
	filler := filepath.Join(out, "filler")
	fill(t, filler, 200<<10)
	since := time.Now()
	full := d.pollServed(t, dir, v.ID, 60*time.Second, "the full disk seen", func(v job.View) bool {
		return v.SegmentsLost > 0 || diskFullEvent(d.events(t, v.ID, since)) != ""
	})
	why := diskFullEvent(d.events(t, v.ID, since))
	t.Logf("disk full: segments_lost %d, restarts %d, error %q, reason %q", full.SegmentsLost, full.Restarts, full.Error, why)
	if why == "" {
		t.Errorf("no lost or restart event names the full disk: %v", d.events(t, v.ID, since))
	}

	// ffmpeg runs again on a disk still full; room comes back while it runs: the job
	// comes back by itself.
	d.pollServed(t, dir, v.ID, 30*time.Second, "ffmpeg run again on the full disk", func(v job.View) bool {
		ev := d.events(t, v.ID, since)
		i := slices.IndexFunc(ev, func(e job.Event) bool { return diskFullEvent([]job.Event{e}) != "" })
		return i >= 0 && slices.ContainsFunc(ev[i:], func(e job.Event) bool { return e.Type == "start" })
	})
	time.Sleep(2 * time.Second)
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	freed := d.job(t, v.ID)
	back := d.pollServed(t, dir, v.ID, 60*time.Second, "new segments after the disk had room again", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= freed.Segments+3*len(v.Renditions)
	})
	t.Logf("back: segments %d (were %d when freed), segments_lost %d, restarts %d", back.Segments, freed.Segments, back.SegmentsLost, back.Restarts)
	checkServedFiles(t, dir)
	checkLostRuns(t, d.events(t, v.ID, since))
	checkOutputs(t, dir, back)
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
}

// mountTmpfs mounts a tmpfs of size bytes on a new temporary folder, unmounted at the
// end of the test. It needs root (the tests run as root in CI).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	opt := fmt.Sprintf("size=%dk", size>>10)
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, opt); err != nil {
		testmedia.Missing(t, fmt.Sprintf("mount -t tmpfs -o %s tmpfs %s: %v (the test needs root, or CAP_SYS_ADMIN)", opt, dir, err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file at path that leaves room bytes free on its file system.
func fill(t *testing.T, path string, room uint64) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(filepath.Dir(path), &st); err != nil {
		t.Fatal(err)
	}
	free := st.Bavail * uint64(st.Bsize)
	if free <= room {
		t.Fatalf("%d bytes free, want more than %d", free, room)
	}
	if err := os.WriteFile(path, make([]byte, free-room), 0o644); err != nil {
		t.Fatal(err)
	}
}

// pollServed waits for cond like waitFor, checking at every poll that the job's
// manifests name only files on disk (checkServedFiles).
func (d *daemon) pollServed(t *testing.T, dir, id string, limit time.Duration, what string, cond func(job.View) bool) job.View {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		checkServedFiles(t, dir)
		v := d.job(t, id)
		if cond(v) {
			return v
		}
		if v.State.Ended() {
			t.Fatalf("job %s %s while waiting for %s: %s", id, v.State, what, v.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: no %s after %v; state %s, segments %d, segments_lost %d, restarts %d, error %q",
				id, what, limit, v.State, v.Segments, v.SegmentsLost, v.Restarts, v.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// events returns the job's events after since.
func (d *daemon) events(t *testing.T, id string, since time.Time) []job.Event {
	t.Helper()
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &events)
	var out []job.Event
	for _, e := range events.Events {
		if e.Time.After(since) {
			out = append(out, e)
		}
	}
	return out
}

// diskFullEvent returns the message of the first lost or restart event that names the
// full disk, "" when none does.
func diskFullEvent(events []job.Event) string {
	for _, e := range events {
		if (e.Type == "lost" || e.Type == "restart") && strings.Contains(e.Message, "the disk is full") {
			return e.Type + ": " + e.Message
		}
	}
	return ""
}

// checkLostRuns fails the test when a run of ffmpeg was stopped for a lost segment
// sooner than it could have written one: a segment given up by the run before.
func checkLostRuns(t *testing.T, events []job.Event) {
	t.Helper()
	started := map[int]time.Time{}
	for _, e := range events {
		switch e.Type {
		case "start":
			started[e.PID] = e.Time
		case "lost":
			if at, ok := started[e.PID]; ok && e.Time.Sub(at) < testSegment {
				t.Errorf("ffmpeg %d stopped for a lost segment %v after its start, before it could write one: %s",
					e.PID, e.Time.Sub(at), e.Message)
			}
		}
	}
}

// checkServedFiles fails the test when a media playlist or the MPD of the job in dir
// names a file (segment or init) that is not on disk.
func checkServedFiles(t *testing.T, dir string) {
	t.Helper()
	playlists, _ := filepath.Glob(filepath.Join(dir, "*", manifest.MediaName))
	for _, pl := range playlists {
		data, err := os.ReadFile(pl)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			name := line
			if uri, ok := strings.CutPrefix(line, `#EXT-X-MAP:URI="`); ok {
				name, _, _ = strings.Cut(uri, `"`)
			} else if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if _, err := os.Stat(filepath.Join(filepath.Dir(pl), name)); err != nil {
				t.Fatalf("%s names a file not on disk: %v\n%s", pl, err, data)
			}

		}
	}
	doc, err := mpd.ReadFromFile(filepath.Join(dir, manifest.MPDName))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatalf("the MPD does not parse: %v", err)
	}
	for _, p := range doc.Periods {
		for _, as := range p.AdaptationSets {
			for _, rep := range as.Representations {
				for _, name := range testmedia.TemplateFiles(rep.SegmentTemplate, rep.Id) {
					if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
						t.Fatalf("the MPD (period %s) names a file not on disk: %v", p.Id, err)
					}
				}
			}
		}
	}
}
