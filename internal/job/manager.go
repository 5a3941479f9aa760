package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/dirwatch"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/store"
)

// Errors that callers branch on; each is wrapped with the details.
var (
	ErrInvalid  = errors.New("invalid request") // 400
	ErrNotFound = errors.New("job not found")   // 404
	ErrConflict = errors.New("conflict")        // 409
	ErrClosed   = errors.New("manager closed")  // 503
)

// Config is what a Manager needs from the daemon.
type Config struct {
	Output    string // folder the job folders are written under
	MediaRoot string // folder file sources are resolved in
	FFmpeg    string // path of ffmpeg
	FFprobe   string // path of ffprobe
	Ladders   *ladder.Store
	Log       zerolog.Logger
	Limits    Limits             // what one request may ask for (guard.go); zero checks nothing
	Hosts     *source.HostPolicy // the hosts network sources may name; nil allows every host

	// Optional knobs; zero values take the defaults.
	PollInterval time.Duration    // how often ffmpeg's output is polled where it cannot be watched (100ms)
	StopGrace    time.Duration    // SIGINT to SIGKILL (10s)
	ProbeTimeout time.Duration    // ffprobe limit (20s)
	SegmentGrace time.Duration    // how long a segment stays on disk after leaving the window (30s + 3 segments)
	ShedHoldOff  time.Duration    // how long a shed rung stays off before it is tried again (5m, doubling)
	Now          func() time.Time // clock for manifests
	Observer     Observer         // measurements for metrics; nil for none
	Store        *store.Store     // where jobs survive a restart; nil keeps them in memory only
	CPU          *cpucap.Cap      // admission and enforcement of the CPU limit; nil for none
	GPU          *gpu.Service     // hardware encoders found by the probe; nil is x264 only
}

// Observer receives measurements as jobs make them. Its methods must be fast and safe
// for concurrent use.
type Observer interface {
	// ManifestsWritten reports, for a segment that ffmpeg closed, how long it took until
	// every manifest naming it was written.
	ManifestsWritten(job string, sinceSegmentClosed time.Duration)
}

// Request is what a client asks for.
type Request struct {
	Source string `json:"source"`
	Ladder string `json:"ladder"`
	ID     string `json:"id,omitempty"`
	// Queue asks that a live job the CPU cap has no room for wait in line (state
	// queued) rather than be refused; it starts when room frees up, first come first
	// served.
	Queue bool `json:"queue,omitempty"`
}

// Manager owns every job of the daemon.
type Manager struct {
	cfg Config

	mu     sync.Mutex
	jobs   map[string]*Job
	closed bool   // set by Close: stopping jobs are suspended, not ended
	queue  []*Job // live jobs waiting for room under the CPU cap, oldest first
	// restoring holds the queue while Restore brings back the jobs that held cores.
	restoring bool
	wg        sync.WaitGroup

	watchOnce sync.Once
	watchDirs *dirwatch.Watcher // nil until the first job runs, or where inotify fails

	fs fileio.FS // for the hot path's files under cfg.Output

	pressure *cpucap.Pressure // whether the jobs as a whole are short of CPU (shedding)
}

// NewManager returns a Manager; it starts nothing until Create.
func NewManager(cfg Config) *Manager {
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 100 * time.Millisecond
	}
	if cfg.StopGrace <= 0 {
		cfg.StopGrace = 10 * time.Second
	}
	if cfg.ProbeTimeout <= 0 {
		cfg.ProbeTimeout = 20 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.ShedHoldOff <= 0 {
		cfg.ShedHoldOff = shedHoldOff
	}
	return &Manager{cfg: cfg, jobs: map[string]*Job{}, fs: fileio.For(cfg.Output), pressure: cpucap.NewPressure(cfg.CPU)}
}

func (m *Manager) now() time.Time { return m.cfg.Now() }

