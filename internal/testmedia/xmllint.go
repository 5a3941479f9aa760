// Package testmedia holds helpers for tests that need real media tools (xmllint, ffmpeg
// and the like). When a tool or the data it needs is missing, a helper skips the test,
// or fails it when the environment variable CI is set, so a CI run cannot pass by
// skipping what it was meant to check.
package testmedia

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// The official DASH MPD schema (MPEGGroup/DASHSchema), with the xlink.xsd and xml.xsd it
// imports, is kept in the repository (testdata/dash-schema/README.md says where from).
const mpdSchemaDir = "testdata/dash-schema"

// ValidateMPD validates the MPD file at path against the official DASH schema with
// xmllint, and fails the test with xmllint's output when it does not validate.
func ValidateMPD(t testing.TB, path string) {
	t.Helper()
	xsd, err := mpdSchema()
	if err != nil {
		Missing(t, "dash mpd schema: "+err.Error())
		return
	}
	xmllint, err := exec.LookPath("xmllint")
	if err != nil {
		Missing(t, "xmllint not found (apt-get install libxml2-utils)")
		return
	}
	// --nonet: the schema's imports are local; never reach for the network.
	out, err := exec.Command(xmllint, "--noout", "--nonet", "--schema", xsd, path).CombinedOutput()
	if err != nil {
		t.Errorf("%s does not validate against %s: %v\n%s", path, xsd, err, out)
	}
}

// ValidateMPDBytes is ValidateMPD for an MPD in memory.
func ValidateMPDBytes(t testing.TB, data []byte) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.mpd")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatalf("write mpd for validation: %v", err)
		return
	}
	ValidateMPD(t, path)
}

// mpdSchema finds DASH-MPD.xsd from the working directory: up to the folder holding
// go.mod, then testdata/dash-schema.
func mpdSchema() (string, error) {
	dir, err := moduleRoot()
	if err != nil {
		return "", err
	}
	xsd := filepath.Join(dir, filepath.FromSlash(mpdSchemaDir), "DASH-MPD.xsd")
	if _, err := os.Stat(xsd); err != nil {
		return "", err
	}
	return xsd, nil
}

// moduleRoot returns the folder holding go.mod, at or above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Missing ends the test because something it needs (a tool, a file, a writable cgroup)
// is not on this machine: it skips the test, or fails it when the environment variable
// CI is set (scripts/test sets it), so that a CI run cannot pass by skipping what it
// was meant to check. why says what is missing and how to get it.
func Missing(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s (CI is set, so this is a failure, not a skip)", why)
		return
	}
	t.Skipf("%s; skipping (set CI to make this fail)", why)
}
