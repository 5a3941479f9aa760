package job

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/dirwatch"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/publish"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/store"
)

// Errors that callers branch on; each is wrapped with the details.
var (
	ErrInvalid  = errors.New("invalid request")       // 400
	ErrNotFound = errors.New("job not found")         // 404
	ErrConflict = errors.New("conflict")              // 409
	ErrClosed   = errors.New("manager closed")        // 503
	ErrNoSpace  = errors.New("not enough free space") // 507: a recording job, under the reserve (diskreserve.go)
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

	Observer Observer     // measurements for metrics; nil for none
	Store    Store        // where jobs survive a restart; nil keeps them in memory only (store.Memory)
	CPU      *cpucap.Cap  // admission and enforcement of the CPU limit; nil for none (cpucap.Unlimited)
	GPU      *gpu.Service // hardware encoders found by the probe; nil: a service that has probed none
	// Ingest is the push-ingest hub push jobs are published to; nil refuses push jobs.
	Ingest *ingest.Hub
	// Publish delivers the served files to where viewers fetch them; nil serves the
	// output folder itself (publish.FS).
	Publish publish.Publisher
	// RecordMinFree is the free space (bytes) the output's file system keeps from
	// recordings (diskreserve.go); 0 is no reserve. DiskCheck is how often it is
	// measured while a job records (diskspace.DefaultInterval when 0).
	RecordMinFree uint64
	DiskCheck     time.Duration
}

// Store is where jobs survive a restart: store.Store, or a store.Memory.
type Store interface {
	PutJob(id string, record any) error
	Jobs() (map[string]json.RawMessage, error)
	DeleteJob(id string) error
	UpdateSegments(id string, changes []store.SegmentChange) error
	ClearSegments(id string) error
	Segments(id string) (map[string][]manifest.Segment, error)
}

// Observer receives measurements as jobs make them. Its methods must be fast and safe
// for concurrent use.
type Observer interface {
	// ManifestsWritten reports, for a segment that ffmpeg closed, how long it took until
	// every manifest naming it was written.
	ManifestsWritten(job string, sinceSegmentClosed time.Duration)
}

// noObserver is the Observer of a manager given none.
type noObserver struct{}

func (noObserver) ManifestsWritten(string, time.Duration) {}

// Request is what a client asks for.
type Request struct {
	Source string `json:"source"`
	Ladder string `json:"ladder"`
	ID     string `json:"id,omitempty"`
	// Queue asks that a live job the CPU cap has no room for wait in line (state
	// queued) rather than be refused; it starts when room frees up, first come first
	// served.
	Queue bool `json:"queue,omitempty"`
	// SRTPassphrase is what a push job's SRT publishers must encrypt with (10 to 79
	// characters); empty for none. It is kept in the store and shown nowhere.
	SRTPassphrase string `json:"srt_passphrase,omitempty"`
	// Record keeps every segment of a live job after it leaves the window (see
	// recording.go); nil takes the ladder's record.
	Record *bool `json:"record,omitempty"`
}

// Manager owns every job of the daemon.
type Manager struct {
	cfg   Config
	deps  deps   // what each runner is given
	queue *queue // live jobs waiting for room under the CPU cap
	// inputOf is where a job's ffmpeg reads src (inputFor; a test may feed it).
	inputOf func(src source.Source) Input

	mu     sync.Mutex
	jobs   map[string]*Job
	closed bool // set by Close: stopping jobs are suspended, not ended
	// expiries are the timers of ended jobs' record_retention (retention.go).
	expiries map[*Job]*time.Timer
	wg       sync.WaitGroup

	watchOnce sync.Once
	watchDirs *dirwatch.Watcher // nil until the first job runs, or where inotify fails

	mp4Slots chan struct{} // one value per clip's MP4 file being written (clipmp4.go)

	diskOnce sync.Once          // starts the watcher of the recordings' reserve (diskreserve.go)
	diskStop context.CancelFunc // stops it; set by diskOnce
	diskLow  atomic.Bool        // the watcher last saw free space below the reserve
}

