package ingest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const literalKey = "k3y0f5tage8-0123456789" // a literal key: no message may show it

var testEnv = map[string]string{"STAGE_A": "stagea-0123456789abcdef", "EMPTY": "", "SAME": literalKey, "PASS": "horse battery staple"}

func lookupTestEnv(name string) (string, bool) { v, ok := testEnv[name]; return v, ok }

func testLadders(name string) error {
	if name == "default" || name == "test" {
		return nil
	}
	return errors.New("no such ladder")
}

// TestParseBindings checks the bindings file: a good one gives each key its job, and
// every problem of a bad one is told with its file, line and where, never the key.
func TestParseBindings(t *testing.T) {
	good := `# stream keys and the jobs their first publish creates
"env:STAGE_A": {id: stage-a, ladder: default}
` + literalKey + `:
  id: stage-b
  ladder: test
  protocols: [srt]
  srt_passphrase: env:PASS
`
	b, err := ParseBindings("b.yaml", []byte(good), lookupTestEnv, testLadders)
	if err != nil {
		t.Fatal(err)
	}
	a, lit := b.Find(HashKey(testEnv["STAGE_A"])), b.Find(HashKey(literalKey))
	if a == nil || a.ID != "stage-a" || a.Ladder != "default" || a.Source() != "push" || a.Line != 2 || !a.Allows(RTMP) || !a.Allows(SRT) {
		t.Errorf("env binding %+v", a)
	}
	if lit == nil || lit.ID != "stage-b" || lit.Source() != "push:srt" || lit.Allows(RTMP) || lit.SRTPassphrase != testEnv["PASS"] || lit.Line != 3 {
		t.Errorf("literal binding %+v", lit)
	}
	if b.Find(HashKey("env:STAGE_A")) != nil || b.Find(HashKey("other-key-0123456789")) != nil {
		t.Error("a key no binding has is found")
	}

	tests := []struct {
		name string
		file string
		want []string
	}{
		{"unknown field", "env:STAGE_A: {id: a, ladder: test, ladr: x}\n", []string{`b.yaml:1: env:STAGE_A: `, `unknown field "ladr"`}},
		{"unknown field on its line", literalKey + ":\n  id: a\n  ladder: test\n  key: x\n", []string{`b.yaml:4: stream key: `, `unknown field "key"`}},
		{"duplicate field", "env:STAGE_A:\n  id: a\n  ladder: test\n  id: b\n", []string{"b.yaml:4: env:STAGE_A: ", `duplicate key "id"`}},
		{"duplicate ids", "env:STAGE_A: {id: a, ladder: test}\n" + literalKey + ": {id: a, ladder: test}\n", []string{`b.yaml:2: stream key: id: "a" is bound on line 1 too`}},
		{"duplicate keys", literalKey + ": {id: a, ladder: test}\n" + literalKey + ": {id: b, ladder: test}\n", []string{"b.yaml:2: stream key: the same stream key as the binding on line 1"}},
		{"duplicate keys through env", literalKey + ": {id: a, ladder: test}\nenv:SAME: {id: b, ladder: test}\n", []string{"b.yaml:2: env:SAME: the same stream key as the binding on line 1"}},
		{"empty env", "\nenv:EMPTY: {id: a, ladder: test}\n", []string{"b.yaml:2: env:EMPTY: $EMPTY is empty"}},
		{"unset env", "env:NOPE: {id: a, ladder: test}\n", []string{"b.yaml:1: env:NOPE: $NOPE is not set"}},
		{"unknown ladder", "env:STAGE_A: {id: a, ladder: hd}\n", []string{`b.yaml:1: env:STAGE_A: ladder: "hd": no such ladder`}},
		{"no ladder", "env:STAGE_A: {id: a}\n", []string{"b.yaml:1: env:STAGE_A: ladder: missing"}},
		{"bad id", "env:STAGE_A: {id: Stage A, ladder: test}\n", []string{`b.yaml:1: env:STAGE_A: id: "Stage A" must match`}},
		{"short key", "short-key: {id: a, ladder: test}\n", []string{"b.yaml:1: stream key: a stream key must be at least 16 characters"}},
		{"key with a slash", "abcdefgh/ijklmnopq: {id: a, ladder: test}\n", []string{"b.yaml:1: stream key: a stream key may hold only"}},
		{"bad protocol", "env:STAGE_A: {id: a, ladder: test, protocols: [rtmps]}\n", []string{`b.yaml:1: env:STAGE_A: protocols: "rtmps" is not rtmp or srt`}},
		{"passphrase without srt", "env:STAGE_A: {id: a, ladder: test, protocols: [rtmp], srt_passphrase: long enough}\n", []string{"b.yaml:1: env:STAGE_A: srt_passphrase: the binding does not allow srt"}},
		{"short passphrase", "env:STAGE_A: {id: a, ladder: test, srt_passphrase: short}\n", []string{"srt_passphrase: must be 10 to 79 characters, not 5"}},
		{"list, not mapping", "- {id: a, ladder: test}\n", []string{"b.yaml:1: file: must be a mapping of stream keys"}},
		{"empty", "# nothing\n", []string{"b.yaml:1: file: holds no bindings"}},
		{"bad yaml", "env:STAGE_A: {id: a\n", []string{"b.yaml:", "invalid YAML"}},
		{"every problem at once", "env:NOPE: {id: a, ladder: test}\nenv:STAGE_A: {id: b, ladder: hd}\n", []string{"b.yaml:1: env:NOPE", "b.yaml:2: env:STAGE_A: ladder"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBindings("b.yaml", []byte(tt.file), lookupTestEnv, testLadders)
			if err == nil {
				t.Fatalf("parsed, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want it to contain %q", err, w)
				}
			}
			for _, secret := range []string{literalKey, testEnv["STAGE_A"], testEnv["PASS"]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q shows a secret", err)
				}
			}
		})
	}
}

// TestLoadBindingsMode checks that a bindings file every user may read is refused.
func TestLoadBindingsMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bindings.yaml")
	if err := os.WriteFile(path, []byte("env:STAGE_A: {id: a, ladder: test}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBindings(path, lookupTestEnv, testLadders); err == nil || !strings.Contains(err.Error(), "readable by every user (mode 0644)") || !strings.Contains(err.Error(), "chmod 600 "+path) {
		t.Errorf("world-readable file: %v, want it refused", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if b, err := LoadBindings(path, lookupTestEnv, testLadders); err != nil || len(b.List) != 1 {
		t.Errorf("mode 0640: %v, %v; want one binding", b, err)
	}
}
