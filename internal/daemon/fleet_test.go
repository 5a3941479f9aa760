package daemon

import (
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// fleetBox is one daemon of a fleet started by startFleet.
type fleetBox struct {
	*daemon
	id   string
	stop func() // stops the box at once, as a box that goes away
	cfg  Config // in-process boxes: its configuration, to start it again
}

// startFleet starts n daemons in this process, boxes a, b, c…, each with its own data
// folder, API port and embedded NATS server routed to the others, and one output
// folder for all (a shared mount). They start together: each waits for the others to
// form the cluster. opts change each box's configuration.
func startFleet(t *testing.T, n int, opts ...func(*Config)) []*fleetBox {
	t.Helper()
	return startFleetIn(t, t.TempDir(), n, opts...)
}

// startFleetIn is startFleet in folder root: box x's data folder is root/x/data, the
// output folder root/out.
func startFleetIn(t *testing.T, root string, n int, opts ...func(*Config)) []*fleetBox {
	t.Helper()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	boxes := make([]*fleetBox, n)
	ready := make([]<-chan string, n)
	for i := range n {
		id := string(rune('a' + i))
		peers := append(append([]string{}, routes[:i]...), routes[i+1:]...)
		c := boxConfig(t, root, id)
		c.BoxID, c.ClusterListen, c.ClusterPeers = id, routes[i], strings.Join(peers, ",")
		c.IngestRTMPListen = "127.0.0.1:0"
		for _, o := range opts {
			o(&c)
		}
		boxes[i], ready[i] = runBox(t, c, id)
	}
	for i, b := range boxes {
		b.wait(t, ready[i])
	}
	return boxes
}

// boxConfig is the configuration of box id in folder root, alone: its data folder
// root/id/data, the output folder root/out.
func boxConfig(t *testing.T, root, id string) Config {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	profiles, err := filepath.Abs("../../profiles")
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Listen: "127.0.0.1:0", Output: filepath.Join(root, "out"), Profiles: profiles,
		Data: filepath.Join(root, id, "data"), MediaRoot: filepath.Join(root, "media"),
		FFmpeg: "ffmpeg", FFprobe: "ffprobe", Version: "test",
	}
}

// runBox runs the daemon of c in this process until stop or the end of the test; its
// API address comes on the channel once it is ready (wait).
func runBox(t *testing.T, c Config, id string) (*fleetBox, <-chan string) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	addr := make(chan string, 1)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel).With().Str("test_box", id).Logger()
	go func() { done <- Run(ctx, c, log, func(a string) { addr <- a }) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("box %s did not stop in 30s", id)
		}
	}
	t.Cleanup(stop)
	return &fleetBox{daemon: &daemon{out: c.Output, mediaRoot: c.MediaRoot, profiles: c.Profiles}, id: id, stop: stop, cfg: c}, addr
}

// wait waits up to 90 s for the box's API address.
func (b *fleetBox) wait(t *testing.T, ready <-chan string) {
	t.Helper()
	select {
	case a := <-ready:
		b.api = "http://" + a
	case <-time.After(90 * time.Second):
		t.Fatalf("box %s did not start in 90s", b.id)
	}
}

// fleetJob is a job as the fleet's API shows it.
type fleetJob struct {
	job.View
	Box string `json:"box"`
}

func (b *fleetBox) fleetJob(t *testing.T, id string) fleetJob {
	t.Helper()
	var v fleetJob
	if code := b.call(t, http.MethodGet, "/v1/jobs/"+id, "", &v); code != http.StatusOK {
		t.Fatalf("GET job %s on box %s: %d", id, b.id, code)
	}
	return v
}

// segRE is a segment name: seg_<run>_<n>.m4s.
var segRE = regexp.MustCompile(`seg_(\d+)_(\d+)\.m4s`)

// runEpochs returns the epochs (run / 10^10) of the segments a media playlist lists.
func runEpochs(playlist string) map[uint64]int {
	out := map[uint64]int{}
	for _, m := range segRE.FindAllStringSubmatch(playlist, -1) {
		run, _ := strconv.ParseUint(m[1], 10, 64)
		out[run/10_000_000_000]++
	}
	return out
}

// hashSegments returns the SHA-256 of every segment file of a job folder, by path.
func hashSegments(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "seg_*.m4s"))
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			out[f] = sha256.Sum256(data)
		}
	}
	return out
}

