package api

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"strings"
)

// Access control. With Server.Token set, every route needs
// "Authorization: Bearer <token>" except the open ones, which isOpen lists by
// path: the guard is deny-by-default, so a route added later is protected
// until someone opens it on purpose (TestAuthCoversEveryRoute walks the router
// to check).
//
// Open:
//   - /healthz, for load balancers and process supervisors;
//   - /v1/openapi.yaml, the API's description: public in the repository anyway,
//     and what a client generator reads before it has a token;
//   - /out/..., the streams, for players (which send no token);
//   - / and the preview page's static files (top-level files with a static
//     extension, and anything under /ui/): the page is public, it asks the
//     user for the token and sends it with each /v1 call it makes;
//   - /metrics, unless Server.MetricsAuth (and a Token) is set.
//
// The guarded routes also refuse what a web page on another site can make a
// browser send, token or not (crossSite).

// staticExt are the extensions of the preview page's top-level static files.
var staticExt = map[string]bool{
	".html": true, ".js": true, ".mjs": true, ".css": true, ".map": true, ".ico": true,
	".svg": true, ".png": true, ".webp": true, ".woff2": true, ".txt": true,
}

// isOpen reports whether p needs no token.
func (s *Server) isOpen(p string) bool {
	switch {
	case p == "/" || p == "/healthz" || p == "/v1/openapi.yaml":
		return true
	case strings.HasPrefix(p, "/out/"), strings.HasPrefix(p, "/ui/"):
		return true
	case p == "/metrics" || strings.HasPrefix(p, "/metrics/"):
		return !s.MetricsAuth || s.Token == "" // without a token there is nothing to ask for
	case path.Dir(p) == "/" && staticExt[path.Ext(p)]:
		return true
	}
	return false
}

// requireToken guards every route but the open ones: it answers 401 to a
// request without the right bearer token (when the Server has a Token), and
// 403 to one a web page on another site made a browser send (crossSite).
func (s *Server) requireToken(next http.Handler) http.Handler {
	want := sha256.Sum256([]byte(s.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The router matches the escaped path when there is one: both forms
		// must be open for the request to skip the check.
		if s.isOpen(r.URL.Path) && (r.URL.RawPath == "" || s.isOpen(r.URL.RawPath)) {
			next.ServeHTTP(w, r)
			return
		}
		if s.Token != "" && !s.validToken(w, r, want) {
			return
		}
		if msg := s.crossSite(r); msg != "" {
			writeError(w, http.StatusForbidden, msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// validToken reports whether r carries the token whose SHA-256 is want, and
// answers 401 when it does not.
func (s *Server) validToken(w http.ResponseWriter, r *http.Request, want [sha256.Size]byte) bool {
	got, ok := bearer(r)
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer realm="transcoderd"`)
		writeError(w, http.StatusUnauthorized, "this route needs a token: send the header \"Authorization: Bearer <token>\"")
		return false
	}
	// Hashing first makes the comparison constant-time in the length too.
	sum := sha256.Sum256([]byte(got))
	if subtle.ConstantTimeCompare(sum[:], want[:]) != 1 {
		w.Header().Set("WWW-Authenticate", `Bearer realm="transcoderd", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "the bearer token is not valid")
		return false
	}
	return true
}

// crossSite returns why r looks sent by a browser on behalf of a web page from
// another site, or "". A page can make a browser POST to the API on 127.0.0.1
// (a form-encoded body is a "simple" request: no CORS preflight), or reach it
// under its own host name by rebinding that name to 127.0.0.1. So: an Origin
// header must name the host the request was sent to; and without a token to
// check, the request must name the daemon by IP address or as localhost, which
// no other site can rebind.
func (s *Server) crossSite(r *http.Request) string {
	if o := r.Header.Get("Origin"); o != "" {
		u, err := url.Parse(o)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return fmt.Sprintf("cross-origin request from %q refused: the API answers only its own pages and non-browser clients", o)
		}
	}
	if s.Token == "" {
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if _, err := netip.ParseAddr(strings.Trim(host, "[]")); err != nil && !strings.EqualFold(host, "localhost") {
			return fmt.Sprintf("host name %q refused: without an API token the API answers only to an IP address or localhost (a defence against DNS rebinding); set --api-token-file to use names", host)
		}
	}
	return ""
}

// bearer returns the token of an "Authorization: Bearer <token>" header (the
// scheme is case-insensitive, RFC 6750).
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}
