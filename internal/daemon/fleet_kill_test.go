package daemon

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestFleetKill9 runs three boxes as processes of the built binary (separate data
// folders, ports and box ids, one shared output folder), posts a live job to box a and
// kills its box with SIGKILL: the box's ffmpeg dies with it (Pdeathsig), and the job's
// first segment of the new epoch is listed in the same media playlist within the
// heartbeat TTL (10 s) and a few seconds, after a discontinuity, with no segment file
// overwritten. Then the killed box comes back (rejoin).
func TestFleetKill9(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the daemon and runs three of them")
	}
	testmedia.RequireFFmpeg(t)
	began := time.Now()
	boxes := startFleetProcs(t, buildDaemon(t), 3)
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	victim, api := postLive(t, boxes, src.URL, "cam")
	dir := filepath.Join(api.out, "cam")
	children := childPIDs(victim.cmd.Process.Pid)
	if len(children) == 0 {
		t.Fatalf("box %s (pid %d) runs no ffmpeg", victim.id, victim.cmd.Process.Pid)
	}
	t.Cleanup(func() { // should they outlive their box, as they must not
		for _, pid := range children {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	})
	before := hashSegments(t, dir)
	killed := time.Now()
	if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_, _ = victim.cmd.Process.Wait()
	for _, pid := range children {
		deadline := time.Now().Add(5 * time.Second)
		for alive(pid) {
			if time.Now().After(deadline) {
				t.Fatalf("ffmpeg %d outlived its box %s", pid, victim.id)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Logf("box %s killed; its %d ffmpeg gone after %v", victim.id, len(children), time.Since(killed).Round(time.Millisecond))

	media := filepath.Join(dir, "360p", manifest.MediaName)
	deadline := killed.Add(40 * time.Second)
	for runEpochs(string(readIfAny(media)))[2] == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no segment of epoch 2 in %s 40s after kill -9:\n%s", media, readIfAny(media))
		}
		time.Sleep(100 * time.Millisecond)
	}
	took := time.Since(killed)
	t.Logf("failover after kill -9: first segment of epoch 2 listed %v after box %s died", took.Round(100*time.Millisecond), victim.id)
	// 15 s is the promise (TTL 10 s); the slack is for a loaded test box.
	if took > 25*time.Second {
		t.Errorf("failover took %v: want about 15 s", took)
	}
	now := api.fleetJob(t, "cam")
	if now.Box == victim.id || now.Box == "" {
		t.Fatalf("job on %q after box %s died", now.Box, victim.id)
	}
	pl := string(readFile(t, media))
	if !strings.Contains(pl, "#EXT-X-DISCONTINUITY\n") || runEpochs(pl)[1] == 0 {
		t.Errorf("media playlist does not continue epoch 1 with a discontinuity:\n%s", pl)
	}
	for f, h := range hashSegments(t, dir) {
		if old, ok := before[f]; ok && old != h {
			t.Errorf("segment %s was overwritten after the move", f)
		}
	}
	rejoin(t, boxes, victim, now.Box, src.URL)
	t.Logf("whole test %v", time.Since(began).Round(100*time.Millisecond))
}

// rejoin starts the killed box again (same data folder, box id and ports): it rejoins
// the fleet without running the job that moved to box owner, answers GET and DELETE
// of jobs other boxes run by forwarding them, and takes a new job, which any box lists
// with its box and any box can delete.
func rejoin(t *testing.T, boxes []*fleetProc, victim *fleetProc, owner, src string) {
	t.Helper()
	var other *fleetProc // neither the victim nor the job's owner
	for _, b := range boxes {
		if b.id != victim.id && b.id != owner {
			other = b
		}
	}
	victim.start(t)
	victim.waitUp(t)
	waitBox(t, other.fleetBox, victim.id, 30*time.Second)
	time.Sleep(5 * time.Second) // two reconcile rounds of its agent
	if kids := childPIDs(victim.cmd.Process.Pid); len(kids) > 0 {
		t.Errorf("box %s, back, runs processes %v: its job moved to box %s", victim.id, kids, owner)
	}
	// GET on a box that does not run the job: forwarded to its box, whose own view
	// alone has the renditions.
	if v := victim.fleetJob(t, "cam"); v.Box != owner || v.State != job.Running || len(v.Renditions) == 0 {
		t.Errorf("GET /v1/jobs/cam on box %s: %+v, want box %s's own view of it running", victim.id, v, owner)
	}
	// With the third box draining, the box back is the one with the most free CPU.
	if code := other.call(t, http.MethodPost, "/v1/cluster/boxes/"+other.id+"/drain", "", nil); code != http.StatusOK {
		t.Fatalf("drain %s: %d", other.id, code)
	}
	var v fleetJob
	if code := other.call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src+`","ladder":"test","id":"new"}`, &v); code != http.StatusCreated || v.Box != victim.id {
		t.Fatalf("POST new: %d %+v, want it on box %s, back", code, v, victim.id)
	}
	waitSegments(t, other.fleetBox, "new", victim.id, 2, 60*time.Second)
	for _, b := range boxes {
		var list struct{ Jobs []fleetJob }
		b.call(t, http.MethodGet, "/v1/jobs", "", &list)
		on := map[string]string{}
		for _, j := range list.Jobs {
			on[j.ID] = j.Box
		}
		if len(on) != 2 || on["cam"] != owner || on["new"] != victim.id {
			t.Errorf("GET /v1/jobs on box %s: %v, want cam on %s and new on %s", b.id, on, owner, victim.id)
		}
	}
	kids := childPIDs(victim.cmd.Process.Pid)
	if code := other.call(t, http.MethodDelete, "/v1/jobs/new", "", &v); code != http.StatusOK || v.Box != victim.id || !v.State.Ended() {
		t.Errorf("DELETE /v1/jobs/new on box %s: %d %+v, want box %s's answer of a stopped job", other.id, code, v, victim.id)
	}
	for _, pid := range kids {
		for deadline := time.Now().Add(10 * time.Second); alive(pid); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("box %s's ffmpeg %d runs 10s after DELETE of its job", victim.id, pid)
			}
		}
	}
	// Off the fleet; the box that ran it lists it stopped, as a single box does.
	for _, b := range boxes {
		var got fleetJob
		code := b.call(t, http.MethodGet, "/v1/jobs/new", "", &got)
		if b.id != victim.id && code != http.StatusNotFound || b.id == victim.id && (code != http.StatusOK || !got.State.Ended()) {
			t.Errorf("GET /v1/jobs/new on box %s after DELETE: %d %s", b.id, code, got.State)
		}
	}
}

