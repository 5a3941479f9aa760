package web

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"
)

func TestServe(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", Index)
	mux.Handle(Prefix, Assets())
	srv := httptest.NewServer(mux)
	defer srv.Close()

	tests := []struct {
		name string
		path string
		code int
		typ  string
		want string
	}{
		{"page", "/", 200, "text/html", `<script src="/ui/app.js" defer></script>`},
		{"script", "/ui/app.js", 200, "text/javascript", "dashjs.MediaPlayer()"},
		{"style", "/ui/style.css", 200, "text/css", "video"},
		{"hls.js", "/ui/vendor/hls.min.js", 200, "text/javascript", ""},
		{"dash.js", "/ui/vendor/dash.mediaplayer.min.js", 200, "text/javascript", ""},
		{"no listing", "/ui/", 404, "", ""},
		{"no vendor listing", "/ui/vendor/", 404, "", ""},
		{"missing", "/ui/nope.js", 404, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, err := http.Get(srv.URL + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.code {
				t.Fatalf("GET %s: %d, want %d", tc.path, res.StatusCode, tc.code)
			}
			if ct := res.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.typ) {
				t.Errorf("GET %s: Content-Type %q, want %s", tc.path, ct, tc.typ)
			}
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("GET %s: body lacks %q", tc.path, tc.want)
			}
		})
	}
}

// TestNothingFromElsewhere: the page's own files name no other host, so it fetches
// nothing from the internet (the player libraries are checked in the browser test,
// which fails on any request that leaves the daemon).
func TestNothingFromElsewhere(t *testing.T) {
	absolute := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}`)
	for _, name := range []string{"static/index.html", "static/app.js", "static/style.css"} {
		data, err := fs.ReadFile(static, name)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(data), "\n") {
			if m := absolute.FindString(line); m != "" && !strings.HasPrefix(strings.TrimSpace(line), "//") {
				t.Errorf("%s refers to another host (%s): %s", name, m, strings.TrimSpace(line))
			}
		}
	}
}

// TestVendoredVersions: the README of the vendored players names the versions that
// web/test/package.json pins, so the page plays with what the browser tests test.
func TestVendoredVersions(t *testing.T) {
	readme, err := fs.ReadFile(static, "static/vendor/README.md")
	if err != nil {
		t.Fatal(err)
	}
	pkg, err := os.ReadFile("../../web/test/package.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"hls.js", "dashjs"} {
		m := regexp.MustCompile(`"` + regexp.QuoteMeta(name) + `": "([^"]+)"`).FindStringSubmatch(string(pkg))
		if m == nil {
			t.Fatalf("web/test/package.json does not pin %s", name)
		}
		if !strings.Contains(string(readme), name+" "+m[1]+" ") {
			t.Errorf("static/vendor/README.md does not name %s %s (run scripts/vendor-players):\n%s", name, m[1], readme)
		}
	}
}
