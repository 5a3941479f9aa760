package daemon

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cluster"
	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/store"
)

// A fleet (issue 18): with --box-id and either --cluster-listen (an embedded NATS
// server that routes to --cluster-peers) or --nats-url (a NATS the team runs), the box
// is one of several that share one job list in JetStream. The API of any box submits
// jobs to the fleet; the scheduler (one box at a time) assigns each to a box; each box's
// agent runs what is assigned to it through its job manager (fleetRunner). A job's
// record and segment index travel in its checkpoint (tx_status), so the box it moves to
// continues its presentation in the shared output folder.

// clustered reports whether c makes the box one of a fleet.
func (c Config) clustered() bool { return c.BoxID != "" }

func (c Config) validateFleet() []error {
	var errs []error
	switch {
	case c.BoxID == "" && (c.ClusterListen != "" || c.ClusterPeers != "" || c.NATSURL != ""):
		errs = append(errs, errors.New("'box-id' must be set with 'cluster-listen', 'cluster-peers' or 'nats-url'"))
	case c.BoxID != "" && (c.ClusterListen == "") == (c.NATSURL == ""):
		errs = append(errs, errors.New("'box-id' needs one of 'cluster-listen' (an embedded NATS server) or 'nats-url' (an external one)"))
	case c.ClusterPeers != "" && c.ClusterListen == "":
		errs = append(errs, errors.New("'cluster-peers' needs 'cluster-listen'"))
	}
	if c.BoxID != "" && !boxIDRE(c.BoxID) {
		errs = append(errs, fmt.Errorf("'box-id' %q: want letters, digits, '-' or '_'", c.BoxID))
	}
	if _, _, err := net.SplitHostPort(c.ClusterListen); c.ClusterListen != "" && err != nil {
		errs = append(errs, fmt.Errorf("'cluster-listen' %q: %w", c.ClusterListen, err))
	}
	for _, p := range splitList(c.ClusterPeers) {
		if _, _, err := net.SplitHostPort(p); err != nil {
			errs = append(errs, fmt.Errorf("'cluster-peers' %q: %w", p, err))
		}
	}
	if c.ClusterCA != "" && c.BoxID == "" {
		errs = append(errs, errors.New("'cluster-ca' needs 'box-id'"))
	} else if _, err := c.fleetTLS(); err != nil {
		errs = append(errs, err)
	}
	return errs
}

// fleetTLS is how this box checks the other boxes' API certificates when it forwards
// a call to them: --cluster-ca's certificates, or the system's roots (nil).
func (c Config) fleetTLS() (*tls.Config, error) {
	if c.ClusterCA == "" {
		return nil, nil
	}
	b, err := os.ReadFile(c.ClusterCA)
	if err != nil {
		return nil, fmt.Errorf("'cluster-ca': %w", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("'cluster-ca' %s: no PEM certificate in it", c.ClusterCA)
	}
	return &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}, nil
}

