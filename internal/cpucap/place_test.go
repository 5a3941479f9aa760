package cpucap

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPlacement runs New's placement of the cap's cgroup on fake cgroup trees: plain
// folders with the files the kernel would show, and a fake /proc/self/cgroup. The
// daemon's pid is a made-up one, so that nothing real moves.
func TestPlacement(t *testing.T) {
	const pid = 4000
	self := strconv.Itoa(pid)
	service := "/system.slice/transcoderd.service"
	// v2 lays out a unified hierarchy at root with the daemon's cgroup at path.
	v2 := func(t *testing.T, root, path, controllers, procs string) string {
		mustWrite(t, filepath.Join(root, "cgroup.controllers"), "cpu io memory pids")
		mustWrite(t, filepath.Join(root, "cgroup.subtree_control"), "cpu memory")
		mustWrite(t, filepath.Join(root, "cgroup.procs"), "1\n")
		own := filepath.Join(root, path)
		if path != "/" {
			mustWrite(t, filepath.Join(own, "cgroup.type"), "domain")
		}
		mustWrite(t, filepath.Join(own, "cgroup.controllers"), controllers)
		mustWrite(t, filepath.Join(own, "cgroup.subtree_control"), "")
		mustWrite(t, filepath.Join(own, "cgroup.procs"), procs)
		return "0::" + path + "\n"
	}
	v1 := func(t *testing.T, root, path string) string {
		mustWrite(t, filepath.Join(root, "cpu", "cpu.cfs_quota_us"), "-1")
		mustWrite(t, filepath.Join(root, "cpu", path, "cpu.cfs_quota_us"), "-1")
		return "4:cpu,cpuacct:" + path + "\n1:name=systemd:" + path + "\n0::" + path + "\n"
	}
	atRootV2 := func(root string) string { return filepath.Join(root, "transcoderd-"+self) }
	tests := []struct {
		name      string
		setup     func(t *testing.T, root string) (procSelf string)
		mode      string
		group     string // relative to root
		delegated bool
		why       string // in Why's message
		check     func(t *testing.T, root string)
	}{
		{
			name:      "v2 delegated service",
			setup:     func(t *testing.T, root string) string { return v2(t, root, service, "cpu io memory pids", self+"\n") },
			mode:      "cgroup v2",
			group:     service + "/ffmpeg",
			delegated: true,
			check: func(t *testing.T, root string) {
				own := filepath.Join(root, service)
				if got := read(t, filepath.Join(own, "daemon", "cgroup.procs")); got != self {
					t.Errorf("the daemon did not move into its leaf: daemon/cgroup.procs %q", got)
				}
				if got := read(t, filepath.Join(own, "cgroup.subtree_control")); got != "+cpu" {
					t.Errorf("subtree_control %q, want +cpu", got)
				}
				if _, err := os.Stat(atRootV2(root)); err == nil {
					t.Error("a cgroup was created at the root too")
				}
			},
		},
		{
			name: "v2 namespace root (a container's own cgroup)",
			setup: func(t *testing.T, root string) string {
				p := v2(t, root, "/", "cpu memory", self+"\n")
				mustWrite(t, filepath.Join(root, "cgroup.type"), "domain")
				return p
			},
			mode: "cgroup v2", group: "/ffmpeg", delegated: true,
		},
		{
			name:  "v2 real root: transcoderd-<pid> there",
			setup: func(t *testing.T, root string) string { return v2(t, root, "/", "cpu memory", "1\n"+self+"\n") },
			mode:  "cgroup v2", group: "/transcoderd-" + self, why: "root cgroup",
		},
		{
			name: "v2 shared with other processes",
			setup: func(t *testing.T, root string) string {
				return v2(t, root, "/user.slice/session-1.scope", "cpu", "77\n"+self+"\n")
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "other processes (77",
			check: func(t *testing.T, root string) {
				if _, err := os.Stat(filepath.Join(root, "user.slice/session-1.scope/daemon")); err == nil {
					t.Error("the daemon moved although it had to leave the others behind")
				}
			},
		},
		{
			name:  "v2 no cpu controller delegated",
			setup: func(t *testing.T, root string) string { return v2(t, root, service, "memory pids", self+"\n") },
			mode:  "cgroup v2", group: "/transcoderd-" + self, why: "no cpu controller",
		},
		{
			name: "v2 own cgroup not writable",
			setup: func(t *testing.T, root string) string {
				p := v2(t, root, service, "cpu", self+"\n")
				mustWrite(t, filepath.Join(root, service, "daemon"), "") // mkdir fails, as without write access
				return p
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "move the daemon into",
		},
		{
			name: "v2 enabling cpu fails: the move is undone",
			setup: func(t *testing.T, root string) string {
				p := v2(t, root, service, "cpu", self+"\n")
				sub := filepath.Join(root, service, "cgroup.subtree_control")
				if err := os.Remove(sub); err != nil {
					t.Fatal(err)
				}
				if err := os.Mkdir(sub, 0o755); err != nil { // reads and writes fail
					t.Fatal(err)
				}
				return p
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "cgroup.subtree_control",
			check: func(t *testing.T, root string) {
				// (The leaf stays in a fake tree: rmdir removes a real cgroup with its files.)
				own := filepath.Join(root, service)
				if got := read(t, filepath.Join(own, "cgroup.procs")); got != self {
					t.Errorf("the daemon was not moved back: cgroup.procs %q", got)
				}
			},
		},
		{
			name: "v2 cpu.max cannot be set: cpu is disabled again",
			setup: func(t *testing.T, root string) string {
				p := v2(t, root, service, "cpu", self+"\n")
				if err := os.MkdirAll(filepath.Join(root, service, "ffmpeg", "cpu.max"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "cpu.max",
			check: func(t *testing.T, root string) {
				if got := read(t, filepath.Join(root, service, "cgroup.subtree_control")); got != "-cpu" {
					t.Errorf("subtree_control %q, want -cpu written back", got)
				}
			},
		},
		{
			name: "v2 path outside the mount",
			setup: func(t *testing.T, root string) string {
				v2(t, root, service, "cpu", self+"\n")
				return "0::/../../etc\n"
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "outside the cgroup mount",
		},
		{
			name: "v2 no /proc/self/cgroup",
			setup: func(t *testing.T, root string) string {
				v2(t, root, service, "cpu", self+"\n")
				return ""
			},
			mode: "cgroup v2", group: "/transcoderd-" + self, why: "own cgroup",
		},
		{
			name:      "v1 delegated service",
			setup:     func(t *testing.T, root string) string { return v1(t, root, service) },
			mode:      "cgroup v1",
			group:     "/cpu" + service + "/transcoderd-" + self,
			delegated: true,
			check: func(t *testing.T, root string) {
				if q := read(t, filepath.Join(root, "cpu", service, "transcoderd-"+self, "cpu.cfs_quota_us")); q != "50000" {
					t.Errorf("quota %q", q)
				}
			},
		},
		{
			name:  "v1 root cgroup",
			setup: func(t *testing.T, root string) string { return v1(t, root, "/") },
			mode:  "cgroup v1", group: "/cpu/transcoderd-" + self, why: "root cgroup",
		},
		{
			name: "v1 own cgroup missing",
			setup: func(t *testing.T, root string) string {
				v1(t, root, "/")
				return "4:cpu,cpuacct:/gone.slice\n"
			},
			mode: "cgroup v1", group: "/cpu/transcoderd-" + self, why: "gone.slice",
		},
		{
			name:  "no cgroup at all",
			setup: func(t *testing.T, root string) string { return "0::" + service + "\n" },
			mode:  "priority",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			procSelf := filepath.Join(t.TempDir(), "cgroup")
			if content := tc.setup(t, root); content != "" {
				mustWrite(t, procSelf, content)
			}
			c := newCap(0.5, root, procSelf, pid)
			wantGroup := ""
			if tc.group != "" {
				wantGroup = filepath.Join(root, tc.group)
			}
			if c.Mode() != tc.mode || c.Group() != wantGroup || c.Delegated() != tc.delegated {
				t.Fatalf("mode %q, group %q, delegated %v (why: %v); want %q, %q, %v", c.Mode(), c.Group(), c.Delegated(), c.Why(), tc.mode, wantGroup, tc.delegated)
			}
			switch {
			case tc.why == "" && c.Why() != nil:
				t.Errorf("Why = %v, want nil", c.Why())
			case tc.why != "" && (c.Why() == nil || !strings.Contains(c.Why().Error(), tc.why)):
				t.Errorf("Why = %v, want it to say %q", c.Why(), tc.why)
			}
			if c.Mode() == "cgroup v2" {
				if m := read(t, filepath.Join(c.Group(), "cpu.max")); m != "50000 100000" {
					t.Errorf("cpu.max %q", m)
				}
			}
			if c.Group() != "" {
				if err := c.Attach(4242); err != nil || read(t, filepath.Join(c.Group(), "cgroup.procs")) != "4242" {
					t.Errorf("attach: %v", err)
				}
			}
			if tc.check != nil {
				tc.check(t, root)
			}
		})
	}
}

// TestPlacementTwice checks that a second cap in the same process (tests run several
// daemons in one) reuses the daemon's place instead of nesting a leaf in the leaf.
func TestPlacementTwice(t *testing.T) {
	root := t.TempDir()
	service := "/system.slice/transcoderd.service"
	own := filepath.Join(root, service)
	mustWrite(t, filepath.Join(root, "cgroup.controllers"), "cpu")
	mustWrite(t, filepath.Join(own, "cgroup.type"), "domain")
	mustWrite(t, filepath.Join(own, "cgroup.controllers"), "cpu")
	mustWrite(t, filepath.Join(own, "cgroup.subtree_control"), "")
	mustWrite(t, filepath.Join(own, "cgroup.procs"), "4000\n")
	procSelf := filepath.Join(t.TempDir(), "cgroup")
	mustWrite(t, procSelf, "0::"+service+"\n")
	first := newCap(1, root, procSelf, 4000)
	if !first.Delegated() {
		t.Fatalf("first cap: group %q (why %v)", first.Group(), first.Why())
	}
	t.Cleanup(func() { _ = first.Close() })
	// Now the kernel would name the leaf; and the cpu controller is on.
	mustWrite(t, procSelf, "0::"+service+"/daemon\n")
	mustWrite(t, filepath.Join(own, "cgroup.subtree_control"), "cpu")
	mustWrite(t, filepath.Join(own, "daemon", "cgroup.controllers"), "cpu")
	// The first cap still holds own/ffmpeg: the second gets a folder of its own, so that
	// neither's quota nor Close touches the other's.
	second := newCap(0.75, root, procSelf, 4000)
	if want := filepath.Join(own, "ffmpeg-2"); second.Group() != want || !second.Delegated() {
		t.Fatalf("second cap: group %q, delegated %v (why %v); want %q", second.Group(), second.Delegated(), second.Why(), want)
	}
	if m := read(t, filepath.Join(own, "ffmpeg", "cpu.max")); m != "100000 100000" {
		t.Errorf("the first cap's cpu.max became %q", m)
	}
	if m := read(t, filepath.Join(second.Group(), "cpu.max")); m != "75000 100000" {
		t.Errorf("cpu.max %q", m)
	}
	if _, err := os.Stat(filepath.Join(own, "daemon", "daemon")); err == nil {
		t.Error("the second cap nested a leaf in the leaf")
	}
}
