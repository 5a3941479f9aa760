package daemon

import (
	"io/fs"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
	"github.com/transcoderd/transcoderd/profiles"
)

// TestProfilesVOD runs every shipped ladder for real on a generated 1080p file and checks
// what a player would get: manifests that parse and validate, decodable renditions of the
// planned sizes, video bitrates within 15% of the ladder, and aligned segments.
func TestProfilesVOD(t *testing.T) {
	d := startDaemon(t, "")
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "sample.mp4"), testmedia.SampleOptions{
		Width: 1920, Height: 1080, FPS: 30, Duration: 12 * time.Second, Noise: true,
	})
	ladders, err := filepath.Glob(filepath.Join(d.profiles, "*.yaml"))
	if err != nil || len(ladders) < 2 {
		t.Fatalf("profiles: %v %v", ladders, err)
	}
	grew := 0 // jobs seen with a growing percent
	for _, path := range ladders {
		name := strings.TrimSuffix(filepath.Base(path), ".yaml")
		t.Run(name, func(t *testing.T) {
			v := d.create(t, `{"source":"sample.mp4","ladder":"`+name+`","id":"vod-`+name+`"}`)
			if v.Live {
				t.Fatal("a file source must be a VOD job")
			}
			var running []job.Progress // what the job showed while it ran
			v = d.waitFor(t, v.ID, 5*time.Minute, "finish", func(v job.View) bool {
				if !v.State.Ended() && v.Progress.Percent != nil {
					running = append(running, v.Progress)
				}
				return v.State == job.Finished
			})
			if checkFileProgress(t, v, running, 12*time.Second) {
				grew++
			}
			dir := filepath.Join(d.out, v.ID)
			tracks := checkOutputs(t, dir, v)
			m := checkMPD(t, dir)
			if got := m.GetType(); got != "static" {
				t.Errorf("VOD MPD type %q, want static", got)
			}
			for _, r := range v.Renditions {
				ti := tracks[r.Name]
				if !ti.playlist.Closed {
					t.Errorf("%s: VOD playlist has no EXT-X-ENDLIST", r.Name)
				}
				if math.Abs(ti.seconds-12) > 0.2 {
					t.Errorf("%s: %.3f s of media, want 12", r.Name, ti.seconds)
				}
				rate := float64(ti.bytes*8) / ti.seconds
				dev := rate/float64(r.Bitrate) - 1
				if r.Kind == "audio" && dev < 0 {
					dev = 0 // AAC spends fewer bits on a test tone than it may; it must not spend more
				}
				if math.Abs(dev) > 0.15 {
					t.Errorf("%s: %.0f kbit/s, ladder says %d kbit/s (%+.0f%%)", r.Name, rate/1000, r.Bitrate/1000, dev*100)
				} else {
					t.Logf("%s %dx%d: %.0f kbit/s for %d kbit/s", r.Name, r.Width, r.Height, rate/1000, r.Bitrate/1000)
				}
			}
		})
	}
	if grew == 0 {
		t.Error("no job was seen with its progress.percent growing while it ran")
	}
}

// checkFileProgress checks what a finished file job of a source of length showed:
// while it ran (running, in order), a percent below 100 that never went back and an
// eta once it had a speed; finished, percent 100, eta 0, and out_time and the probed
// duration of the source's length. It reports whether the percent grew while it ran.
func checkFileProgress(t *testing.T, v job.View, running []job.Progress, length time.Duration) bool {
	t.Helper()
	var shown []float64
	etas := 0
	for i, p := range running {
		if *p.Percent < 0 || *p.Percent >= 100 {
			t.Errorf("running job at %v of %v shows %v%%", p.OutTime, length, *p.Percent)
		}
		if i > 0 && *p.Percent < *running[i-1].Percent && v.Restarts == 0 {
			t.Errorf("progress.percent went back from %v to %v", *running[i-1].Percent, *p.Percent)
		}
		if len(shown) == 0 || shown[len(shown)-1] != *p.Percent {
			shown = append(shown, *p.Percent)
		}
		if p.ETA != nil {
			etas++
		}
	}
	pr := v.Progress
	switch {
	case pr.Percent == nil || *pr.Percent != 100 || pr.ETA == nil || *pr.ETA != 0:
		t.Errorf("finished file job shows percent %s and eta %s, want 100 and 0", show(pr.Percent), show(pr.ETA))
	case v.Input == nil || (v.Input.Duration-length).Abs() > 200*time.Millisecond:
		t.Errorf("finished file job shows input %+v, want a duration of %v", v.Input, length)
	case math.Abs(pr.OutTime-length.Seconds()) > 0.5:
		t.Errorf("finished file job shows out_time %v s, want %v", pr.OutTime, length.Seconds())
	}
	if len(running) >= 3 && etas == 0 {
		t.Errorf("running file job never showed an eta in %d polls", len(running))
	}
	t.Logf("progress.percent while it ran: %v; finished: %s", shown, show(pr.Percent))
	return len(shown) >= 2
}

