package cpucap

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

func TestParseLimit(t *testing.T) {
	tests := []struct {
		in      string
		want    float64
		wantErr bool
	}{
		{"", 3.6, false},
		{"1.5", 1.5, false},
		{"75%", 3, false},
		{"100%", 4, false},
		{"4", 4, false},
		{"5", 0, true},
		{"0", 0, true},
		{"-1", 0, true},
		{"lots", 0, true},
		{"150%", 0, true},
	}
	for _, tc := range tests {
		got, err := ParseLimit(tc.in, 4)
		if (err != nil) != tc.wantErr || (err == nil && abs(got-tc.want) > 1e-9) {
			t.Errorf("ParseLimit(%q, 4) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestEstimate(t *testing.T) {
	rung := func(w, h int) ladder.PlannedVideo { return ladder.PlannedVideo{Width: w, Height: h} }
	def := ladder.Plan{FPS: 30, Video: []ladder.PlannedVideo{rung(1920, 1080), rung(1280, 720), rung(854, 480), rung(640, 360)}, Audio: []ladder.Audio{{}}}
	if got := Estimate(def, "veryfast"); got < 3 || got > 3.8 {
		t.Errorf("default ladder at veryfast: %.2f cores, calibrated at about 3.3", got)
	}
	if Estimate(def, "ultrafast") >= Estimate(def, "veryfast") || Estimate(def, "medium") <= Estimate(def, "veryfast") {
		t.Error("presets do not order the cost")
	}
	audioOnly := ladder.Plan{Audio: []ladder.Audio{{}}}
	if got := Estimate(audioOnly, ""); got <= 0 || got > 0.1 {
		t.Errorf("audio only: %.2f cores", got)
	}
}

// TestCost: a rung on a hardware encoder costs its share of the CPU (the trial's
// figure, or HardwareShare), not an x264 encode; mixed rungs cost the sum.
func TestCost(t *testing.T) {
	rung := func(enc string, w, h int) ladder.PlannedVideo {
		return ladder.PlannedVideo{Encoder: enc, Width: w, Height: h}
	}
	plan := func(encs ...string) ladder.Plan {
		return ladder.Plan{FPS: 30, Audio: []ladder.Audio{{}}, Video: []ladder.PlannedVideo{
			rung(encs[0], 1920, 1080), rung(encs[1], 1280, 720), rung(encs[2], 854, 480), rung(encs[3], 640, 360)}}
	}
	const mpx1080, mpx720 = 1920 * 1080 * 30 / 1e6, 1280 * 720 * 30 / 1e6
	// encoder.IsHardware, which cpucap cannot import (encoder's tests import it).
	onGPU := func(v ladder.PlannedVideo) bool { return v.Encoder != "x264" && v.Encoder != "" }
	x264 := Estimate(plan("x264", "x264", "x264", "x264"), "veryfast")
	lower := plan("x264", "x264", "x264", "x264")
	lower.Video = lower.Video[2:]
	tests := []struct {
		name string
		plan ladder.Plan
		hw   float64
		want float64
	}{
		{"x264 everywhere is Estimate", plan("x264", "x264", "x264", "x264"), 0.004, x264},
		{"an empty encoder is x264", plan("", "", "", ""), 0, x264},
		{"nvenc at the trial's figure", plan("nvenc", "nvenc", "nvenc", "nvenc"), 0.004,
			0.004*(1920*1080+1280*720+854*480+640*360)*30/1e6 + 0.02 + 0.05},
		{"nvenc unmeasured: the default share", plan("nvenc", "nvenc", "nvenc", "nvenc"), 0,
			HardwareShare*(1920*1080+1280*720+854*480+640*360)*30/1e6 + 0.02 + 0.05},
		{"mixed: the sum", plan("qsv", "vaapi", "x264", "x264"), 0.01,
			0.01*(mpx1080+mpx720) + Estimate(lower, "veryfast")},
	}
	for _, tc := range tests {
		if got := Cost(tc.plan, "veryfast", onGPU, tc.hw); abs(got-tc.want) > 1e-9 {
			t.Errorf("%s: %.4f cores, want %.4f", tc.name, got, tc.want)
		}
	}
	if hw := Cost(plan("nvenc", "nvenc", "nvenc", "nvenc"), "veryfast", onGPU, 0); hw > x264/4 {
		t.Errorf("the default ladder on nvenc costs %.2f cores, on x264 %.2f", hw, x264)
	}
}

func TestAdmit(t *testing.T) {
	c := New(2, t.TempDir()) // no cgroup there: priority mode
	if c.Mode() != "priority" {
		t.Fatalf("mode %q in an empty folder", c.Mode())
	}
	if err := c.Admit("a", 1.2); err != nil {
		t.Fatal(err)
	}
	err := c.Admit("b", 1.0)
	if !errors.Is(err, ErrOverCapacity) || !strings.Contains(err.Error(), "1.20 of 2.00 cores") || !strings.Contains(err.Error(), "needs about 1.00") {
		t.Fatalf("second job: %v", err)
	}
	c.Observe("a", 0.7) // measured lower than estimated: room for b
	if err := c.Admit("b", 1.0); err != nil {
		t.Fatalf("after measurement: %v", err)
	}
	c.Release("a")
	c.Release("b")
	if err := c.Admit("c", 2); err != nil { // the whole limit: nothing may be left reserved
		t.Fatalf("after release: %v", err)
	}
}

func TestCgroupModes(t *testing.T) {
	whole := float64(Cores())
	tests := []struct {
		name  string
		v2    bool
		limit float64
		file  string // the quota's file in the cap's cgroup
		want  string
		quota bool
	}{
		{name: "v1", limit: 1.5, file: "cpu.cfs_quota_us", want: "150000", quota: true},
		{name: "v1, every core: no quota", limit: whole, file: "cpu.cfs_quota_us", want: "-1"},
		{name: "v2", v2: true, limit: 0.5, file: "cpu.max", want: "50000 100000", quota: true},
		{name: "v2, every core: no quota", v2: true, limit: whole, file: "cpu.max", want: "max 100000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := t.TempDir()
			parent, mode := filepath.Join(root, "cpu"), "cgroup v1"
			if tt.v2 {
				mustWrite(t, filepath.Join(root, "cgroup.controllers"), "cpu memory")
				parent, mode = root, "cgroup v2"
			} else {
				mustWrite(t, filepath.Join(root, "cpu", "cpu.cfs_quota_us"), "-1")
			}
			c := New(tt.limit, root)
			if c.Mode() != mode {
				t.Fatalf("mode %q, want %q", c.Mode(), mode)
			}
			g := filepath.Join(parent, "transcoderd-"+strconv.Itoa(os.Getpid()))
			if q := read(t, filepath.Join(g, tt.file)); q != tt.want {
				t.Errorf("%s = %q, want %q", tt.file, q, tt.want)
			}
			if c.Whole() == tt.quota {
				t.Errorf("Whole() = %v at a limit of %.1f of %d cores", c.Whole(), tt.limit, Cores())
			}
			if err := c.Attach(4242); err != nil || read(t, filepath.Join(g, "cgroup.procs")) != "4242" {
				t.Errorf("attach: %v", err)
			}
		})
	}
}

func mustWrite(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// TestUnlimited: the cap of a manager given none admits every job and leaves ffmpeg
// where it is, where a cap in priority mode lowers its priority.
func TestUnlimited(t *testing.T) {
	c := Unlimited()
	if err := c.Admit("a", 1e6); err != nil {
		t.Fatal(err)
	}
	if err := c.Grow("a", 1e6); err != nil {
		t.Fatal(err)
	}
	if c.Mode() != "none" || c.Close() != nil {
		t.Errorf("mode %q", c.Mode())
	}
	for _, tc := range []struct {
		cap  *Cap
		nice int
	}{{Unlimited(), 0}, {New(2, t.TempDir()), 10}} {
		cmd := exec.Command("sleep", "30")
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		err := tc.cap.Attach(cmd.Process.Pid)
		f, ok := procStat(cmd.Process.Pid)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil || !ok || f[16] != strconv.Itoa(tc.nice) {
			t.Errorf("mode %s: attach %v, nice %v, want %d", tc.cap.Mode(), err, f, tc.nice)
		}
	}
}

// procStat returns the fields of /proc/<pid>/stat after the command name, as
// testmedia.Stat does (testmedia imports cpucap, so it cannot be used here).
func procStat(pid int) ([]string, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, false
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return f, len(f) > 0
}
