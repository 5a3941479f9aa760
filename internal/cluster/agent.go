package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// Runner runs the fleet's jobs on one box: the daemon implements it with its job
// manager. The agent calls it from one goroutine, except that its fence (a goroutine
// of its own) stops every job at once, even while the other calls Start or Stop.
type Runner interface {
	// Start runs the job as assignment a says: at a.Epoch (which its segment names
	// carry), on a.GPU for its hardware rungs, continuing from the job's Status
	// checkpoint when there is one. It returns once the job is under way.
	Start(spec JobSpec, a Assignment) error
	// Stop ends the job here, and returns once its ffmpeg has exited.
	Stop(id string) error
}

// AgentConfig is what one box's agent needs.
type AgentConfig struct {
	Box    string
	Runner Runner
	// Capacity fills the box's record at each heartbeat: its version, ffmpeg, CPU
	// limit and use, GPUs and their sessions. The agent sets Box, Jobs, Draining and
	// Heartbeat. Nil publishes those alone.
	Capacity func() Node
	Log      zerolog.Logger
}

// Agent is one box's member of the fleet. It rewrites the box's Node record every
// Heartbeat; it watches the assignments (and Lists them every Reconcile interval),
// starts the jobs assigned to its box and stops those assigned elsewhere or at a
// higher epoch; and when its last successful heartbeat is Fence old it stops every
// job it runs (it may be cut off, and its record expires at TTL, when the scheduler
// gives its jobs to other boxes). Once heartbeats succeed again it takes back the
// jobs still assigned to it at the same epoch.
type Agent struct {
	b   *Buckets
	t   Timing
	cfg AgentConfig
	log zerolog.Logger

	mu       sync.Mutex
	lastOK   time.Time         // when the last successful heartbeat was sent; zero: none yet
	running  map[string]uint64 // job → the epoch it runs at
	draining bool

	// Used by Run's goroutine only.
	seen  map[string]uint64 // job → the latest assignment revision acted on
	beats chan struct{}     // a heartbeat succeeded after failures
}

// NewAgent returns the agent of cfg.Box over b.
func NewAgent(b *Buckets, cfg AgentConfig) (*Agent, error) {
	if cfg.Box == "" || cfg.Runner == nil {
		return nil, errors.New("cluster: agent needs a box id and a runner")
	}
	return &Agent{
		b: b, t: b.timing, cfg: cfg, log: cfg.Log.With().Str("box", cfg.Box).Logger(),
		running: map[string]uint64{}, seen: map[string]uint64{}, beats: make(chan struct{}, 1),
	}, nil
}

// SetDraining says in the box's record whether it takes new jobs.
func (a *Agent) SetDraining(on bool) {
	a.mu.Lock()
	a.draining = on
	a.mu.Unlock()
}

// Running returns the jobs the agent runs, with their epochs.
func (a *Agent) Running() []Running {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]Running, 0, len(a.running))
	for id, e := range a.running {
		out = append(out, Running{ID: id, Epoch: e})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Run heartbeats and follows the assignments until ctx ends. It leaves the jobs
// running then: the daemon decides what a shutdown does to them (draining first, or
// coming back within the TTL and finding them still assigned here).
func (a *Agent) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wg.Go(func() { a.heartbeats(ctx) })
	wg.Go(func() { a.fences(ctx) })
	tick := time.NewTicker(a.t.Reconcile)
	defer tick.Stop()
	var events <-chan coord.Entry
	for {
		if events == nil {
			events = a.watch(ctx)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-a.beats:
			a.reconcile(ctx)
		case <-tick.C:
			a.reconcile(ctx)
		case e, open := <-events:
			if !open {
				events = nil
				sleep(ctx, a.t.Heartbeat/4) // then watch again
				continue
			}
			a.apply(ctx, e)
		}
	}
}

func (a *Agent) watch(ctx context.Context) <-chan coord.Entry {
	events, err := a.b.Assign.Watch(ctx, "")
	if err != nil {
		a.log.Debug().Err(err).Msg("agent: watch assignments")
		c := make(chan coord.Entry)
		close(c)
		return c
	}
	return events
}