func TestLiveRTMP(t *testing.T) {
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	checkLive(t, d, src.URL)
}

func TestLiveRTSP(t *testing.T) {
	d := startDaemon(t, "")
	src := testmedia.StartRTSP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	checkLive(t, d, src.URL)
}

// checkLive pulls a live source with the test ladder, checks the live presentation, stops
// the job and checks that the presentation ended properly and no ffmpeg is left.
func checkLive(t *testing.T, d *daemon, url string) {
	v := d.create(t, `{"source":"`+url+`","ladder":"test","id":"live"}`)
	if !v.Live || v.HLS != "live/master.m3u8" || v.DASH != "live/manifest.mpd" {
		t.Fatalf("job = %+v", v)
	}
	dir := filepath.Join(d.out, v.ID)
	v = d.waitFor(t, v.ID, 90*time.Second, "4 segments per rendition", func(v job.View) bool {
		_, err := os.Stat(filepath.Join(dir, manifest.MPDName))
		return v.State == job.Running && err == nil && v.Segments >= 4*len(v.Renditions)
	})
	if len(v.FFmpeg) == 0 || v.Progress.FPS == 0 && v.Progress.Frame == 0 {
		t.Errorf("running job shows no ffmpeg argv or progress: %+v", v)
	}
	tracks := checkOutputs(t, dir, v)
	for name, ti := range tracks {
		if ti.playlist.Closed {
			t.Errorf("%s: live playlist already has EXT-X-ENDLIST", name)
		}
		if ti.playlist.Segments[0].ProgramDateTime.IsZero() {
			t.Errorf("%s: live playlist has no EXT-X-PROGRAM-DATE-TIME", name)
		}
	}
	m := checkMPD(t, dir)
	if m.GetType() != "dynamic" || m.AvailabilityStartTime == "" || m.MinimumUpdatePeriod == nil || m.TimeShiftBufferDepth == nil || len(m.UTCTimings) == 0 {
		t.Errorf("live MPD lacks type=dynamic, availabilityStartTime, minimumUpdatePeriod, timeShiftBufferDepth or UTCTiming")
	}

	if code := d.call(t, http.MethodDelete, "/v1/jobs/live", "", &v); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if v.State != job.Finished {
		t.Fatalf("stopped job is %s (%s), want finished", v.State, v.Error)
	}
	tracks = checkOutputs(t, dir, v)
	for name, ti := range tracks {
		if !ti.playlist.Closed {
			t.Errorf("%s: stopped live playlist has no EXT-X-ENDLIST", name)
		}
	}
	m = checkMPD(t, dir)
	if m.MinimumUpdatePeriod != nil || m.MediaPresentationDuration == nil {
		t.Errorf("stopped live MPD still promises updates (minimumUpdatePeriod %v, mediaPresentationDuration %v)", m.MinimumUpdatePeriod, m.MediaPresentationDuration)
	}
	if pids := processesWriting(t, dir); len(pids) > 0 {
		t.Errorf("ffmpeg still running after stop: %v", pids)
	}
	// ffmpeg's complaints about the output: a packet the muxer refused is media lost.
	var ev struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/live/events", "", &ev)
	for _, e := range ev.Events {
		for _, line := range e.Stderr {
			if strings.Contains(line, "out of range") || strings.Contains(line, "Non-monotonous") {
				t.Errorf("ffmpeg: %s", line)
			}
		}
	}
}

