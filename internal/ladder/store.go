package ladder

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

var (
	// ErrNotFound is returned, wrapped, by Store.Get when no ladder has the name.
	ErrNotFound = errors.New("ladder not found")
	// ErrInvalidName is returned, wrapped, by Store.Get for a name that ValidName refuses.
	ErrInvalidName = errors.New("invalid ladder name")
)

// Store finds ladders by name. It keeps nothing in memory: every call reads
// the files again, so an edited ladder applies to the next job without a
// restart.
type Store struct {
	dir      string
	fallback fs.FS
}

// Entry is one ladder file as listed by Store.List. Ladder is nil when the
// file does not validate; Problems then holds one line per problem.
type Entry struct {
	Name     string
	Ladder   *Ladder
	Problems []string
}

// NewStore returns a store reading <dir>/<name>.yaml, or, when dir does not
// exist (or is empty), the same names from fallback, typically profiles.FS.
// fallback may be nil.
func NewStore(dir string, fallback fs.FS) *Store {
	return &Store{dir: dir, fallback: fallback}
}

// source returns the file system to read and how to name its files in
// messages. fsys is nil when there is nothing to read from.
func (s *Store) source() (fsys fs.FS, label func(file string) string, err error) {
	if s.dir != "" {
		st, err := os.Stat(s.dir)
		switch {
		case err == nil && st.IsDir():
			return os.DirFS(s.dir), func(f string) string { return filepath.Join(s.dir, f) }, nil
		case err == nil:
			return nil, nil, fmt.Errorf("ladder directory %s is not a directory", s.dir)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, nil, fmt.Errorf("ladder directory: %w", err)
		}
	}
	return s.fallback, func(f string) string { return "embedded:" + f }, nil
}

// Get reads and validates the ladder called name.
func (s *Store) Get(name string) (*Ladder, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w %q: use 1 to 64 of a-z, 0-9, _ and -", ErrInvalidName, name)
	}
	fsys, label, err := s.source()
	if err != nil {
		return nil, err
	}
	if fsys == nil {
		return nil, fmt.Errorf("ladder %q: %w", name, ErrNotFound)
	}
	file := name + ".yaml"
	data, err := fs.ReadFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("ladder %q: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("ladder %q: %w", name, err)
	}
	return Parse(name, label(file), data)
}

// List reads every *.yaml ladder, sorted by name. A file that does not
// validate is listed with its problems; it does not hide the others.
// Files whose name starts with a dot are skipped.
func (s *Store) List() ([]Entry, error) {
	fsys, label, err := s.source()
	if err != nil || fsys == nil {
		return nil, err
	}
	files, err := fs.Glob(fsys, "*.yaml")
	if err != nil {
		return nil, fmt.Errorf("list ladders: %w", err)
	}
	entries := make([]Entry, 0, len(files))
	for _, file := range files {
		if strings.HasPrefix(file, ".") {
			continue
		}
		e := Entry{Name: strings.TrimSuffix(path.Base(file), ".yaml")}
		data, err := fs.ReadFile(fsys, file)
		if err != nil {
			e.Problems = []string{fmt.Sprintf("%s: %v", label(file), err)}
		} else if e.Ladder, err = Parse(e.Name, label(file), data); err != nil {
			e.Problems = problemLines(err)
		}
		entries = append(entries, e)
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}
