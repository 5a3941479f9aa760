package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

const testToken = "0123456789abcdef-test-token"

// testServer is a Server with a token, a metrics handler and one file to serve.
func testServer(t *testing.T, metricsAuth bool) *Server {
	t.Helper()
	out := t.TempDir()
	if err := os.MkdirAll(filepath.Join(out, "cam"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(out, "cam", "master.m3u8"), []byte("#EXTM3U\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ladders := ladder.NewStore(t.TempDir(), nil)
	return &Server{
		Jobs:        job.NewManager(job.Config{Output: out, MediaRoot: t.TempDir(), Ladders: ladders, Log: zerolog.Nop()}),
		Ladders:     ladders,
		Output:      out,
		Log:         zerolog.Nop(),
		Version:     "test",
		Token:       testToken,
		MetricsAuth: metricsAuth,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, "transcoderd_jobs 0\n")
		}),
	}
}

// openRoute lists, by route pattern, what may be reached without the token. It
// is this test's own list: a route opened in auth.go but not here, or the
// other way round, fails the test.
func openRoute(route string, metricsAuth bool) bool {
	switch {
	case route == "/healthz", route == "/v1/openapi.yaml", route == "/", route == "/out/*", strings.HasPrefix(route, "/ui/"):
		return true
	case route == "/metrics":
		return !metricsAuth
	}
	return false
}

// concrete turns a route pattern into a path that reaches it.
func concrete(route string) string {
	r := strings.NewReplacer("{id}", "nope", "{name}", "nope", "/out/*", "/out/cam/master.m3u8", "*", "x")
	return r.Replace(route)
}