// postLive posts live job id of the test ladder from src to the first box and waits
// for 3 segments per rendition; it returns the job's box and another.
func postLive(t *testing.T, boxes []*fleetProc, src, id string) (owner, other *fleetProc) {
	t.Helper()
	var v fleetJob
	if code := boxes[0].call(t, http.MethodPost, "/v1/jobs", `{"source":"`+src+`","ladder":"test","id":"`+id+`"}`, &v); code != http.StatusCreated || v.Box == "" {
		t.Fatalf("POST: %d %+v", code, v)
	}
	for _, b := range boxes {
		if b.id == v.Box {
			owner = b
		} else if other == nil {
			other = b
		}
	}
	waitSegments(t, other.fleetBox, id, owner.id, 3, 60*time.Second)
	return owner, other
}

// buildDaemon builds the daemon's binary into a temporary folder and returns its path.
func buildDaemon(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "transcoderd")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/transcoderd/transcoderd/cmd/transcoderd").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}

// fleetProc is one box of startFleetProcs: a daemon process.
type fleetProc struct {
	*fleetBox
	cmd  *exec.Cmd
	bin  string
	argv []string // the daemon's arguments, for a restart
	logs string   // the folder of its log files
	runs int      // processes started
}

// startFleetProcs starts n daemons of bin as processes, boxes a, b, c…, as startFleet
// does in-process, each logging to its own file (printed if the test fails).
func startFleetProcs(t *testing.T, bin string, n int) []*fleetProc {
	t.Helper()
	routes := make([]string, n)
	for i := range routes {
		routes[i] = fmt.Sprintf("127.0.0.1:%d", freePort(t))
	}
	args := make([][]string, n)
	for i := range n {
		peers := append(append([]string{}, routes[:i]...), routes[i+1:]...)
		args[i] = []string{"--cluster-listen", routes[i], "--cluster-peers", strings.Join(peers, ",")}
	}
	return startProcs(t, bin, args)
}

