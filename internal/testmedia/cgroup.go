package testmedia

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// cgroupRoot is where the cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// SetCPUQuota sets the CPU quota of the cgroup that holds process pid (a job's ffmpeg,
// placed in its CPU cap's cgroup) to cores: cgroup v2 cpu.max, or v1 cpu.cfs_quota_us
// with a 100 ms period. It is how a test takes CPU from a job, as a busy box would, on
// any machine however fast. The test fails when pid is in no cgroup whose quota can be
// written (the root cgroup has none).
func SetCPUQuota(t testing.TB, pid int, cores float64) {
	t.Helper()
	dir, v2, err := cpuCgroup(pid)
	if err != nil {
		t.Fatalf("the CPU quota of process %d: %v", pid, err)
		return
	}
	quota := strconv.Itoa(max(1000, int(cores*100000))) // the kernel's least is 1 ms
	file, text := filepath.Join(dir, "cpu.cfs_quota_us"), quota
	if v2 {
		file, text = filepath.Join(dir, "cpu.max"), quota+" 100000"
	}
	if !v2 {
		// v1 keeps the period in a file of its own: set it, so that the quota means what it says.
		if err := os.WriteFile(filepath.Join(dir, "cpu.cfs_period_us"), []byte("100000"), 0o644); err != nil {
			t.Fatalf("the CPU quota of process %d: %v", pid, err)
			return
		}
	}
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatalf("the CPU quota of process %d: %v", pid, err)
	}
}

// cpuCgroup returns the folder of the cgroup that holds pid for the cpu controller, and
// whether it is cgroup v2, from /proc/<pid>/cgroup: a v1 hierarchy whose controllers
// include cpu (mounted at /sys/fs/cgroup/cpu), else the unified hierarchy (mounted at
// /sys/fs/cgroup). The paths there are relative to the mount, as cpucap places its group.
func cpuCgroup(pid int) (dir string, v2 bool, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return "", false, err
	}
	var unified string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.SplitN(line, ":", 3)
		if len(f) != 3 {
			continue
		}
		if f[0] == "0" && f[1] == "" {
			unified = f[2]
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == "cpu" {
				if f[2] == "/" {
					return "", false, fmt.Errorf("it is in the root cgroup of the cpu controller, which has no quota: %q", line)
				}
				return filepath.Join(cgroupRoot, "cpu", f[2]), false, nil
			}
		}
	}
	if unified == "" || unified == "/" {
		return "", false, fmt.Errorf("it is in no cgroup with a CPU quota:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(cgroupRoot, unified, "cpu.max")); err != nil {
		return "", false, fmt.Errorf("its cgroup %s has no cpu.max: %w", unified, err)
	}
	return filepath.Join(cgroupRoot, unified), true, nil
}
