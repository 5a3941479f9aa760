package testmedia

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/Eyevinn/dash-mpd/mpd"
)

// Origin is a real nginx configured by the repository's sample origin configuration
// (scripts/nginx-origin.conf), behind a proxy that the test can make fail (500 to every
// request) and that checks what it forwards: every manifest put names only files already
// on the origin, and no file deleted is named by a manifest on the origin.
type Origin struct {
	URL     string // what --publish names: the proxy's /live
	Players string // the players' server's /live
	Root    string // the folder nginx serves; /live/ is in it
	Nginx   *Nginx

	fail atomic.Bool
	mu   sync.Mutex
	errs []string
	puts map[string]int // by extension
}

// StartOrigin runs nginx with the sample origin configuration at conf and the proxy in
// front of it, until the test ends.
func StartOrigin(t testing.TB, conf string) *Origin {
	t.Helper()
	data, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	o := &Origin{Root: t.TempDir(), puts: map[string]int{}}
	if err := os.MkdirAll(filepath.Join(o.Root, "live"), 0o755); err != nil {
		t.Fatal(err)
	}
	players, dav := freeTCPPortOrFail(t), freeTCPPortOrFail(t)
	site := string(data)
	site = strings.Replace(site, "listen 8081;", fmt.Sprintf("listen 127.0.0.1:%d;", players), 1)
	site = strings.Replace(site, "listen [::]:8081;", "", 1)
	site = strings.Replace(site, "listen 8082;", fmt.Sprintf("listen 127.0.0.1:%d;", dav), 1)
	site = strings.ReplaceAll(site, "/var/www/transcoderd", o.Root)
	o.Players = fmt.Sprintf("http://127.0.0.1:%d/live", players)
	o.Nginx = StartNginx(t, site, o.Players+"/")
	target, _ := url.Parse(fmt.Sprintf("http://127.0.0.1:%d", dav))
	proxy := httputil.NewSingleHostReverseProxy(target)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if o.fail.Load() {
			http.Error(w, "failing on purpose", http.StatusInternalServerError)
			return
		}
		if !o.check(r) {
			http.Error(w, "refused by the test", http.StatusBadRequest)
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	o.URL = srv.URL + "/live"
	return o
}

func freeTCPPortOrFail(t testing.TB) int {
	t.Helper()
	p, err := freeTCPPort()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Fail makes the proxy answer 500 to every request (true) or forward them again.
func (o *Origin) Fail(on bool) { o.fail.Store(on) }

// Errors returns what the checks found wrong so far.
func (o *Origin) Errors() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.errs...)
}

// Puts returns how many PUTs of files with extension ext (".m4s") were forwarded.
func (o *Origin) Puts(ext string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.puts[ext]
}

// File returns the path on disk of the origin's file at the URL path p ("/live/...").
func (o *Origin) File(p string) string {
	return filepath.Join(o.Root, filepath.FromSlash(path.Clean(p)))
}

// check checks r before it is forwarded, and reads its body back into it.
func (o *Origin) check(r *http.Request) bool {
	switch r.Method {
	case http.MethodPut:
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return false
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		o.mu.Lock()
		o.puts[path.Ext(r.URL.Path)]++
		o.mu.Unlock()
		if !isManifest(r.URL.Path) {
			return true
		}
		names, err := ManifestFiles(r.URL.Path, body)
		if err != nil {
			o.report("PUT %s: %v", r.URL.Path, err)
		}
		for _, n := range names {
			if _, err := os.Stat(o.File(n)); err != nil {
				o.report("PUT %s names %s, not on the origin", r.URL.Path, n)
			}
		}
	case http.MethodDelete:
		o.checkDelete(r.URL.Path)
	}
	return true
}

// checkDelete reports a delete of a file that a manifest on the origin names.
func (o *Origin) checkDelete(p string) {
	job := path.Dir(path.Dir(p)) // <job>/<rendition>/<file>
	files, _ := filepath.Glob(filepath.Join(o.File(job), "*.m*"))
	more, _ := filepath.Glob(filepath.Join(o.File(job), "*", "*.m3u8"))
	for _, f := range append(files, more...) {
		data, err := os.ReadFile(f)
		if err != nil || !isManifest(f) {
			continue
		}
		rel, _ := filepath.Rel(o.Root, f)
		names, _ := ManifestFiles("/"+filepath.ToSlash(rel), data)
		for _, n := range names {
			if n == p {
				o.report("DELETE %s, named by %s on the origin", p, rel)
			}
		}
	}
}

func (o *Origin) report(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, fmt.Sprintf(format, args...))
}

func isManifest(p string) bool { return strings.HasSuffix(p, ".m3u8") || strings.HasSuffix(p, ".mpd") }

var uriAttr = regexp.MustCompile(`URI="([^"]+)"`)

// ManifestFiles lists the files that the manifest at URL path p (an HLS playlist or a
// DASH MPD with SegmentTemplate and SegmentTimeline) names, as URL paths.
func ManifestFiles(p string, data []byte) ([]string, error) {
	dir := path.Dir(p)
	var names []string
	if strings.HasSuffix(p, ".m3u8") {
		for _, line := range strings.Split(string(data), "\n") {
			line = strings.TrimSpace(line)
			for _, m := range uriAttr.FindAllStringSubmatch(line, -1) {
				names = append(names, path.Join(dir, m[1]))
			}
			if line != "" && !strings.HasPrefix(line, "#") {
				names = append(names, path.Join(dir, line))
			}
		}
		return names, nil
	}
	doc, err := mpd.ReadFromString(string(data))
	if err != nil {
		return nil, err
	}
	for _, per := range doc.Periods {
		for _, as := range per.AdaptationSets {
			for _, rep := range as.Representations {
				for _, n := range TemplateFiles(rep.SegmentTemplate, rep.Id) {
					names = append(names, path.Join(dir, n))
				}
			}
		}
	}
	return names, nil
}

// TemplateFiles lists the files a Representation's SegmentTemplate names: its init
// segment and each segment of its timeline.
func TemplateFiles(st *mpd.SegmentTemplateType, rep string) []string {
	if st == nil {
		return nil
	}
	var names []string
	if st.Initialization != "" {
		names = append(names, strings.ReplaceAll(st.Initialization, "$RepresentationID$", rep))
	}
	if st.SegmentTimeline == nil || st.StartNumber == nil {
		return names
	}
	n := *st.StartNumber
	for _, s := range st.SegmentTimeline.S {
		for range 1 + s.R {
			name := strings.ReplaceAll(st.Media, "$RepresentationID$", rep)
			names = append(names, strings.ReplaceAll(name, "$Number$", fmt.Sprint(n)))
			n++
		}
	}
	return names
}
