//go:build fleetbench

package daemon

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/transcoderd/transcoderd/internal/coord/coordtest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFleetBench is scripts/fleetbench: it prints figures and asserts little. Three
// boxes run as processes of the built daemon on a three-server NATS cluster that this
// process hosts (so that the boxes' NATS traffic can be read from the servers).
//
//   - failover: FLEETBENCH_RUNS times (default 10), the box that runs a live job of the
//     test ladder is killed with -9; the time until the job's first segment file of
//     the next epoch appears in the shared output folder. The box then starts again.
//   - drain: three times, the job's box is drained; the time until the first segment
//     file of the next epoch; the box is undrained.
//   - overhead: FLEETBENCH_JOBS live jobs (default 20) of a one-rung 96p ladder over
//     the three boxes; for 30 s, each daemon's own CPU and RSS (its process, not its
//     ffmpeg children) and its NATS client connection's bytes in and out.
func TestFleetBench(t *testing.T) {
	runs, jobs := envInt("FLEETBENCH_RUNS", 10), envInt("FLEETBENCH_JOBS", 20)
	cl := coordtest.StartCluster(t, 3)
	urls := strings.Join(cl.URLs, ",")
	profiles := t.TempDir()
	for _, f := range []string{"test.yaml"} {
		data, err := os.ReadFile(filepath.Join("../../profiles", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(profiles, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tiny := "description: fleetbench, one tiny rung\nsegment_duration: 1s\nwindow: 30s\nencoder: x264\nfallback: none\n" +
		"video:\n  codec: h264\n  preset: ultrafast\n  renditions:\n    - {name: 96p, height: 96, bitrate: 100k, profile: baseline}\n" +
		"audio:\n  - {name: aac, codec: aac, bitrate: 32k, channels: 1}\n"
	if err := os.WriteFile(filepath.Join(profiles, "tiny.yaml"), []byte(tiny), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--nats-url", urls, "--profiles", profiles}
	boxes := startProcs(t, buildDaemon(t), [][]string{args, args, args})
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	api := boxes[0]
	var v fleetJob
	if code := api.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`, &v); code != http.StatusCreated {
		t.Fatalf("POST: %d", code)
	}
	dir := filepath.Join(api.out, "cam")
	epoch := uint64(1)
	var failovers []time.Duration
	for i := range runs {
		owner := waitOwner(t, boxes, "cam", epoch)
		killed := time.Now()
		_ = syscall.Kill(owner.cmd.Process.Pid, syscall.SIGKILL)
		_, _ = owner.cmd.Process.Wait()
		epoch = waitEpochFile(t, dir, epoch, 60*time.Second)
		failovers = append(failovers, time.Since(killed))
		t.Logf("failover %d: box %s killed, first segment of epoch %d after %v", i+1, owner.id, epoch, failovers[i].Round(100*time.Millisecond))
		owner.start(t)
		owner.waitUp(t)
	}
	var drains []time.Duration
	for i := range 3 {
		owner := waitOwner(t, boxes, "cam", epoch)
		began := time.Now()
		api.call(t, http.MethodPost, "/v1/cluster/boxes/"+owner.id+"/drain", "", nil)
		epoch = waitEpochFile(t, dir, epoch, 60*time.Second)
		drains = append(drains, time.Since(began))
		t.Logf("drain %d: box %s drained, first segment of epoch %d after %v", i+1, owner.id, epoch, drains[i].Round(100*time.Millisecond))
		api.call(t, http.MethodDelete, "/v1/cluster/boxes/"+owner.id+"/drain", "", nil)
	}
	fmt.Printf("failover (kill -9 -> first new segment file), %d runs: %s\n", runs, quantiles(failovers))
	fmt.Printf("drain (drain call -> first new segment file), %d jobs: %s\n", len(drains), quantiles(drains))
	api.call(t, http.MethodDelete, "/v1/jobs/cam", "", nil)
	overhead(t, cl.Servers, boxes, src.URL, jobs)
}

// overhead runs jobs live jobs of the tiny ladder and prints, per box over 30 s, its
// daemon's CPU and RSS and its NATS client's traffic.
func overhead(t *testing.T, servers []*server.Server, boxes []*fleetProc, src string, jobs int) {
	for i := range jobs {
		b := boxes[i%len(boxes)]
		// 202: queued, where no box has room (CPU admission).
		if code := b.call(t, http.MethodPost, "/v1/jobs", fmt.Sprintf(`{"source":"%s","ladder":"tiny","id":"j%02d","queue":true}`, src, i), nil); code != http.StatusCreated && code != http.StatusAccepted {
			t.Fatalf("POST j%02d: %d", i, code)
		}
	}
	time.Sleep(20 * time.Second) // every job under way
	const window = 30 * time.Second
	cpu0, nats0 := map[string]float64{}, natsBytes(servers)
	for _, b := range boxes {
		cpu0[b.id] = cpuSeconds(t, b.cmd.Process.Pid) // the daemon's own, not its children's
	}
	rss := map[string][]float64{}
	load0, _ := os.ReadFile("/proc/loadavg")
	for end := time.Now().Add(window); time.Now().Before(end); time.Sleep(time.Second) {
		for _, b := range boxes {
			rss[b.id] = append(rss[b.id], rssMiB(b.cmd.Process.Pid))
		}
	}
	nats1 := natsBytes(servers)
	load1, _ := os.ReadFile("/proc/loadavg")
	var list struct{ Jobs []fleetJob }
	boxes[0].call(t, http.MethodGet, "/v1/jobs", "", &list)
	per, queued := map[string]int{}, 0
	for _, j := range list.Jobs {
		per[j.Box]++
		if j.Box == "" {
			queued++
		}
	}
	fmt.Printf("overhead, %d live jobs of a one-rung 96p ladder (%d queued: no box had room), over %v (load average before %q, after %q):\n", jobs, queued, window, strings.TrimSpace(string(load0)), strings.TrimSpace(string(load1)))
	for _, b := range boxes {
		name := "transcoderd " + b.id
		fmt.Printf("  box %s (%d jobs): daemon CPU %.1f%% of a core, RSS max %.0f MiB; to NATS %.0f B/s, from NATS %.0f B/s (its client connection)\n",
			b.id, per[b.id], 100*(cpuSeconds(t, b.cmd.Process.Pid)-cpu0[b.id])/window.Seconds(), slices.Max(rss[b.id]),
			float64(nats1[name][0]-nats0[name][0])/window.Seconds(), float64(nats1[name][1]-nats0[name][1])/window.Seconds())
	}
}

// waitOwner waits until job id runs at epoch or later and returns its box.
func waitOwner(t *testing.T, boxes []*fleetProc, id string, epoch uint64) *fleetProc {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(250 * time.Millisecond) {
		v := boxes[0].fleetJob(t, id)
		for _, b := range boxes {
			if b.id == v.Box && v.State == "running" && v.Segments > 0 {
				return b
			}
		}
	}
	t.Fatalf("job %s not running at epoch %d in 60s", id, epoch)
	return nil
}

// waitEpochFile waits for a segment file of an epoch above epoch in dir and returns
// that epoch.
func waitEpochFile(t *testing.T, dir string, epoch uint64, limit time.Duration) uint64 {
	t.Helper()
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for e := range segmentFiles(dir) {
			if e > epoch {
				return e
			}
		}
	}
	t.Fatalf("no segment of an epoch above %d in %s after %v", epoch, dir, limit)
	return 0
}

func quantiles(d []time.Duration) string {
	s := slices.Clone(d)
	slices.Sort(s)
	at := func(q float64) time.Duration { return s[min(len(s)-1, int(q*float64(len(s))))] }
	return fmt.Sprintf("p50 %v, p95 %v, max %v", at(0.5).Round(100*time.Millisecond), at(0.95).Round(100*time.Millisecond), s[len(s)-1].Round(100*time.Millisecond))
}

// natsBytes is the bytes in and out of each named client connection of the servers.
func natsBytes(servers []*server.Server) map[string][2]int64 {
	out := map[string][2]int64{}
	for _, s := range servers {
		cz, err := s.Connz(&server.ConnzOptions{})
		if err != nil {
			continue
		}
		for _, c := range cz.Conns {
			v := out[c.Name]
			out[c.Name] = [2]int64{v[0] + c.InBytes, v[1] + c.OutBytes}
		}
	}
	return out
}

// rssMiB is VmRSS of process pid.
func rssMiB(pid int) float64 {
	data, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}