// TestFleetFailover starts three boxes, posts three live jobs to one of them and sees
// them land on three boxes; then stops the box of a job the API box does not run and
// sees the job continue on another box within the heartbeat TTL and a few seconds, in
// the same presentation (same URLs, a discontinuity, a new DASH Period, no segment
// overwritten); then drains the API's box and sees its first job move on.
func TestFleetFailover(t *testing.T) {
	boxes := startFleet(t, 3)
	api := boxes[0]
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	ids := []string{"cam1", "cam2", "cam3"}
	on := map[string]string{} // job → box
	for _, id := range ids {
		var v fleetJob
		code := api.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"`+id+`"}`, &v)
		if code != http.StatusCreated || v.Box == "" {
			t.Fatalf("POST %s: %d %+v", id, code, v)
		}
		on[id] = v.Box
	}
	if on["cam1"] == on["cam2"] || on["cam2"] == on["cam3"] || on["cam1"] == on["cam3"] {
		t.Fatalf("three jobs on %v: want three boxes", on)
	}
	for _, id := range ids {
		waitSegments(t, api, id, on[id], 4, 90*time.Second)
	}
	// A push job is refused, and says why: its box would make a key no one sees.
	var refused struct{ Error string }
	if code := api.call(t, http.MethodPost, "/v1/jobs", `{"source": "push", "ladder": "test", "id": "obs"}`, &refused); code != http.StatusBadRequest ||
		!strings.Contains(refused.Error, "push jobs (push) are not yet run by a fleet") {
		t.Errorf("POST a push job to a fleet: %d %q, want 400 saying push jobs are not yet run by a fleet", code, refused.Error)
	}
	var list struct{ Jobs []fleetJob }
	api.call(t, http.MethodGet, "/v1/jobs", "", &list)
	if len(list.Jobs) != 3 {
		t.Fatalf("GET /v1/jobs lists %d jobs, want 3: %+v", len(list.Jobs), list.Jobs)
	}
	for _, j := range list.Jobs {
		if j.Box != on[j.ID] {
			t.Errorf("GET /v1/jobs: %s on %q, want %q", j.ID, j.Box, on[j.ID])
		}
	}
	var cl struct {
		Boxes []struct {
			ID       string  `json:"id"`
			CPULimit float64 `json:"cpu_limit"`
			Jobs     []struct{ ID string }
		}
	}
	api.call(t, http.MethodGet, "/v1/cluster", "", &cl)
	if len(cl.Boxes) != 3 {
		t.Fatalf("GET /v1/cluster: %d boxes, want 3: %+v", len(cl.Boxes), cl)
	}

	// The job to move: one whose box is not the API's.
	var moved string
	var victim *fleetBox
	for _, id := range ids {
		for _, b := range boxes[1:] {
			if on[id] == b.id && moved == "" {
				moved, victim = id, b
			}
		}
	}
	dir := filepath.Join(api.out, moved)
	before := hashSegments(t, dir)
	master := readFile(t, filepath.Join(dir, manifest.MasterName))
	stopped := time.Now()
	victim.stop()
	t.Logf("box %s stopped (job %s) after %v", victim.id, moved, time.Since(stopped).Round(time.Millisecond))
	media := filepath.Join(dir, "360p", manifest.MediaName)
	var took time.Duration
	deadline := time.Now().Add(40 * time.Second)
	for {
		pl, _ := os.ReadFile(media)
		if runEpochs(string(pl))[2] > 0 {
			took = time.Since(stopped)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: no segment of epoch 2 in %s 40s after its box stopped:\n%s", moved, media, pl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("failover: job %s's first new segment listed %v after box %s stopped", moved, took.Round(100*time.Millisecond), victim.id)
	if took > 25*time.Second {
		t.Errorf("failover took %v: want within the TTL (10 s) and a few seconds", took)
	}
	v := api.fleetJob(t, moved)
	if v.Box == victim.id || v.Box == "" {
		t.Errorf("job %s is on %q after box %s stopped", moved, v.Box, victim.id)
	}
	pl := readFile(t, media)
	if !strings.Contains(string(pl), "#EXT-X-DISCONTINUITY\n") || runEpochs(string(pl))[1] == 0 {
		t.Errorf("media playlist does not continue epoch 1's segments with a discontinuity:\n%s", pl)
	}
	// The MPD lists the new run's Period once every track of it has a segment: the
	// audio's first may come a moment after the video's.
	for wait := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		mpd := readFile(t, filepath.Join(dir, manifest.MPDName))
		if strings.Count(string(mpd), "<Period") >= 2 {
			break
		}
		if time.Now().After(wait) {
			t.Errorf("MPD has no new Period 5 s after the move's first segment:\n%s", mpd)
			break
		}
	}
	if now := readFile(t, filepath.Join(dir, manifest.MasterName)); len(now) == 0 || len(master) == 0 {
		t.Errorf("master playlist gone")
	}
	for f, h := range hashSegments(t, dir) {
		if old, ok := before[f]; ok && old != h {
			t.Errorf("segment %s was overwritten after the move", f)
		}
	}
	drainMoves(t, api, on)
}

// drainMoves drains the API's box and sees the job it ran from the start move to
// another box and continue there.
func drainMoves(t *testing.T, api *fleetBox, on map[string]string) {
	var mine string
	for id, b := range on {
		if b == api.id {
			mine = id
		}
	}
	began := time.Now()
	if code := api.call(t, http.MethodPost, "/v1/cluster/boxes/"+api.id+"/drain", "", nil); code != http.StatusOK {
		t.Fatalf("drain %s: %d", api.id, code)
	}
	media := filepath.Join(api.out, mine, "360p", manifest.MediaName)
	deadline := time.Now().Add(40 * time.Second)
	for {
		pl, _ := os.ReadFile(media)
		if runEpochs(string(pl))[2] > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("drain: job %s has no segment of epoch 2 after 40s:\n%s", mine, pl)
		}
		time.Sleep(100 * time.Millisecond)
	}
	v := api.fleetJob(t, mine)
	t.Logf("drain: job %s moved from box %s to box %s, first new segment listed %v after the drain", mine, api.id, v.Box, time.Since(began).Round(100*time.Millisecond))
	if v.Box == api.id {
		t.Errorf("drain: job %s is still on box %s", mine, api.id)
	}
}

// waitSegments waits until job id runs on box with n segments per rendition.
func waitSegments(t *testing.T, api *fleetBox, id, box string, n int, limit time.Duration) fleetJob {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := api.fleetJob(t, id)
		if v.Box == box && v.State == job.Running && len(v.Renditions) > 0 && v.Segments >= n*len(v.Renditions) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s on %s: not %d segments per rendition after %v: %+v", id, box, n, limit, v)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