// TestBadRequests: a bad request gets a clear 4xx, and nothing starts and nothing is written.
func TestBadRequests(t *testing.T) {
	profiles := t.TempDir()
	copyFile(t, "../../profiles/test.yaml", filepath.Join(profiles, "test.yaml"))
	writeFile(t, filepath.Join(profiles, "broken.yaml"), "segment_duration: 2s\nvideo:\n  renditions:\n    - {name: 720p, height: 720, bitrate: 2800k}\n    - {name: big, height: 1080, bitrate: 5000k}\n")
	d := startDaemon(t, profiles)
	writeFile(t, filepath.Join(d.mediaRoot, "notes.txt"), "not a video")
	outside := filepath.Join(t.TempDir(), "outside.mp4")
	writeFile(t, outside, "x")

	tests := []struct {
		name string
		body string
		code int
		want string
	}{
		{"file scheme", `{"source":"file:///etc/passwd","ladder":"test"}`, 400, `scheme "file" is not allowed`},
		{"concat", `{"source":"concat:a.mp4|b.mp4","ladder":"test"}`, 400, "not allowed"},
		{"argument smuggling", `{"source":"-i /etc/passwd","ladder":"test"}`, 400, "must not start with '-'"},
		{"absolute path", `{"source":"` + outside + `","ladder":"test"}`, 400, "relative to the media root"},
		{"traversal", `{"source":"../../../etc/passwd","ladder":"test"}`, 400, "outside the media root"},
		{"missing file", `{"source":"nope.mp4","ladder":"test"}`, 400, "does not exist"},
		{"not media", `{"source":"notes.txt","ladder":"test"}`, 400, "notes.txt"},
		{"bad rtsp transport", `{"source":"rtsp://127.0.0.1:1/cam?transport=sctp","ladder":"test"}`, 400, "?transport= must be tcp, udp or auto"},
		{"unknown ladder", `{"source":"rtmp://127.0.0.1:1/live","ladder":"nope"}`, 400, `ladder "nope"`},
		{"broken ladder", `{"source":"rtmp://127.0.0.1:1/live","ladder":"broken"}`, 400, "broken.yaml:5: video.renditions[1].height"},
		{"ladder traversal", `{"source":"rtmp://127.0.0.1:1/live","ladder":"../test"}`, 400, "ladder"},
		{"bad id", `{"source":"rtmp://127.0.0.1:1/live","ladder":"test","id":"../etc"}`, 400, "id"},
		{"unknown field", `{"source":"rtmp://127.0.0.1:1/live","ladder":"test","priority":1}`, 400, `unknown field "priority"`},
		{"empty body", ``, 400, "empty"},
		{"not json", `source=rtmp://x`, 400, "bad JSON"},
		{"two objects", `{"source":"rtmp://127.0.0.1:1/live"}{}`, 400, "more than one"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e map[string]string
			code := d.call(t, http.MethodPost, "/v1/jobs", tc.body, &e)
			if code != tc.code || !strings.Contains(e["error"], tc.want) {
				t.Errorf("got %d %q, want %d containing %q", code, e["error"], tc.code, tc.want)
			}
		})
	}
	var list struct{ Jobs []job.View }
	d.call(t, http.MethodGet, "/v1/jobs", "", &list)
	if len(list.Jobs) != 0 {
		t.Errorf("refused requests left jobs: %+v", list.Jobs)
	}
	if entries, _ := os.ReadDir(d.out); len(entries) != 0 {
		t.Errorf("refused requests wrote into the output folder: %v", entries)
	}

	// The ladder API shows the broken ladder with its problem, and the good ones: the
	// folder's test and the built-in ones but test.
	var ladders struct {
		Ladders []struct {
			Name     string
			Valid    bool
			Problems []string
		}
	}
	d.call(t, http.MethodGet, "/v1/ladders", "", &ladders)
	if len(ladders.Ladders) != 2+builtinExcept(t, "test") || ladders.Ladders[0].Name != "broken" || ladders.Ladders[0].Valid ||
		len(ladders.Ladders[0].Problems) == 0 || !ladders.Ladders[1].Valid {
		t.Errorf("GET /v1/ladders = %+v", ladders)
	}
	if code := d.call(t, http.MethodGet, "/v1/ladders/nope", "", nil); code != http.StatusNotFound {
		t.Errorf("GET unknown ladder: %d", code)
	}
	if code := d.call(t, http.MethodGet, "/v1/jobs/nope", "", nil); code != http.StatusNotFound {
		t.Errorf("GET unknown job: %d", code)
	}
}

