package testmedia

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Nginx is an nginx run by a test.
type Nginx struct {
	Prefix string // its folder: configuration, logs, temp files
	cmd    *exec.Cmd
}

// StartNginx runs nginx in the foreground with site (server blocks) included in a
// minimal http block, all of its files under a temporary folder, until the test ends;
// it returns once wait answers a GET (any status). It skips the test, or fails it under
// CI, when nginx is not installed.
func StartNginx(t testing.TB, site, wait string) *Nginx {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
		if _, err := os.Stat(bin); err != nil {
			Missing(t, "nginx is not installed (apt-get install nginx; scripts/test installs it)")
		}
	}
	prefix := t.TempDir()
	user := ""
	if os.Getuid() == 0 {
		user = "user root;" // workers must read and write the test's private temp folders
	}
	conf := fmt.Sprintf(`%s
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
`, user, prefix)
	for name, data := range map[string]string{"site.conf": site, "nginx.conf": conf} {
		if err := os.WriteFile(filepath.Join(prefix, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	n := &Nginx{Prefix: prefix}
	n.Start(t)
	t.Cleanup(func() { n.Stop() })
	for i := 0; ; i++ {
		if res, err := http.Get(wait); err == nil {
			res.Body.Close()
			return n
		}
		if i == 100 {
			t.Fatalf("nginx: %s never answered", wait)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Start starts nginx (again, after Stop).
func (n *Nginx) Start(t testing.TB) {
	t.Helper()
	bin, err := exec.LookPath("nginx")
	if err != nil {
		bin = "/usr/sbin/nginx"
	}
	n.cmd = exec.Command(bin, "-p", n.Prefix, "-c", filepath.Join(n.Prefix, "nginx.conf"), "-g", "daemon off;")
	n.cmd.Stderr = os.Stderr
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
}

// Stop stops nginx (SIGTERM: its master stops its workers; SIGKILL after 5 s) and
// waits for it; its ports refuse connections after.
func (n *Nginx) Stop() {
	if n.cmd == nil {
		return
	}
	_ = n.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = n.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = n.cmd.Process.Kill()
		<-done
	}
	n.cmd = nil
}
