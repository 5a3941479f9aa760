package fileio

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/testmedia"
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
	eachFS(t, func(t *testing.T, f FS) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := filepath.Join(dir, "master.m3u8")
				if tc.old != nil {
					if err := os.WriteFile(path, tc.old, 0o600); err != nil {
						t.Fatal(err)
					}
				}
				if err := f.WriteAtomic(path, tc.data); err != nil {
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
				onlyFiles(t, dir, "master.m3u8")
			})
		}
	})
}

func TestWriteAtomicErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(dir string) string // returns the path to write
		left  []string                // what the folder must hold afterwards
	}{
		{
			name:  "folder does not exist",
			setup: func(dir string) string { return filepath.Join(dir, "missing", "manifest.mpd") },
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
	eachFS(t, func(t *testing.T, f FS) {
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				dir := t.TempDir()
				path := tc.setup(dir)
				if err := f.WriteAtomic(path, []byte("data")); err == nil {
					t.Fatal("WriteAtomic succeeded")
				}
				onlyFiles(t, dir, tc.left...)
			})
		}
	})
}

// TestWriteAtomicReaderNeverSeesPart reads the file while it is replaced over and over:
// every read must give one whole version, never a mix or a truncated one.
func TestWriteAtomicReaderNeverSeesPart(t *testing.T) {
	eachFS(t, testWriteAtomicReaderNeverSeesPart)
}

func testWriteAtomicReaderNeverSeesPart(t *testing.T, f FS) {
	dir := t.TempDir()
	path := filepath.Join(dir, "manifest.mpd")
	a := bytes.Repeat([]byte("a"), 1<<20)
	b := bytes.Repeat([]byte("b"), 1<<19)
	if err := f.WriteAtomic(path, a); err != nil {
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
		if err := f.WriteAtomic(path, data); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	if bad > 0 {
		t.Errorf("%d of %d reads saw a missing or partial file", bad, reads)
	}
	onlyFiles(t, dir, "manifest.mpd")
}

func TestReadFile(t *testing.T) {
	eachFS(t, testReadFile)
}

func testReadFile(t *testing.T, f FS) {
	dir := t.TempDir()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", []byte{}},
		{"one byte", []byte("x")},
		{"a playlist", []byte("#EXTM3U\n#EXT-X-VERSION:7\n")},
		{"bigger than a page", bytes.Repeat([]byte("0123456789"), 70000)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name)
			if err := os.WriteFile(path, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			mod := time.Date(2026, 11, 21, 10, 0, 0, 123456789, time.UTC)
			if err := os.Chtimes(path, mod, mod); err != nil {
				t.Fatal(err)
			}
			got, gotMod, err := f.ReadFileModTime(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Errorf("read %d bytes, want %d", len(got), len(tc.data))
			}
			if !gotMod.Equal(mod) {
				t.Errorf("modification time %v, want %v", gotMod, mod)
			}
		})
	}
	t.Run("a file stat gives no size of", func(t *testing.T) {
		want, err := os.ReadFile("/proc/self/status")
		if err != nil {
			testmedia.Missing(t, "no /proc: "+err.Error())
		}
		got, err := f.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 || !bytes.HasPrefix(got, want[:bytes.IndexByte(want, '\n')]) {
			t.Errorf("read %q", got)
		}
	})
	t.Run("missing", func(t *testing.T) {
		_, err := f.ReadFile(filepath.Join(dir, "missing"))
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("err = %v, want one that is fs.ErrNotExist", err)
		}
	})
	t.Run("a folder", func(t *testing.T) {
		if _, err := f.ReadFile(dir); err == nil {
			t.Error("read a folder")
		}
	})
}

