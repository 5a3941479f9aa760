// Package api is transcoderd's HTTP interface: the JSON REST API under /v1, /healthz,
// a read-only view of the output folder under /out/, and the preview page (package web)
// at / with its assets under /ui/.
package api

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"os"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/rs/zerolog"

	spec "github.com/transcoderd/transcoderd/api"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/web"
)

// MaxBody caps a request body.
const MaxBody = 64 << 10

// Server holds what the handlers need.
type Server struct {
	Jobs    *job.Manager
	Ladders *ladder.Store
	Output  string // folder served read-only under /out/
	Log     zerolog.Logger
	Version string

	// Token, when set, is the bearer token every route but the open ones needs
	// (see auth.go). MetricsAuth makes /metrics need it too.
	Token       string
	MetricsAuth bool

	// Metrics, when set, serves GET /metrics (internal/metrics).
	Metrics http.Handler

	// GPU serves /v1/capabilities (capabilities.go); nil answers 503.
	GPU GPUProber

	// Fleet, when set, makes the job routes the fleet's (fleet.go).
	Fleet Fleet
	// FleetTLS, when set, is how this box checks the other boxes' API certificates
	// when it forwards a call to them (a private CA); nil trusts the system's roots.
	FleetTLS *tls.Config

	forwardOnce sync.Once
	forwarder   *http.Transport // shared by every forwarded call (see forward)
}

// Handler returns the router.
func (s *Server) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(s.logRequests)
	r.Use(s.requireToken)
	r.Get("/healthz", s.healthz)
	r.Route("/v1", func(r chi.Router) {
		r.Get("/openapi.yaml", openAPI)
		r.Get("/jobs", s.listJobs)
		r.Post("/jobs", s.createJob)
		r.Get("/jobs/{id}", s.getJob)
		r.Delete("/jobs/{id}", s.deleteJob)
		// A job's other routes are answered by the box that runs it.
		onJobsBox := r.With(s.onJobsBox)
		onJobsBox.Get("/jobs/{id}/events", s.jobEvents)
		onJobsBox.Post("/jobs/{id}/ingest/rotate", s.rotateKey)
		onJobsBox.Get("/jobs/{id}/clips", s.listClips)
		onJobsBox.Post("/jobs/{id}/clips", s.createClip)
		onJobsBox.Delete("/jobs/{id}/clips/{clip}", s.deleteClip)
		r.Get("/ladders", s.listLadders)
		r.Get("/ladders/{name}", s.getLadder)
		r.Get("/capabilities", s.getCapabilities)
		r.Post("/capabilities/probe", s.probeCapabilities)
		r.Get("/cluster", s.getCluster)
		r.Post("/cluster/boxes/{id}/drain", s.drainBox)
		r.Delete("/cluster/boxes/{id}/drain", s.drainBox)
	})
	if s.Metrics != nil {
		r.Method(http.MethodGet, "/metrics", s.Metrics)
	}
	out := http.StripPrefix("/out/", outputHandler(s.Output))
	r.Get("/out/*", out.ServeHTTP)
	r.Head("/out/*", out.ServeHTTP)
	r.Get("/", web.Index)
	assets := web.Assets()
	r.Get(web.Prefix+"*", assets.ServeHTTP)
	r.Head(web.Prefix+"*", assets.ServeHTTP)
	r.NotFound(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such route: "+r.Method+" "+r.URL.Path)
	})
	r.MethodNotAllowed(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusMethodNotAllowed, "method "+r.Method+" is not allowed on "+r.URL.Path)
	})
	return r
}

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"status": "ok", "version": s.Version})
}

// openAPI serves the API's description, api/openapi.yaml.
func openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/yaml")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = io.WriteString(w, spec.OpenAPI)
}

