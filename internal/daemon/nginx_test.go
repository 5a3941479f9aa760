package daemon

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestNginxSampleConfig runs nginx with scripts/nginx-site.conf over a real job's output
// and fetches what a player fetches: types, caching and CORS must be right, and
// transcoderd's private files must not be served.
func TestNginxSampleConfig(t *testing.T) {
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("nginx is not installed (scripts/test installs it)")
			}
			t.Skip("nginx is not installed")
		}
	}
	d := startDaemon(t, "")
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "s.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, Duration: 3 * time.Second})
	v := d.create(t, `{"source":"s.mp4","ladder":"test","id":"n"}`)
	d.waitFor(t, v.ID, time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })

	port := freePort(t)
	prefix := t.TempDir()
	site := string(readFile(t, "../../scripts/nginx-site.conf"))
	site = strings.Replace(site, "listen 8081;", fmt.Sprintf("listen 127.0.0.1:%d;", port), 1)
	site = strings.Replace(site, "listen [::]:8081;", "", 1)
	site = regexp.MustCompile(`(?m)^\s*root .*;$`).ReplaceAllString(site, "    root "+d.out+";")
	writeFile(t, filepath.Join(prefix, "site.conf"), site)
	user := ""
	if os.Getuid() == 0 {
		user = "user root;" // workers must read the test's private temp folders
	}
	writeFile(t, filepath.Join(prefix, "nginx.conf"), fmt.Sprintf(`%s
worker_processes 1;
error_log %[2]s/error.log;
pid %[2]s/nginx.pid;
events {}
http {
    access_log off;
    client_body_temp_path %[2]s/body;
    proxy_temp_path %[2]s/proxy;
    fastcgi_temp_path %[2]s/fastcgi;
    uwsgi_temp_path %[2]s/uwsgi;
    scgi_temp_path %[2]s/scgi;
    include %[2]s/site.conf;
}
`, user, prefix))
	cmd := exec.Command(bin, "-p", prefix, "-c", filepath.Join(prefix, "nginx.conf"), "-g", "daemon off;")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d/n/", port)
	waitHTTP(t, base+"master.m3u8")

	tests := []struct {
		path, code, ctype, cache string
	}{
		{"master.m3u8", "200", "application/vnd.apple.mpegurl", "no-cache"},
		{"manifest.mpd", "200", "application/dash+xml", "no-cache"},
		{"180p/index.m3u8", "200", "application/vnd.apple.mpegurl", "no-cache"},
		{"180p/init.mp4", "200", "video/mp4", "no-cache"},
		{"180p/seg_0.m4s", "200", "video/iso.segment", "immutable"},
		{".ffmpeg/180p.m3u8", "404", "", ""},
		{"180p/", "403", "", ""}, // no listings: nginx answers 403 for a folder without index
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
