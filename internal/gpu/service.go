package gpu

import (
	"context"
	"errors"
	"slices"
	"sort"
	"sync"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/encoder"
)

// Errors a job fails with when its ladder says fallback: none.
var (
	// ErrNoEncoder: the ladder asks for a hardware encoder that does not work here.
	ErrNoEncoder = errors.New("no working hardware encoder")
	// ErrNoSession: the device has no encoder session left for a rung.
	ErrNoSession = errors.New("no hardware encoder session left")
	// ErrHardwareFailed: the hardware encoder failed to open or died mid-stream.
	ErrHardwareFailed = errors.New("hardware encoder failed")
)

// Service keeps the last probe result and the encoder sessions that jobs hold, and
// decides, per job, which rungs run on which backend. It is safe for concurrent
// use. One Service serves the whole daemon.
type Service struct {
	prober Prober
	log    zerolog.Logger

	probing sync.Mutex // one probe at a time

	mu     sync.Mutex
	caps   Capabilities
	probed bool
	pools  map[string]*pool  // by pool key
	held   map[string][]hold // job id -> its sessions
}

// pool is a set of encoder sessions that run out together: one backend on one
// device, or every NVIDIA GPU whose NVENC sessions are capped by the driver (the
// consumer cap is system-wide).
type pool struct {
	key      string
	device   string // Device.ID, or "nvidia" for the shared NVENC pool
	backend  string
	capacity int // -1: not limited
	learned  string
}

type hold struct {
	pool string
	rung string
}

// NewService returns a Service that probes with p. It has probed nothing yet:
// call Probe (the daemon does at start) or SetCapabilities.
func NewService(p Prober, log zerolog.Logger) *Service {
	return &Service{prober: p, log: log, pools: map[string]*pool{}, held: map[string][]hold{}}
}

// Probe runs the probe, keeps its result, rebuilds the session budget from it
// and logs it as one event. Concurrent calls wait for the probe in flight and
// then run their own.
func (s *Service) Probe(ctx context.Context) Capabilities {
	s.probing.Lock()
	defer s.probing.Unlock()
	c := s.prober.Probe(ctx)
	s.SetCapabilities(c)
	ev := s.log.Info()
	if len(c.Problems) > 0 {
		ev = s.log.Warn().Strs("problems", c.Problems)
	}
	ev.Str("auto", c.Auto.Encoder).Str("auto_device", c.Auto.Device).Int("devices", len(c.Devices)).
		Strs("summary", c.Summary).Int64("took_ms", c.TookMS).Msg("hardware probe")
	return c
}

// SetCapabilities installs a probe result, as Probe does. The session capacity
// of each pool is what the probe measured plus the sessions this daemon's jobs
// held while it measured.
func (s *Service) SetCapabilities(c Capabilities) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caps, s.probed = c, true
	pools := map[string]*pool{}
	for _, d := range c.Devices {
		for _, r := range d.Encoders {
			if !r.Working {
				continue
			}
			key := poolKey(&d, &r)
			capacity := r.Sessions
			if r.SessionsAtLeast {
				capacity = -1
			}
			if p, ok := pools[key]; ok {
				// The shared NVENC pool: every capped GPU measured the same
				// system-wide limit; keep the largest reading.
				if capacity < 0 || (p.capacity >= 0 && capacity > p.capacity) {
					p.capacity = capacity
				}
				continue
			}
			dev := d.ID
			if key == sharedNVENC {
				dev = "nvidia"
			}
			pools[key] = &pool{key: key, device: dev, backend: r.Backend, capacity: capacity}
		}
	}
	for _, p := range pools {
		if p.capacity >= 0 {
			p.capacity += s.usedLocked(p.key)
		}
	}
	s.pools = pools
}

const sharedNVENC = "nvenc"

func poolKey(d *Device, r *EncoderResult) string {
	if r.Backend == encoder.NVENC && d.Vendor == encoder.VendorNVIDIA && !r.SessionsAtLeast {
		return sharedNVENC
	}
	return d.ID + "/" + r.Backend
}

// Capabilities returns the last probe result; ok is false before the first.
func (s *Service) Capabilities() (c Capabilities, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.caps, s.probed
}

// PoolView is one session pool as GET /v1/capabilities shows it.
type PoolView struct {
	Pool     string   `json:"pool"`
	Device   string   `json:"device"`
	Backend  string   `json:"backend"`
	Capacity int      `json:"capacity"` // -1: not limited
	InUse    int      `json:"in_use"`
	Jobs     []string `json:"jobs,omitempty"`
	// Learned says why the capacity is lower than the probe measured: a job
	// hit the limit at runtime. The next probe measures again.
	Learned string `json:"learned,omitempty"`
}

// Sessions returns every session pool with its use, sorted by name.
func (s *Service) Sessions() []PoolView {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []PoolView{}
	for _, p := range s.pools {
		v := PoolView{Pool: p.key, Device: p.device, Backend: p.backend, Capacity: p.capacity, InUse: s.usedLocked(p.key), Learned: p.learned}
		for id, hs := range s.held {
			if slices.ContainsFunc(hs, func(h hold) bool { return h.pool == p.key }) {
				v.Jobs = append(v.Jobs, id)
			}
		}
		sort.Strings(v.Jobs)
		out = append(out, v)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Pool < out[b].Pool })
	return out
}

func (s *Service) usedLocked(key string) int {
	n := 0
	for _, hs := range s.held {
		for _, h := range hs {
			if h.pool == key {
				n++
			}
		}
	}
	return n
}

func (s *Service) freeLocked(key string) int {
	p, ok := s.pools[key]
	if !ok {
		return 0
	}
	if p.capacity < 0 {
		return int(^uint(0) >> 1)
	}
	return p.capacity - s.usedLocked(key)
}

// Release frees the sessions job id holds. Call it when the job ends; calling it
// again, or for a job that held none, does nothing.
func (s *Service) Release(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
}