// Create validates req and starts the job. Nothing is started and nothing is written
// when it returns an error.
func (m *Manager) Create(ctx context.Context, req Request) (*Job, error) {
	id := req.ID
	if id == "" {
		id = newID()
	} else if !ladder.ValidName(id) {
		return nil, fmt.Errorf("%w: id %q must match [a-z0-9_-]{1,64}", ErrInvalid, id)
	}
	if req.Ladder == "" {
		req.Ladder = "default"
	}
	src, err := source.Parse(req.Source, m.cfg.MediaRoot)
	if err == nil {
		err = m.cfg.Hosts.Check(ctx, src)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	l, err := m.cfg.Ladders.Get(req.Ladder)
	if err != nil {
		return nil, fmt.Errorf("%w: ladder %q: %w", ErrInvalid, req.Ladder, err)
	}
	if err := m.cfg.Limits.checkLadder(l, src.Live); err != nil {
		return nil, err
	}
	m.mu.Lock()
	err = m.cfg.Limits.checkJobs(m.jobs) // again below: this one spares a probe
	m.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var info *ladder.SourceInfo
	var probedOver source.Transport // an RTSP source's, when probed here
	if src.Live && m.cfg.CPU != nil {
		// Probe now, briefly, to admit the job on the rungs it will really encode (a 720p
		// camera drops a 1080p rung). A source not reachable yet is admitted on its
		// ladder's full cost, then measured, and the job starts as reconnecting.
		pctx, cancel := context.WithTimeout(ctx, min(m.cfg.ProbeTimeout, 8*time.Second))
		if in, tr, err := ffmpeg.ProbeTransport(pctx, m.cfg.FFprobe, src.URL, src.Kind, src.Transport); err == nil {
			info, probedOver = &in, tr
		}
		cancel()
	}
	if !src.Live {
		// A file is probed now, so that a file that is not media is refused with a 4xx.
		pctx, cancel := context.WithTimeout(ctx, m.cfg.ProbeTimeout)
		in, err := ffmpeg.Probe(pctx, m.cfg.FFprobe, src.URL, src.Kind)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, src.Display, err)
		}
		if _, err := l.Plan(in); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, src.Display, err)
		}
		info = &in
	}
	dir := filepath.Join(m.cfg.Output, id)

	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.jobs[id]; ok {
		return nil, fmt.Errorf("%w: job %q exists", ErrConflict, id)
	}
	if err := m.cfg.Limits.checkJobs(m.jobs); err != nil {
		return nil, err
	}
	if err := checkJobDir(dir); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("%w: output folder %s is not empty: delete it or choose another id", ErrConflict, dir)
	}
	var cost float64
	waiting := ""
	if cap := m.cfg.CPU; cap != nil && src.Live {
		// A live job must keep up with real time: it is admitted only if its estimated
		// cost fits beside what the running live jobs reserve (measured once they run).
		plan := nominalPlan(l)
		if info != nil {
			if p, err := l.Plan(*info); err == nil {
				plan = p
			}
		}
		cost = cpucap.Estimate(plan, l.Video.Preset)
		if cost > cap.Limit() {
			return nil, fmt.Errorf("%w: this job needs about %.2f cores, more than the whole limit of %.2f: it could never start", cpucap.ErrOverCapacity, cost, cap.Limit())
		}
		if err := m.admitLocked(id, cost); err != nil {
			if !req.Queue || !errors.Is(err, cpucap.ErrOverCapacity) {
				return nil, err
			}
			waiting = err.Error()
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		if m.cfg.CPU != nil {
			m.cfg.CPU.Release(id) // not releaseCPU: m.mu is held, and no room was freed
		}
		return nil, fmt.Errorf("create job folder: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	state := Starting
	if waiting != "" {
		state = Queued
	}
	j := &Job{
		id:     id,
		req:    Request{Source: req.Source, Ladder: l.Name, ID: id, Queue: req.Queue},
		src:    src,
		ladder: l,
		dir:    dir,
		log:    m.cfg.Log.With().Str("job", id).Logger(),
		m:      m,
		ctx:    rctx,
		cancel: cancel,
		done:   make(chan struct{}),
		cost:   cost,
		view: View{
			ID:      id,
			State:   state,
			Source:  src.Display,
			Ladder:  l.Name,
			Live:    src.Live,
			Input:   info,
			HLS:     id + "/" + manifest.MasterName,
			DASH:    id + "/" + manifest.MPDName,
			Waiting: waiting,
			Created: m.now().UTC(),
		},
	}
	m.jobs[id] = j
	j.persist()
	j.log.Info().Str("source", src.Display).Str("ladder", l.Name).Bool("live", src.Live).Str("state", string(state)).Msg("job created")
	j.probedOver(probedOver) // before the runner starts
	if state == Queued {
		m.queue = append(m.queue, j)
		j.event(Event{Type: "queued", Message: "waiting for room under the CPU cap: " + waiting})
		return j, nil
	}
	m.launchLocked(j, startState{info: info})
	return j, nil
}

// launchLocked starts the runner of j. m.mu is held.
func (m *Manager) launchLocked(j *Job, st startState) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		defer m.releaseCPU(j.id)
		j.run(j.ctx, st)
	}()
}

