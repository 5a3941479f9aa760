// Package cpucap keeps the box under its CPU limit. Admission: each live job's cost is
// estimated from its ladder and refined from what its ffmpeg really uses; a job that
// would not fit is refused. Enforcement: every ffmpeg runs inside one cgroup capped at
// the limit (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us); where no cgroup is writable
// the daemon says so and falls back to running ffmpeg at a lower priority.
package cpucap

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/shirou/gopsutil/v4/process"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

// ErrOverCapacity is wrapped when a job does not fit under the limit.
var ErrOverCapacity = errors.New("over the CPU limit")

// ParseLimit reads a limit in cores ("1.5") or as a share of the box ("75%"). An empty
// string gives the default: every core but a tenth of the box, for the daemon, the web
// server and the system.
func ParseLimit(s string, cores int) (float64, error) {
	if s == "" {
		return float64(cores) * 0.9, nil
	}
	var v float64
	var err error
	if p, ok := strings.CutSuffix(s, "%"); ok {
		v, err = strconv.ParseFloat(p, 64)
		v = v / 100 * float64(cores)
	} else {
		v, err = strconv.ParseFloat(s, 64)
	}
	if err != nil || v <= 0 || v > float64(cores) {
		return 0, fmt.Errorf("cpu limit %q: want cores between 0 and %d (e.g. 1.5) or a percentage (e.g. 75%%)", s, cores)
	}
	return v, nil
}

// Estimate is the cores a ladder needs to encode in real time: x264 work grows with
// pixels per second and with the preset. The factor is calibrated on this project's
// benchmark (the default ladder, 1080p30 at veryfast: about 3.3 cores on 2020s x86).
func Estimate(p ladder.Plan, preset string) float64 {
	var mpx float64
	for _, v := range p.Video {
		mpx += float64(v.Width*v.Height) * p.FPS / 1e6
	}
	cores := mpx * 0.03 * presetFactor[preset]
	if cores == 0 && len(p.Video) > 0 {
		cores = mpx * 0.03
	}
	return cores + 0.02*float64(len(p.Audio)) + 0.05 // audio, decode and muxing overhead
}

var presetFactor = map[string]float64{
	"ultrafast": 0.35, "superfast": 0.55, "veryfast": 1, "faster": 1.4, "fast": 1.8,
	"medium": 2.3, "slow": 3.5, "slower": 6, "veryslow": 10, "": 1,
}

// Cap admits jobs and holds their ffmpeg processes under the limit. Safe for concurrent use.
type Cap struct {
	limit float64
	mode  string // "cgroup v2", "cgroup v1" or "priority"
	group string // the cgroup folder, "" in priority mode

	mu       sync.Mutex
	reserved map[string]float64 // job → cores, estimate replaced by measurement
}

// New creates the cap. root is the cgroup mount ("/sys/fs/cgroup"); a cgroup named
// transcoderd-<pid> is created under it, or under its v1 cpu controller (the groups of
// daemons that died without removing theirs are removed). When neither can be
// written, New still succeeds in priority mode, and Mode says so.
func New(limit float64, root string) *Cap {
	c := &Cap{limit: limit, mode: "priority", reserved: map[string]float64{}}
	period := 100000
	quota := strconv.Itoa(int(limit * float64(period)))
	// cgroup v2: one unified hierarchy with cpu.max.
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		g := groupIn(root)
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0o644)
		if os.MkdirAll(g, 0o755) == nil && os.WriteFile(filepath.Join(g, "cpu.max"), []byte(quota+" "+strconv.Itoa(period)), 0o644) == nil {
			c.mode, c.group = "cgroup v2", g
			return c
		}
	}
	// cgroup v1: the cpu controller's CFS quota.
	if _, err := os.Stat(filepath.Join(root, "cpu", "cpu.cfs_quota_us")); err == nil {
		g := groupIn(filepath.Join(root, "cpu"))
		if os.MkdirAll(g, 0o755) == nil &&
			os.WriteFile(filepath.Join(g, "cpu.cfs_period_us"), []byte(strconv.Itoa(period)), 0o644) == nil &&
			os.WriteFile(filepath.Join(g, "cpu.cfs_quota_us"), []byte(quota), 0o644) == nil {
			c.mode, c.group = "cgroup v1", g
			return c
		}
	}
	return c
}

