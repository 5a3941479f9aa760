package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// fixture is a module whose tests pass, fail, skip, crash and do not build, each in a
// package of its own, so that the reporter reads what the real go test -json writes.
var fixture = map[string]string{
	"go.mod": "module fixture\n\ngo 1.24\n",
	"pass/pass_test.go": `package pass

import "testing"

func TestPass(t *testing.T) { t.Log("only printed with -v") }

func TestTable(t *testing.T) {
	for _, name := range []string{"one", "two"} {
		t.Run(name, func(t *testing.T) {})
	}
}
`,
	"fail/fail_test.go": `package fail

import "testing"

func TestPass(t *testing.T) {}

func TestFail(t *testing.T) {
	t.Log("the parent's own line")
	t.Run("fine", func(t *testing.T) { t.Log("a passing subtest's line") })
	t.Run("broken", func(t *testing.T) { t.Error("first line\nsecond line") })
}
`,
	"skip/skip_test.go": `package skip

import "testing"

func TestSkip(t *testing.T) { t.Skip("no widget on this box") }

func TestSubSkip(t *testing.T) {
	t.Run("runs", func(t *testing.T) {})
	t.Run("skips", func(t *testing.T) { t.Skipf("needs %s", "a GPU") })
}
`,
	"crash/crash_test.go": `package crash

import (
	"os"
	"testing"
)

func TestExits(t *testing.T) { t.Log("before the exit"); os.Exit(3) }
`,
	"build/build_test.go": `package build

import "testing"

func TestBroken(t *testing.T) { notDefined() }
`,
}

// goTestJSON runs go test -json on the fixture's packages and returns its output.
func goTestJSON(t *testing.T, pkgs ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	for name, text := range fixture {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("go", append([]string{"test", "-json", "-count=1"}, pkgs...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.Output()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return out
}

func TestReport(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the go command is needed: %v", err)
	}
	tests := []struct {
		name    string
		pkgs    []string
		verbose bool
		ok      bool
		last    string   // the closing line
		want    []string // in the output, in this order
		not     []string // nowhere in the output
	}{
		{
			name: "all pass", pkgs: []string{"./pass"}, ok: true,
			last: "4 passed, 0 failed, 0 skipped",
			want: []string{"ok  \tfixture/pass\t"},
			not:  []string{"only printed with -v", "=== RUN", "SKIPPED", "FAILED"},
		},
		{
			name: "all pass, verbose", pkgs: []string{"./pass"}, verbose: true, ok: true,
			last: "4 passed, 0 failed, 0 skipped",
			want: []string{"=== RUN   TestPass", "only printed with -v", "--- PASS: TestPass"},
		},
		{
			name: "a subtest fails", pkgs: []string{"./fail"},
			last: "2 passed, 2 failed, 0 skipped",
			want: []string{
				"--- FAIL: TestFail (", "the parent's own line", "--- FAIL: TestFail/broken", "first line\n", "second line\n",
				"FAIL\tfixture/fail\t",
				"FAILED (2):\n    fixture/fail TestFail/broken\n    fixture/fail TestFail\n",
			},
			not: []string{"a passing subtest's line", "--- PASS", "=== RUN"},
		},
		{
			name: "skips fail the run", pkgs: []string{"./skip", "./pass"},
			last: "6 passed, 0 failed, 2 skipped",
			want: []string{
				"SKIPPED (2; a skip fails the run",
				"    fixture/skip TestSkip: skip_test.go:5: no widget on this box\n",
				"    fixture/skip TestSubSkip/skips: skip_test.go:9: needs a GPU\n",
			},
			not: []string{"FAILED"},
		},
		{
			name: "a test binary exits", pkgs: []string{"./crash"},
			last: "0 passed, 1 failed, 0 skipped",
			want: []string{"before the exit", "fixture/crash TestExits"},
		},
		{
			name: "a package does not build", pkgs: []string{"./build", "./pass"},
			last: "4 passed, 0 failed, 0 skipped",
			want: []string{"undefined: notDefined", "FAILED PACKAGE fixture/build: it did not build"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			ok := report(bytes.NewReader(goTestJSON(t, tc.pkgs...)), &out, tc.verbose)
			s := out.String()
			if ok != tc.ok {
				t.Errorf("clean %v, want %v", ok, tc.ok)
			}
			lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
			if last := lines[len(lines)-1]; last != tc.last {
				t.Errorf("closing line %q, want %q", last, tc.last)
			}
			rest := s
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("no %q (in this order) in the output", w)
					continue
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tc.not {
				if strings.Contains(s, n) {
					t.Errorf("%q in the output", n)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", s)
			}
		})
	}
}

// TestReportNothing: a go test that wrote nothing (it did not start) is no clean run.
func TestReportNothing(t *testing.T) {
	var out bytes.Buffer
	if report(strings.NewReader("go: unknown flag -x\n"), &out, false) {
		t.Errorf("clean with no result read:\n%s", out.String())
	}
	if s := out.String(); !strings.HasSuffix(s, "go: unknown flag -x\n\nno package result read: go test did not run\n0 passed, 0 failed, 0 skipped\n") {
		t.Errorf("output:\n%s", s)
	}
}