func do(t *testing.T, h http.Handler, method, target, auth string) *httptest.ResponseRecorder {
	t.Helper()
	var body io.Reader
	if method == http.MethodPost || method == http.MethodPut || method == http.MethodPatch {
		body = strings.NewReader("{}")
	}
	r := httptest.NewRequest(method, target, body)
	if auth != "" {
		r.Header.Set("Authorization", auth)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// TestAuthCoversEveryRoute walks the router: every route but the open ones
// answers 401 without the token or with a wrong one, and not 401 with it.
func TestAuthCoversEveryRoute(t *testing.T) {
	for _, metricsAuth := range []bool{true, false} {
		s := testServer(t, metricsAuth)
		h := s.Handler()
		routes, ok := h.(chi.Routes)
		if !ok {
			t.Fatalf("Handler returns %T, not a chi router", h)
		}
		var walked []string
		err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
			walked = append(walked, method+" "+route)
			target := concrete(route)
			open := openRoute(route, metricsAuth)
			for _, auth := range []string{"", "Bearer wrong-token-0123456789", "Basic " + testToken} {
				w := do(t, h, method, target, auth)
				switch {
				case open && w.Code == http.StatusUnauthorized:
					t.Errorf("metrics-auth=%v: open route %s %s answers 401", metricsAuth, method, route)
				case !open && w.Code != http.StatusUnauthorized:
					t.Errorf("metrics-auth=%v: %s %s with %q answers %d, want 401", metricsAuth, method, route, auth, w.Code)
				case !open && (!strings.HasPrefix(w.Header().Get("WWW-Authenticate"), "Bearer ") || !strings.Contains(w.Body.String(), `"error"`)):
					t.Errorf("%s %s: 401 without a Bearer challenge or a JSON error: %q %s", method, route, w.Header(), w.Body)
				}
			}
			if w := do(t, h, method, target, "Bearer "+testToken); w.Code == http.StatusUnauthorized {
				t.Errorf("metrics-auth=%v: %s %s answers 401 with the token: %s", metricsAuth, method, route, w.Body)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// The walk must have seen the API, or this test proves nothing.
		for _, want := range []string{"POST /v1/jobs", "DELETE /v1/jobs/{id}", "GET /v1/ladders", "GET /healthz", "GET /metrics", "GET /", "GET /ui/*"} {
			if !strings.Contains(strings.Join(walked, "\n")+"\n", want+"\n") {
				t.Errorf("the walk did not find %s; it found %q", want, walked)
			}
		}
	}
}

// TestAuthBypassAttempts: paths and headers that try to reach the API through
// an open prefix, another spelling or another scheme.
func TestAuthBypassAttempts(t *testing.T) {
	h := testServer(t, true).Handler()
	tests := []struct {
		name, method, target, auth string
	}{
		{"no header", "GET", "/v1/jobs", ""},
		{"empty bearer", "GET", "/v1/jobs", "Bearer "},
		{"token without scheme", "GET", "/v1/jobs", testToken},
		{"token as basic", "GET", "/v1/jobs", "Basic " + testToken},
		{"prefix of the token", "GET", "/v1/jobs", "Bearer " + testToken[:len(testToken)-1]},
		{"token plus more", "GET", "/v1/jobs", "Bearer " + testToken + "x"},
		{"token in the query", "GET", "/v1/jobs?token=" + testToken, ""},
		{"trailing slash", "GET", "/v1/jobs/", ""},
		{"double slash", "GET", "//v1/jobs", ""},
		{"upper case", "GET", "/V1/jobs", ""},
		{"dot segments through healthz", "GET", "/healthz/../v1/jobs", ""},
		{"dot segments through out", "GET", "/out/../v1/jobs", ""},
		{"encoded slashes through out", "GET", "/out%2F..%2Fv1/jobs", ""},
		{"encoded letter", "GET", "/v1/%6Aobs", ""},
		{"static extension", "GET", "/v1/jobs.js", ""},
		{"create", "POST", "/v1/jobs", ""},
		{"delete", "DELETE", "/v1/jobs/x?purge=true", ""},
		{"head", "HEAD", "/v1/jobs", ""},
		{"options", "OPTIONS", "/v1/jobs", ""},
		{"unknown route", "GET", "/debug/pprof/", ""},
		{"metrics", "GET", "/metrics", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			w := do(t, h, tc.method, tc.target, tc.auth)
			// Either refused, or whatever answered was not the API: the jobs list
			// and the metrics are the canaries.
			body := w.Body.String()
			if w.Code != http.StatusUnauthorized && (strings.Contains(body, `"jobs"`) || strings.Contains(body, "transcoderd_jobs") || w.Code < 300) {
				t.Errorf("%s %s (%q): %d %s", tc.method, tc.target, tc.auth, w.Code, body)
			}
		})
	}
	// The token works with any case of the scheme, and the output stays open.
	for _, auth := range []string{"Bearer " + testToken, "bearer " + testToken, "BEARER  " + testToken} {
		if w := do(t, h, "GET", "/v1/jobs", auth); w.Code != http.StatusOK {
			t.Errorf("%q: %d %s", auth, w.Code, w.Body)
		}
	}
	if w := do(t, h, "GET", "/out/cam/master.m3u8", ""); w.Code != http.StatusOK {
		t.Errorf("a player cannot read /out/ without the token: %d", w.Code)
	}
}

// TestCrossSite: what a web page on another site can make a browser send is
// refused, with or without a token; clients that are not browsers pass.
func TestCrossSite(t *testing.T) {
	tests := []struct {
		name         string
		token        bool
		host, origin string
		want         int
	}{
		{name: "no token, IP address", host: "127.0.0.1:8080", want: 200},
		{name: "no token, IPv6", host: "[::1]:8080", want: 200},
		{name: "no token, localhost", host: "localhost:8080", want: 200},
		{name: "no token, same-origin page", host: "127.0.0.1:8080", origin: "http://127.0.0.1:8080", want: 200},
		{name: "no token, another site's page", host: "127.0.0.1:8080", origin: "https://evil.example", want: 403},
		{name: "no token, sandboxed page", host: "127.0.0.1:8080", origin: "null", want: 403},
		{name: "no token, another port", host: "127.0.0.1:8080", origin: "http://127.0.0.1:9999", want: 403},
		{name: "no token, rebound name", host: "evil.example:8080", origin: "http://evil.example:8080", want: 403},
		{name: "no token, rebound name without origin", host: "evil.example", want: 403},
		{name: "token, host name", token: true, host: "transcoder.lan:8080", want: 200},
		{name: "token, another site's page", token: true, host: "transcoder.lan:8080", origin: "https://evil.example", want: 403},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := testServer(t, true)
			if !tc.token {
				s.Token = ""
			}
			for _, method := range []string{"GET", "POST"} {
				body := io.Reader(nil)
				if method == "POST" {
					body = strings.NewReader(`{"source":"nope.mp4"}`)
				}
				r := httptest.NewRequest(method, "/v1/jobs", body)
				r.Host = tc.host
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if tc.origin != "" {
					r.Header.Set("Origin", tc.origin)
				}
				if tc.token {
					r.Header.Set("Authorization", "Bearer "+testToken)
				}
				w := httptest.NewRecorder()
				s.Handler().ServeHTTP(w, r)
				got := w.Code
				if method == "POST" && got == http.StatusBadRequest {
					got = http.StatusOK // reached the handler, which refused the missing file
				}
				if got != tc.want {
					t.Errorf("%s: %d %s, want %d", method, w.Code, w.Body, tc.want)
				}
			}
		})
	}
	// Open routes are not affected: players and probes come from anywhere.
	s := testServer(t, true)
	s.Token = ""
	r := httptest.NewRequest("GET", "/out/cam/master.m3u8", nil)
	r.Header.Set("Origin", "https://player.example")
	w := httptest.NewRecorder()
	s.Handler().ServeHTTP(w, r)
	if w.Code != http.StatusOK {
		t.Errorf("a player page on another site cannot read /out/: %d", w.Code)
	}
}

