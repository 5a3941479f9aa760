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
//
// A store has two sources: a folder of <name>.yaml files (the operator's) and
// the built-in ladders (profiles.FS). The folder adds to the built-in ladders,
// and a file with the name of a built-in ladder replaces it, even when the file
// does not validate (its problems are reported, the built-in one is not used
// behind the operator's back). A missing or empty folder leaves the built-in
// ladders alone. Get, List and Sources all follow this rule.
type Store struct {
	dir     string
	builtin fs.FS
}

// Entry is one ladder file as listed by Store.List. Ladder is nil when the
// file does not validate; Problems then holds one line per problem.
type Entry struct {
	Name     string
	Ladder   *Ladder
	Problems []string
	Builtin  bool // from the built-in ladders, not the folder
}

// NewStore returns a store of the ladders in dir and in builtin (typically
// profiles.FS), the folder's winning by name. dir may be "" or missing, builtin
// nil.
func NewStore(dir string, builtin fs.FS) *Store {
	return &Store{dir: dir, builtin: builtin}
}

// folder returns the operator's folder as a file system, nil when there is
// none (dir unset or missing).
func (s *Store) folder() (fs.FS, error) {
	if s.dir == "" {
		return nil, nil
	}
	st, err := os.Stat(s.dir)
	switch {
	case err == nil && st.IsDir():
		return os.DirFS(s.dir), nil
	case err == nil:
		return nil, fmt.Errorf("ladder directory %s is not a directory", s.dir)
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	default:
		return nil, fmt.Errorf("ladder directory: %w", err)
	}
}

// source is where a ladder file is read from, and how its name reads in messages.
type source struct {
	fsys    fs.FS
	builtin bool
	label   func(file string) string
}

// sources returns the folder then the built-in ladders, those that exist.
func (s *Store) sources() ([]source, error) {
	dir, err := s.folder()
	if err != nil {
		return nil, err
	}
	var out []source
	if dir != nil {
		out = append(out, source{fsys: dir, label: func(f string) string { return filepath.Join(s.dir, f) }})
	}
	if s.builtin != nil {
		out = append(out, source{fsys: s.builtin, builtin: true, label: func(f string) string { return "embedded:" + f }})
	}
	return out, nil
}

// Get reads and validates the ladder called name: the folder's file if there
// is one, else the built-in ladder.
func (s *Store) Get(name string) (*Ladder, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("%w %q: use 1 to 64 of a-z, 0-9, _ and -", ErrInvalidName, name)
	}
	srcs, err := s.sources()
	if err != nil {
		return nil, err
	}
	file := name + ".yaml"
	for _, src := range srcs {
		data, err := fs.ReadFile(src.fsys, file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ladder %q: %w", name, err)
		}
		return Parse(name, src.label(file), data)
	}
	return nil, fmt.Errorf("ladder %q: %w", name, ErrNotFound)
}

// List reads every *.yaml ladder of the folder and the built-in ones it does
// not replace, sorted by name. A file that does not validate is listed with its
// problems; it does not hide the others. Files whose name starts with a dot are
// skipped.
func (s *Store) List() ([]Entry, error) {
	srcs, err := s.sources()
	if err != nil {
		return nil, err
	}
	var entries []Entry
	seen := map[string]bool{}
	for _, src := range srcs {
		files, err := fs.Glob(src.fsys, "*.yaml")
		if err != nil {
			return nil, fmt.Errorf("list ladders: %w", err)
		}
		for _, file := range files {
			name := strings.TrimSuffix(path.Base(file), ".yaml")
			if strings.HasPrefix(file, ".") || seen[name] {
				continue
			}
			seen[name] = true
			e := Entry{Name: name, Builtin: src.builtin}
			data, err := fs.ReadFile(src.fsys, file)
			if err != nil {
				e.Problems = []string{fmt.Sprintf("%s: %v", src.label(file), err)}
			} else if e.Ladder, err = Parse(e.Name, src.label(file), data); err != nil {
				e.Problems = problemLines(err)
			}
			entries = append(entries, e)
		}
	}
	slices.SortFunc(entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	return entries, nil
}

// Sources says where the ladders come from, for the start log: the names in the
// folder, the built-in names in use, and the built-in names the folder replaces.
// FolderExists is false when the folder is missing (or unset).
type Sources struct {
	FolderExists bool
	Folder       []string
	Builtin      []string
	Replaced     []string
}

// Sources lists the names in each source, without parsing the files.
func (s *Store) Sources() (Sources, error) {
	var out Sources
	srcs, err := s.sources()
	if err != nil {
		return out, err
	}
	inFolder := map[string]bool{}
	for _, src := range srcs {
		files, err := fs.Glob(src.fsys, "*.yaml")
		if err != nil {
			return out, fmt.Errorf("list ladders: %w", err)
		}
		if !src.builtin {
			out.FolderExists = true
		}
		for _, file := range files {
			if strings.HasPrefix(file, ".") {
				continue
			}
			name := strings.TrimSuffix(file, ".yaml")
			switch {
			case !src.builtin:
				inFolder[name] = true
				out.Folder = append(out.Folder, name)
			case inFolder[name]:
				out.Replaced = append(out.Replaced, name)
			default:
				out.Builtin = append(out.Builtin, name)
			}
		}
	}
	return out, nil
}
