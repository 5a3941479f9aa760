// Command testreport reads `go test -json` on its standard input and prints what go test
// prints without -v: each package's result line, and the whole output of every test
// that failed (its failed subtests within it). With -v it prints every test's output as
// it comes, as go test -v does.
//
// At the end it lists the tests that skipped, each with its reason, and closes with one
// line of the form "N passed, N failed, N skipped", in which top-level tests and subtests
// each count once (a test with two subtests counts three). It exits 1 when a test failed
// or skipped, when a package failed without a failed test (it did not build, its test
// binary crashed or timed out), or when it read no result at all: a CI run must not pass
// by skipping what it was meant to check.
//
//	go test -json ./... | go run ./scripts/testreport
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	verbose := flag.Bool("v", false, "print every test's output, not only that of failed tests")
	flag.Parse()
	if !report(os.Stdin, os.Stdout, *verbose) {
		os.Exit(1)
	}
}

// event is one line of `go test -json` (cmd/test2json), with the build events that
// go test -json adds since Go 1.24.
type event struct {
	Action      string
	Package     string
	ImportPath  string // build-output, build-fail
	Test        string
	Output      string
	FailedBuild string
}

// test is one test or subtest seen to start.
type test struct {
	pkg, name string
	lines     []string // its output, then that of its failed or skipped subtests, in order
	done      bool
}

// reporter keeps the state of one run. Tests are keyed by package and name.
type reporter struct {
	w       io.Writer
	verbose bool

	tests                   map[string]*test
	passed, failed, skipped int
	skips                   []string // "pkg TestX/sub: reason"
	failures                []string // "pkg TestX/sub"
	brokenPkgs              []string // failed packages without a failed test
	failedIn                map[string]int
	results                 int // package results seen
}

// report reads the events from r, writes the human output to w, and says whether the
// run is clean: every test passed, none skipped, every package passed.
func report(r io.Reader, w io.Writer, verbose bool) bool {
	rp := &reporter{w: w, verbose: verbose, tests: map[string]*test{}, failedIn: map[string]int{}}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			// go test writes a few things that are not events (e.g. "go: downloading").
			fmt.Fprintln(w, sc.Text())
			continue
		}
		rp.handle(e)
	}
	readErr := sc.Err()
	// Tests that never ended: the input stopped (go test was killed) before they did.
	for _, key := range sortedKeys(rp.tests) {
		if t := rp.tests[key]; !t.done {
			rp.end(t, "fail", "(did not finish: the test output ended before its result)")
		}
	}
	return rp.summary(readErr)
}

func (rp *reporter) handle(e event) {
	switch e.Action {
	case "build-output":
		fmt.Fprint(rp.w, e.Output)
		return
	case "build-fail", "start":
		return
	}
	if e.Test == "" {
		rp.packageEvent(e)
		return
	}
	key := e.Package + "\x00" + e.Test
	t := rp.tests[key]
	if t == nil {
		t = &test{pkg: e.Package, name: e.Test}
		rp.tests[key] = t
	}
	switch e.Action {
	case "output":
		if rp.verbose {
			fmt.Fprint(rp.w, e.Output)
		} else if !framing(e.Output) {
			t.lines = append(t.lines, e.Output)
		}
	case "pass", "fail", "skip":
		rp.end(t, e.Action, "")
	}
	// run, pause, cont: nothing to do.
}

// framing tells the lines go test -v adds around each test's output, which go test
// without -v does not print.
func framing(line string) bool {
	for _, p := range []string{"=== RUN", "=== PAUSE", "=== CONT", "=== NAME"} {
		if strings.HasPrefix(line, p) {
			return true
		}
	}
	return false
}

// end records a test's result. A failed test's output is printed when its top-level
// test ends (within it, where the subtest ended), so that a failure reads as one block.
func (rp *reporter) end(t *test, action, note string) {
	if t.done {
		return
	}
	t.done = true
	if note != "" {
		t.lines = append(t.lines, "--- FAIL: "+t.name+" "+note+"\n")
	}
	t.lines = resultFirst(t.lines, t.name)
	switch action {
	case "pass":
		rp.passed++
		t.lines = nil
		return
	case "fail":
		rp.failed++
		rp.failedIn[t.pkg]++
		rp.failures = append(rp.failures, t.pkg+" "+t.name)
	case "skip":
		rp.skipped++
		rp.skips = append(rp.skips, t.pkg+" "+t.name+": "+skipReason(t.lines))
	}
	if parent := rp.parent(t); parent != nil {
		parent.lines = append(parent.lines, t.lines...)
	} else if action == "fail" && !rp.verbose {
		fmt.Fprint(rp.w, strings.Join(t.lines, ""))
	}
	t.lines = nil
}

