// Package cpucap keeps the box under its CPU limit. Admission: each live job's cost is
// estimated from its ladder and refined from what its ffmpeg really uses; a job that
// would not fit is refused. Enforcement: every ffmpeg runs inside one cgroup capped at
// the limit (cgroup v2 cpu.max, or v1 cpu.cfs_quota_us), inside the daemon's own cgroup
// when that is delegated to it (systemd's Delegate=yes), else at the root of the
// hierarchy; where no cgroup is writable the daemon says so and falls back to running
// ffmpeg at a lower priority.
package cpucap

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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

// Estimate is the cores a ladder needs to encode in real time with x264 on every
// rung: x264 work grows with pixels per second and with the preset. The factor is
// calibrated on this project's benchmark (the default ladder, 1080p30 at veryfast:
// about 3.3 cores on 2020s x86).
func Estimate(p ladder.Plan, preset string) float64 {
	var mpx float64
	for _, v := range p.Video {
		mpx += megapixels(v, p.FPS)
	}
	cores := mpx * x264PerMpx * presetFactor[preset]
	if cores == 0 && len(p.Video) > 0 {
		cores = mpx * x264PerMpx
	}
	return cores + 0.02*float64(len(p.Audio)) + 0.05 // audio, decode and muxing overhead
}

// x264PerMpx is what x264 at veryfast takes, in cores per megapixel per second.
const x264PerMpx = 0.03

// HardwareShare is what a rung on a hardware encoder takes on the CPU, in cores per
// megapixel per second, where the probe measured nothing better (its trial encode's
// figure, gpu.EncoderResult.CPUPerMpx): a fifth of x264 at veryfast. The GPU encodes
// (and, for an H.264 source its trial proved, decodes and scales); ffmpeg still
// decodes the source otherwise, uploads the frames and muxes the segments.
const HardwareShare = 0.2 * x264PerMpx

// Cost is the cores a plan needs in real time once its encoders are chosen (each
// rung's Encoder, as the GPU service placed it): a rung on x264 costs what Estimate
// says of it; a rung onGPU says is on a hardware encoder (encoder.IsHardware of its
// Encoder) costs its share of the CPU, hw cores per megapixel per second
// (HardwareShare when hw is 0), not an encode. Mixed rungs cost the sum.
func Cost(p ladder.Plan, preset string, onGPU func(ladder.PlannedVideo) bool, hw float64) float64 {
	if hw <= 0 {
		hw = HardwareShare
	}
	soft := p
	soft.Video = nil
	var cores float64
	for _, v := range p.Video {
		if onGPU(v) {
			cores += megapixels(v, p.FPS) * hw
		} else {
			soft.Video = append(soft.Video, v)
		}
	}
	return cores + Estimate(soft, preset)
}

// megapixels is the megapixels per second rung v outputs at fps.
func megapixels(v ladder.PlannedVideo, fps float64) float64 {
	return float64(v.Width*v.Height) * fps / 1e6
}

var presetFactor = map[string]float64{
	"ultrafast": 0.35, "superfast": 0.55, "veryfast": 1, "faster": 1.4, "fast": 1.8,
	"medium": 2.3, "slow": 3.5, "slower": 6, "veryslow": 10, "": 1,
}

// Cap admits jobs and holds their ffmpeg processes under the limit. Safe for concurrent use.
type Cap struct {
	limit     float64
	mode      string // "cgroup v2", "cgroup v1" or "priority"
	group     string // the cgroup folder, "" in priority mode
	delegated bool   // group is inside the daemon's own cgroup, not at the root of the hierarchy
	why       error  // why the daemon's own cgroup does not hold group; nil when it does

	mu       sync.Mutex
	reserved map[string]float64 // job → cores, estimate replaced by measurement
}

// New creates the cap. root is the cgroup mount ("/sys/fs/cgroup"). The cap's cgroup
// goes inside the daemon's own cgroup, read from /proc/self/cgroup, when that one can
// hold it, as in a systemd service with Delegate=yes (see placeV2 and placeV1); else it
// is transcoderd-<pid> at the root of the hierarchy, or of its v1 cpu controller (the
// groups of daemons that died without removing theirs are removed). When no cgroup can
// be written, New still succeeds in priority mode, and Mode says so.
func New(limit float64, root string) *Cap {
	return newCap(limit, root, "/proc/self/cgroup", os.Getpid())
}

