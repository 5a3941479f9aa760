package deploy

import (
	"fmt"
	"go/version"
	"os"
	"regexp"
	"strings"
	"testing"
)

// goModVersion returns the version of go.mod's `go` line, e.g. "go1.26.0".
func goModVersion(gomod string) (string, error) {
	for _, line := range strings.Split(gomod, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "go "); ok {
			return "go" + strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("go.mod has no go line")
}

var golangTag = regexp.MustCompile(`^(?:docker\.io/)?(?:library/)?golang:(\d+\.\d+(?:\.\d+)?)(?:[-@].*)?$`)

// checkGoVersion checks that every golang image a Dockerfile builds with has at least
// the Go that go.mod requires. The official images set GOTOOLCHAIN=local: an older Go
// does not download a newer one, it stops ("go.mod requires go >= 1.26.0 (running go
// 1.25.5; GOTOOLCHAIN=local)"). A tag without a patch release (golang:1.26) is the
// newest 1.26.x, so it is compared as the language version 1.26.
func checkGoVersion(dockerfileText, gomod string) error {
	need, err := goModVersion(gomod)
	if err != nil {
		return err
	}
	if !version.IsValid(need) {
		return fmt.Errorf("go.mod's go line %q is not a Go version", need)
	}
	d, err := parseDockerfile(dockerfileText)
	if err != nil {
		return err
	}
	found := 0
	for _, s := range d.stages {
		if !strings.Contains(s.from, "golang") {
			continue
		}
		m := golangTag.FindStringSubmatch(s.from)
		if m == nil {
			return fmt.Errorf("line %d: FROM %s: no Go version in the tag (want golang:<major>.<minor>[.<patch>]-...)", s.line, s.from)
		}
		found++
		have, want := "go"+m[1], need
		if strings.Count(m[1], ".") == 1 {
			want = version.Lang(need)
		}
		if version.Compare(have, want) < 0 {
			return fmt.Errorf("line %d: FROM %s has Go %s, older than the %s go.mod requires: the build stops (GOTOOLCHAIN=local); set ARG GO_VERSION=%s",
				s.line, s.from, strings.TrimPrefix(have, "go"), strings.TrimPrefix(need, "go"), strings.TrimPrefix(version.Lang(need), "go"))
		}
	}
	if found == 0 {
		return fmt.Errorf("no FROM golang:<version> stage")
	}
	return nil
}

// TestImageGoVersion: the Dockerfile's Go is not older than go.mod's.
func TestImageGoVersion(t *testing.T) {
	gomod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	dockerfile, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	if err := checkGoVersion(string(dockerfile), string(gomod)); err != nil {
		t.Errorf("Dockerfile: %v", err)
	}
}

func TestCheckGoVersion(t *testing.T) {
	stage := func(v string) string {
		return "ARG GO_VERSION=" + v + "\nFROM golang:${GO_VERSION}-bookworm AS build\nFROM debian:bookworm-slim\n"
	}
	tests := []struct {
		name, dockerfile, gomod string
		wantErr                 string
	}{
		{"issue 14: golang:1.25 against go 1.26.0", stage("1.25"), "module m\n\ngo 1.26.0\n", "has Go 1.25, older than the 1.26.0 go.mod requires"},
		{"same minor", stage("1.26"), "go 1.26.0\n", ""},
		{"minor tag is its newest patch", stage("1.26"), "go 1.26.3\n", ""},
		{"newer", stage("1.27"), "go 1.26.0\n", ""},
		{"pinned patch too old", stage("1.26.1"), "go 1.26.2\n", "has Go 1.26.1"},
		{"pinned patch", stage("1.26.2"), "go 1.26.2\n", ""},
		{"go line without patch", stage("1.26"), "go 1.26\n", ""},
		{"version in the FROM", "FROM golang:1.24-alpine AS b\n", "go 1.25.0\n", "has Go 1.24"},
		{"digest", "FROM golang:1.26@sha256:0123 AS b\n", "go 1.26.0\n", ""},
		{"no version", "FROM golang:latest AS b\n", "go 1.26.0\n", "no Go version"},
		{"no Go stage", "FROM debian:12\n", "go 1.26.0\n", "no FROM golang"},
		{"no go line", stage("1.26"), "module m\n", "no go line"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkGoVersion(tc.dockerfile, tc.gomod)
			if (err == nil) != (tc.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tc.wantErr)) {
				t.Errorf("checkGoVersion = %v, want %q", err, tc.wantErr)
			}
		})
	}
}