// startProcs starts one daemon of bin per element of fleet, boxes a, b, c…, with
// those arguments besides its box id, data folder and API port: its way to NATS.
func startProcs(t *testing.T, bin string, fleet [][]string) []*fleetProc {
	t.Helper()
	profiles, _ := filepath.Abs("../../profiles")
	root := t.TempDir()
	boxes := make([]*fleetProc, len(fleet))
	for i, extra := range fleet {
		id := string(rune('a' + i))
		port := freePort(t)
		argv := append([]string{"--listen", fmt.Sprintf("127.0.0.1:%d", port), "--output", filepath.Join(root, "out"),
			"--profiles", profiles, "--data", filepath.Join(root, id, "data"), "--media-root", filepath.Join(root, "media"),
			"--log-format", "json", "--box-id", id}, extra...)
		d := &daemon{api: fmt.Sprintf("http://127.0.0.1:%d", port), out: filepath.Join(root, "out"), mediaRoot: filepath.Join(root, "media"), profiles: profiles}
		boxes[i] = &fleetProc{fleetBox: &fleetBox{daemon: d, id: id}, bin: bin, argv: argv, logs: root}
		boxes[i].start(t)
	}
	for _, b := range boxes {
		b.waitUp(t)
	}
	return boxes
}

// start starts the box's process (again, after a kill: same data folder, box id and
// ports), logging to a file of its own that is printed if the test fails.
func (b *fleetProc) start(t *testing.T) {
	t.Helper()
	b.runs++
	logPath := filepath.Join(b.logs, fmt.Sprintf("%s.%d.log", b.id, b.runs))
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(b.bin, b.argv...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	b.cmd = cmd
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		logf.Close()
		if t.Failed() {
			t.Logf("box %s log (process %d):\n%s", b.id, cmd.Process.Pid, readIfAny(logPath))
		}
	})
}

// waitUp waits up to a minute for the box to answer GET /v1/cluster.
func (b *fleetProc) waitUp(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(b.api + "/v1/cluster")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("box %s did not answer /v1/cluster in 60s: %v", b.id, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// childPIDs returns the processes whose parent is pid.
func childPIDs(pid int) []int {
	var out []int
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
		fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			child, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			out = append(out, child)
		}
	}
	return out
}

// alive reports whether process pid exists and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	fields := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+1:]))
	return len(fields) > 0 && fields[0] != "Z"
}

// readIfAny returns the file's content, or nothing if it cannot be read.
func readIfAny(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

// TestFleetPlayers plays a live job of a fleet of three box processes (one output
// folder, as an NFS mount, served by every box) in hls.js, dash.js and Shaka through
// a box that does not run it, kills the job's box with -9 once they play its top
// rung, and sees each play on for 8 s after the job runs on another box.
func TestFleetPlayers(t *testing.T) {
	requireBrowser(t)
	testmedia.RequireFFmpeg(t)
	boxes := startFleetProcs(t, buildDaemon(t), 3)
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	victim, viewer := postLive(t, boxes, src.URL, "live")
	res := runShedScript(t, map[string]any{"base": viewer.api, "job": "live", "move": true}, func() {
		if err := syscall.Kill(victim.cmd.Process.Pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		t.Logf("box %s killed", victim.id)
	})
	reportSessions(t, res)
}
