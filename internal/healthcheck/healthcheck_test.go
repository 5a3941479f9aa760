package healthcheck

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestURL(t *testing.T) {
	tests := []struct {
		listen string
		https  bool
		want   string
	}{
		{"127.0.0.1:8080", false, "http://127.0.0.1:8080/healthz"},
		{"0.0.0.0:8080", false, "http://127.0.0.1:8080/healthz"},
		{":8080", true, "https://127.0.0.1:8080/healthz"},
		{"[::]:8443", true, "https://localhost:8443/healthz"},
		{"[::1]:8080", false, "http://[::1]:8080/healthz"},
		{"192.0.2.7:80", false, "http://192.0.2.7:80/healthz"},
		{"transcoder.internal:8080", false, "http://transcoder.internal:8080/healthz"},
		{"8080", false, ""},
	}
	for _, tc := range tests {
		got, err := URL(tc.listen, tc.https)
		if got != tc.want || (err != nil) != (tc.want == "") {
			t.Errorf("URL(%q, %v) = %q, %v; want %q", tc.listen, tc.https, got, err, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	handler := func(code int, body string) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" || r.Header.Get("Authorization") != "" {
				http.Error(w, "wrong request", http.StatusTeapot)
				return
			}
			w.WriteHeader(code)
			_, _ = w.Write([]byte(body))
		})
	}
	healthy := handler(http.StatusOK, `{"status":"ok","version":"1.2.3"}`)
	tlsServer := func(t *testing.T, h http.Handler) (listen, certFile string) {
		srv := httptest.NewTLSServer(h)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String(), writeCert(t, srv.Certificate().Raw)
	}
	tests := []struct {
		name    string
		start   func(t *testing.T) (listen, certFile string)
		version string
		wantErr string
	}{
		{
			name: "healthy",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(healthy)
				t.Cleanup(srv.Close)
				return srv.Listener.Addr().String(), ""
			},
			version: "1.2.3",
		},
		{
			name: "every address is reached on loopback",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(healthy)
				t.Cleanup(srv.Close)
				return "0.0.0.0:" + srv.Listener.Addr().String()[strings.LastIndex(srv.Listener.Addr().String(), ":")+1:], ""
			},
			version: "1.2.3",
		},
		{
			name: "unhealthy status",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(handler(http.StatusServiceUnavailable, `{"error":"down"}`))
				t.Cleanup(srv.Close)
				return srv.Listener.Addr().String(), ""
			},
			wantErr: "503 Service Unavailable",
		},
		{
			name: "not the daemon",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(handler(http.StatusOK, `<html>`))
				t.Cleanup(srv.Close)
				return srv.Listener.Addr().String(), ""
			},
			wantErr: `not {"status": "ok"}`,
		},
		{
			name: "nothing listens",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(healthy)
				addr := srv.Listener.Addr().String()
				srv.Close()
				return addr, ""
			},
			wantErr: "connection refused",
		},
		{
			name:    "TLS, its certificate pinned (127.0.0.1 need not be in it)",
			start:   func(t *testing.T) (string, string) { return tlsServer(t, healthy) },
			version: "1.2.3",
		},
		{
			name: "TLS, another certificate",
			start: func(t *testing.T) (string, string) {
				listen, _ := tlsServer(t, healthy)
				return listen, writeCert(t, selfSigned(t))
			},
			wantErr: "does not present the certificate",
		},
		{
			name: "TLS expected, plain HTTP served",
			start: func(t *testing.T) (string, string) {
				srv := httptest.NewServer(healthy)
				t.Cleanup(srv.Close)
				return srv.Listener.Addr().String(), writeCert(t, selfSigned(t))
			},
			wantErr: "health check",
		},
		{
			name:    "no certificate file",
			start:   func(t *testing.T) (string, string) { return "127.0.0.1:1", filepath.Join(t.TempDir(), "none.pem") },
			wantErr: "'tls-cert'",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			listen, cert := tc.start(t)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			version, err := Check(ctx, listen, cert)
			if tc.wantErr == "" {
				if err != nil || version != tc.version {
					t.Fatalf("Check = %q, %v; want %q", version, err, tc.version)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Check = %q, %v; want an error containing %q", version, err, tc.wantErr)
			}
		})
	}
}

// TestCheckIgnoresProxy: a proxy in the environment must not answer for the daemon.
// (Go never proxies loopback; a daemon listening on a named address would be.)
func TestCheckIgnoresProxy(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`{"status":"ok","version":"proxy"}`))
	}))
	defer proxy.Close()
	t.Setenv("HTTP_PROXY", proxy.URL)
	t.Setenv("NO_PROXY", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if v, err := Check(ctx, "transcoderd.invalid:8080", ""); err == nil {
		t.Fatalf("Check through the proxy = %q, want no answer", v)
	}
}

func writeCert(t *testing.T, der []byte) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cert.pem")
	if err := os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

func selfSigned(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "other"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}