// resultFirst moves a test's result line ("--- FAIL: TestX (1.00s)"), which go test
// -json writes after the test's output, before it, where go test without -v prints it.
func resultFirst(lines []string, name string) []string {
	for i := len(lines) - 1; i > 0; i-- {
		l := strings.TrimLeft(lines[i], " ")
		for _, r := range []string{"--- FAIL: ", "--- SKIP: ", "--- PASS: "} {
			if strings.HasPrefix(l, r+name+" ") {
				out := append([]string{lines[i]}, lines[:i]...)
				return append(out, lines[i+1:]...)
			}
		}
	}
	return lines
}

// parent returns the running test that t is a subtest of, or nil. A subtest's name may
// itself hold a slash, so the longest running prefix wins.
func (rp *reporter) parent(t *test) *test {
	name := t.name
	for {
		i := strings.LastIndexByte(name, '/')
		if i < 0 {
			return nil
		}
		name = name[:i]
		if p := rp.tests[t.pkg+"\x00"+name]; p != nil && !p.done {
			return p
		}
	}
}

// skipReason is what a skipped test logged: its t.Skip message and what came before it.
func skipReason(lines []string) string {
	var parts []string
	for _, l := range lines {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "--- SKIP") {
			continue
		}
		parts = append(parts, l)
	}
	if len(parts) == 0 {
		return "(no reason given)"
	}
	return strings.Join(parts, " / ")
}

// packageEvent handles an event of a whole package: its result lines and result.
func (rp *reporter) packageEvent(e event) {
	switch e.Action {
	case "output":
		// Without -v, go test prints neither "PASS" nor the warning that -run matched
		// nothing (the result line says "[no tests to run]").
		if rp.verbose || (e.Output != "PASS\n" && !strings.HasPrefix(e.Output, "testing: warning: no tests to run")) {
			fmt.Fprint(rp.w, e.Output)
		}
	case "pass", "skip": // skip: a package without test files
		rp.results++
	case "fail":
		rp.results++
		// A test binary that crashed or timed out leaves the tests it was running
		// without a result.
		for _, key := range sortedKeys(rp.tests) {
			if t := rp.tests[key]; t.pkg == e.Package && !t.done && rp.parent(t) == nil {
				rp.endTree(t)
			}
		}
		if rp.failedIn[e.Package] == 0 {
			why := "its test binary failed without a failed test (a crash, a timeout, or TestMain)"
			if e.FailedBuild != "" {
				why = "it did not build (" + e.FailedBuild + ")"
			}
			rp.brokenPkgs = append(rp.brokenPkgs, e.Package+": "+why)
		}
	}
}

// endTree fails a test left unfinished, and its unfinished subtests first.
func (rp *reporter) endTree(t *test) {
	prefix := t.name + "/"
	for _, key := range sortedKeys(rp.tests) {
		if s := rp.tests[key]; s.pkg == t.pkg && !s.done && strings.HasPrefix(s.name, prefix) {
			rp.end(s, "fail", "(did not finish: its package's test binary ended first)")
		}
	}
	rp.end(t, "fail", "(did not finish: its package's test binary ended first)")
}

// summary prints the skipped and failed tests and the closing line, and says whether
// the run was clean.
func (rp *reporter) summary(readErr error) bool {
	ok := rp.failed == 0 && rp.skipped == 0 && len(rp.brokenPkgs) == 0 && readErr == nil && rp.results > 0
	fmt.Fprintln(rp.w)
	if len(rp.skips) > 0 {
		fmt.Fprintf(rp.w, "SKIPPED (%d; a skip fails the run: what CI is meant to check must run):\n", len(rp.skips))
		for _, s := range rp.skips {
			fmt.Fprintf(rp.w, "    %s\n", s)
		}
	}
	if len(rp.failures) > 0 {
		fmt.Fprintf(rp.w, "FAILED (%d):\n", len(rp.failures))
		for _, f := range rp.failures {
			fmt.Fprintf(rp.w, "    %s\n", f)
		}
	}
	for _, p := range rp.brokenPkgs {
		fmt.Fprintf(rp.w, "FAILED PACKAGE %s\n", p)
	}
	if readErr != nil {
		fmt.Fprintf(rp.w, "reading go test -json: %v\n", readErr)
	}
	if rp.results == 0 {
		fmt.Fprintln(rp.w, "no package result read: go test did not run")
	}
	fmt.Fprintf(rp.w, "%d passed, %d failed, %d skipped\n", rp.passed, rp.failed, rp.skipped)
	return ok
}

func sortedKeys(m map[string]*test) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
