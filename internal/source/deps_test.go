package source

import (
	"go/build"
	"testing"
)

// TestStandardLibraryOnly holds the package to the standard library: the API, the job
// and ffmpeg all import it for the source kind and Redact, and it must not drag
// ffmpeg, gpu or a third-party module in behind it (`go list -deps` shows nothing
// else). The standard library imports only itself, so checking the package's own
// imports covers everything below it.
func TestStandardLibraryOnly(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkg.Imports) == 0 {
		t.Fatal("no imports found: the check would prove nothing")
	}
	for _, path := range pkg.Imports {
		dep, err := build.Import(path, ".", build.FindOnly)
		if err != nil || !dep.Goroot {
			t.Errorf("source imports %s, which is not in the standard library (%v)", path, err)
		}
	}
}
