package ladder

import (
	"errors"
	"fmt"
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
		{name: "directory adds to the built-in ladders", dir: dir, ladder: "embedded", wantPath: "embedded:embedded.yaml"},
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

	entries, err := NewStore(dir, nil).List()
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

// TestStoreFolderAndBuiltin checks how the operator's folder and the built-in ladders
// combine, the same way in Get, List and Sources: the folder adds ladders, and one
// named like a built-in replaces it, even when it is broken; a missing or empty folder
// leaves the built-in ladders.
func TestStoreFolderAndBuiltin(t *testing.T) {
	builtin := fstest.MapFS{
		"default.yaml": {Data: []byte(base)},
		"mobile.yaml":  {Data: []byte(base)},
	}
	broken := "window: 2\n"
	type from string // where Get reads a name from: "folder", "builtin", "broken" (the folder's, with problems) or "none"
	tests := []struct {
		name    string
		files   map[string]string // nil: no folder at all
		list    string            // List's names, each marked f (folder) or b (built-in)
		sources Sources
		get     map[string]from
	}{
		{
			name:    "missing folder",
			files:   nil,
			list:    "default:b mobile:b",
			sources: Sources{Builtin: []string{"default", "mobile"}},
			get:     map[string]from{"default": "builtin", "mobile": "builtin", "web": "none"},
		},
		{
			name:    "empty folder (the image's)",
			files:   map[string]string{},
			list:    "default:b mobile:b",
			sources: Sources{FolderExists: true, Builtin: []string{"default", "mobile"}},
			get:     map[string]from{"default": "builtin", "web": "none"},
		},
		{
			name:    "folder with other files only",
			files:   map[string]string{"notes.txt": "x", ".hidden.yaml": base},
			list:    "default:b mobile:b",
			sources: Sources{FolderExists: true, Builtin: []string{"default", "mobile"}},
			get:     map[string]from{"default": "builtin", "hidden": "none"},
		},
		{
			name:    "one custom ladder: added",
			files:   map[string]string{"web.yaml": base},
			list:    "default:b mobile:b web:f",
			sources: Sources{FolderExists: true, Folder: []string{"web"}, Builtin: []string{"default", "mobile"}},
			get:     map[string]from{"default": "builtin", "web": "folder"},
		},
		{
			name:    "a ladder named like a built-in replaces it",
			files:   map[string]string{"default.yaml": base, "web.yaml": base},
			list:    "default:f mobile:b web:f",
			sources: Sources{FolderExists: true, Folder: []string{"default", "web"}, Builtin: []string{"mobile"}, Replaced: []string{"default"}},
			get:     map[string]from{"default": "folder", "mobile": "builtin", "web": "folder"},
		},
		{
			name:    "a broken replacement is not hidden by the built-in",
			files:   map[string]string{"default.yaml": broken},
			list:    "default:f mobile:b",
			sources: Sources{FolderExists: true, Folder: []string{"default"}, Builtin: []string{"mobile"}, Replaced: []string{"default"}},
			get:     map[string]from{"default": "broken", "mobile": "builtin"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "profiles")
			if tc.files != nil {
				if err := os.Mkdir(dir, 0o755); err != nil {
					t.Fatal(err)
				}
				for name, data := range tc.files {
					writeFile(t, dir, name, data)
				}
			}
			s := NewStore(dir, builtin)

			entries, err := s.List()
			if err != nil {
				t.Fatal(err)
			}
			var list []string
			for _, e := range entries {
				mark := "f"
				if e.Builtin {
					mark = "b"
				}
				list = append(list, e.Name+":"+mark)
			}
			if got := strings.Join(list, " "); got != tc.list {
				t.Errorf("List = %s, want %s", got, tc.list)
			}

			src, err := s.Sources()
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(src) != fmt.Sprint(tc.sources) {
				t.Errorf("Sources = %+v, want %+v", src, tc.sources)
			}

			for name, want := range tc.get {
				l, err := s.Get(name)
				var got from
				switch {
				case errors.Is(err, ErrNotFound):
					got = "none"
				case err != nil && strings.HasPrefix(err.Error(), filepath.Join(dir, name+".yaml")+":"):
					got = "broken"
				case err != nil:
					t.Errorf("Get(%q): %v", name, err)
					continue
				case l.Path == "embedded:"+name+".yaml":
					got = "builtin"
				case l.Path == filepath.Join(dir, name+".yaml"):
					got = "folder"
				default:
					t.Errorf("Get(%q) read %s", name, l.Path)
					continue
				}
				if got != want {
					t.Errorf("Get(%q) from %s (err %v), want %s", name, got, err, want)
				}
			}
		})
	}
}
