// Package web is transcoderd's preview page: a single page, served from the binary, that
// lists the jobs with their state and figures, plays a chosen job's HLS or DASH output
// with hls.js or dash.js (whose copies it embeds, see static/vendor/README.md), and
// starts new jobs. It only talks to the daemon's own API and output folder.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed static
var static embed.FS

// Prefix is the path the page's assets are served under.
const Prefix = "/ui/"

// Index serves the page itself, at "/".
func Index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeFileFS(w, r, static, "static/index.html")
}

// Assets serves the page's scripts, styles and player libraries under Prefix.
func Assets() http.Handler {
	sub, _ := fs.Sub(static, "static") // cannot fail: a valid path, embedded at build time
	files := http.StripPrefix(Prefix, http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Prefix || r.URL.Path[len(r.URL.Path)-1] == '/' {
			http.NotFound(w, r) // no folder listings
			return
		}
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
}