func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) {
	if s.Fleet != nil {
		s.fleetList(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": s.Jobs.List()})
}

func (s *Server) createJob(w http.ResponseWriter, r *http.Request) {
	var req job.Request
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.Fleet != nil {
		s.fleetCreate(w, r, req)
		return
	}
	j, err := s.Jobs.Create(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+j.ID())
	v := j.CreatedView() // a push job's stream key, in this answer only
	if v.State == job.Queued {
		writeJSON(w, http.StatusAccepted, v) // waits for room under the CPU cap
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) {
	if s.Fleet != nil && s.fleetJob(w, r) {
		return
	}
	j, err := s.Jobs.Get(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	if s.Fleet != nil {
		writeJSON(w, http.StatusOK, FleetJob{View: j.View(), Box: s.Fleet.Box()})
		return
	}
	writeJSON(w, http.StatusOK, j.View())
}

// rotateKey gives a push job a new stream key: this answer is the only one that
// shows it.
func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) {
	v, err := s.Jobs.RotateKey(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) jobEvents(w http.ResponseWriter, r *http.Request) {
	j, err := s.Jobs.Get(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"events": j.Events()})
}

func (s *Server) deleteJob(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	purge, err := purgeParam(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if s.Fleet != nil && s.fleetJob(w, r) {
		return
	}
	stop := s.Jobs.Stop
	if purge {
		stop = s.Jobs.Purge
	}
	v, err := stop(ctx, chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	if s.Fleet != nil {
		// Ended here: off the fleet, so that no box runs it again.
		if err := s.Fleet.Remove(ctx, v.ID); err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
		writeJSON(w, http.StatusOK, FleetJob{View: v, Box: s.Fleet.Box()})
		return
	}
	writeJSON(w, http.StatusOK, v)
}

// createClip cuts a clip of a recording job (job.ClipRequest): 201 with the clip.
func (s *Server) createClip(w http.ResponseWriter, r *http.Request) {
	var req job.ClipRequest
	if err := decodeStrict(w, r, &req); err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	c, err := s.Jobs.CreateClip(chi.URLParam(r, "id"), req)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+chi.URLParam(r, "id")+"/clips/"+c.ID)
	writeJSON(w, http.StatusCreated, c)
}

func (s *Server) listClips(w http.ResponseWriter, r *http.Request) {
	clips, err := s.Jobs.Clips(chi.URLParam(r, "id"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"clips": clips})
}

func (s *Server) deleteClip(w http.ResponseWriter, r *http.Request) {
	c, err := s.Jobs.DeleteClip(chi.URLParam(r, "id"), chi.URLParam(r, "clip"))
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, c)
}

type ladderView struct {
	Name     string         `json:"name"`
	Valid    bool           `json:"valid"`
	Problems []string       `json:"problems,omitempty"`
	Ladder   *ladder.Ladder `json:"ladder,omitempty"`
}

func (s *Server) listLadders(w http.ResponseWriter, _ *http.Request) {
	entries, err := s.Ladders.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	out := make([]ladderView, 0, len(entries))
	for _, e := range entries {
		out = append(out, ladderView{Name: e.Name, Valid: len(e.Problems) == 0, Problems: e.Problems, Ladder: e.Ladder})
	}
	writeJSON(w, http.StatusOK, map[string]any{"ladders": out})
}

func (s *Server) getLadder(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	entries, err := s.Ladders.List()
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error())
		return
	}
	for _, e := range entries {
		if e.Name == name {
			writeJSON(w, http.StatusOK, ladderView{Name: e.Name, Valid: len(e.Problems) == 0, Problems: e.Problems, Ladder: e.Ladder})
			return
		}
	}
	writeError(w, http.StatusNotFound, fmt.Sprintf("ladder %q not found", name))
}

// decodeStrict reads one JSON object, refusing unknown fields, trailing data and big bodies.
func decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && mt != "application/x-www-form-urlencoded") {
			// curl -d sends x-www-form-urlencoded by default: accept it as JSON.
			return fmt.Errorf("content type %q is not application/json", ct)
		}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		switch {
		case errors.As(err, &mbe):
			return fmt.Errorf("request body is larger than %d bytes", MaxBody)
		case errors.Is(err, io.EOF):
			return errors.New("request body is empty: expected a JSON object")
		}
		return fmt.Errorf("bad JSON: %w", err)
	}
	// Only white space may follow. (dec.More would let a stray ']' or '}' through.)
	var mbe *http.MaxBytesError
	switch _, err := dec.Token(); {
	case errors.Is(err, io.EOF):
		return nil
	case errors.As(err, &mbe):
		return fmt.Errorf("request body is larger than %d bytes", MaxBody)
	}
	return errors.New("bad JSON: more than one value in the body")
}

func statusOf(err error) int {
	switch {
	case errors.Is(err, job.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, job.ErrLimit):
		return http.StatusUnprocessableEntity
	case errors.Is(err, job.ErrTooManyJobs):
		return http.StatusTooManyRequests
	case errors.Is(err, job.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, job.ErrConflict):
		return http.StatusConflict
	case errors.Is(err, job.ErrNoSpace):
		return http.StatusInsufficientStorage
	case errors.Is(err, cpucap.ErrOverCapacity):
		return http.StatusServiceUnavailable
	case errors.Is(err, job.ErrClosed):
		return http.StatusServiceUnavailable
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout
	}
	return http.StatusInternalServerError
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, map[string]string{"error": msg})
}

func (s *Server) logRequests(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/out/") {
			next.ServeHTTP(w, r) // segment fetches would drown the log
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		began := time.Now()
		next.ServeHTTP(sw, r)
		s.Log.Info().Str("method", r.Method).Str("path", r.URL.Path).Int("status", sw.code).
			Dur("took", time.Since(began)).Msg("http")
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// outputHandler serves the output folder read-only, with the content types and caching
// that players expect, and without directory listings, dot files (transcoderd's private
// files) or *.tmp files (what ffmpeg is still writing, renamed once complete).
func outputHandler(dir string) http.Handler {
	fs := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		// A page on another origin reads Date for the MPD's http-head UTCTiming.
		w.Header().Set("Access-Control-Expose-Headers", "Date, Content-Length")
		p := path.Clean("/" + r.URL.Path)
		for _, part := range strings.Split(p, "/") {
			if strings.HasPrefix(part, ".") || strings.HasSuffix(part, ".tmp") {
				writeError(w, http.StatusNotFound, "not found")
				return
			}
		}
		if fi, err := os.Stat(dir + p); err == nil && fi.IsDir() {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		if !confined(dir, p) {
			writeError(w, http.StatusNotFound, "not found")
			return
		}
		switch path.Ext(p) {
		case ".m3u8":
			w.Header().Set("Content-Type", "application/vnd.apple.mpegurl")
			w.Header().Set("Cache-Control", "no-cache")
		case ".mpd":
			w.Header().Set("Content-Type", "application/dash+xml")
			w.Header().Set("Cache-Control", "no-cache")
		case ".m4s":
			w.Header().Set("Content-Type", "video/iso.segment")
			w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		case ".mp4":
			w.Header().Set("Content-Type", "video/mp4")
		}
		fs.ServeHTTP(w, r)
	})
}
