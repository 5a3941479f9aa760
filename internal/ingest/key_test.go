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

func TestSRTKey(t *testing.T) {
	tests := []struct {
		name, id, key string
		err           error
	}{
		{"mediamtx", "publish:abc", "abc", nil},
		{"access control", "#!::r=abc,m=publish", "abc", nil},
		{"access control, mode first", "#!::m=publish,r=abc", "abc", nil},
		{"read", "read:abc", "", errPlay},
		{"request", "#!::r=abc,m=request", "", errPlay},
		{"no mode", "abc", "", errNoKey},
		{"empty key", "publish:", "", errNoKey},
		{"user and pass", "publish:abc:user:pass", "", errNoKey},
		{"access control without mode", "#!::r=abc", "", errNoKey},
		{"long", "publish:" + strings.Repeat("k", maxKeyLen+1), "", errLongKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key, err := srtKey(tt.id)
			if key != tt.key || !errors.Is(err, tt.err) {
				t.Errorf("srtKey(%q) = %q, %v; want %q, %v", tt.id, key, err, tt.key, tt.err)
			}
		})
	}
}

// FuzzSRTKey checks that a stream id never panics, and that a key it yields is one a
// stream could have.
func FuzzSRTKey(f *testing.F) {
	for _, s := range []string{"publish:abc", "#!::r=abc,m=publish", "#!::", "publish:", ":", "#!::r=,m=publish,r=x", "read:x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		key, err := srtKey(id)
		if err != nil {
			return
		}
		if key == "" || len(key) > maxKeyLen || strings.ContainsAny(key, ":/,") {
			t.Errorf("srtKey(%q) = %q", id, key)
		}
	})
}
