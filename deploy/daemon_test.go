package deploy

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// The daemon's binary, built once for the package's tests (TestMain removes it).
var (
	buildOnce sync.Once
	buildDir  string
	binary    string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		_ = os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// transcoderd builds ./cmd/transcoderd (go build, as the Dockerfile does) and returns
// the binary's path, readable and executable by any user.
func transcoderd(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(os.Getenv("GOROOT"), "bin", "go")
		}
		if buildDir, buildErr = os.MkdirTemp("", "transcoderd-deploy-"); buildErr != nil {
			return
		}
		binary = filepath.Join(buildDir, "transcoderd")
		cmd := exec.Command(goTool, "build", "-trimpath", "-ldflags", "-X main.version=deploy-test", "-o", binary, "./cmd/transcoderd")
		cmd.Dir = ".."
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/transcoderd: %v\n%s", err, out)
			return
		}
		buildErr = os.Chmod(buildDir, 0o755)
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binary
}

// system is an installation of transcoderd laid out under a temporary folder: the
// image's (or the box's) absolute paths are mapped under root.
type system struct {
	root     string
	uid, gid int      // the daemon's user; -1 when the test cannot switch users (not root)
	env      []string // the daemon's environment, paths mapped
	dir      string   // its working directory
}

// newSystem returns an empty system; uid is the user the installation runs the
// daemon as, used when the test runs as root.
func newSystem(t *testing.T, uid int) *system {
	root := t.TempDir()
	s := &system{root: root, uid: -1, gid: -1}
	if os.Getuid() == 0 {
		s.uid, s.gid = uid, uid
		// The daemon's user must reach the folders: t.TempDir's are the test's alone.
		for _, d := range []string{root, filepath.Dir(root)} {
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	return s
}

// path maps an absolute path of the installation under root.
func (s *system) path(p string) string { return filepath.Join(s.root, p) }

// mkdir creates an absolute folder of the installation, as owner (uid; 0 for root)
// with mode, like mkdir -p then chown then chmod.
func (s *system) mkdir(t *testing.T, p string, owner int, mode os.FileMode) {
	t.Helper()
	dir := s.path(p)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s.chown(t, p, owner)
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

func (s *system) chown(t *testing.T, p string, owner int) {
	t.Helper()
	if s.uid < 0 {
		return
	}
	gid := owner
	if owner == s.uid {
		gid = s.gid
	}
	if err := os.Chown(s.path(p), owner, gid); err != nil {
		t.Fatal(err)
	}
}

// setEnv sets the daemon's environment from name=value pairs as the installation
// sets them, mapping absolute paths under root. listen replaces TRANSCODERD_LISTEN:
// tests bind loopback, on a free port.
func (s *system) setEnv(vars map[string]string, listen string) {
	s.env = nil
	for name, v := range vars {
		if strings.HasPrefix(v, "/") {
			v = s.path(v)
		}
		if name == "TRANSCODERD_LISTEN" {
			v = listen
		}
		s.env = append(s.env, name+"="+v)
	}
}

// credential runs a process as the installation's user (when the test can), and
// kills it if the test dies.
func (s *system) credential() *syscall.SysProcAttr {
	a := &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if s.uid >= 0 {
		a.Credential = &syscall.Credential{Uid: uint32(s.uid), Gid: uint32(s.gid)}
	}
	return a
}

// daemonRun is a started daemon.
type daemonRun struct {
	cmd    *exec.Cmd
	log    *testmedia.SyncBuffer
	addr   string // where the API listens
	exited chan error
}

// start runs the binary with exactly s.env (plus the base image's PATH), as s.uid.
// It returns once the daemon logs "transcoderd ready" (addr is then set), or once it
// has exited.
func (s *system) start(t *testing.T, extraEnv ...string) *daemonRun {
	t.Helper()
	cmd := exec.Command(transcoderd(t))
	cmd.Env = append(append([]string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}, s.env...), extraEnv...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = s.credential()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	r := &daemonRun{cmd: cmd, log: &testmedia.SyncBuffer{}, exited: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Bytes()
			r.log.Write(append(append([]byte{}, line...), '\n'))
			var ev struct{ Message, Listen string }
			if json.Unmarshal(line, &ev) == nil && ev.Message == "transcoderd ready" {
				ready <- ev.Listen
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
		r.exited <- cmd.Wait()
	}()
	t.Cleanup(func() { r.stop(t) })
	select {
	case r.addr = <-ready:
	case err := <-r.exited:
		r.exited <- err
	case <-time.After(90 * time.Second):
		t.Fatalf("the daemon did not become ready in 90 s; its log:\n%s", r.log)
	}
	return r
}

// stop sends SIGTERM and waits for the daemon to exit (it stops its jobs first).
func (r *daemonRun) stop(t *testing.T) {
	_ = r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-r.exited:
		r.exited <- err
	case <-time.After(30 * time.Second):
		_ = r.cmd.Process.Kill()
		t.Errorf("the daemon did not stop within 30 s of SIGTERM; its log:\n%s", r.log)
	}
}

// waitExit waits for a daemon that must stop on its own.
func (r *daemonRun) waitExit(t *testing.T) error {
	t.Helper()
	select {
	case err := <-r.exited:
		r.exited <- err
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("the daemon is still running; its log:\n%s", r.log)
		return nil
	}
}

// call sends a request to the daemon's API and decodes a JSON answer into out.
func (r *daemonRun) call(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+r.addr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// exercise checks a started daemon as an operator would after installing it: it is
// healthy (GET /healthz and `transcoderd healthcheck` with the installation's
// environment), the API wants the token, the built-in ladders are offered, and a job
// on `default` over a file in the media folder runs to the end.
func (s *system) exercise(t *testing.T, r *daemonRun, token, mediaRoot, output string) {
	t.Helper()
	if r.addr == "" {
		t.Fatalf("the daemon exited (%v); its log:\n%s", <-r.exited, r.log)
	}
	if code := r.call(t, http.MethodGet, "/healthz", "", "", nil); code != http.StatusOK {
		t.Errorf("GET /healthz: %d", code)
	}
	check := exec.Command(transcoderd(t), "healthcheck")
	check.Env = append([]string{"PATH=/usr/bin:/bin", "TRANSCODERD_LISTEN=" + r.addr}, withoutListen(s.env)...)
	check.SysProcAttr = s.credential() // Docker runs HEALTHCHECK as the image's USER
	if out, err := check.CombinedOutput(); err != nil || !strings.Contains(string(out), "is healthy") {
		t.Errorf("transcoderd healthcheck: %v: %s", err, out)
	}
	if code := r.call(t, http.MethodGet, "/v1/ladders", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("GET /v1/ladders without the token: %d, want 401", code)
	}
	var ladders struct{ Ladders []struct{ Name string } }
	r.call(t, http.MethodGet, "/v1/ladders", token, "", &ladders)
	var names []string
	for _, l := range ladders.Ladders {
		names = append(names, l.Name)
	}
	if got := strings.Join(names, ","); got != "default,lowlatency,mobile,test" {
		t.Errorf("ladders %s, want the built-in default,lowlatency,mobile,test", got)
	}
	if !strings.Contains(r.log.String(), "offering the built-in ladders") {
		t.Errorf("the start log does not say that the built-in ladders are offered:\n%s", r.log)
	}

	media := s.path(mediaRoot)
	testmedia.WriteSample(t, filepath.Join(media, "clip.mp4"), testmedia.SampleOptions{Width: 640, Height: 360, Duration: 2 * time.Second})
	var created struct{ ID, State, Error string }
	if code := r.call(t, http.MethodPost, "/v1/jobs", token, `{"source":"clip.mp4","ladder":"default","id":"install"}`, &created); code != http.StatusCreated {
		t.Fatalf("POST /v1/jobs on default: %d %+v; the daemon's log:\n%s", code, created, r.log)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		var v struct{ State, Error string }
		r.call(t, http.MethodGet, "/v1/jobs/install", token, "", &v)
		if v.State == "finished" {
			break
		}
		if v.State == "failed" || time.Now().After(deadline) {
			t.Fatalf("job on default: state %q, error %q; the daemon's log:\n%s", v.State, v.Error, r.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, f := range []string{"master.m3u8", "manifest.mpd"} {
		if _, err := os.Stat(filepath.Join(s.path(output), "install", f)); err != nil {
			t.Errorf("the job wrote no %s: %v", f, err)
		}
	}
}

func withoutListen(env []string) []string {
	var out []string
	for _, kv := range env {
		if !strings.HasPrefix(kv, "TRANSCODERD_LISTEN=") {
			out = append(out, kv)
		}
	}
	return out
}

// flagVariables returns the TRANSCODERD_* variables the binary reads, from its usage.
func flagVariables(t *testing.T) map[string]bool {
	t.Helper()
	out, _ := exec.Command(transcoderd(t), "-h").CombinedOutput()
	vars := map[string]bool{}
	for _, f := range strings.FieldsFunc(string(out), func(r rune) bool { return r == '(' || r == ')' || r == ',' || r == ' ' || r == '\n' || r == '\t' }) {
		if strings.HasPrefix(f, "TRANSCODERD_") {
			vars[f] = true
		}
	}
	if !vars["TRANSCODERD_LISTEN"] || !vars["TRANSCODERD_API_TOKEN_FILE"] {
		t.Fatalf("cannot read the variables from transcoderd -h:\n%s", out)
	}
	return vars
}

// unavailable fails where the test must run (CI set), and skips elsewhere.
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf(format+" (CI is set: a failure, not a skip)", args...)
	}
	t.Skipf(format, args...)
}