// Unlimited returns a cap that admits every job and holds no process under a limit:
// for a job manager given none (tests). Its Mode is "none".
func Unlimited() *Cap {
	return &Cap{limit: math.Inf(1), mode: "none", reserved: map[string]float64{}}
}

// newCap is New with the file that names the daemon's own cgroups and the daemon's
// pid given, for tests.
func newCap(limit float64, root, procSelf string, pid int) *Cap {
	c := &Cap{limit: limit, mode: "priority", reserved: map[string]float64{}}
	// A limit of every core needs no quota, and is better off without one: CFS hands
	// a group its quota in slices per CPU, so a busy multi-threaded group is throttled
	// before it has used all of it (x264 lost a sixth of its speed so).
	cores := limit
	if c.Whole() {
		cores = 0
	}
	setQuota := func(v2 bool) func(g string) error {
		return func(g string) error {
			if err := os.MkdirAll(g, 0o755); err != nil {
				return err
			}
			return Quota{Dir: g, V2: v2}.Set(cores)
		}
	}
	own, ownErr := ReadPaths(procSelf)
	if ownErr != nil {
		ownErr = fmt.Errorf("the daemon's own cgroup: %w", ownErr)
	}
	// cgroup v2: one unified hierarchy with cpu.max.
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		g, err := "", ownErr
		if err == nil {
			g, err = placeV2(root, own.Unified, pid, setQuota(true))
		}
		if err == nil {
			c.mode, c.group, c.delegated = "cgroup v2", g, true
			return c
		}
		g = groupIn(root, pid)
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+cpu"), 0o644)
		if setQuota(true)(g) == nil {
			c.mode, c.group, c.why = "cgroup v2", g, err
			return c
		}
		_ = os.Remove(g)
		release(g)
	}
	// cgroup v1: the cpu controller's CFS quota.
	cpuRoot := filepath.Join(root, "cpu")
	if _, err := os.Stat(filepath.Join(cpuRoot, "cpu.cfs_quota_us")); err == nil {
		g, err := "", ownErr
		if err == nil {
			g, err = placeV1(cpuRoot, own.CPU, pid, setQuota(false))
		}
		if err == nil {
			c.mode, c.group, c.delegated = "cgroup v1", g, true
			return c
		}
		if g = groupIn(cpuRoot, pid); setQuota(false)(g) == nil {
			c.mode, c.group, c.why = "cgroup v1", g, err
			return c
		}
		_ = os.Remove(g)
		release(g)
	}
	return c // priority mode: no cgroup at all
}

// Paths are a process's cgroups, as /proc/<pid>/cgroup names them: in the unified (v2)
// hierarchy, and in the v1 hierarchy of the cpu controller. "" when absent.
type Paths struct{ Unified, CPU string }

// ReadPaths reads a process's cgroups from procFile, /proc/<pid>/cgroup.
func ReadPaths(procFile string) (Paths, error) {
	var own Paths
	b, err := os.ReadFile(procFile)
	if err != nil {
		return own, fmt.Errorf("cgroups: %w", err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		// hierarchy-ID:controller-list:path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			own.Unified = parts[2]
		case slices.Contains(strings.Split(parts[1], ","), "cpu"):
			own.CPU = parts[2]
		}
	}
	return own, nil
}

// ownDir maps the daemon's cgroup path onto the mount at root. A path that climbs
// out of the mount (a process outside this cgroup namespace) is refused.
func ownDir(root, path string) (string, error) {
	if path == "" {
		return "", errors.New("/proc/self/cgroup names no cgroup of this hierarchy")
	}
	if !strings.HasPrefix(path, "/") || slices.Contains(strings.Split(path, "/"), "..") {
		return "", fmt.Errorf("the daemon's cgroup %q is outside the cgroup mount", path)
	}
	return filepath.Join(root, path), nil
}

