package daemon

import (
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFleetPublishS3: three boxes, each with an output folder of its own (scratch),
// publish to one S3 store (gofakes3 on loopback, not AWS). A live job runs on one box,
// which is drained: the job goes on on another box, whose manifests in the bucket
// continue the presentation (epoch 1's segments still listed, a discontinuity, a new
// Period) though its folder never held the earlier segments. The store's checks see
// that no manifest put names an object not in the bucket and that no playlist's media
// sequence goes back (the drained box puts nothing after the move). Then the job is
// deleted with purge: its objects leave the bucket.
func TestFleetPublishS3(t *testing.T) {
	if testing.Short() {
		t.Skip("the fleet publish test takes about a minute")
	}
	s3 := testmedia.StartS3(t)
	s3.SetCredentials(t)
	boxes := startFleet(t, 3, func(c *Config) {
		c.Output = filepath.Join(filepath.Dir(c.Data), "out")
		c.Publish, c.S3Endpoint, c.S3URLStyle = "s3://"+s3.Bucket+"/fleet", s3.Endpoint, "path"
	})
	api := boxes[0]
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	var v fleetJob
	if code := api.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`, &v); code != http.StatusCreated || v.Box == "" {
		t.Fatalf("POST cam: %d %+v", code, v)
	}
	first := v.Box
	waitSegments(t, api, "cam", first, 4, 90*time.Second)
	media := "fleet/cam/360p/" + manifest.MediaName
	object := func(key string) string { data, _, _ := s3.Object(key); return string(data) }
	waitUntil(t, 20*time.Second, "epoch 1's playlist in the bucket", func() bool { return runEpochs(object(media))[1] > 0 })

	began := time.Now()
	if code := api.call(t, http.MethodPost, "/v1/cluster/boxes/"+first+"/drain", "", nil); code != http.StatusOK {
		t.Fatalf("drain %s: %d", first, code)
	}
	waitUntil(t, 40*time.Second, "a segment of epoch 2 in the bucket's playlist", func() bool { return runEpochs(object(media))[2] > 0 })
	v = api.fleetJob(t, "cam")
	t.Logf("drain: job cam moved from box %s to box %s; its first new segment in the bucket's playlist %v after the drain",
		first, v.Box, time.Since(began).Round(100*time.Millisecond))
	if v.Box == first {
		t.Errorf("job cam is still on box %s after its drain", first)
	}
	time.Sleep(3 * time.Second) // time for a late put of the drained box to show
	pl := object(media)
	if e := runEpochs(pl); e[1] == 0 || e[2] == 0 || !strings.Contains(pl, "#EXT-X-DISCONTINUITY\n") {
		t.Errorf("the bucket's playlist does not continue epoch 1's segments with a discontinuity:\n%s", pl)
	}
	if mpd := object("fleet/cam/" + manifest.MPDName); strings.Count(mpd, "<Period") < 2 {
		t.Errorf("the bucket's MPD has no new Period after the move:\n%s", mpd)
	}
	for _, e := range s3.Errors() {
		t.Error(e)
	}

	if code := api.call(t, http.MethodDelete, "/v1/jobs/cam?purge=true", "", nil); code != http.StatusOK {
		t.Fatalf("DELETE cam with purge: %d", code)
	}
	if keys := s3.Keys("fleet/cam/"); len(keys) > 0 {
		t.Errorf("after the purge the bucket still holds %d objects of the job: %v", len(keys), keys[:min(len(keys), 5)])
	}
}
