package daemon

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFleetImport runs box a alone (bbolt) with a live job, stops it, and starts it as
// one of three boxes: the fleet has the job, every box lists it, and it continues its
// presentation on the box the scheduler picks (the lone run's segments still listed,
// then epoch 1's after a discontinuity). Then box a stops, its store still holding the
// job as running, and the job is deleted from the fleet: when box a starts again, the
// job does not come back (its jobs were imported once).
func TestFleetImport(t *testing.T) {
	root := t.TempDir()
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	alone, ready := runBox(t, boxConfig(t, root, "a"), "alone")
	alone.wait(t, ready)
	if code := alone.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`, nil); code != http.StatusCreated {
		t.Fatalf("POST on the lone box: %d", code)
	}
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		var v job.View
		alone.call(t, http.MethodGet, "/v1/jobs/cam", "", &v)
		if v.State == job.Running && len(v.Renditions) > 0 && v.Segments >= 3*len(v.Renditions) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lone box: job not 3 segments per rendition in 60s: %+v", v)
		}
	}
	alone.stop()
	media := filepath.Join(root, "out", "cam", "360p", manifest.MediaName)
	if runEpochs(string(readIfAny(media)))[0] == 0 {
		t.Fatalf("no segment of the lone run in %s", media)
	}

	boxes := startFleetIn(t, root, 3)
	for _, b := range boxes {
		b.fleetJob(t, "cam") // fails the test on a 404
	}
	for deadline := time.Now().Add(60 * time.Second); runEpochs(string(readIfAny(media)))[1] == 0; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("imported job: no segment of epoch 1 in 60s:\n%s", readIfAny(media))
		}
	}
	pl := string(readIfAny(media))
	if runEpochs(pl)[0] == 0 || !strings.Contains(pl, "#EXT-X-DISCONTINUITY\n") {
		t.Errorf("imported job does not continue the lone run's presentation:\n%s", pl)
	}
	t.Logf("imported job runs on box %s", boxes[1].fleetJob(t, "cam").Box)

	a := boxes[0]
	a.stop()
	for deadline := time.Now().Add(40 * time.Second); boxes[1].fleetJob(t, "cam").Box == a.id; time.Sleep(250 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("job still on box %s 40s after it stopped", a.id)
		}
	}
	if code := boxes[1].call(t, http.MethodDelete, "/v1/jobs/cam", "", nil); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	again, ready := runBox(t, a.cfg, a.id)
	again.wait(t, ready)
	time.Sleep(3 * time.Second) // a scheduler round
	for _, b := range []*fleetBox{again, boxes[1], boxes[2]} {
		var list struct{ Jobs []fleetJob }
		b.call(t, http.MethodGet, "/v1/jobs", "", &list)
		for _, j := range list.Jobs {
			if j.ID == "cam" && !j.State.Ended() {
				t.Errorf("box %s lists the deleted job again, %s on box %q: box a imported it a second time", b.id, j.State, j.Box)
			}
		}
	}
}
