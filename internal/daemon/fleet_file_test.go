package daemon

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFleetFileJob: a file job whose box goes away half-way starts again on another
// box and finishes there: an on-demand presentation of the whole file (ENDLIST, a
// static MPD that validates), listed as finished on the box that ran it last.
func TestFleetFileJob(t *testing.T) {
	boxes := startFleet(t, 3)
	api := boxes[0]
	testmedia.WriteSample(t, filepath.Join(api.mediaRoot, "talk.mp4"), testmedia.SampleOptions{Width: 640, Height: 360, FPS: 25, Duration: 40 * time.Second})
	var v fleetJob
	if code := api.call(t, http.MethodPost, "/v1/jobs", `{"source":"talk.mp4","ladder":"test","id":"talk"}`, &v); code != http.StatusCreated || v.Box == "" {
		t.Fatalf("POST: %d %+v", code, v)
	}
	first := v.Box
	deadline := time.Now().Add(2 * time.Minute)
	for v = api.fleetJob(t, "talk"); v.Progress.Percent == nil || *v.Progress.Percent < 10; v = api.fleetJob(t, "talk") {
		if time.Now().After(deadline) || v.State.Ended() {
			t.Fatalf("file job not 10 %% done after 2 minutes: %+v", v)
		}
		time.Sleep(200 * time.Millisecond)
	}
	var victim *fleetBox
	for _, b := range boxes {
		if b.id == first {
			victim = b
		}
	}
	stopped := time.Now()
	victim.stop()
	t.Logf("box %s stopped with job talk %.0f %% done", first, *v.Progress.Percent)
	ask := boxes[0]
	if ask == victim {
		ask = boxes[1]
	}
	deadline = time.Now().Add(3 * time.Minute)
	for v = ask.fleetJob(t, "talk"); v.State != job.Finished; v = ask.fleetJob(t, "talk") {
		if time.Now().After(deadline) || v.State == job.Failed {
			t.Fatalf("file job not finished 3 minutes after its box stopped: %+v", v)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Logf("finished on box %s, %v after box %s stopped", v.Box, time.Since(stopped).Round(100*time.Millisecond), first)
	if v.Box == first {
		t.Errorf("finished on the box that was stopped")
	}
	dir := filepath.Join(api.out, "talk")
	pl, err := os.ReadFile(filepath.Join(dir, "360p", manifest.MediaName))
	if err != nil || !strings.Contains(string(pl), "#EXT-X-ENDLIST") {
		t.Errorf("360p playlist without ENDLIST (%v):\n%s", err, pl)
	}
	testmedia.ValidateMPD(t, filepath.Join(dir, manifest.MPDName))
}
