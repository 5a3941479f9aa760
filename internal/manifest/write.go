package manifest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// WriteAtomic replaces the file at path with data so that a reader (a web server) sees
// either the old file or the new one, never a part: it writes a temporary file in the
// same directory, closes it, sets its mode to 0644 and renames it over path, which is
// atomic within one file system. On failure the temporary file is removed and path is
// left as it was.
//
// It does not fsync. Manifests are rewritten every few seconds and rendered from the
// daemon's index, so one lost to a power cut is simply rendered again; an fsync per
// manifest per segment would cost far more than it protects. Readers are protected by the
// rename alone: it never exposes a file that is still being written.
func WriteAtomic(path string, data []byte) (err error) {
	dir, base := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	f, err := os.CreateTemp(dir, "."+base+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = os.Remove(tmp)
		}
	}()
	_, werr := f.Write(data)
	cerr := f.Chmod(0o644)
	if jerr := errors.Join(werr, cerr, f.Close()); jerr != nil {
		return fmt.Errorf("write %s: %w", path, jerr)
	}
	if rerr := os.Rename(tmp, path); rerr != nil {
		return fmt.Errorf("write %s: %w", path, rerr)
	}
	return nil
}