// heartbeats rewrites the box's record every Heartbeat. lastOK is the time just
// before a write that succeeded, so the box's fence always comes before the server
// expires the record.
func (a *Agent) heartbeats(ctx context.Context) {
	var rev uint64
	failed := true
	t := time.NewTicker(a.t.Heartbeat)
	defer t.Stop()
	for {
		start := time.Now()
		hctx, cancel := context.WithTimeout(ctx, a.t.Heartbeat)
		n, err := a.beat(hctx, rev)
		cancel()
		if err == nil {
			rev = n
			a.mu.Lock()
			a.lastOK = start
			a.mu.Unlock()
			if failed {
				select {
				case a.beats <- struct{}{}:
				default:
				}
			}
		} else if ctx.Err() == nil {
			a.log.Warn().Err(err).Msg("agent: heartbeat")
		}
		failed = err != nil
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// beat writes the record once: Update at rev, else Create (it expired, or this is the
// first), else Update at the revision of a record of this box that is still there (a
// restart within the TTL).
func (a *Agent) beat(ctx context.Context, rev uint64) (uint64, error) {
	n := Node{}
	if a.cfg.Capacity != nil {
		n = a.cfg.Capacity()
	}
	n.Box, n.Jobs, n.Heartbeat = a.cfg.Box, a.Running(), time.Now().UTC()
	a.mu.Lock()
	n.Draining = a.draining
	a.mu.Unlock()
	if rev != 0 {
		r, err := write(ctx, a.b.Nodes, a.cfg.Box, nodeVersion, n, rev)
		if !errors.Is(err, coord.ErrConflict) {
			return r, err
		}
	}
	r, err := write(ctx, a.b.Nodes, a.cfg.Box, nodeVersion, n, 0)
	if !errors.Is(err, coord.ErrExists) {
		return r, err
	}
	cur, err := get[Node](ctx, a.b.Nodes, a.cfg.Box, nodeVersion)
	if err != nil {
		return 0, err
	}
	if cur.v.Box != a.cfg.Box {
		return 0, fmt.Errorf("cluster: node record %s names box %q", a.cfg.Box, cur.v.Box)
	}
	return write(ctx, a.b.Nodes, a.cfg.Box, nodeVersion, n, cur.rev)
}

// fresh reports whether the last heartbeat is recent enough to run jobs.
func (a *Agent) fresh() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return !a.lastOK.IsZero() && time.Since(a.lastOK) < a.t.Fence
}

// fences checks the fence every fifth of a heartbeat (at most 250 ms) in a goroutine
// of its own: the loop that follows the assignments waits on the store, and in a
// partition each of its calls waits out its timeout (5 s on NATS), which must not hold
// the fence back.
func (a *Agent) fences(ctx context.Context) {
	t := time.NewTicker(min(max(a.t.Heartbeat/5, 20*time.Millisecond), 250*time.Millisecond))
	defer t.Stop()
	fenced := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		fenced = a.checkFence(fenced)
	}
}

// checkFence stops every job, all at once, when the last successful heartbeat is
// Fence old, and reports whether it was; fenced is what it reported last time.
func (a *Agent) checkFence(fenced bool) bool {
	if a.fresh() {
		return false
	}
	jobs := a.Running()
	if len(jobs) == 0 {
		return fenced
	}
	if !fenced {
		a.log.Warn().Int("jobs", len(jobs)).Msg("agent: no heartbeat for the fence time: stopping every job")
	}
	var wg sync.WaitGroup
	for _, r := range jobs {
		wg.Go(func() { a.stop(r.ID, "fenced") })
	}
	wg.Wait()
	return true
}

// reconcile reads every assignment and acts on each.
func (a *Agent) reconcile(ctx context.Context) {
	es, err := a.b.Assign.List(ctx, "")
	if err != nil {
		a.log.Debug().Err(err).Msg("agent: list assignments")
		return
	}
	listed := map[string]bool{}
	for _, e := range es {
		listed[e.Key] = true
		a.apply(ctx, e)
	}
	for _, r := range a.Running() {
		if !listed[r.ID] {
			a.stop(r.ID, "assignment removed")
		}
	}
}

