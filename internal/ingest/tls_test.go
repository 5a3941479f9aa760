package ingest

import (
	"bytes"
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestCertFilesReload is certbot renewing the RTMPS certificate while the daemon runs:
// the next handshake serves the new pair; a pair that does not load (half written)
// keeps the one before until the files change again.
func TestCertFilesReload(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testmedia.SelfSigned(t, certFile, keyFile)
	c, err := newCertFiles(certFile, keyFile, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	first := served(t, c)
	if again := served(t, c); !bytes.Equal(again, first) {
		t.Fatal("the certificate changed with its files unchanged")
	}

	renew := func(certPEM, keyPEM []byte, age time.Duration) {
		t.Helper()
		for path, data := range map[string][]byte{certFile: certPEM, keyFile: keyPEM} {
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			// A renewal within the file system's time resolution must still be seen.
			at := time.Now().Add(age)
			if err := os.Chtimes(path, at, at); err != nil {
				t.Fatal(err)
			}
		}
	}
	testmedia.SelfSigned(t, certFile+".new", keyFile+".new")
	renew(readAll(t, certFile+".new"), readAll(t, keyFile+".new"), time.Minute)
	second := served(t, c)
	if bytes.Equal(second, first) {
		t.Fatal("a renewed certificate is not served")
	}

	renew(readAll(t, certFile), []byte("half written"), 2*time.Minute)
	if kept := served(t, c); !bytes.Equal(kept, second) {
		t.Fatal("a pair that does not load replaced the one before")
	}
}

func served(t *testing.T, c *certFiles) []byte {
	t.Helper()
	cert, err := c.get(&tls.ClientHelloInfo{})
	if err != nil || cert == nil || len(cert.Certificate) == 0 {
		t.Fatalf("get: %v, %v", cert, err)
	}
	return cert.Certificate[0]
}

func readAll(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLoadCert checks that a pair that cannot serve is refused with the settings named.
func TestLoadCert(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testmedia.SelfSigned(t, certFile, keyFile)
	testmedia.SelfSigned(t, certFile+".other", keyFile+".other")
	for name, tt := range map[string]struct{ cert, key, want string }{
		"good":     {certFile, keyFile, ""},
		"mismatch": {certFile, keyFile + ".other", "private key does not match"},
		"missing":  {filepath.Join(dir, "nope.pem"), keyFile, "no such file"},
		"swapped":  {keyFile, certFile, "'ingest-tls-cert'"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := LoadCert(tt.cert, tt.key)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "'ingest-tls-key'") {
				t.Errorf("error %v, want one naming the settings and %q", err, tt.want)
			}
		})
	}
}