// groupIn names this daemon's cgroup under parent and removes the empty groups of
// daemons that are gone.
func groupIn(parent string) string {
	stale, _ := filepath.Glob(filepath.Join(parent, "transcoderd-*"))
	for _, g := range stale {
		pid := strings.TrimPrefix(filepath.Base(g), "transcoderd-")
		if _, err := os.Stat("/proc/" + pid); err != nil {
			_ = os.Remove(g) // fails, harmlessly, while processes are still inside
		}
	}
	return filepath.Join(parent, "transcoderd-"+strconv.Itoa(os.Getpid()))
}

// Limit is the cap in cores.
func (c *Cap) Limit() float64 { return c.limit }

// Mode tells how the cap is enforced: "cgroup v2", "cgroup v1", or "priority" (no
// cgroup could be written: ffmpeg runs at nice 10 and the limit holds only at admission).
func (c *Cap) Mode() string { return c.mode }

// Group is the cgroup folder ffmpeg runs in, "" in priority mode.
func (c *Cap) Group() string { return c.group }

// Admit reserves cores for a job, or refuses it with a message that says what is used
// and what it needs.
func (c *Cap) Admit(job string, cores float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	used := c.usedLocked()
	if used+cores > c.limit {
		return fmt.Errorf("%w: %.2f of %.2f cores are reserved by running live jobs and this job needs about %.2f", ErrOverCapacity, used, c.limit, cores)
	}
	c.reserved[job] = cores
	return nil
}

// Reserve sets a job's reservation whether it fits or not: a job that was running
// before the daemon restarted is not refused, but what it uses must be counted.
func (c *Cap) Reserve(job string, cores float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved[job] = cores
}

// Grow adds cores to a job's reservation if they fit under the limit.
func (c *Cap) Grow(job string, cores float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if used := c.usedLocked(); used+cores > c.limit {
		return fmt.Errorf("%w: %.2f of %.2f cores are reserved and %.2f more are needed", ErrOverCapacity, used, c.limit, cores)
	}
	c.reserved[job] += cores
	return nil
}

// Observe replaces a job's reservation with what its ffmpeg was measured to use.
func (c *Cap) Observe(job string, cores float64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.reserved[job]; ok {
		c.reserved[job] = cores
	}
}

// Release forgets a job's reservation.
func (c *Cap) Release(job string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.reserved, job)
}

// Reserved is the sum of the reservations, in cores.
func (c *Cap) Reserved() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.usedLocked()
}

func (c *Cap) usedLocked() float64 {
	var sum float64
	for _, v := range c.reserved {
		sum += v
	}
	return sum
}

// Attach puts a freshly started ffmpeg under the cap.
func (c *Cap) Attach(pid int) error {
	if c.group == "" {
		// The whole process group (ffmpeg is its leader), every thread of it.
		return syscall.Setpriority(syscall.PRIO_PGRP, pid, 10)
	}
	if err := os.WriteFile(filepath.Join(c.group, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		return fmt.Errorf("move ffmpeg %d into %s: %w", pid, c.group, err)
	}
	return nil
}

// Close removes the cgroup (once its processes have exited).
func (c *Cap) Close() error {
	if c.group == "" {
		return nil
	}
	return os.Remove(c.group)
}

// Meter measures one process's CPU use between calls, in cores.
type Meter struct {
	p    *process.Process
	last float64 // CPU seconds at the last call
	at   float64 // wall seconds at the last call
}

// NewMeter starts measuring pid.
func NewMeter(pid int) (*Meter, error) {
	p, err := process.NewProcess(int32(pid))
	if err != nil {
		return nil, err
	}
	m := &Meter{p: p}
	_, err = m.Cores(float64(time.Now().UnixNano()) / 1e9)
	return m, err
}

// Cores returns the cores used since the last call; now is wall time in seconds.
func (m *Meter) Cores(now float64) (float64, error) {
	t, err := m.p.Times()
	if err != nil {
		return 0, err
	}
	cpu := t.User + t.System
	var cores float64
	if m.at > 0 && now > m.at {
		cores = (cpu - m.last) / (now - m.at)
	}
	m.last, m.at = cpu, now
	return cores, nil
}

// Cores is the number of CPUs of the box.
func Cores() int { return runtime.NumCPU() }