// apply acts on one assignment entry (from List or Watch), unless an entry as new was
// already acted on.
func (a *Agent) apply(ctx context.Context, e coord.Entry) {
	if e.Op == coord.OpSynced {
		return
	}
	if e.Revision < a.seen[e.Key] {
		return
	}
	a.seen[e.Key] = e.Revision
	var as Assignment
	if e.Op == coord.OpPut {
		if _, err := coord.Decode(e.Value, assignVersion, &as); err != nil {
			a.log.Warn().Err(err).Str("job", e.Key).Msg("agent: assignment")
			return
		}
	}
	a.mu.Lock()
	epoch, runs := a.running[e.Key]
	a.mu.Unlock()
	mine := as.Box == a.cfg.Box
	switch {
	case runs && (!mine || as.Epoch > epoch):
		a.stop(e.Key, fmt.Sprintf("assigned to %q at epoch %d", as.Box, as.Epoch))
		if mine {
			a.start(ctx, as)
		}
	case mine && !runs:
		a.start(ctx, as)
	}
}

// start runs a job assigned here, if the box's heartbeat is fresh.
func (a *Agent) start(ctx context.Context, as Assignment) {
	if !a.fresh() {
		return // fenced or not yet heard: the next reconcile after a heartbeat retries
	}
	if box, err := a.heldElsewhere(ctx, as); box != "" || err != nil {
		a.log.Debug().Err(err).Str("job", as.Job).Str("on", box).Msg("agent: waiting for the job's previous box to stop it")
		delete(a.seen, as.Job) // the next List tries again
		return
	}
	spec, err := get[JobSpec](ctx, a.b.Jobs, as.Job, jobVersion)
	if err != nil {
		a.log.Warn().Err(err).Str("job", as.Job).Msg("agent: job spec")
		delete(a.seen, as.Job) // the next List tries again
		return
	}
	if err := a.cfg.Runner.Start(spec.v, as); err != nil {
		a.log.Warn().Err(err).Str("job", as.Job).Uint64("epoch", as.Epoch).Msg("agent: start")
		delete(a.seen, as.Job)
		return
	}
	a.mu.Lock()
	a.running[as.Job] = as.Epoch
	a.mu.Unlock()
	a.log.Info().Str("job", as.Job).Uint64("epoch", as.Epoch).Msg("agent: started")
}

// heldElsewhere returns a box whose record lists the job: the new owner starts only
// once the previous one has stopped it (its next heartbeat drops it) or is gone (its
// record expired), so that two boxes never run one job at once. A drain move waits a
// heartbeat for it; a failover, whose box is gone, nothing. A box that lists it at a
// later epoch shows the assignment this box read to be stale (a box restarted after
// kill -9, whose NATS server has not caught up yet, read its old assignment).
func (a *Agent) heldElsewhere(ctx context.Context, as Assignment) (string, error) {
	nodes, err := listAll[Node](ctx, a.b.Nodes, nodeVersion)
	if nodes == nil {
		return "", err
	}
	for box, n := range nodes {
		if box == a.cfg.Box {
			continue
		}
		for _, r := range n.v.Jobs {
			if r.ID == as.Job {
				return box, nil
			}
		}
	}
	return "", nil
}

func (a *Agent) stop(id, why string) {
	if err := a.cfg.Runner.Stop(id); err != nil {
		a.log.Warn().Err(err).Str("job", id).Msg("agent: stop")
	}
	a.mu.Lock()
	delete(a.running, id)
	a.mu.Unlock()
	a.log.Info().Str("job", id).Str("why", why).Msg("agent: stopped")
}

// Checkpoint writes the job's Status, which the next owner continues from: only while
// this box runs it at st.Epoch, and never over a checkpoint of a later epoch.
func (a *Agent) Checkpoint(ctx context.Context, st Status) error {
	a.mu.Lock()
	epoch, runs := a.running[st.Job]
	a.mu.Unlock()
	if !runs || epoch != st.Epoch {
		return fmt.Errorf("cluster: checkpoint of %s at epoch %d: this box does not run it at that epoch", st.Job, st.Epoch)
	}
	st.Box, st.At = a.cfg.Box, time.Now().UTC()
	cur, err := get[Status](ctx, a.b.Status, st.Job, statusVersion)
	switch {
	case errors.Is(err, coord.ErrNotFound):
		_, err = write(ctx, a.b.Status, st.Job, statusVersion, st, 0)
	case err != nil:
	case cur.v.Epoch > st.Epoch:
		err = fmt.Errorf("cluster: checkpoint of %s at epoch %d: epoch %d wrote one", st.Job, st.Epoch, cur.v.Epoch)
	default:
		_, err = write(ctx, a.b.Status, st.Job, statusVersion, st, cur.rev)
	}
	return err
}