// home remembers, per cgroup mount, the daemon's own v2 cgroup once the daemon has
// moved into its leaf: /proc/self/cgroup names the leaf from then on, and a second
// Cap in the same process (tests run several daemons) must not nest deeper.
// It also knows which cap cgroups are held by a live Cap (claim).
var home = struct {
	sync.Mutex
	dir  map[string]string
	held map[string]bool
}{dir: map[string]string{}, held: map[string]bool{}}

// placeV2 creates the cap's cgroup inside the daemon's own cgroup, the way systemd's
// delegation documentation asks for it. cgroup v2 lets a cgroup hand controllers to its
// children only while it holds no process itself, so the daemon first moves into the
// leaf <own>/daemon, then enables cpu in <own>/cgroup.subtree_control, then creates
// <own>/ffmpeg with cpu.max. Every step is undone when a later one fails. It refuses
// when the daemon shares its cgroup with other processes (it would have to move them),
// when the cgroup lacks the cpu controller, and when the daemon's cgroup is the root of
// the hierarchy (where the cap's cgroup goes anyway, as transcoderd-<pid>).
func placeV2(root, path string, pid int, setQuota func(group string) error) (group string, err error) {
	home.Lock()
	defer home.Unlock()
	own, placed := home.dir[root]
	if !placed {
		if own, err = ownDir(root, path); err != nil {
			return "", err
		}
		if _, err := os.Stat(filepath.Join(own, "cgroup.type")); errors.Is(err, fs.ErrNotExist) {
			// Only the real root has no cgroup.type; a cgroup namespace's root has one.
			return "", fmt.Errorf("the daemon runs in the root cgroup %s", own)
		}
	}
	controllers, err := os.ReadFile(filepath.Join(own, "cgroup.controllers"))
	if err != nil {
		return "", fmt.Errorf("the daemon's cgroup %s: %w", own, err)
	}
	if !slices.Contains(strings.Fields(string(controllers)), "cpu") {
		return "", fmt.Errorf("the daemon's cgroup %s has no cpu controller (a systemd service gets one with Delegate=yes)", own)
	}
	leaf := filepath.Join(own, "daemon")
	var undo []func()
	defer func() {
		if err != nil {
			for i := len(undo) - 1; i >= 0; i-- {
				undo[i]()
			}
		}
	}()
	if !placed {
		procs, err := os.ReadFile(filepath.Join(own, "cgroup.procs"))
		if err != nil {
			return "", fmt.Errorf("the daemon's cgroup %s: %w", own, err)
		}
		for _, p := range strings.Fields(string(procs)) {
			if p != strconv.Itoa(pid) {
				return "", fmt.Errorf("the daemon shares its cgroup %s with other processes (%s, ...)", own, p)
			}
		}
		if err := os.Mkdir(leaf, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
			return "", fmt.Errorf("the daemon's cgroup %s is not writable: %w", own, err)
		}
		undo = append(undo, func() { _ = os.Remove(leaf) })
		if err := os.WriteFile(filepath.Join(leaf, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
			return "", fmt.Errorf("move the daemon into %s: %w", leaf, err)
		}
		undo = append(undo, func() { _ = os.WriteFile(filepath.Join(own, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644) })
	}
	subtree := filepath.Join(own, "cgroup.subtree_control")
	enabled, err := os.ReadFile(subtree)
	if err != nil {
		return "", fmt.Errorf("the daemon's cgroup %s: %w", own, err)
	}
	if !slices.Contains(strings.Fields(string(enabled)), "cpu") {
		if err := os.WriteFile(subtree, []byte("+cpu"), 0o644); err != nil {
			return "", fmt.Errorf("enable the cpu controller in %s: %w", subtree, err)
		}
		undo = append(undo, func() { _ = os.WriteFile(subtree, []byte("-cpu"), 0o644) })
	}
	group = claimLocked(filepath.Join(own, "ffmpeg"))
	undo = append(undo, func() { _ = os.Remove(group); delete(home.held, group) })
	if err := setQuota(group); err != nil {
		return "", fmt.Errorf("the cap's cgroup %s: %w", group, err)
	}
	home.dir[root] = own
	return group, nil
}

// placeV1 creates the cap's cgroup, transcoderd-<pid>, inside the daemon's own cgroup
// of the v1 cpu controller (mounted at cpuRoot). cgroup v1 has no rule against
// processes beside child cgroups: nothing moves. It refuses when the daemon's cgroup is
// the root, where the cap's cgroup goes anyway.
func placeV1(cpuRoot, path string, pid int, setQuota func(group string) error) (string, error) {
	own, err := ownDir(cpuRoot, path)
	if err != nil {
		return "", err
	}
	if filepath.Clean(own) == filepath.Clean(cpuRoot) {
		return "", fmt.Errorf("the daemon runs in the root cgroup %s", cpuRoot)
	}
	if _, err := os.Stat(filepath.Join(own, "cpu.cfs_quota_us")); err != nil {
		return "", fmt.Errorf("the daemon's cgroup %s: %w", own, err)
	}
	g := groupIn(own, pid)
	if err := setQuota(g); err != nil {
		_ = os.Remove(g)
		release(g)
		return "", fmt.Errorf("the daemon's cgroup %s is not writable: %w", own, err)
	}
	return g, nil
}

// groupIn names this daemon's cgroup under parent, transcoderd-<pid> (with -2, -3...
// for a second cap in the same process), holding it, and removes the empty groups of
// daemons that are gone.
func groupIn(parent string, pid int) string {
	stale, _ := filepath.Glob(filepath.Join(parent, "transcoderd-*"))
	for _, g := range stale {
		p, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(g), "transcoderd-"), "-")
		if _, err := os.Stat("/proc/" + p); err != nil {
			_ = os.Remove(g) // fails, harmlessly, while processes are still inside
		}
	}
	return claim(filepath.Join(parent, "transcoderd-"+strconv.Itoa(pid)))
}

