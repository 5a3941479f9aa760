package cpucap

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary play a daemon in TestRealCgroupPlacement.
const helperEnv = "TRANSCODERD_CPUCAP_HELPER"

// placed is what the helper daemon reports.
type placed struct {
	Mode, Group string
	Delegated   bool
	Why         string
	Child       int // a process started and attached to the cap
}

// TestRealCgroupPlacement places the cap in a real cgroup: it creates a child cgroup of
// its own (v1, in the cpu controller's hierarchy) or of the root (v2), starts a
// copy of itself in it as the daemon, and checks that the copy put its cap inside that
// cgroup (v2: itself in <cgroup>/daemon, the cap in <cgroup>/ffmpeg) with the quota set,
// and that a process it attached runs there. Needs root (or a delegated cgroup).
func TestRealCgroupPlacement(t *testing.T) {
	const root = "/sys/fs/cgroup"
	own, err := ReadPaths("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var version, parent string
	switch {
	case fileExists(filepath.Join(root, "cgroup.controllers")):
		// Under the root of the hierarchy, which may hand cpu down while it holds
		// processes: the test's own cgroup (a session, a service) usually cannot.
		version, parent = "v2", root
	case fileExists(filepath.Join(root, "cpu", "cpu.cfs_quota_us")):
		version, parent = "v1", filepath.Join(root, "cpu", own.CPU)
	default:
		unavailable(t, "no cgroup v2 hierarchy and no v1 cpu controller under "+root)
	}
	test := filepath.Join(parent, "transcoderd-test-"+strconv.Itoa(os.Getpid()))
	if err := os.Mkdir(test, 0o755); err != nil {
		unavailable(t, fmt.Sprintf("cannot create a cgroup under the test's own (%s): %v", parent, err))
	}
	t.Cleanup(func() {
		for _, g := range []string{"ffmpeg", "daemon", "transcoderd-*"} {
			matches, _ := filepath.Glob(filepath.Join(test, g))
			for _, m := range matches {
				if err := os.Remove(m); err != nil {
					t.Errorf("clean up: %v", err)
				}
			}
		}
		if err := os.Remove(test); err != nil {
			t.Errorf("clean up: %v", err)
		}
	})
	if version == "v2" {
		controllers, _ := os.ReadFile(filepath.Join(test, "cgroup.controllers"))
		if !strings.Contains(" "+string(controllers)+" ", " cpu ") {
			if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+cpu"), 0o644); err != nil {
				unavailable(t, fmt.Sprintf("the cgroup root %s does not hand the cpu controller to its children: %v", parent, err))
			}
		}
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestRealCgroupPlacementHelper$")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = stdin.Close() // the helper stops its child, closes its cap and exits
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	// Into the test cgroup, before the helper reads /proc/self/cgroup.
	if err := os.WriteFile(filepath.Join(test, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644); err != nil {
		t.Fatalf("move the helper into %s: %v", test, err)
	}
	if _, err := fmt.Fprintln(stdin, "go"); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("no report from the helper: %v", err)
	}
	var got placed
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		t.Fatalf("helper said %q: %v", line, err)
	}
	t.Logf("cgroup %s: the helper's cap is %+v", version, got)

	helper := strconv.Itoa(cmd.Process.Pid)
	switch version {
	case "v2":
		want := filepath.Join(test, "ffmpeg")
		if got.Mode != "cgroup v2" || got.Group != want || !got.Delegated {
			t.Fatalf("cap %+v; want cgroup v2 in %s, delegated", got, want)
		}
		if m := strings.TrimSpace(readOrEmpty(filepath.Join(want, "cpu.max"))); m != "50000 100000" {
			t.Errorf("cpu.max %q, want 50000 100000", m)
		}
		if cg := cgroupOf(t, got.Child, "0", root); cg != want {
			t.Errorf("the attached process is in %s, want %s", cg, want)
		}
		if cg := cgroupOf(t, cmd.Process.Pid, "0", root); cg != filepath.Join(test, "daemon") {
			t.Errorf("the helper daemon %s is in %s, want its leaf %s/daemon", helper, cg, test)
		}
	case "v1":
		want := filepath.Join(test, "transcoderd-"+helper)
		if got.Mode != "cgroup v1" || got.Group != want || !got.Delegated {
			t.Fatalf("cap %+v; want cgroup v1 in %s, delegated", got, want)
		}
		if q := strings.TrimSpace(readOrEmpty(filepath.Join(want, "cpu.cfs_quota_us"))); q != "50000" {
			t.Errorf("cpu.cfs_quota_us %q, want 50000", q)
		}
		if cg := cgroupOf(t, got.Child, "cpu", filepath.Join(root, "cpu")); cg != want {
			t.Errorf("the attached process is in %s, want %s", cg, want)
		}
	}
}

// TestRealCgroupPlacementHelper is the daemon of TestRealCgroupPlacement when started by
// it; run otherwise, it does nothing.
func TestRealCgroupPlacementHelper(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		return
	}
	in := bufio.NewReader(os.Stdin)
	if _, err := in.ReadString('\n'); err != nil { // moved into the test cgroup
		t.Fatal(err)
	}
	c := New(0.5, "/sys/fs/cgroup")
	child := exec.Command("sleep", "60")
	child.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // gone with the helper, whatever ends it
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait(); _ = c.Close() }()
	if err := c.Attach(child.Process.Pid); err != nil {
		t.Fatal(err)
	}
	why := ""
	if c.Why() != nil {
		why = c.Why().Error()
	}
	b, _ := json.Marshal(placed{Mode: c.Mode(), Group: c.Group(), Delegated: c.Delegated(), Why: why, Child: child.Process.Pid})
	fmt.Println(string(b))
	_, _ = in.ReadString('\n') // until the test closes stdin
}

// cgroupOf returns the folder of pid's cgroup: in the unified hierarchy (v2, "0"), or
// in the v1 hierarchy of the cpu controller ("cpu"), mounted at mount.
func cgroupOf(t *testing.T, pid int, controller, mount string) string {
	t.Helper()
	p, err := ReadPaths("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	path := p.CPU
	if controller == "0" {
		path = p.Unified
	}
	if path == "" {
		t.Fatalf("process %d has no %s cgroup", pid, controller)
	}
	return filepath.Join(mount, path)
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func readOrEmpty(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// unavailable fails the test under CI (where it must run), and skips it elsewhere.
func unavailable(t *testing.T, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", why)
	}
	t.Skip(why)
}