func TestIsOpen(t *testing.T) {
	s := &Server{MetricsAuth: true, Token: testToken}
	for p, want := range map[string]bool{
		"/": true, "/healthz": true, "/out/a/master.m3u8": true, "/ui/app.js": true, "/app.js": true, "/style.css": true,
		"/favicon.ico": true, "/v1/openapi.yaml": true, "/v1/openapi.json": false, "/metrics": false, "/v1/jobs": false, "/v1/app.js": false, "/healthz/x": false, "/out": false,
		"/v1": false, "": false, "/x": false,
	} {
		if got := s.isOpen(p); got != want {
			t.Errorf("isOpen(%q) = %v, want %v", p, got, want)
		}
	}
	s.MetricsAuth = false
	if !s.isOpen("/metrics") {
		t.Error("/metrics needs the token with MetricsAuth off")
	}
	s.MetricsAuth, s.Token = true, ""
	if !s.isOpen("/metrics") {
		t.Error("/metrics is guarded with no token to ask for")
	}
}

// TestOutputConfined: /out/ does not follow a symbolic link out of the output
// folder, and still serves links that stay inside it.
func TestOutputConfined(t *testing.T) {
	s := testServer(t, true)
	elsewhere := t.TempDir()
	if err := os.WriteFile(filepath.Join(elsewhere, "secret.m3u8"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	for link, target := range map[string]string{
		"escape":     elsewhere,
		"file.m3u8":  filepath.Join(elsewhere, "secret.m3u8"),
		"inside":     filepath.Join(s.Output, "cam"),
		"inner.m3u8": filepath.Join(s.Output, "cam", "master.m3u8"),
	} {
		if err := os.Symlink(target, filepath.Join(s.Output, link)); err != nil {
			t.Fatal(err)
		}
	}
	h := s.Handler()
	for target, want := range map[string]int{
		"/out/escape/secret.m3u8": 404, "/out/file.m3u8": 404, "/out/inside/master.m3u8": 200, "/out/inner.m3u8": 200,
		"/out/cam/master.m3u8": 200, "/out/cam/nope.m4s": 404, "/out/../../etc/passwd": 404,
	} {
		w := do(t, h, "GET", target, "")
		if w.Code != want || strings.Contains(w.Body.String(), "secret") {
			t.Errorf("GET %s: %d %q, want %d", target, w.Code, w.Body, want)
		}
	}
}
