package cpucap

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	if c.Reserved() != 0 {
		t.Fatalf("reserved %v after release", c.Reserved())
	}
}

func TestCgroupModes(t *testing.T) {
	t.Run("v1", func(t *testing.T) {
		root := t.TempDir()
		mustWrite(t, filepath.Join(root, "cpu", "cpu.cfs_quota_us"), "-1")
		c := New(1.5, root)
		if c.Mode() != "cgroup v1" {
			t.Fatalf("mode %q", c.Mode())
		}
		g := filepath.Join(root, "cpu", "transcoderd-"+strconv.Itoa(os.Getpid()))
		if q := read(t, filepath.Join(g, "cpu.cfs_quota_us")); q != "150000" {
			t.Errorf("quota %q", q)
		}
		if err := c.Attach(4242); err != nil || read(t, filepath.Join(g, "cgroup.procs")) != "4242" {
			t.Errorf("attach: %v", err)
		}
	})
	t.Run("v2", func(t *testing.T) {
		root := t.TempDir()
		mustWrite(t, filepath.Join(root, "cgroup.controllers"), "cpu memory")
		c := New(0.5, root)
		if c.Mode() != "cgroup v2" {
			t.Fatalf("mode %q", c.Mode())
		}
		if m := read(t, filepath.Join(root, "transcoderd-"+strconv.Itoa(os.Getpid()), "cpu.max")); m != "50000 100000" {
			t.Errorf("cpu.max %q", m)
		}
	})
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
