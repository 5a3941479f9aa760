package api

import (
	"context"
	"net/http"
	"time"

	"github.com/transcoderd/transcoderd/internal/gpu"
)

// GPUProber is what the capabilities routes need: *gpu.Service.
type GPUProber interface {
	Capabilities() (gpu.Capabilities, bool)
	Sessions() []gpu.PoolView
	Probe(ctx context.Context) gpu.Capabilities
}

// probeTimeout bounds POST /v1/capabilities/probe: each trial encode has its own
// limit, and a box has few GPUs.
const probeTimeout = 10 * time.Minute

// capabilitiesView is the body of both capabilities routes: the last probe and
// the encoder sessions jobs hold now.
type capabilitiesView struct {
	gpu.Capabilities
	Sessions []gpu.PoolView `json:"sessions"`
}

// getCapabilities serves GET /v1/capabilities: the GPUs, their drivers, which
// encoders passed their trial encode and which failed with ffmpeg's own line,
// session capacity and use, and what "auto" resolves to.
func (s *Server) getCapabilities(w http.ResponseWriter, _ *http.Request) {
	if s.GPU == nil {
		writeError(w, http.StatusServiceUnavailable, "hardware probing is not configured")
		return
	}
	c, ok := s.GPU.Capabilities()
	if !ok {
		writeError(w, http.StatusServiceUnavailable, "the hardware has not been probed yet")
		return
	}
	writeJSON(w, http.StatusOK, capabilitiesView{Capabilities: c, Sessions: s.GPU.Sessions()})
}

// probeCapabilities serves POST /v1/capabilities/probe: it probes again (trial
// encodes included, so it takes seconds on a box with GPUs) and returns the new
// result. Running jobs keep their sessions; the new capacities count them.
func (s *Server) probeCapabilities(w http.ResponseWriter, r *http.Request) {
	if s.GPU == nil {
		writeError(w, http.StatusServiceUnavailable, "hardware probing is not configured")
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), probeTimeout)
	defer cancel()
	c := s.GPU.Probe(ctx)
	writeJSON(w, http.StatusOK, capabilitiesView{Capabilities: c, Sessions: s.GPU.Sessions()})
}
