package ingest

import (
	"errors"
	"strings"
	"testing"
)

func TestRTMPKey(t *testing.T) {
	tests := []struct {
		name, path, key string
		err             error
	}{
		{"obs", "/live/abc", "abc", nil},
		{"trailing slash", "/live/abc/", "abc", nil},
		{"query", "/live/abc?x=1", "abc", nil},
		{"no key", "/live", "", errNoKey},
		{"empty key", "/live/", "", errNoKey},
		{"other app", "/app/abc", "", errBadApp},
		{"app case", "/Live/abc", "", errBadApp},
		{"nested", "/live/a/b", "", errNoKey},
		{"root", "/", "", errBadApp},
		{"long", "/live/" + strings.Repeat("k", maxKeyLen+1), "", errLongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := rtmpKey(tt.path)
			if key != tt.key || !errors.Is(err, tt.err) {
				t.Errorf("rtmpKey(%q) = %q, %v; want %q, %v", tt.path, key, err, tt.key, tt.err)
			}
		})
	}
}

// FuzzRTMPKey checks that what a publisher sends as its path never panics, and that a
// key it yields is one a stream could have: not empty, bounded, one path element.
func FuzzRTMPKey(f *testing.F) {
	for _, s := range []string{"/live/abc", "/live", "live/", "/live/a/b", "//live//", "/live/?", "/live/%2f", "\x00/live/\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, path string) {
		key, err := rtmpKey(path)
		if err != nil {
			return
		}
		if key == "" || len(key) > maxKeyLen || strings.ContainsAny(key, "/?") {
			t.Errorf("rtmpKey(%q) = %q", path, key)
		}
	})
}
