package job

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/store"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestStopFileJobIsPartial stops a file job half way: it ends stopped, not finished, and
// says its output is partial; what it wrote stays, and the manifests list exactly that
// (ENDLIST and a static MPD: no more segments will come, see runner.end).
func TestStopFileJobIsPartial(t *testing.T) {
	testmedia.RequireFFmpeg(t)
	media := t.TempDir()
	testmedia.WriteSample(t, filepath.Join(media, "long.mp4"), testmedia.SampleOptions{Duration: 2 * time.Minute})
	out := t.TempDir()
	m := testManager(t, Config{Output: out, MediaRoot: media})
	j, err := m.Create(context.Background(), Request{Source: "long.mp4", Ladder: "test", ID: "vod"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for j.View().Segments < 6 {
		if time.Now().After(deadline) || j.View().State.Ended() {
			t.Fatalf("no segments to stop after: %+v", j.View())
		}
		time.Sleep(20 * time.Millisecond)
	}
	v, err := m.Stop(context.Background(), "vod")
	if err != nil {
		t.Fatal(err)
	}
	if v.State != Stopped || v.Ended == nil {
		t.Fatalf("a file job stopped half way is %s (ended %v), want stopped", v.State, v.Ended)
	}
	if v.Progress.Percent != nil && *v.Progress.Percent >= 100 {
		t.Errorf("stopped job shows %v percent", *v.Progress.Percent)
	}
	partial := false
	for _, e := range j.Events() {
		partial = partial || e.Type == "state" && strings.Contains(e.Message, "partial")
	}
	if !partial {
		t.Errorf("no event says the output is partial: %+v", j.Events())
	}
	dir := filepath.Join(out, "vod")
	pl := string(readFile(t, filepath.Join(dir, "180p", manifest.MediaName)))
	if !strings.Contains(pl, "#EXT-X-ENDLIST") {
		t.Errorf("the playlist of a stopped job has no ENDLIST:\n%s", pl)
	}
	for _, line := range strings.Split(pl, "\n") {
		if strings.HasPrefix(line, "seg_") {
			if _, err := os.Stat(filepath.Join(dir, "180p", line)); err != nil {
				t.Errorf("listed segment: %v", err)
			}
		}
	}
	mpdPath := filepath.Join(dir, manifest.MPDName)
	testmedia.ValidateMPD(t, mpdPath)
	doc, err := mpd.ReadFromFile(mpdPath)
	if err != nil {
		t.Fatal(err)
	}
	if d := doc.MediaPresentationDuration; d == nil || time.Duration(*d) <= 0 || time.Duration(*d) >= 2*time.Minute {
		t.Errorf("stopped job's MPD lasts %v, want what was encoded, under 2 min", d)
	}
}

// TestRestoreStopping restores jobs a previous daemon was stopping when it died: none
// resumes; a file job ends stopped, a live one finished (as the stop would have ended
// them), each with the final manifests of what it had written.
func TestRestoreStopping(t *testing.T) {
	for _, tc := range []struct {
		name, source string
		live         bool
		want         State
	}{
		{"file", "clip.mp4", false, Stopped},
		{"live", "rtmp://127.0.0.1:1/live/gone", true, Finished},
	} {
		t.Run(tc.name, func(t *testing.T) {
			media := t.TempDir()
			testmedia.WriteSample(t, filepath.Join(media, "clip.mp4"), testmedia.SampleOptions{})
			st := store.NewMemory()
			m := testManager(t, Config{MediaRoot: media, Store: st})
			l, err := m.cfg.Ladders.Get("test")
			if err != nil {
				t.Fatal(err)
			}
			rec := storedJob{Version: storedVersion, Request: storedRequest{Source: tc.source, Ladder: "test"}, Ladder: l}
			rec.View = storedView{ID: "j", State: Stopping, Source: tc.source, Ladder: "test", Live: tc.live, Created: time.Now()}
			if err := st.PutJob("j", rec); err != nil {
				t.Fatal(err)
			}
			if err := m.Restore(context.Background()); err != nil {
				t.Fatal(err)
			}
			j, err := m.Get("j")
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-j.Done():
			case <-time.After(10 * time.Second):
				t.Fatalf("the job runs on: %+v", j.View())
			}
			if v := j.View(); v.State != tc.want || v.Ended == nil || len(v.FFmpeg) > 0 {
				t.Errorf("restored stopping job: %s (ended %v, ffmpeg %v), want %s", v.State, v.Ended, v.FFmpeg, tc.want)
			}
		})
	}
}

// TestSuspendIsNoStop closes the manager (a daemon restart) under a running live job:
// the job is stored as it ran, not as stopping, so that the next daemon resumes it
// rather than carrying out a stop nobody asked for.
func TestSuspendIsNoStop(t *testing.T) {
	m, st, _, _ := runningLiveJob(t)
	m.Close()
	if state := storedState(t, st, "cam"); state != Running {
		t.Errorf("a job suspended by a daemon restart is stored %s, want running", state)
	}
}

// TestSuspendWhileReconnecting: a live job waiting to reconnect (its source gone) when
// the daemon stops is left to resume, not ended.
func TestSuspendWhileReconnecting(t *testing.T) {
	m, st, src, j := runningLiveJob(t)
	src.Pause()
	waitState(t, j, Reconnecting)
	m.Close()
	if state := storedState(t, st, "cam"); state.Ended() {
		t.Errorf("a job reconnecting when the daemon stopped is stored %s: it would not resume", state)
	}
}

// storedState is the state of job id as st holds it.
func storedState(t *testing.T, st Store, id string) State {
	t.Helper()
	recs, err := st.Jobs()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := decodeRecord(recs[id])
	if err != nil {
		t.Fatal(err)
	}
	return rec.View.State
}

// waitState waits up to a minute for j to be in state want, and fails the test when it
// ends first.
func waitState(t *testing.T, j *Job, want State) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for j.View().State != want {
		if time.Now().After(deadline) || j.View().State.Ended() {
			t.Fatalf("not %s: %+v", want, j.View())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// runningLiveJob starts a manager with a store in memory and a live job "cam" on an
// RTMP test source, and returns them once the job runs.
func runningLiveJob(t *testing.T) (*Manager, *store.Memory, *testmedia.Source, *Job) {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	st := store.NewMemory()
	m := testManager(t, Config{Store: st})
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{})
	j, err := m.Create(context.Background(), Request{Source: src.URL, Ladder: "test", ID: "cam"})
	if err != nil {
		t.Fatal(err)
	}
	waitState(t, j, Running)
	return m, st, src, j
}
