package daemon

import (
	"crypto/tls"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

func TestSecurityConfig(t *testing.T) {
	dir := t.TempDir()
	goodFile := filepath.Join(dir, "token")
	writeFile(t, goodFile, hostileToken+"\nsecond line ignored\n")
	emptyFile := filepath.Join(dir, "empty")
	writeFile(t, emptyFile, "\n")
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testmedia.SelfSigned(t, cert, key)
	testmedia.SelfSigned(t, cert+".other", key+".other")
	rtmps := func(listen, cert, key string) func(c *Config) {
		return func(c *Config) { c.IngestRTMPSListen, c.IngestTLSCert, c.IngestTLSKey = listen, cert, key }
	}
	base := Config{Listen: "127.0.0.1:0", Output: "o", Profiles: "p", Data: "d", MediaRoot: "m"}

	tests := []struct {
		name      string
		change    func(c *Config)
		wantErr   []string
		wantToken string
	}{
		{name: "no security settings", change: func(*Config) {}},
		{name: "token", change: func(c *Config) { c.APIToken = hostileToken }, wantToken: hostileToken},
		{name: "token file", change: func(c *Config) { c.APITokenFile = goodFile }, wantToken: hostileToken},
		{name: "both", change: func(c *Config) { c.APIToken, c.APITokenFile = hostileToken, goodFile }, wantErr: []string{"'api-token' and 'api-token-file' are both set"}},
		{name: "short token", change: func(c *Config) { c.APIToken = "secret" }, wantErr: []string{"'api-token' is 6 characters: use at least 16"}},
		{name: "token with a space", change: func(c *Config) { c.APIToken = "0123456789 abcdef" }, wantErr: []string{"printable ASCII without spaces"}},
		{name: "missing token file", change: func(c *Config) { c.APITokenFile = filepath.Join(dir, "nope") }, wantErr: []string{
			"'api-token-file' " + filepath.Join(dir, "nope") + " does not exist: create it", "openssl rand -hex 32 > " + filepath.Join(dir, "nope"), "TRANSCODERD_API_TOKEN_FILE=)",
		}},
		{name: "unreadable token file", change: func(c *Config) { c.APITokenFile = dir }, wantErr: []string{"'api-token-file'", "is a directory"}},
		{name: "empty token file", change: func(c *Config) { c.APITokenFile = emptyFile }, wantErr: []string{"holds no token"}},
		{name: "cert without key", change: func(c *Config) { c.TLSCert = "c.pem" }, wantErr: []string{"'tls-cert' and 'tls-key' go together"}},
		{name: "key without cert", change: func(c *Config) { c.TLSKey = "k.pem" }, wantErr: []string{"go together"}},
		{name: "bad allow", change: func(c *Config) { c.SourceAllow = "10.0.0.0/8,example.com" }, wantErr: []string{"'source-allow'", `"example.com"`}},
		{name: "bad deny", change: func(c *Config) { c.SourceDeny = "10.0.0.0/99" }, wantErr: []string{"'source-deny'"}},
		{
			name:    "negative limits, all reported",
			change:  func(c *Config) { c.Limits = job.Limits{MaxJobs: -1, MaxHeight: -1, MaxWindow: -time.Second} },
			wantErr: []string{"'max-jobs' must not be negative", "'max-height' must not be negative", "'max-window' must not be negative"},
		},
		{name: "rtmps", change: rtmps("127.0.0.1:0", cert, key)},
		{name: "rtmps without cert and key", change: rtmps(":1936", "", ""), wantErr: []string{"'ingest-rtmps-listen' needs 'ingest-tls-cert' and 'ingest-tls-key'"}},
		{name: "rtmps without key", change: rtmps(":1936", cert, ""), wantErr: []string{"needs 'ingest-tls-cert' and 'ingest-tls-key'"}},
		{name: "rtmps cert without listen", change: rtmps("", cert, key), wantErr: []string{"are for RTMPS: set 'ingest-rtmps-listen'"}},
		{name: "rtmps cert unreadable", change: rtmps(":1936", dir, key), wantErr: []string{"'ingest-tls-cert' " + dir, "is a directory"}},
		{name: "rtmps key missing", change: rtmps(":1936", cert, key+".nope"), wantErr: []string{"'ingest-tls-key' " + key + ".nope", "no such file"}},
		{name: "rtmps key of another cert", change: rtmps(":1936", cert, key+".other"), wantErr: []string{"private key does not match public key"}},
		{name: "rtmps bad address", change: rtmps("1936", cert, key), wantErr: []string{"'ingest-rtmps-listen' \"1936\""}},
		{name: "cluster ca", change: func(c *Config) { c.BoxID, c.NATSURL, c.ClusterCA = "a", "nats://127.0.0.1:4222", cert }},
		{name: "cluster ca alone", change: func(c *Config) { c.ClusterCA = cert }, wantErr: []string{"'cluster-ca' needs 'box-id'"}},
		{name: "cluster ca missing", change: func(c *Config) { c.BoxID, c.NATSURL, c.ClusterCA = "a", "nats://127.0.0.1:4222", cert+".nope" }, wantErr: []string{"'cluster-ca': open " + cert + ".nope"}},
		{name: "cluster ca not PEM", change: func(c *Config) { c.BoxID, c.NATSURL, c.ClusterCA = "a", "nats://127.0.0.1:4222", goodFile }, wantErr: []string{"'cluster-ca' " + goodFile + ": no PEM certificate in it"}},
		{name: "problems reported together", change: func(c *Config) { c.APIToken, c.TLSKey, c.Output = "x", "k", "" }, wantErr: []string{"'api-token' is 1", "go together", "'output' must not be empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := base
			tc.change(&c)
			err := c.Validate()
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				sec, err := c.security()
				if err != nil || sec.token != tc.wantToken {
					t.Fatalf("security() = token %q, %v; want %q", sec.token, err, tc.wantToken)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate passed, want %q", tc.wantErr)
			}
			for _, w := range tc.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, want it to contain %q", err, w)
				}
			}
		})
	}
}

