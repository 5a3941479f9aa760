package daemon

import (
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/coord/coordtest"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// cutProxy forwards the TCP connections it accepts to one address until it is cut:
// then it closes every connection it carries and drops new ones at once, as a
// partitioned network would, until it is healed.
type cutProxy struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	cut   bool
	conns map[net.Conn]bool
}

// startProxy listens on a free loopback port and forwards to addr until the test ends.
func startProxy(t *testing.T, addr string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, to: addr, conns: map[net.Conn]bool{}}
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.setCut(true)
	})
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			continue
		}
		go p.pipe(c)
	}
}

// track adds c to the connections the proxy carries, or closes it if the proxy is cut.
func (p *cutProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cut {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *cutProxy) pipe(c net.Conn) {
	defer c.Close()
	u, err := net.Dial("tcp", p.to)
	if err != nil || !p.track(u) {
		return
	}
	defer u.Close()
	go func() {
		_, _ = io.Copy(u, c)
		u.Close()
	}()
	_, _ = io.Copy(c, u)
}

// setCut cuts (closing every connection) or heals the proxy.
func (p *cutProxy) setCut(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = on
	if !on {
		return
	}
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// segmentFiles returns the segment files of a job folder of each epoch.
func segmentFiles(dir string) map[uint64][]string {
	out := map[uint64][]string{}
	files, _ := filepath.Glob(filepath.Join(dir, "*", "seg_*.m4s"))
	for _, f := range files {
		if m := segRE.FindStringSubmatch(filepath.Base(f)); m != nil {
			run, _ := strconv.ParseUint(m[1], 10, 64)
			out[run/10_000_000_000] = append(out[run/10_000_000_000], f)
		}
	}
	return out
}

// TestFleetPartition runs three boxes as processes on a three-server NATS cluster
// started by the test; box c reaches NATS only through proxies, which the servers do
// not advertise around. With a live job on c, the test cuts c's proxies: c stops its
// own ffmpeg (the fence: 7 s after its last heartbeat that went through), and the job
// continues on another box at epoch 2 with no epoch-1 segment written after c's
// ffmpeg died and none overwritten. Healed, c rejoins and does not run the job again.
func TestFleetPartition(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon and runs three of them")
	}
	testmedia.RequireFFmpeg(t)
	nats := coordtest.StartHidden(t, 3)
	var proxies []*cutProxy
	var through []string
	for _, u := range nats.URLs {
		p := startProxy(t, strings.TrimPrefix(u, "nats://"))
		proxies, through = append(proxies, p), append(through, "nats://"+p.addr())
	}
	direct := strings.Join(nats.URLs, ",")
	boxes := startProcs(t, buildDaemon(t), [][]string{{"--nats-url", direct}, {"--nats-url", direct}, {"--nats-url", strings.Join(through, ",")}})
	api, victim := boxes[0], boxes[2]
	// Only c has room while a and b drain: the job lands there.
	for _, b := range boxes[:2] {
		if code := api.call(t, http.MethodPost, "/v1/cluster/boxes/"+b.id+"/drain", "", nil); code != http.StatusOK {
			t.Fatalf("drain %s: %d", b.id, code)
		}
	}
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	var v fleetJob
	if code := api.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`, &v); code != http.StatusCreated || v.Box != victim.id {
		t.Fatalf("POST: %d %+v, want it on box %s", code, v, victim.id)
	}
	for _, b := range boxes[:2] {
		if code := api.call(t, http.MethodDelete, "/v1/cluster/boxes/"+b.id+"/drain", "", nil); code != http.StatusOK {
			t.Fatalf("undrain %s: %d", b.id, code)
		}
	}
	waitSegments(t, api.fleetBox, "cam", victim.id, 3, 60*time.Second)
	dir := filepath.Join(api.out, "cam")
	children := childPIDs(victim.cmd.Process.Pid)
	if len(children) == 0 {
		t.Fatalf("box %s runs no ffmpeg", victim.id)
	}
	t.Cleanup(func() {
		for _, pid := range children {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	before := hashSegments(t, dir)

	cut := time.Now()
	for _, p := range proxies {
		p.setCut(true)
	}
	for _, pid := range children {
		for alive(pid) {
			if time.Since(cut) > 20*time.Second {
				t.Fatalf("box %s's ffmpeg %d runs 20s after the box was cut off", victim.id, pid)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	fenced := time.Since(cut)
	oldFiles := len(segmentFiles(dir)[1])
	t.Logf("partition: box %s cut off; its %d ffmpeg gone %v later (fence 7 s after the last heartbeat, which is up to 2 s before the cut)",
		victim.id, len(children), fenced.Round(10*time.Millisecond))
	// 7 s is the promise, counted from the last heartbeat; 2 s for ffmpeg to stop and
	// for a loaded box.
	if fenced > 9*time.Second {
		t.Errorf("cut-off box stopped its ffmpeg %v after the cut: want within 7 s and a little", fenced)
	}

	media := filepath.Join(dir, "360p", manifest.MediaName)
	for runEpochs(string(readIfAny(media)))[2] == 0 {
		if time.Since(cut) > 40*time.Second {
			t.Fatalf("no segment of epoch 2 in %s 40s after the cut:\n%s", media, readIfAny(media))
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("partition: first segment of epoch 2 listed %v after the cut", time.Since(cut).Round(100*time.Millisecond))
	moved := api.fleetJob(t, "cam")
	if moved.Box == victim.id || moved.Box == "" {
		t.Errorf("job on %q after box %s was cut off", moved.Box, victim.id)
	}
	for f, h := range hashSegments(t, dir) {
		if old, ok := before[f]; ok && old != h {
			t.Errorf("segment %s was overwritten after the move", f)
		}
	}

	for _, p := range proxies {
		p.setCut(false)
	}
	waitBox(t, api.fleetBox, victim.id, 30*time.Second)
	time.Sleep(5 * time.Second) // two reconcile rounds of c's agent
	if kids := childPIDs(victim.cmd.Process.Pid); len(kids) > 0 {
		t.Errorf("box %s runs processes %v after it rejoined: the job moved off it", victim.id, kids)
	}
	if now := api.fleetJob(t, "cam"); now.Box != moved.Box {
		t.Errorf("job moved from box %s to %s after box %s rejoined", moved.Box, now.Box, victim.id)
	}
	if n := len(segmentFiles(dir)[1]); n != oldFiles {
		t.Errorf("%d segments of epoch 1 written after box %s's ffmpeg stopped", n-oldFiles, victim.id)
	}
}

// waitBox waits until GET /v1/cluster lists box id with a heartbeat younger than 3 s.
func waitBox(t *testing.T, api *fleetBox, id string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var cl struct {
			Boxes []struct {
				ID           string  `json:"id"`
				HeartbeatAge float64 `json:"heartbeat_age"`
			}
		}
		api.call(t, http.MethodGet, "/v1/cluster", "", &cl)
		for _, b := range cl.Boxes {
			if b.ID == id && b.HeartbeatAge < 3 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("box %s not in the cluster after %v: %+v", id, limit, cl)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