func boxIDRE(s string) bool {
	for _, r := range s {
		if !(r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return s != ""
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// fleet is the box's membership of the fleet.
type fleet struct {
	box    string
	data   string // the box's data folder
	b      *cluster.Buckets
	nc     *nats.Conn
	srv    *server.Server // the embedded NATS server; nil with --nats-url
	log    zerolog.Logger
	jobs   *job.Manager // set once the manager exists
	store  *fleetStore
	agent  *cluster.Agent
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// joinFleet starts the embedded NATS server (or connects to the external one) and
// opens the fleet's buckets, waiting up to a minute for the cluster to form.
func joinFleet(ctx context.Context, c Config, local *store.Store, log zerolog.Logger) (*fleet, error) {
	f := &fleet{box: c.BoxID, data: c.Data, log: log.With().Str("box", c.BoxID).Logger()}
	urls, replicas := c.NATSURL, len(splitList(c.NATSURL))
	var opts []nats.Option
	if c.ClusterListen != "" {
		host, port, _ := net.SplitHostPort(c.ClusterListen)
		var routes []string
		for _, p := range splitList(c.ClusterPeers) {
			routes = append(routes, "nats-route://"+p)
		}
		pn, err := strconv.Atoi(port)
		if err != nil {
			return nil, fmt.Errorf("'cluster-listen' %q: port: %w", c.ClusterListen, err)
		}
		s, err := coord.StartServer(coord.ServerConfig{
			// A client port on loopback alone (for the nats CLI on the box): with
			// DontListen the server starts no route listener either.
			Name: c.BoxID, StoreDir: filepath.Join(c.Data, "nats"), Host: "127.0.0.1", Port: -1,
			ClusterName: "transcoderd", ClusterHost: host, ClusterPort: pn, Routes: routes,
		}, 10*time.Second)
		if err != nil {
			return nil, err
		}
		f.srv, replicas = s, 1+len(routes)
		opts = append(opts, nats.InProcessServer(s))
	}
	nc, err := nats.Connect(urls, append(opts, nats.Name("transcoderd "+c.BoxID), nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond), nats.Timeout(2*time.Second))...)
	if err != nil {
		f.close()
		return nil, fmt.Errorf("fleet: connect to nats: %w", err)
	}
	f.nc = nc
	js, err := coord.NewJetStream(nc, min(max(replicas, 1), 3))
	if err != nil {
		f.close()
		return nil, err
	}
	t := c.FleetTiming
	if t == (cluster.Timing{}) {
		t = cluster.DefaultTiming()
	}
	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if f.b, err = cluster.Open(octx, js, t); err != nil {
		f.close()
		return nil, err
	}
	f.store = &fleetStore{Store: local, f: f, jobs: map[string]*segParts{}, dirty: map[string]bool{}, kick: make(chan struct{}, 1)}
	return f, nil
}

// start imports the box's own unfinished jobs (Submit is idempotent by id) and runs
// the agent, the scheduler candidate and the checkpoints until close.
func (f *fleet) start(jobs *job.Manager, capacity func() cluster.Node) error {
	f.jobs = jobs
	agent, err := cluster.NewAgent(f.b, cluster.AgentConfig{Box: f.box, Runner: fleetRunner{f}, Capacity: capacity, Log: f.log})
	if err != nil {
		return err
	}
	sched, err := cluster.NewScheduler(f.b, f.box, f.log)
	if err != nil {
		return err
	}
	f.agent = agent
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	jobs.KillOrphans() // the fleet decides what runs here; nothing of before a kill -9 does
	f.importJobs(ctx)
	f.wg.Go(func() { _ = agent.Run(ctx) })
	f.wg.Go(func() { _ = sched.Run(ctx) })
	f.wg.Go(func() { f.store.checkpoints(ctx) })
	return nil
}

// importedMark is the file of the data folder that says the box's jobs were imported
// into a fleet: from then on the fleet has them, and its own store keeps only what the
// fleet runs here (a job it ran alone and the fleet has since deleted must not come
// back at its next start).
const importedMark = "fleet-imported"

// importJobs submits once the jobs of the box's own store that had not ended, each
// with its record and segment index as its checkpoint, from which the box the
// scheduler picks continues its presentation. Submit is idempotent by id: a job the
// fleet already has is left as it is.
func (f *fleet) importJobs(ctx context.Context) {
	mark := filepath.Join(f.data, importedMark)
	if _, err := os.Stat(mark); err == nil {
		return
	}
	recs, err := f.store.Jobs()
	if err != nil {
		f.log.Warn().Err(err).Msg("fleet: import: read the jobs of this box")
		return
	}
	failed := false
	for id, raw := range recs {
		rec, err := job.Stored(raw)
		if err != nil || rec.State.Ended() || rec.Ladder == nil {
			continue
		}
		err = f.importJob(ctx, id, rec, raw)
		switch {
		case errors.Is(err, coord.ErrExists):
			f.log.Info().Str("job", id).Msg("fleet: import: the fleet has a job of this id already")
		case err != nil:
			failed = true
			f.log.Warn().Err(err).Str("job", id).Msg("fleet: import job")
		default:
			f.log.Info().Str("job", id).Msg("fleet: imported a job of this box")
		}
	}
	if !failed { // else the next start tries again
		if err := os.WriteFile(mark, []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o600); err != nil {
			f.log.Warn().Err(err).Msg("fleet: import: mark the jobs imported")
		}
	}
}

func (f *fleet) importJob(ctx context.Context, id string, rec job.StoredJob, raw json.RawMessage) error {
	spec, err := specOf(job.Checked{Request: rec.Request, Ladder: rec.Ladder, Live: rec.Live, Display: rec.Source})
	if err != nil {
		return err
	}
	segs, err := f.store.Segments(id)
	if err != nil {
		return err
	}
	res, err := json.Marshal(resume{Record: raw, Parts: true})
	if err != nil {
		return err
	}
	p := newSegParts(0)
	p.rebuild(segs)
	parts := map[string]any{}
	for _, w := range p.pending() {
		parts[w.name] = w.segs
	}
	return cluster.Import(ctx, f.b, spec, cluster.Status{Box: f.box, State: string(rec.State), Resume: res}, parts)
}

// specOf is the fleet's record of a job.
func specOf(c job.Checked) (cluster.JobSpec, error) {
	raw, err := json.Marshal(c.Request)
	if err != nil {
		return cluster.JobSpec{}, fmt.Errorf("fleet: job request: %w", err)
	}
	return cluster.JobSpec{ID: c.Request.ID, Source: c.Display, Live: c.Live, Ladder: c.Ladder, Request: raw,
		Cost: cluster.CostOf(c.Ladder, job.NominalPlan(c.Ladder))}, nil
}

// close stops the agent and the scheduler (which gives its lease up), then leaves NATS.
func (f *fleet) close() {
	if f.cancel != nil {
		f.cancel()
		f.wg.Wait()
	}
	if f.nc != nil {
		_ = f.nc.Drain()
		f.nc.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
		f.srv.WaitForShutdown()
	}
}

// capacity is what the box's record says of it at each heartbeat.
func capacity(c Config, apiURL, ffmpegVersion string, jobs *job.Manager, cpu *cpucap.Cap, hw *gpu.Service) func() cluster.Node {
	return func() cluster.Node {
		n := cluster.Node{APIURL: apiURL, Version: c.Version, FFmpeg: ffmpegVersion, CPULimit: cpu.Limit()}
		for _, v := range jobs.List() {
			if !v.State.Ended() {
				n.CPUUsed += v.CPU
			}
		}
		for _, p := range hw.Sessions() {
			n.GPUs = append(n.GPUs, cluster.GPU{ID: p.Pool, Encoders: []string{p.Backend}, Sessions: p.Capacity, Used: p.InUse})
		}
		return n
	}
}

// fleetRunner runs the jobs the agent adopts through the job manager.
type fleetRunner struct{ f *fleet }

// Start loads the job's checkpoint, if an earlier box (or this one) wrote one, into the
// box's store, and adopts the job at the assignment's epoch.
func (r fleetRunner) Start(spec cluster.JobSpec, a cluster.Assignment) error {
	f := r.f
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var req job.Request
	if err := json.Unmarshal(spec.Request, &req); err != nil {
		return fmt.Errorf("fleet: job %s: request: %w", spec.ID, err)
	}
	req.ID = spec.ID
	st, err := cluster.Checkpoint(ctx, f.b, spec.ID)
	switch {
	case err == nil && st.Epoch > a.Epoch:
		// A later owner wrote it: this box read a stale assignment.
		return fmt.Errorf("fleet: job %s: assignment at epoch %d, but epoch %d checkpointed it", spec.ID, a.Epoch, st.Epoch)
	case err == nil && len(st.Resume) > 0:
		if err := f.store.load(ctx, st); err != nil {
			return err
		}
	case err != nil && !errors.Is(err, coord.ErrNotFound):
		return err
	}
	f.store.setEpoch(spec.ID, a.Epoch)
	if _, err := f.jobs.Adopt(ctx, job.Adoption{Request: req, Ladder: spec.Ladder, Epoch: a.Epoch}); err != nil {
		f.store.setEpoch(spec.ID, 0)
		return err
	}
	return nil
}

// Stop suspends the job: its ffmpeg stops, its presentation goes on elsewhere.
func (r fleetRunner) Stop(id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err := r.f.jobs.Suspend(ctx, id)
	r.f.store.setEpoch(id, 0)
	if errors.Is(err, job.ErrNotFound) {
		return nil
	}
	return err
}

// fleetStore is the box's store, whose changes to a job the fleet runs here are
// checkpointed (tx_status) at the job's epoch, from which the next box continues: the
// job's record in the checkpoint itself, its segment index in parts beside it
// (segParts), of which a checkpoint writes only those that changed. The agent refuses
// a checkpoint of a job it does not run at that epoch, so a box the job left cannot
// overwrite its new box's.
type fleetStore struct {
	*store.Store
	f *fleet

	mu    sync.Mutex
	jobs  map[string]*segParts // job → its parts, at the epoch it runs at here
	dirty map[string]bool
	kick  chan struct{}

	flushing sync.Mutex // one flush at a time: each updates its parts at the revisions it read
}

// resume is a checkpoint's Resume: the job's record and, in parts at the checkpoint's
// epoch, its segment index less the numbers gone. Segments is the index of
// checkpoints written whole, before parts: read, never written.
type resume struct {
	Record   json.RawMessage               `json:"record"`
	Parts    bool                          `json:"parts,omitempty"`
	Gone     map[string][]uint64           `json:"gone,omitempty"`
	Segments map[string][]manifest.Segment `json:"segments,omitempty"`
}

// setEpoch records the epoch the job runs at here (0: it does not), from which its
// checkpoint starts anew: every part written at that epoch.
func (s *fleetStore) setEpoch(id string, epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if epoch == 0 {
		delete(s.jobs, id)
		delete(s.dirty, id)
		return
	}
	if p := s.jobs[id]; p == nil || p.epoch != epoch {
		s.jobs[id] = newSegParts(epoch)
	}
	s.dirty[id] = true
}

func (s *fleetStore) touch(id string, changes []store.SegmentChange) {
	s.mu.Lock()
	p, ok := s.jobs[id]
	if ok {
		p.apply(changes)
		s.dirty[id] = true
	}
	s.mu.Unlock()
	if ok {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

func (s *fleetStore) PutJob(id string, record any) error {
	err := s.Store.PutJob(id, record)
	s.touch(id, nil)
	return err
}

func (s *fleetStore) UpdateSegments(id string, changes []store.SegmentChange) error {
	err := s.Store.UpdateSegments(id, changes)
	s.touch(id, changes)
	return err
}

// DeleteJob checkpoints the job one last time (a suspended job's last record and
// index) before the box forgets it.
func (s *fleetStore) DeleteJob(id string) error {
	s.flush(id)
	return s.Store.DeleteJob(id)
}

// load puts a checkpoint's record and index into the box's store.
func (s *fleetStore) load(ctx context.Context, st cluster.Status) error {
	var r resume
	if err := json.Unmarshal(st.Resume, &r); err != nil || len(r.Record) == 0 {
		return fmt.Errorf("fleet: checkpoint of %s: %v", st.Job, err)
	}
	idx := r.Segments
	if r.Parts {
		parts, err := cluster.Parts[[]manifest.Segment](ctx, s.f.b, st.Job, st.Epoch)
		if err != nil {
			return fmt.Errorf("fleet: checkpoint of %s: %w", st.Job, err)
		}
		idx = fromParts(parts, r.Gone)
	}
	if err := s.Store.PutJob(st.Job, r.Record); err != nil {
		return err
	}
	if err := s.Store.ClearSegments(st.Job); err != nil {
		return err
	}
	var changes []store.SegmentChange
	for track, segs := range idx {
		changes = append(changes, store.SegmentChange{Track: track, Added: segs})
	}
	return s.Store.UpdateSegments(st.Job, changes)
}

// checkpoints writes the checkpoints of the jobs that changed, at most one per job a
// second, until ctx ends.
func (s *fleetStore) checkpoints(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		ids := make([]string, 0, len(s.dirty))
		for id := range s.dirty {
			ids = append(ids, id)
		}
		s.mu.Unlock()
		for _, id := range ids {
			s.flush(id)
		}
	}
}

// flush writes the job's checkpoint now, if the fleet runs it here: the parts that
// changed, then the head that names them.
func (s *fleetStore) flush(id string) {
	s.flushing.Lock()
	defer s.flushing.Unlock()
	s.mu.Lock()
	p, ok := s.jobs[id]
	delete(s.dirty, id)
	base := ok && p.base
	s.mu.Unlock()
	if !ok || s.f.agent == nil {
		return
	}
	raw, err := s.Store.Job(id)
	if err != nil || raw == nil {
		return
	}
	rec, _ := job.Stored(raw)
	if base {
		// Under the lock: a change stored after this read is applied after the rebuild.
		s.mu.Lock()
		idx, err := s.Store.Segments(id)
		if err == nil {
			p.rebuild(idx)
		}
		s.mu.Unlock()
		if err != nil {
			s.f.log.Warn().Err(err).Str("job", id).Msg("fleet: checkpoint: segment index")
			return
		}
	}
	if err := s.writeParts(context.Background(), id, p); err != nil {
		s.f.log.Warn().Err(err).Str("job", id).Msg("fleet: checkpoint: segment index")
		s.redo(id, p)
		return
	}
	s.mu.Lock()
	head, _ := json.Marshal(resume{Record: raw, Parts: true, Gone: p.gone()})
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = s.f.agent.Checkpoint(ctx, cluster.Status{Job: id, Epoch: p.epoch, State: string(rec.State), Resume: head})
	if err != nil {
		s.f.log.Debug().Err(err).Str("job", id).Msg("fleet: checkpoint")
		s.redo(id, p)
		return
	}
	if !p.clean {
		// This box's parts are written: those of the job's earlier epochs go.
		if err := cluster.DeleteParts(ctx, s.f.b, id, p.epoch); err == nil {
			p.clean = true
		}
	}
}

// writeParts writes and deletes the job's parts that changed.
func (s *fleetStore) writeParts(ctx context.Context, id string, p *segParts) error {
	s.mu.Lock()
	ws := p.pending()
	s.mu.Unlock()
	for _, w := range ws {
		var rev uint64
		var err error
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second) // each: a first checkpoint writes every part
		if w.segs == nil {
			err = s.f.agent.DeletePart(wctx, id, p.epoch, w.name)
		} else {
			rev, err = s.f.agent.CheckpointPart(wctx, id, p.epoch, w.name, w.segs, w.rev)
		}
		cancel()
		if err != nil {
			return err
		}
		s.mu.Lock()
		p.done(w, rev)
		s.mu.Unlock()
	}
	return nil
}

// redo marks the job's checkpoint to be written again at the next flush: the parts not
// written stay dirty (a revision a failed write leaves unknown is read again, see
// cluster.CheckpointPart).
func (s *fleetStore) redo(id string, p *segParts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.jobs[id] == p {
		s.dirty[id] = true
	}
}

// apiURL is the URL the other boxes reach this box's API at: --api-url, or the
// listener's address (this machine's name where it listens on every address).
func (c Config) apiURL(addr net.Addr, sec security) string {
	if c.APIURL != "" {
		return strings.TrimSuffix(c.APIURL, "/")
	}
	scheme := "http"
	if sec.tls != nil {
		scheme = "https"
	}
	host, port, _ := net.SplitHostPort(addr.String())
	if ip := net.ParseIP(host); ip == nil || ip.IsUnspecified() {
		if name, err := os.Hostname(); err == nil {
			host = name
		}
	}
	return scheme + "://" + net.JoinHostPort(host, port)
}