func TestHostPolicyFromConfig(t *testing.T) {
	c := Config{SourceAllow: "203.0.113.0/24", SourceDeny: "203.0.113.7", SourceDenyPrivate: true}
	sec, err := c.security()
	if err != nil {
		t.Fatal(err)
	}
	if sec.hosts == nil || len(sec.hosts.Allow) != 1 || len(sec.hosts.Deny) < 10 {
		t.Fatalf("host policy = %+v", sec.hosts)
	}
	if sec, _ := (Config{}).security(); sec.hosts != nil || sec.tls != nil || sec.token != "" {
		t.Errorf("an empty config gives %+v", sec)
	}
}

func TestLoopback(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "[::ffff:127.0.0.1]:80": true, "0.0.0.0:80": false, "[::]:80": false, "192.168.1.2:80": false} {
		a, err := net.ResolveTCPAddr("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := loopback(a); got != want {
			t.Errorf("loopback(%s) = %v", addr, got)
		}
	}
}

// TestTLS serves HTTPS with a self-signed certificate made here, and the token
// still applies.
func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	pool := testmedia.SelfSigned(t, certFile, keyFile)

	d := startDaemon(t, "", func(c *Config) {
		c.TLSCert, c.TLSKey = certFile, keyFile
		c.APIToken = hostileToken
	})
	base := strings.Replace(d.api, "http://", "https://", 1)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	get := func(c *http.Client, url, token string) (int, error) {
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := c.Do(req)
		if err != nil {
			return 0, err
		}
		res.Body.Close()
		return res.StatusCode, nil
	}
	for _, tc := range []struct {
		url, token string
		want       int
	}{
		{base + "/healthz", "", http.StatusOK},
		{base + "/v1/jobs", "", http.StatusUnauthorized},
		{base + "/v1/jobs", hostileToken, http.StatusOK},
	} {
		if code, err := get(client, tc.url, tc.token); err != nil || code != tc.want {
			t.Errorf("GET %s: %d %v, want %d", tc.url, code, err, tc.want)
		}
	}
	if code, err := get(http.DefaultClient, d.api+"/healthz", ""); err == nil && code == http.StatusOK {
		t.Error("plain HTTP is served on the TLS port")
	}
	old := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}}}
	if _, err := get(old, base+"/healthz", ""); err == nil {
		t.Error("TLS 1.1 is accepted")
	}
}
