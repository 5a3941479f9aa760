package api

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/transcoderd/transcoderd/internal/job"
)

// Fleet is the fleet of boxes this one belongs to (issue 18); nil on a single box.
// With one, the job routes answer for the whole fleet: POST /v1/jobs hands the job to
// the fleet's scheduler, GET /v1/jobs lists every box's jobs, and GET or DELETE
// /v1/jobs/{id} is forwarded to the job's box (or answered from the fleet's records
// when no box runs it).
type Fleet interface {
	// Box is this box's id.
	Box() string
	// Submit checks req and hands it to the fleet; it returns once the scheduler has
	// placed the job, or after a few seconds with the job waiting (Waiting says why).
	Submit(ctx context.Context, req job.Request) (FleetJob, error)
	// Jobs lists every job of the fleet, oldest first.
	Jobs(ctx context.Context) ([]FleetJob, error)
	// Job is one job as the fleet's records show it, with the API URL of its box;
	// job.ErrNotFound when the fleet has no such job.
	Job(ctx context.Context, id string) (FleetJob, string, error)
	// Remove takes the job off the fleet: its box stops it.
	Remove(ctx context.Context, id string) error
	// Boxes answers GET /v1/cluster.
	Boxes(ctx context.Context) (any, error)
	// Drain marks box as draining (its live jobs move elsewhere) or not.
	Drain(ctx context.Context, box string, on bool) error
}

// FleetJob is a job with the box that runs it ("" while it waits for one).
type FleetJob struct {
	job.View
	Box string `json:"box,omitempty"`
}

// forwarded marks a request one box sent on to another, which answers it itself.
const forwarded = "X-Transcoderd-Forwarded"

// errNotInFleet answers the fleet's routes on a single box.
var errNotInFleet = errors.New("this box is not one of a fleet (start it with --box-id and --cluster-listen or --nats-url)")

func (s *Server) fleetCreate(w http.ResponseWriter, r *http.Request, req job.Request) {
	v, err := s.Fleet.Submit(r.Context(), req)
	if err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	w.Header().Set("Location", "/v1/jobs/"+v.ID)
	if v.Box == "" {
		writeJSON(w, http.StatusAccepted, v) // waits for a box with room
		return
	}
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) fleetList(w http.ResponseWriter, r *http.Request) {
	jobs, err := s.Fleet.Jobs(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"jobs": jobs})
}

// fleetJob answers GET and DELETE /v1/jobs/{id} for a job of another box, or of no
// box: it reports whether it did (false: the job is this box's).
func (s *Server) fleetJob(w http.ResponseWriter, r *http.Request) bool {
	id := chi.URLParam(r, "id")
	if _, err := s.Jobs.Get(id); err == nil {
		return false
	}
	v, apiURL, err := s.Fleet.Job(r.Context(), id)
	switch {
	case err != nil:
		writeError(w, statusOf(err), err.Error())
	case s.elsewhere(r, v, apiURL):
		// A box that does not answer (gone, its record not yet expired): the fleet's
		// records answer for it.
		s.forward(w, r, apiURL, func(w http.ResponseWriter, err error) {
			if r.Method == http.MethodDelete && r.URL.Query().Get("purge") != "" {
				// Only the job's box deletes its files: taking it off the fleet here
				// would leave them, and say nothing.
				writeError(w, http.StatusBadGateway, "the job's box did not answer, so its files are not purged (try again): "+err.Error())
				return
			}
			s.fleetRecords(w, r, v)
		})
	default:
		s.fleetRecords(w, r, v)
	}
	return true
}

// onJobsBox sends a call on a job's route (its events, its key, its clips) to the box
// that runs the job, when that is another box of the fleet; the job's own box, or a
// single box, answers it itself.
func (s *Server) onJobsBox(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := chi.URLParam(r, "id")
		if s.Fleet == nil || r.Header.Get(forwarded) != "" {
			next.ServeHTTP(w, r)
			return
		}
		if _, err := s.Jobs.Get(id); err == nil {
			next.ServeHTTP(w, r)
			return
		}
		v, apiURL, err := s.Fleet.Job(r.Context(), id)
		if err == nil && s.elsewhere(r, v, apiURL) {
			s.forward(w, r, apiURL, func(w http.ResponseWriter, err error) {
				writeError(w, http.StatusBadGateway, "the job's box did not answer: "+err.Error())
			})
			return
		}
		next.ServeHTTP(w, r) // no such job anywhere, or none runs it: answered here
	})
}

// elsewhere reports whether v runs on another box that r should be forwarded to
// (a call already forwarded once is answered where it arrived).
func (s *Server) elsewhere(r *http.Request, v FleetJob, apiURL string) bool {
	return v.Box != "" && v.Box != s.Fleet.Box() && apiURL != "" && r.Header.Get(forwarded) == ""
}

// fleetRecords answers GET and DELETE of job v from the fleet's records: DELETE takes
// it off the fleet, and its box, if it comes back, stops it.
func (s *Server) fleetRecords(w http.ResponseWriter, r *http.Request, v FleetJob) {
	if r.Method == http.MethodDelete {
		if err := s.Fleet.Remove(r.Context(), v.ID); err != nil {
			writeError(w, statusOf(err), err.Error())
			return
		}
	}
	writeJSON(w, http.StatusOK, v)
}

// forward sends the request on to the box at apiURL and copies its answer back, or
// calls unreachable if the box does not answer. One transport serves every call, so
// that connections to the other boxes are reused.
func (s *Server) forward(w http.ResponseWriter, r *http.Request, apiURL string, unreachable func(http.ResponseWriter, error)) {
	to, err := url.Parse(apiURL)
	if err != nil {
		writeError(w, http.StatusBadGateway, "job's box: "+err.Error())
		return
	}
	s.forwardOnce.Do(func() {
		s.forwarder = &http.Transport{
			TLSClientConfig:     s.FleetTLS,
			ForceAttemptHTTP2:   true,
			MaxIdleConnsPerHost: 8,
			IdleConnTimeout:     90 * time.Second,
			TLSHandshakeTimeout: 10 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext, // a box gone: give up soon
			// A DELETE waits for the job's ffmpeg to stop (up to 30 s), a purge then for
			// the origin (up to 20 s).
			ResponseHeaderTimeout: 60 * time.Second,
		}
	})
	p := httputil.NewSingleHostReverseProxy(to)
	p.Transport = s.forwarder
	p.ErrorHandler = func(w http.ResponseWriter, _ *http.Request, err error) {
		s.Log.Warn().Err(err).Str("box", apiURL).Str("path", r.URL.Path).Msg("fleet: the job's box did not answer")
		unreachable(w, err)
	}
	r.Header.Set(forwarded, s.Fleet.Box())
	r.Host = to.Host
	p.ServeHTTP(w, r)
}

func (s *Server) getCluster(w http.ResponseWriter, r *http.Request) {
	if s.Fleet == nil {
		writeError(w, http.StatusNotFound, errNotInFleet.Error())
		return
	}
	v, err := s.Fleet.Boxes(r.Context())
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, err.Error())
		return
	}
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) drainBox(w http.ResponseWriter, r *http.Request) {
	if s.Fleet == nil {
		writeError(w, http.StatusNotFound, errNotInFleet.Error())
		return
	}
	box, on := chi.URLParam(r, "id"), r.Method == http.MethodPost
	if err := s.Fleet.Drain(r.Context(), box, on); err != nil {
		writeError(w, statusOf(err), err.Error())
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"box": box, "draining": on})
}
