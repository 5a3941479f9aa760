package testmedia

import (
	"testing"

	"github.com/transcoderd/transcoderd/internal/cpucap"
)

// CPUQuota takes CPU from a process as a busy box would, on any machine however fast:
// it sets the quota of the cgroup that held the process when CPUQuotaOf found it (a
// job's ffmpeg, in its CPU cap's cgroup), so it keeps working once that process has
// exited, and gives the cgroup its quota back when the test ends.
type CPUQuota struct {
	q     cpucap.Quota
	saved float64 // the quota the cgroup had, in cores; 0 for none
}

// CPUQuotaOf finds the cgroup whose CPU quota holds process pid. The test fails when
// pid is in none whose quota can be written (the root cgroup has none).
func CPUQuotaOf(t testing.TB, pid int) *CPUQuota {
	t.Helper()
	q, err := cpucap.QuotaOf(pid)
	if err != nil {
		t.Fatalf("the CPU quota of process %d: %v", pid, err)
	}
	saved, err := q.Cores()
	if err != nil {
		t.Fatalf("the CPU quota of process %d: %v", pid, err)
	}
	c := &CPUQuota{q: q, saved: saved}
	t.Cleanup(func() { _ = q.Set(saved) })
	return c
}

// Set sets the quota to cores.
func (c *CPUQuota) Set(t testing.TB, cores float64) {
	t.Helper()
	if err := c.q.Set(cores); err != nil {
		t.Fatalf("the CPU quota of %s: %v", c.q.Dir, err)
	}
}

// Restore gives the cgroup the quota it had when CPUQuotaOf found it.
func (c *CPUQuota) Restore(t testing.TB) { c.Set(t, c.saved) }

// RequireCgroup fails the test (or skips it, outside CI) where the CPU cap cannot
// write a cgroup here, saying why the test needs one.
func RequireCgroup(t testing.TB, why string) {
	t.Helper()
	c := cpucap.New(1, cpucap.Mount)
	defer c.Close()
	if c.Mode() == "priority" {
		Missing(t, "no writable cgroup (cgroup v2 cpu.max or v1 cpu.cfs_quota_us under "+cpucap.Mount+", as root): "+why)
	}
}
