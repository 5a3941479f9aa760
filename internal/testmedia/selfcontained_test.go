package testmedia

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSelfContained fails when a file of the project names a folder beside the
// repository: a user's clone has nothing there, so a test or script that reads it
// would fail (or skip) on every machine but the one it was written on.
func TestSelfContained(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	outside := []byte("../" + "shared") // not spelled whole, or this file would match
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if path != root && (strings.HasPrefix(name, ".") && name != ".ci" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if i := bytes.Index(data, outside); i >= 0 {
			line := bytes.Count(data[:i], []byte("\n")) + 1
			rel, _ := filepath.Rel(root, path)
			t.Errorf("%s:%d names %s, outside the repository: copy what it needs into testdata/", rel, line, outside)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(mpdSchemaDir), "DASH-MPD.xsd")); err != nil {
		t.Errorf("the DASH schema is not in the repository: %v", err)
	}
}
