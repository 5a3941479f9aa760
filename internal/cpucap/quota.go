package cpucap

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Mount is where the cgroup hierarchies are mounted.
const Mount = "/sys/fs/cgroup"

// Quota is the CPU quota of one cgroup: v2 cpu.max, or v1 cpu.cfs_quota_us with its
// period in cpu.cfs_period_us.
type Quota struct {
	Dir string // the cgroup's folder
	V2  bool
}

// QuotaOf returns the cgroup whose CPU quota holds process pid, read from
// /proc/<pid>/cgroup: in the v1 hierarchy of the cpu controller when there is one (at
// Mount/cpu), else in the unified hierarchy (at Mount). The root cgroup has no quota and
// is refused.
func QuotaOf(pid int) (Quota, error) {
	p, err := ReadPaths("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return Quota{}, err
	}
	switch {
	case p.CPU == "/":
		return Quota{}, fmt.Errorf("process %d is in the root cgroup of the cpu controller, which has no quota", pid)
	case p.CPU != "":
		return Quota{Dir: filepath.Join(Mount, "cpu", p.CPU)}, nil
	case p.Unified == "" || p.Unified == "/":
		return Quota{}, fmt.Errorf("process %d is in no cgroup with a CPU quota", pid)
	}
	q := Quota{Dir: filepath.Join(Mount, p.Unified), V2: true}
	if _, err := os.Stat(filepath.Join(q.Dir, "cpu.max")); err != nil {
		return Quota{}, fmt.Errorf("the cgroup of process %d has no cpu.max: %w", pid, err)
	}
	return q, nil
}

// period is the CFS period the cap's quotas are written with, in microseconds.
const period = 100000

// Set sets the quota to cores, with a period of 100 ms; cores of 0 or less removes it.
func (q Quota) Set(cores float64) error {
	v1, v2 := "-1", "max"
	if cores > 0 {
		v1 = strconv.Itoa(max(1000, int(cores*period))) // the kernel's least is 1 ms
		v2 = v1
	}
	if q.V2 {
		return q.write("cpu.max", v2+" "+strconv.Itoa(period))
	}
	// v1 keeps the period in a file of its own: set it, so that the quota means what it says.
	if err := q.write("cpu.cfs_period_us", strconv.Itoa(period)); err != nil {
		return err
	}
	return q.write("cpu.cfs_quota_us", v1)
}

// Cores reads the quota back, in cores; 0 when there is none.
func (q Quota) Cores() (float64, error) {
	var quota, per string
	if q.V2 {
		b, err := os.ReadFile(filepath.Join(q.Dir, "cpu.max"))
		if err != nil {
			return 0, err
		}
		quota, per, _ = strings.Cut(strings.TrimSpace(string(b)), " ")
	} else {
		b, err := os.ReadFile(filepath.Join(q.Dir, "cpu.cfs_quota_us"))
		if err != nil {
			return 0, err
		}
		p, err := os.ReadFile(filepath.Join(q.Dir, "cpu.cfs_period_us"))
		if err != nil {
			return 0, err
		}
		quota, per = strings.TrimSpace(string(b)), strings.TrimSpace(string(p))
	}
	if quota == "max" || quota == "-1" {
		return 0, nil
	}
	n, err1 := strconv.ParseFloat(quota, 64)
	d, err2 := strconv.ParseFloat(per, 64)
	if err1 != nil || err2 != nil || d <= 0 {
		return 0, fmt.Errorf("quota %q over period %q in %s", quota, per, q.Dir)
	}
	return n / d, nil
}

func (q Quota) write(file, value string) error {
	if err := os.WriteFile(filepath.Join(q.Dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("set %s: %w", file, err)
	}
	return nil
}