// Get returns the job with that id.
func (m *Manager) Get(id string) (*Job, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	j, ok := m.jobs[id]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrNotFound, id)
	}
	return j, nil
}

// List returns every job, oldest first.
func (m *Manager) List() []View {
	m.mu.Lock()
	jobs := make([]*Job, 0, len(m.jobs))
	for _, j := range m.jobs {
		jobs = append(jobs, j)
	}
	m.mu.Unlock()
	out := make([]View, 0, len(jobs))
	for _, j := range jobs {
		out = append(out, j.View())
	}
	sort.Slice(out, func(a, b int) bool {
		if !out[a].Created.Equal(out[b].Created) {
			return out[a].Created.Before(out[b].Created)
		}
		return out[a].ID < out[b].ID
	})
	return out
}

// Stop asks a running job to stop and waits until it has ended its presentation. A job
// that has already ended is removed from the list (its files stay).
func (m *Manager) Stop(ctx context.Context, id string) (View, error) {
	j, err := m.Get(id)
	if err != nil {
		return View{}, err
	}
	if m.unqueue(j) {
		m.admitQueued() // the jobs behind it may fit
		return j.View(), nil
	}
	if j.state().Ended() {
		m.mu.Lock()
		delete(m.jobs, id)
		m.mu.Unlock()
		if m.cfg.Store != nil {
			if err := m.cfg.Store.DeleteJob(id); err != nil {
				return j.View(), fmt.Errorf("forget job: %w", err)
			}
		}
		return j.View(), nil
	}
	j.cancel()
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.View(), ctx.Err()
	}
	return j.View(), nil
}

// nominalPlan is a ladder applied to a source as large as its top rung, at 30 fps (or
// its max_fps): the cost of a live job before its source has been probed.
func nominalPlan(l *ladder.Ladder) ladder.Plan {
	top := 0
	for _, r := range l.Video.Renditions {
		top = max(top, r.Height)
	}
	fps := 30.0
	if l.Video.MaxFPS > 0 {
		fps = min(fps, l.Video.MaxFPS)
	}
	p, err := l.Plan(ladder.SourceInfo{HasVideo: top > 0, Width: (top*16/9 + 1) &^ 1, Height: top, FPS: fps, HasAudio: true, Channels: 2})
	if err != nil {
		return ladder.Plan{}
	}
	return p
}

// releaseCPU gives a job's cores back, and the queue a chance at them.
func (m *Manager) releaseCPU(id string) {
	if m.cfg.CPU != nil {
		m.cfg.CPU.Release(id)
		m.admitQueued()
	}
}

func (m *Manager) closing() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.closed
}

// Close stops every job's ffmpeg and waits for each to exit. Jobs that had not ended
// are not ended: with a store, the next daemon resumes them (a restart, not a stop).
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	for _, j := range m.jobs {
		j.cancel()
	}
	m.mu.Unlock()
	m.wg.Wait()
	m.watchOnce.Do(func() {}) // no watcher is started after this
	if m.watchDirs != nil {
		_ = m.watchDirs.Close()
	}
}

// watcher returns the daemon's one inotify watcher for the jobs' folders of ffmpeg's
// playlists (ffmpeg.PrivateDir), started on first use; nil where inotify is
// unavailable, and jobs poll.
func (m *Manager) watcher() *dirwatch.Watcher {
	m.watchOnce.Do(func() {
		w, err := dirwatch.New()
		if err != nil {
			m.cfg.Log.Warn().Err(err).Dur("poll", m.cfg.PollInterval).Msg("new segments are found by polling")
			return
		}
		m.watchDirs = w
	})
	return m.watchDirs
}

func newID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return "job-" + hex.EncodeToString(b[:])
}
