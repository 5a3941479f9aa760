package manifest

import (
	"bytes"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	tests := []struct {
		name string
		old  []byte // nil: no file before
		data []byte
	}{
		{name: "creates", data: []byte("#EXTM3U\n")},
		{name: "replaces a longer file", old: bytes.Repeat([]byte("x"), 4096), data: []byte("short\n")},
		{name: "replaces a shorter file", old: []byte("a"), data: bytes.Repeat([]byte("y"), 70000)},
		{name: "writes an empty file", old: []byte("something"), data: []byte{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, MasterName)
			if tc.old != nil {
				if err := os.WriteFile(path, tc.old, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteAtomic(path, tc.data); err != nil {
				t.Fatalf("WriteAtomic: %v", err)
			}
			got, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Errorf("file holds %d bytes, want %d", len(got), len(tc.data))
			}
			info, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if mode := info.Mode().Perm(); mode != 0o644 {
				t.Errorf("mode %v, want 0644", mode)
			}
			onlyFiles(t, dir, MasterName)
		})
	}
}

func TestWriteAtomicErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) string // returns the path to write
		left  []string                // what the folder must hold afterwards
	}{
		{
			name:  "folder does not exist",
			setup: func(dir string) string { return filepath.Join(dir, "missing", MPDName) },
			left:  nil,
		},
		{
			name: "path is a non-empty folder",
			setup: func(dir string) string {
				p := filepath.Join(dir, "taken")
				if err := os.MkdirAll(filepath.Join(p, "inside"), 0o755); err != nil {
					t.Fatal(err)
				}
				return p
			},
			left: []string{"taken"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := tc.setup(dir)
			if err := WriteAtomic(path, []byte("data")); err == nil {
				t.Fatal("WriteAtomic succeeded")
			}
			onlyFiles(t, dir, tc.left...)
		})
	}
}

// TestWriteAtomicReaderNeverSeesPart reads the file while it is replaced over and over:
// every read must give one whole version, never a mix or a truncated one.
func TestWriteAtomicReaderNeverSeesPart(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, MPDName)
	a := bytes.Repeat([]byte("a"), 1<<20)
	b := bytes.Repeat([]byte("b"), 1<<19)
	if err := WriteAtomic(path, a); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var reads, bad int
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			got, err := os.ReadFile(path)
			if err != nil || !(bytes.Equal(got, a) || bytes.Equal(got, b)) {
				bad++
			}
			reads++
		}
	}()
	for i := range 200 {
		data := a
		if i%2 == 0 {
			data = b
		}
		if err := WriteAtomic(path, data); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of %d reads saw a missing or partial file", bad, reads)
	}
	onlyFiles(t, dir, MPDName)
}

// onlyFiles fails unless dir holds exactly the given names: no temporary file is left.
func onlyFiles(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := make(map[string]bool)
	for _, n := range names {
		want[n] = true
	}
	for _, e := range entries {
		if !want[e.Name()] {
			t.Errorf("%s holds %s", dir, e.Name())
		}
		delete(want, e.Name())
	}
	for n := range want {
		t.Errorf("%s lacks %s", dir, n)
	}
}
