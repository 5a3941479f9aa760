package ladder

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/transcoderd/transcoderd/profiles"
)

func writeFile(t *testing.T, dir, name, data string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestStoreSeesEditsWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", "audio: [{name: a, bitrate: 64k}]\n")
	s := NewStore(dir, profiles.FS)

	l, err := s.Get("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Audio[0].Bitrate; got != 64_000 {
		t.Fatalf("first read: bitrate %d, want 64000", got)
	}
	if l.Path != filepath.Join(dir, "web.yaml") {
		t.Errorf("Path = %q", l.Path)
	}

	writeFile(t, dir, "web.yaml", "audio: [{name: a, bitrate: 96k}]\n")
	l, err = s.Get("web")
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Audio[0].Bitrate; got != 96_000 {
		t.Errorf("after the edit: bitrate %d, want 96000", got)
	}

	writeFile(t, dir, "web.yaml", "audio: [{name: a, bitrate: 96}]\n")
	_, err = s.Get("web")
	checkProblems(t, filepath.Join(dir, "web.yaml"), err, []want{{1, "audio[0].bitrate", "too low"}})
}

func TestStoreGet(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", base)
	fallback := fstest.MapFS{"embedded.yaml": {Data: []byte(base)}}
	tests := []struct {
		name     string
		dir      string
		ladder   string
		wantPath string // on success
		wantErr  error  // errors.Is target
	}{
		{name: "from the directory", dir: dir, ladder: "web", wantPath: filepath.Join(dir, "web.yaml")},
		{name: "directory shadows the fallback", dir: dir, ladder: "embedded", wantErr: ErrNotFound},
		{name: "missing", dir: dir, ladder: "nope", wantErr: ErrNotFound},
		{name: "missing directory falls back", dir: filepath.Join(dir, "absent"), ladder: "embedded", wantPath: "embedded:embedded.yaml"},
		{name: "no directory given falls back", dir: "", ladder: "embedded", wantPath: "embedded:embedded.yaml"},
		{name: "missing in the fallback", dir: filepath.Join(dir, "absent"), ladder: "web", wantErr: ErrNotFound},
		{name: "path traversal", dir: dir, ladder: "../web", wantErr: ErrInvalidName},
		{name: "absolute path", dir: dir, ladder: filepath.Join(dir, "web"), wantErr: ErrInvalidName},
		{name: "with extension", dir: dir, ladder: "web.yaml", wantErr: ErrInvalidName},
		{name: "upper case", dir: dir, ladder: "Web", wantErr: ErrInvalidName},
		{name: "empty", dir: dir, ladder: "", wantErr: ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, err := NewStore(tt.dir, fallback).Get(tt.ladder)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get(%q) = %v, %v; want %v", tt.ladder, l, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get(%q): %v", tt.ladder, err)
			}
			if l.Name != tt.ladder || l.Path != tt.wantPath {
				t.Errorf("Name, Path = %q, %q; want %q, %q", l.Name, l.Path, tt.ladder, tt.wantPath)
			}
		})
	}
}

func TestStoreNoSource(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "absent"), nil)
	if _, err := s.Get("default"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get with no directory and no fallback: %v, want ErrNotFound", err)
	}
	entries, err := s.List()
	if err != nil || len(entries) != 0 {
		t.Errorf("List = %v, %v; want nothing", entries, err)
	}
}

func TestStoreDirIsAFile(t *testing.T) {
	file := writeFile(t, t.TempDir(), "web.yaml", base)
	s := NewStore(file, profiles.FS)
	if _, err := s.Get("default"); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("Get: %v, want a not-a-directory error", err)
	}
	if _, err := s.List(); err == nil {
		t.Error("List succeeded on a file")
	}
}

func TestStoreList(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "web.yaml", base)
	broken := writeFile(t, dir, "broken.yaml", "window: 2\nvideo:\n  renditions:\n    - {name: a, height: 721, bitrate: 1M}\n")
	writeFile(t, dir, "Bad Name.yaml", base)
	writeFile(t, dir, "notes.txt", "not a ladder")
	writeFile(t, dir, "web.yml", "not a ladder either")
	writeFile(t, dir, ".hidden.yaml", "skipped")
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "sub"), "deep.yaml", base)

	entries, err := NewStore(dir, profiles.FS).List()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if got, want := strings.Join(names, ","), "Bad Name,broken,web"; got != want {
		t.Fatalf("List names = %s, want %s", got, want)
	}

	bad, brk, web := entries[0], entries[1], entries[2]
	if bad.Ladder != nil || len(bad.Problems) != 1 || !strings.Contains(bad.Problems[0], `ladder name "Bad Name" is not valid`) {
		t.Errorf("Bad Name: %+v", bad)
	}
	if brk.Ladder != nil {
		t.Errorf("broken has a ladder")
	}
	wantProblems := []string{
		broken + ":1: window: 2 has no unit",
		broken + ":4: video.renditions[0].height: 721 is odd",
	}
	if len(brk.Problems) != len(wantProblems) {
		t.Fatalf("broken problems = %q, want %d", brk.Problems, len(wantProblems))
	}
	for i, w := range wantProblems {
		if !strings.HasPrefix(brk.Problems[i], w) {
			t.Errorf("broken problem %d = %q, want prefix %q", i, brk.Problems[i], w)
		}
	}
	if web.Ladder == nil || len(web.Problems) != 0 || web.Ladder.Name != "web" {
		t.Errorf("web: %+v", web)
	}
}