// NewManager returns a Manager; it starts nothing until Create.
func NewManager(cfg Config) *Manager { return newManager(cfg, timing{}, time.Now) }

// newManager is NewManager with the runners' timing (zero fields take the daemon's)
// and clock: tests shorten the one and may fake the other.
func newManager(cfg Config, tm timing, now func() time.Time) *Manager {
	// What the daemon always gives, a test may leave out: null objects stand in.
	if cfg.Store == nil {
		cfg.Store = store.NewMemory()
	}
	if cfg.CPU == nil {
		cfg.CPU = cpucap.Unlimited()
	}
	if cfg.GPU == nil {
		cfg.GPU = gpu.NewService(gpu.Prober{}, cfg.Log)
	}
	if cfg.Observer == nil {
		cfg.Observer = noObserver{}
	}
	if cfg.Publish == nil {
		cfg.Publish = publish.FS{}
	}
	m := &Manager{cfg: cfg, jobs: map[string]*Job{}, mp4Slots: make(chan struct{}, mp4Slots)}
	m.inputOf = func(src source.Source) Input { return inputFor(src, cfg.FFprobe) }
	m.queue = newQueue(cfg.CPU, m.launch)
	m.deps = deps{
		ffmpeg:   cfg.FFmpeg,
		store:    cfg.Store,
		cores:    m.queue,
		cgroup:   cfg.CPU,
		gpu:      cfg.GPU,
		watcher:  m.watcher,
		fs:       fileio.For(cfg.Output),
		pressure: cpucap.NewPressure(cfg.CPU),
		observer: cfg.Observer,
		publish:  cfg.Publish,
		now:      now,
		timing:   tm.orDaemon(),
	}
	return m
}

// launch starts the runner of j; st is what it starts from. Callers hold m.mu or the
// queue's lock, so that Close waits for it.
func (m *Manager) launch(j *Job, st startState) {
	ctx, cancel := context.WithCancelCause(context.Background())
	j.mu.Lock()
	j.cancel = cancel
	j.mu.Unlock()
	r := newRunner(j, m.deps, j.in)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		defer close(j.done)
		defer m.queue.released(j.id) // its cores, and the queue a chance at them
		defer m.leaveHub(j)          // a push job's key is refused once it has ended
		defer cancel(nil)
		r.run(ctx, st)
		m.scheduleExpiry(j)
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
	if m.queue.remove(j) {
		j.event(Event{Type: "state", Message: "removed from the queue before it started"})
		j.update(func(v *View) { v.Waiting = "" })
		j.setState(Finished)
		m.leaveHub(j)
		close(j.done)
		m.queue.admitWaiting() // the jobs behind it may fit
		return j.View(), nil
	}
	if j.state().Ended() {
		m.mu.Lock()
		delete(m.jobs, id)
		m.mu.Unlock()
		if err := m.cfg.Store.DeleteJob(id); err != nil {
			return j.View(), fmt.Errorf("forget job: %w", err)
		}
		return j.View(), nil
	}
	j.stop(nil)
	select {
	case <-j.done:
	case <-ctx.Done():
		return j.View(), ctx.Err()
	}
	return j.View(), nil
}

// errDaemonStopping ends the runners when the daemon stops (Close): their jobs are
// suspended, not ended, and the next daemon resumes them from the store.
var errDaemonStopping = errors.New("daemon stopping")

// Close stops every job's ffmpeg and waits for each to exit. Jobs that had not ended
// are not ended: the next daemon resumes them (a restart, not a stop).
func (m *Manager) Close() {
	m.mu.Lock()
	m.closed = true
	m.stopExpiries()
	m.queue.close()
	for _, j := range m.jobs {
		j.stop(errDaemonStopping)
	}
	jobs := slices.Collect(maps.Values(m.jobs))
	m.mu.Unlock()
	m.diskOnce.Do(func() {}) // no watcher is started after this
	if m.diskStop != nil {
		m.diskStop()
	}
	for _, j := range jobs {
		j.stopExport("", errDaemonStopping)
	}
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
			m.cfg.Log.Warn().Err(err).Dur("poll", m.deps.timing.poll).Msg("new segments are found by polling")
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
