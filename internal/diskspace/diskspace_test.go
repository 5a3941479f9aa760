package diskspace

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
		err  string
	}{
		{in: "10GB", want: 10_000_000_000},
		{in: "10 gb", want: 10_000_000_000},
		{in: "500MiB", want: 500 << 20},
		{in: "500mib", want: 500 << 20},
		{in: "1.5TB", want: 1_500_000_000_000},
		{in: "2TiB", want: 2 << 40},
		{in: "64kB", want: 64_000},
		{in: "64KB", want: 64_000},
		{in: "64KiB", want: 64 << 10},
		{in: "0", want: 0},
		{in: "123", want: 123},
		{in: "123B", want: 123},
		{in: " 8 GiB ", want: 8 << 30},
		{in: "", err: "want a number"},
		{in: "GB", err: "want a number"},
		{in: "10XB", err: "want a number"},
		{in: "0x10", err: "want a number"},
		{in: "1e3", err: "want a number"},
		{in: "NaN", err: "want a number"},
		{in: "inf", err: "want a number"},
		{in: "1_000", err: "want a number"},
		{in: "-1GB", err: "negative"},
		{in: "99999999999TB", err: "too large"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseSize(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("ParseSize(%q) = %d, %v; want an error saying %q", tc.in, got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 999: "999 B", 1000: "1 kB", 8 << 20: "8.3 MB", 9_870_000_000: "9.8 GB", 10_000_000_000: "10 GB", 3_000_000_000_000: "3 TB",
	} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// tmpfs mounts a tmpfs of size bytes on a new folder and unmounts it when the test
// ends. It needs root (or CAP_SYS_ADMIN), which CI has: the test fails, not skips,
// without it, so that a run cannot pass by not measuring a real file system.
func tmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+strconv.Itoa(size)); err != nil {
		t.Fatalf("mount a tmpfs on %s: %v: this test needs root (CI runs it as root)", dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

// fill writes a file of n bytes at path.
func fill(t *testing.T, path string, n int) {
	t.Helper()
	if err := os.WriteFile(path, make([]byte, n), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFree measures a real 8 MiB tmpfs, empty and then holding a 3 MiB file, at the
// folder, at a file in it and at a path not made yet.
func TestFree(t *testing.T) {
	dir := tmpfs(t, 8<<20)
	free, err := Free(dir)
	if err != nil || free != 8<<20 {
		t.Fatalf("Free of an empty 8 MiB tmpfs = %d, %v; want %d", free, err, 8<<20)
	}
	fill(t, filepath.Join(dir, "big"), 3<<20)
	for _, p := range []string{dir, filepath.Join(dir, "big"), filepath.Join(dir, "job", "360p", "seg_1_0.m4s")} {
		free, err := Free(p)
		if err != nil || free != 5<<20 {
			t.Errorf("Free(%s) = %d, %v; want %d with 3 MiB of 8 used", p, free, err, 5<<20)
		}
	}
	if _, err := Free(filepath.Join(dir, "big", "below-a-file")); !errors.Is(err, syscall.ENOTDIR) {
		t.Errorf("Free below a file: %v, want ENOTDIR", err)
	}
}

// TestCheck refuses once a real tmpfs has less than the reserve free.
func TestCheck(t *testing.T) {
	dir := tmpfs(t, 8<<20)
	if err := Check(dir, 6<<20); err != nil {
		t.Errorf("Check with 8 MiB free, reserve 6 MiB: %v", err)
	}
	fill(t, filepath.Join(dir, "big"), 3<<20)
	err := Check(dir, 6<<20)
	if !errors.Is(err, ErrLow) || !strings.Contains(err.Error(), "5.2 MB free") || !strings.Contains(err.Error(), "reserve 6.2 MB") {
		t.Errorf("Check with 5 MiB free, reserve 6 MiB: %v; want ErrLow with both figures", err)
	}
	if err := Check(dir, 0); err != nil {
		t.Errorf("Check with no reserve: %v", err)
	}
}