// TestUmask checks that a umask which would make the manifests unreadable to a web server
// is noticed, so that WriteAtomic sets their mode itself.
func TestUmask(t *testing.T) {
	for _, tc := range []struct {
		mask  int
		hides bool
	}{{0o022, false}, {0o002, false}, {0o000, false}, {0o027, true}, {0o077, true}, {0o044, true}} {
		old := syscall.Umask(tc.mask)
		got := readUmaskHides0644()
		syscall.Umask(old)
		if got != tc.hides {
			t.Errorf("umask %03o: hides 0644 = %v, want %v", tc.mask, got, tc.hides)
		}
	}
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

// eachFS runs fn with an FS of each kind: blocking calls, and raw ones (which work on
// any file system; For picks them only for file systems in memory).
func eachFS(t *testing.T, fn func(t *testing.T, f FS)) {
	t.Run("blocking", func(t *testing.T) { fn(t, FS{}) })
	if rawSupported {
		t.Run("raw", func(t *testing.T) { fn(t, FS{raw: true}) })
	}
}

func TestVersion(t *testing.T) {
	eachFS(t, func(t *testing.T, f FS) {
		dir := t.TempDir()
		path := filepath.Join(dir, "p.m3u8")
		if _, err := f.Version(path); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("missing file: err = %v, want one that is fs.ErrNotExist", err)
		}
		if err := f.WriteAtomic(path, []byte("one")); err != nil {
			t.Fatal(err)
		}
		v1, err := f.Version(path)
		if err != nil || v1 == (Version{}) {
			t.Fatalf("Version = %v, %v", v1, err)
		}
		if again, _ := f.Version(path); again != v1 {
			t.Errorf("unchanged file: version %v, then %v", v1, again)
		}
		// Same size, same modification time: only the rename tells.
		mod := time.Now().Add(-time.Hour)
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
		v1, _ = f.Version(path)
		if err := f.WriteAtomic(path, []byte("two")); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(path, mod, mod); err != nil {
			t.Fatal(err)
		}
		if v2, _ := f.Version(path); v2 == v1 {
			t.Errorf("a replaced file has the version of the old one: %v", v2)
		}
		defer func() {
			if err := f.Remove(path); err != nil {
				t.Error(err)
			}
			if err := f.Remove(path); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("removed twice: err = %v, want one that is fs.ErrNotExist", err)
			}
		}()
		// Written in place (the same file): the time alone, or the size alone, tells.
		for _, step := range []struct {
			what, data string
			mod        time.Time
		}{
			{"written in place to the same size", "six", mod.Add(time.Second)},
			{"grown in place with the same time", "seven", mod.Add(time.Second)},
		} {
			before, _ := f.Version(path)
			if err := os.WriteFile(path, []byte(step.data), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(path, step.mod, step.mod); err != nil {
				t.Fatal(err)
			}
			if after, _ := f.Version(path); after == before {
				t.Errorf("a file %s keeps its version: %v", step.what, after)
			}
		}
	})
}

func TestPollReader(t *testing.T) {
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	r, err := NewPollReader(pr)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Repeat([]byte("progress=continue\n"), 10000) // more than a pipe holds
	go func() {
		time.Sleep(50 * time.Millisecond) // the first read waits in the poller
		_, _ = pw.Write(want)
		pw.Close()
	}()
	got, err := io.ReadAll(r)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes (err %v), want %d", len(got), err, len(want))
	}

	// A descriptor that blocks is refused: a raw read would hold its thread.
	fds := make([]int, 2)
	if err := syscall.Pipe(fds); err != nil {
		t.Fatal(err)
	}
	blocking := os.NewFile(uintptr(fds[0]), "blocking pipe")
	defer blocking.Close()
	defer syscall.Close(fds[1])
	if _, err := NewPollReader(blocking); err == nil {
		t.Error("NewPollReader took a blocking descriptor")
	}

	// A reader blocked when its file is closed returns os.ErrClosed.
	pr2, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pw2.Close()
	r2, err := NewPollReader(pr2)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := r2.Read(make([]byte, 10))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	pr2.Close()
	select {
	case err := <-done:
		if !errors.Is(err, os.ErrClosed) {
			t.Errorf("err = %v, want one that is os.ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the read did not return when its file was closed")
	}
}
