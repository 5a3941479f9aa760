package daemon

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestNginxSampleConfig runs nginx with scripts/nginx-site.conf over a real job's output
// and fetches what a player fetches: types, caching and CORS must be right, playlists
// and MPDs gzipped for a player that accepts it, and neither transcoderd's private files
// nor ffmpeg's files still being written (*.tmp) served, by nginx or by the daemon's
// own /out/.
func TestNginxSampleConfig(t *testing.T) {
	d := startDaemon(t, "")
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "s.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, Duration: 3 * time.Second})
	v := d.create(t, `{"source":"s.mp4","ladder":"test","id":"n"}`)
	d.waitFor(t, v.ID, time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	// The names of the run's init segment and first segment (manifest's layout).
	initName, segName := runFiles(t, filepath.Join(d.out, "n", "180p"))
	// What ffmpeg leaves while it writes (hls_flags temp_file, the DASH muxer): a segment
	// or manifest under a temporary name, renamed once complete.
	tmps := []string{"180p/seg_9.m4s.tmp", "180p/index.m3u8.tmp", "manifest.mpd.tmp"}
	for _, name := range tmps {
		writeFile(t, filepath.Join(d.out, "n", name), "half written")
	}
	// A live job with a 15-minute window of 1 s segments.
	writeFile(t, filepath.Join(d.out, "n", "big", "index.m3u8"), bigPlaylist(900))

	port := freePort(t)
	site := string(readFile(t, "../../scripts/nginx-site.conf"))
	site = strings.Replace(site, "listen 8081;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1)
	site = strings.Replace(site, "listen [::]:8081;", "", 1)
	site = regexp.MustCompile(`(?m)^\s*root .*;$`).ReplaceAllString(site, "    root "+d.out+";")
	base := fmt.Sprintf("http://127.0.0.1:%d/n/", port)
	testmedia.StartNginx(t, site, base+"master.m3u8")

	tests := []struct {
		path, code, ctype, cache string
	}{
		{"master.m3u8", "200", "application/vnd.apple.mpegurl", "no-cache"},
		{"manifest.mpd", "200", "application/dash+xml", "no-cache"},
		{"180p/index.m3u8", "200", "application/vnd.apple.mpegurl", "no-cache"},
		{initName, "200", "video/mp4", "no-cache"},
		{segName, "200", "video/iso.segment", "immutable"},
		{".ffmpeg/180p.m3u8", "404", "", ""},
		{"180p/", "403", "", ""}, // no listings: nginx answers 403 for a folder without index
		{tmps[0], "404", "", ""},
		{tmps[1], "404", "", ""},
		{tmps[2], "404", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			res, err := http.Get(base + tc.path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if fmt.Sprint(res.StatusCode) != tc.code {
				t.Fatalf("status %d, want %s", res.StatusCode, tc.code)
			}
			if tc.code != "200" {
				return
			}
			if got := res.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			if got := res.Header.Get("Cache-Control"); !strings.Contains(got, tc.cache) {
				t.Errorf("Cache-Control %q, want %q", got, tc.cache)
			}
			if res.Header.Get("Access-Control-Allow-Origin") != "*" {
				t.Error("no CORS header")
			}
		})
	}

	// A player that accepts gzip gets the playlists and the MPD gzipped, and segments as
	// they are. (A transport that adds Accept-Encoding itself would decompress
	// transparently and hide what the server sent.)
	raw := &http.Client{Transport: &http.Transport{DisableCompression: true}}
	for _, tc := range []struct {
		path string
		gzip bool
	}{
		{"master.m3u8", true}, {"180p/index.m3u8", true}, {"manifest.mpd", true}, {"big/index.m3u8", true},
		{segName, false}, {initName, false},
	} {
		t.Run("gzip "+tc.path, func(t *testing.T) {
			plain := fetch(t, raw, base+tc.path, "")
			zipped := fetch(t, raw, base+tc.path, "gzip")
			if got := zipped.Header.Get("Content-Encoding"); (got == "gzip") != tc.gzip {
				t.Fatalf("Content-Encoding %q with Accept-Encoding: gzip; want gzip: %v", got, tc.gzip)
			}
			if plain.Header.Get("Content-Encoding") != "" {
				t.Errorf("Content-Encoding %q without Accept-Encoding", plain.Header.Get("Content-Encoding"))
			}
			if !tc.gzip {
				return
			}
			if !strings.Contains(zipped.Header.Get("Vary"), "Accept-Encoding") {
				t.Errorf("Vary %q: a cache between would hand gzip to a player that did not ask", zipped.Header.Get("Vary"))
			}
			zr, err := gzip.NewReader(bytes.NewReader(zipped.body))
			if err != nil {
				t.Fatal(err)
			}
			unzipped, err := io.ReadAll(zr)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(unzipped, plain.body) {
				t.Errorf("gzipped body is not the file: %d bytes unzipped, %d plain", len(unzipped), len(plain.body))
			}
			t.Logf("%s: %d bytes, %d gzipped", tc.path, len(plain.body), len(zipped.body))
		})
	}

	// The daemon's own /out/ hides the same files.
	for _, name := range append([]string{".ffmpeg/180p.m3u8"}, tmps...) {
		if res := fetch(t, raw, d.api+"/out/n/"+name, ""); res.StatusCode != http.StatusNotFound {
			t.Errorf("/out/n/%s: status %d, want 404", name, res.StatusCode)
		}
	}
	if res := fetch(t, raw, d.api+"/out/n/master.m3u8", ""); res.StatusCode != http.StatusOK {
		t.Errorf("/out/n/master.m3u8: status %d, want 200", res.StatusCode)
	}
}

// fetched is a response with its body read.
type fetched struct {
	*http.Response
	body []byte
}

// fetch GETs url with c, with the Accept-Encoding given ("" for none).
func fetch(t *testing.T, c *http.Client, url, acceptEncoding string) fetched {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if acceptEncoding != "" {
		req.Header.Set("Accept-Encoding", acceptEncoding)
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return fetched{res, body}
}

// bigPlaylist is a live media playlist of n 1 s segments, in the form transcoderd writes
// (internal/manifest/testdata/golden).
func bigPlaylist(n int) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:86400\n#EXT-X-INDEPENDENT-SEGMENTS\n#EXT-X-MAP:URI=\"init.mp4\"\n")
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	for i := range n {
		fmt.Fprintf(&b, "#EXT-X-PROGRAM-DATE-TIME:%s\n#EXTINF:1.000,\nseg_%d.m4s\n", t0.Add(time.Duration(i)*time.Second).Format("2006-01-02T15:04:05.000Z"), 86400+i)
	}
	return b.String()
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitHTTP(t *testing.T, url string) {
	t.Helper()
	for i := 0; i < 100; i++ {
		if res, err := http.Get(url); err == nil {
			res.Body.Close()
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s never answered", url)
}

// runFiles returns the paths, relative to the job folder, of the init segment and the
// first segment of the one run that wrote the rendition folder dir.
func runFiles(t *testing.T, dir string) (initName, segName string) {
	t.Helper()
	inits, _ := filepath.Glob(filepath.Join(dir, "init_*.mp4"))
	if len(inits) != 1 {
		t.Fatalf("%s: init segments %q, want one", dir, inits)
	}
	run, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(inits[0]), "init_"), ".mp4"), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	rend := filepath.Base(dir)
	return rend + "/" + manifest.InitName(run), rend + "/" + manifest.SegmentName(run, 0)
}