// TestLadderEditAppliesToNextJob: ladders are read at job creation, no restart needed.
func TestLadderEditAppliesToNextJob(t *testing.T) {
	profiles := t.TempDir()
	ladder := "segment_duration: 1s\nvideo:\n  preset: ultrafast\n  renditions:\n    - {name: r180, height: 180, bitrate: 200k}\n"
	writeFile(t, filepath.Join(profiles, "edit.yaml"), ladder)
	d := startDaemon(t, profiles)
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "small.mp4"), testmedia.SampleOptions{Width: 320, Height: 240, FPS: 25, Duration: 2 * time.Second})

	v := d.create(t, `{"source":"small.mp4","ladder":"edit","id":"first"}`)
	v = d.waitFor(t, v.ID, time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	if len(v.Renditions) != 1 { // the ladder has no audio
		t.Fatalf("first job renditions = %+v", v.Renditions)
	}
	writeFile(t, filepath.Join(profiles, "edit.yaml"), strings.Replace(ladder, "renditions:\n", "renditions:\n    - {name: r240, height: 240, bitrate: 400k}\n", 1))
	v = d.create(t, `{"source":"small.mp4","ladder":"edit","id":"second"}`)
	v = d.waitFor(t, v.ID, time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	if len(v.Renditions) != 2 || v.Renditions[0].Name != "r240" || v.Renditions[0].Width != 320 {
		t.Fatalf("second job renditions = %+v", v.Renditions)
	}
	checkOutputs(t, filepath.Join(d.out, "second"), v)
	checkMPD(t, filepath.Join(d.out, "second"))

	// A second job with an id in use is refused.
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"small.mp4","ladder":"edit","id":"second"}`, &e); code != http.StatusConflict {
		t.Errorf("duplicate id: %d %v", code, e)
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	writeFile(t, to, string(readFile(t, from)))
}

// show writes an optional figure.
func show(f *float64) string {
	if f == nil {
		return "absent"
	}
	return strconv.FormatFloat(*f, 'f', -1, 64)
}

// builtinExcept counts the built-in ladders but those a profiles folder replaces.
func builtinExcept(t *testing.T, replaced ...string) int {
	t.Helper()
	files, err := fs.Glob(profiles.FS, "*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, f := range files {
		if !slices.Contains(replaced, strings.TrimSuffix(f, ".yaml")) {
			n++
		}
	}
	return n
}

// TestBuiltinLaddersOff: with --builtin-ladders=false the daemon offers the profiles
// folder's ladders alone, and refuses a job on a built-in one.
func TestBuiltinLaddersOff(t *testing.T) {
	folder := t.TempDir()
	writeFile(t, filepath.Join(folder, "house.yaml"), "segment_duration: 2s\nvideo:\n  renditions:\n    - {name: r360, height: 360, bitrate: 800k}\n")
	d := startDaemon(t, folder, func(c *Config) { c.NoBuiltinLadders = true })
	var ladders struct{ Ladders []struct{ Name string } }
	if code := d.call(t, http.MethodGet, "/v1/ladders", "", &ladders); code != http.StatusOK || len(ladders.Ladders) != 1 || ladders.Ladders[0].Name != "house" {
		t.Errorf("GET /v1/ladders = %d %+v, want the folder's house alone", code, ladders)
	}
	var e map[string]string
	code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"rtmp://127.0.0.1:1/live/x","ladder":"default"}`, &e)
	if code != http.StatusBadRequest || !strings.Contains(e["error"], "ladder not found") {
		t.Errorf("a job on the built-in default: %d %q, want 400 ladder not found", code, e["error"])
	}
}