// claim holds the cgroup folder path for a Cap of this process, or, when another Cap
// holds it, path-2, path-3...: each Cap has a folder of its own, so that one's Close
// cannot remove another's group, nor its quota replace another's.
func claim(path string) string {
	home.Lock()
	defer home.Unlock()
	return claimLocked(path)
}

// claimLocked is claim with home locked.
func claimLocked(path string) string {
	g := path
	for n := 2; home.held[g]; n++ {
		g = path + "-" + strconv.Itoa(n)
	}
	home.held[g] = true
	return g
}

// release lets another Cap have the folder path.
func release(path string) {
	home.Lock()
	defer home.Unlock()
	delete(home.held, path)
}

// Group is the folder of the cap's cgroup, "" in priority mode.
func (c *Cap) Group() string { return c.group }

// Delegated tells whether the cap's cgroup is inside the daemon's own cgroup (a
// systemd service with Delegate=yes), rather than at the root of the hierarchy.
func (c *Cap) Delegated() bool { return c.delegated }

// Why tells why the cap's cgroup is not inside the daemon's own cgroup; nil when it
// is, and in priority mode.
func (c *Cap) Why() error { return c.why }

// Limit is the cap in cores.
func (c *Cap) Limit() float64 { return c.limit }

// Whole tells whether the limit is every core of the box: the cgroup then has no quota,
// and only admission holds jobs to the limit.
func (c *Cap) Whole() bool { return c.limit >= float64(Cores()) }

// Mode tells how the cap is enforced: "cgroup v2", "cgroup v1", "priority" (no
// cgroup could be written: ffmpeg runs at nice 10 and the limit holds only at admission),
// or "none" (Unlimited).
func (c *Cap) Mode() string { return c.mode }

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
// before the daemon restarted is not refused, nor one whose rungs moved from a GPU to
// x264, but what it uses must be counted. It returns an error wrapping
// ErrOverCapacity when the reservations are then over the limit.
func (c *Cap) Reserve(job string, cores float64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.reserved[job] = cores
	if used := c.usedLocked(); used > c.limit {
		return fmt.Errorf("%w: %.2f of %.2f cores are reserved by running live jobs", ErrOverCapacity, used, c.limit)
	}
	return nil
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

func (c *Cap) usedLocked() float64 {
	var sum float64
	for _, v := range c.reserved {
		sum += v
	}
	return sum
}

// Attach puts a freshly started ffmpeg under the cap.
func (c *Cap) Attach(pid int) error {
	if c.mode == "none" {
		return nil
	}
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
	release(c.group)
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
