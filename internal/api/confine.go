package api

import (
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
)

// confined reports whether the slash path p (clean, rooted) under dir stays
// inside dir once symbolic links are resolved, so that /out/ serves only the
// output folder even where a link inside it points elsewhere. A path that does
// not exist is confined: the file server answers 404 for it.
func confined(dir, p string) bool {
	root, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return false
	}
	real, err := filepath.EvalSymlinks(filepath.Join(dir, filepath.FromSlash(p)))
	if errors.Is(err, fs.ErrNotExist) {
		return true
	}
	if err != nil {
		return false
	}
	rel, err := filepath.Rel(root, real)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}
