package daemon

import (
	"bufio"
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// testRetention is the record_retention of TestRecordRetention's ladder.
const testRetention = 8 * time.Second

// TestRecordRetention: a ladder's record_retention deletes the recording of an ended
// job that long after it ended, at run time and, for a job that ended just before the
// daemon stopped, after a restart: the files that no clip and no final live manifest
// name are deleted, and those only; recording/ goes; the job shows recording.expired
// and no more clips can be cut; its clips and live manifests still validate and
// decode; and a third daemon restores the index without what was deleted.
func TestRecordRetention(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	minimum := ladder.MinRecordRetention
	ladder.MinRecordRetention = time.Second
	t.Cleanup(func() { ladder.MinRecordRetention = minimum })
	profiles := t.TempDir()
	l := strings.Replace(string(readFile(t, "../../profiles/test.yaml")), "window: 2m", "window: 8s\nrecord: true\nrecord_retention: "+testRetention.String(), 1)
	if err := os.WriteFile(filepath.Join(profiles, "test.yaml"), []byte(l), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	same := func(c *Config) {
		c.Output, c.Data, c.MediaRoot = filepath.Join(dir, "out"), filepath.Join(dir, "data"), filepath.Join(dir, "media")
	}
	before := map[string]job.View{}
	clips := map[string]job.Clip{}
	var stopped time.Time
	t.Run("at run time", func(t *testing.T) {
		d := startDaemon(t, profiles, same)
		for _, id := range []string{"run", "rst"} {
			src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
			d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"`+id+`"}`)
		}
		for _, id := range []string{"run", "rst"} {
			d.waitFor(t, id, 2*time.Minute, "20 s recorded", func(v job.View) bool {
				return v.State == job.Running && v.Recording != nil && v.Recording.Duration >= 20
			})
			var c job.Clip
			if code := d.call(t, http.MethodPost, "/v1/jobs/"+id+"/clips", `{"id":"early","from_s":2,"to_s":6}`, &c); code != http.StatusCreated {
				t.Fatalf("POST clip: %d", code)
			}
			clips[id] = c
		}
		before["run"] = stopJob(t, d, "run")
		if _, err := os.Stat(filepath.Join(dir, "out", "run", "recording", manifest.MasterName)); err != nil {
			t.Fatalf("the ended recording: %v", err)
		}
		v := d.waitFor(t, "run", 2*testRetention+30*time.Second, "the recording expired", func(v job.View) bool { return v.Recording.Expired })
		t.Logf("expired %.1f s after the job ended (record_retention %s)", time.Since(*v.Ended).Seconds(), testRetention)
		if since := time.Since(*v.Ended); since < testRetention {
			t.Errorf("expired %v after the job ended, before its record_retention", since)
		}
		checkExpired(t, d, "run", before["run"], clips["run"])
		before["rst"] = stopJob(t, d, "rst")
		stopped = time.Now()
	})
	t.Run("after a restart", func(t *testing.T) {
		d := startDaemon(t, profiles, same)
		v := d.job(t, "rst")
		if v.Recording == nil || v.Recording.Expired {
			t.Fatalf("rst expired %v after it ended, before the restart was done: %+v", time.Since(stopped), v.Recording)
		}
		v = d.waitFor(t, "rst", 2*testRetention+30*time.Second, "the recording expired", func(v job.View) bool { return v.Recording.Expired })
		t.Logf("restored, then expired %.1f s after the job ended", time.Since(*v.Ended).Seconds())
		checkExpired(t, d, "rst", before["rst"], clips["rst"])
	})
	t.Run("the index restored without them", func(t *testing.T) {
		d := startDaemon(t, profiles, same)
		for _, id := range []string{"run", "rst"} {
			checkExpired(t, d, id, before[id], clips[id])
		}
	})
}

// stopJob stops a running job and returns it, ended.
func stopJob(t *testing.T, d *daemon, id string) job.View {
	t.Helper()
	var v job.View
	if code := d.call(t, http.MethodDelete, "/v1/jobs/"+id, "", &v); code != http.StatusOK || !v.State.Ended() {
		t.Fatalf("DELETE %s: %d %s", id, code, v.State)
	}
	return d.job(t, id)
}

// checkExpired checks the expired recording of job id, which had before's recording
// and clip c: the segment files left are exactly those c and the final live playlists
// name (and the init files of their runs), which the job's recording counts; recording/ is gone and no clip can be cut;
// the clip and the live manifests validate and decode.
func checkExpired(t *testing.T, d *daemon, id string, before job.View, c job.Clip) {
	t.Helper()
	dir := filepath.Join(d.out, id)
	v := d.job(t, id)
	if v.Recording == nil || !v.Recording.Expired || v.Recording.HLS != "" {
		t.Fatalf("%s: recording %+v, want expired", id, v.Recording)
	}
	left := 0
	for _, r := range []string{"180p", "aac"} {
		want := append(playlistSegments(t, filepath.Join(dir, "clips", c.ID, r, manifest.MediaName)),
			playlistSegments(t, filepath.Join(dir, r, manifest.MediaName))...)
		slices.Sort(want)
		want = slices.Compact(want)
		got, err := filepath.Glob(filepath.Join(dir, r, "seg_*.m4s"))
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			got[k] = filepath.Base(got[k])
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("%s/%s holds %v, want what the clip and the live playlist name: %v", id, r, got, want)
		}
		left += len(got)
		var inits []string // those of the runs of the segments left
		for _, name := range want {
			if run, _, ok := manifest.ParseSegmentName(name); ok {
				inits = append(inits, manifest.InitName(run))
			}
		}
		slices.Sort(inits)
		gotInits, _ := filepath.Glob(filepath.Join(dir, r, "init_*.mp4"))
		for k := range gotInits {
			gotInits[k] = filepath.Base(gotInits[k])
		}
		if inits = slices.Compact(inits); !slices.Equal(gotInits, inits) {
			t.Errorf("%s/%s holds init files %v, want those of the segments left: %v", id, r, gotInits, inits)
		}
	}
	t.Logf("%s: %d segments (%d bytes) before, %d (%d bytes) left", id, before.Recording.Segments, before.Recording.Bytes, v.Recording.Segments, v.Recording.Bytes)
	if v.Recording.Segments != left || left >= before.Recording.Segments {
		t.Errorf("%s: the recording counts %d segments, %d on disk, %d before", id, v.Recording.Segments, left, before.Recording.Segments)
	}
	if _, err := os.Stat(filepath.Join(dir, "recording")); !os.IsNotExist(err) {
		t.Errorf("%s/recording: %v, want it removed", id, err)
	}
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs/"+id+"/clips", `{"id":"late","from_s":2,"to_s":6}`, &e); code != http.StatusBadRequest {
		t.Errorf("POST a clip of an expired recording: %d %v", code, e)
	}
	checkClip(t, filepath.Join(dir, "clips", c.ID), c.Duration, c.Periods)
	for _, r := range []string{"180p", "aac"} {
		decode(t, filepath.Join(dir, r, manifest.MediaName))
	}
	checkMPD(t, dir)
}

// playlistSegments lists the segment file names a media playlist names.
func playlistSegments(t *testing.T, path string) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, path)))
	for sc.Scan() {
		if line := sc.Text(); line != "" && !strings.HasPrefix(line, "#") {
			out = append(out, filepath.Base(line))
		}
	}
	return out
}

// TestRecordResumeFails: a recording job whose stored index cannot be resumed after a
// restart (here its newest init segment is gone) fails, with its recording kept,
// rather than starting its presentation again, which would clear the rendition
// folders: the recording and every clip's segments.
func TestRecordResumeFails(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	same := func(c *Config) {
		c.Output, c.Data, c.MediaRoot = filepath.Join(dir, "out"), filepath.Join(dir, "data"), filepath.Join(dir, "media")
	}
	var segs []string
	t.Run("record", func(t *testing.T) {
		d := startDaemon(t, "", same)
		src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
		d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"rec","record":true}`)
		d.waitFor(t, "rec", 2*time.Minute, "8 s recorded", func(v job.View) bool {
			return v.State == job.Running && v.Recording != nil && v.Recording.Duration >= 8
		})
	}) // the daemon stops: the job is left to resume
	segs, _ = filepath.Glob(filepath.Join(dir, "out", "rec", "180p", "seg_*.m4s"))
	inits, _ := filepath.Glob(filepath.Join(dir, "out", "rec", "180p", "init_*.mp4"))
	if len(segs) == 0 || len(inits) == 0 {
		t.Fatalf("recorded %d segments, %d init segments", len(segs), len(inits))
	}
	slices.Sort(inits)
	if err := os.Remove(inits[len(inits)-1]); err != nil {
		t.Fatal(err)
	}
	d := startDaemon(t, "", same)
	v := d.waitFor(t, "rec", time.Minute, "failed", func(v job.View) bool { return v.State == job.Failed })
	if !strings.Contains(v.Error, "would delete the recording") {
		t.Errorf("error %q, want one that says the recording is kept", v.Error)
	}
	for _, s := range segs {
		if _, err := os.Stat(s); err != nil {
			t.Errorf("a recorded segment is gone: %v", err)
		}
	}
}
