package dirwatch

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestWatch checks which file operations wake a subscriber. inotify delivers one
// instance's events in order, so a "no wake-up" is proven without sleeping: a marker
// rename in a second folder is made after the operation, and once the marker's wake-up
// arrives, the operation's would have arrived before it.
func TestWatch(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()

	dir, markDir := t.TempDir(), t.TempDir()
	ch, mark := make(chan struct{}, 1), make(chan struct{}, 1)
	stop, err := w.Watch(dir, ch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(markDir, mark); err != nil {
		t.Fatal(err)
	}
	marker := func() {
		t.Helper()
		renameInto(t, markDir, "mark")
		select {
		case <-mark:
		case <-time.After(5 * time.Second):
			t.Fatal("no wake-up for the marker rename")
		}
	}
	expect := func(what string, want bool) {
		t.Helper()
		marker()
		got := false
		select {
		case <-ch:
			got = true
		default:
		}
		if got != want {
			t.Errorf("%s: woken = %v, want %v", what, got, want)
		}
	}

	renameInto(t, dir, "720p.m3u8")
	expect("a rename into the folder", true)

	renameInto(t, dir, "aac.m3u8")
	expect("a rename of another name", true)

	if err := os.WriteFile(filepath.Join(dir, "aac.m3u8"), []byte("in place"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect("write in place", false)

	renameInto(t, dir, "720p.m3u8")
	renameInto(t, dir, "aac.m3u8")
	expect("two renames (one pending wake-up)", true)
	expect("nothing more", false)

	stop()
	renameInto(t, dir, "720p.m3u8")
	expect("rename after stop", false)
	stop() // a second stop is harmless
}

// TestRemovedFolder checks that a folder removed while watched (a file job starting a
// new attempt from a clean folder) is forgotten, and can be watched again.
func TestRemovedFolder(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	dir := filepath.Join(t.TempDir(), "720p")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 1)
	stop, err := w.Watch(dir, ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		n := len(w.subs)
		w.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removed folder's subscription is still held")
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop() // after the kernel dropped the watch: no effect, no panic

	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(dir, ch); err != nil {
		t.Fatal(err)
	}
	renameInto(t, dir, "list.m3u8")
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatal("no wake-up in the folder made again")
	}
}

func TestWatchErrors(t *testing.T) {
	w, err := New()
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 1)
	if _, err := w.Watch(filepath.Join(t.TempDir(), "missing"), ch); err == nil {
		t.Error("watching a missing folder: no error")
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(file, ch); err == nil {
		t.Error("watching a file: no error")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Watch(t.TempDir(), ch); err == nil {
		t.Error("watching after Close: no error")
	}
}

// renameInto writes a temporary file and renames it to dir/name, as ffmpeg does.
func renameInto(t *testing.T, dir, name string) {
	t.Helper()
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
