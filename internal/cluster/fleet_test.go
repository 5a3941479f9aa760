package cluster

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/coord/coordtest"
)

var defaults = flag.Bool("cluster.defaults", false, "run the fleet tests with the daemon's timing (TTL 10 s) rather than the short one")

// testTiming is the design's short test timing (TTL 2 s, fence 1.4 s), or the
// daemon's with -cluster.defaults.
func testTiming() Timing {
	if *defaults {
		return DefaultTiming()
	}
	return Timing{TTL: 2 * time.Second, Heartbeat: 400 * time.Millisecond, Fence: 1400 * time.Millisecond, Reconcile: time.Second}
}

// errCut is what a cut store answers.
var errCut = errors.New("connection cut (test)")

// cutStore is a box's view of the store that the test can cut off, as a network
// partition would: every call fails and every watch ends, until Restore.
type cutStore struct {
	coord.Store
	mu     sync.Mutex
	cut    bool
	hang   time.Duration // how long each call waits before it fails, while cut
	ctx    context.Context
	cancel context.CancelFunc
}

func newCutStore(s coord.Store) *cutStore {
	ctx, cancel := context.WithCancel(context.Background())
	return &cutStore{Store: s, ctx: ctx, cancel: cancel}
}

func (c *cutStore) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
	c.cancel()
}

// Hang cuts the store as a partition cuts NATS: each call waits d (or until its
// context ends) before it fails, as a request waits out its timeout for an answer that
// does not come.
func (c *cutStore) Hang(d time.Duration) {
	c.mu.Lock()
	c.hang = d
	c.mu.Unlock()
	c.Cut()
}

func (c *cutStore) Restore() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut, c.hang = false, 0
	c.ctx, c.cancel = context.WithCancel(context.Background())
}

func (c *cutStore) state() (bool, context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut, c.ctx
}

func (c *cutStore) Bucket(ctx context.Context, cfg coord.BucketConfig) (coord.Bucket, error) {
	b, err := c.Store.Bucket(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &cutBucket{Bucket: b, s: c}, nil
}

type cutBucket struct {
	coord.Bucket
	s *cutStore
}

func (b *cutBucket) check(ctx context.Context) error {
	b.s.mu.Lock()
	cut, hang := b.s.cut, b.s.hang
	b.s.mu.Unlock()
	if !cut {
		return nil
	}
	if hang > 0 {
		t := time.NewTimer(hang)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
	}
	return errCut
}

func (b *cutBucket) Get(ctx context.Context, key string) (coord.Entry, error) {
	if err := b.check(ctx); err != nil {
		return coord.Entry{}, err
	}
	return b.Bucket.Get(ctx, key)
}

func (b *cutBucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	return b.Bucket.Create(ctx, key, value)
}

func (b *cutBucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := b.check(ctx); err != nil {
		return 0, err
	}
	return b.Bucket.Update(ctx, key, value, rev)
}

func (b *cutBucket) Delete(ctx context.Context, key string, rev uint64) error {
	if err := b.check(ctx); err != nil {
		return err
	}
	return b.Bucket.Delete(ctx, key, rev)
}

func (b *cutBucket) List(ctx context.Context, prefix string) ([]coord.Entry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	return b.Bucket.List(ctx, prefix)
}

// Watch ends when the store is cut.
func (b *cutBucket) Watch(ctx context.Context, prefix string) (<-chan coord.Entry, error) {
	if err := b.check(ctx); err != nil {
		return nil, err
	}
	_, sctx := b.s.state()
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(sctx, cancel)
	ch, err := b.Bucket.Watch(ctx, prefix)
	if err != nil {
		stop()
		cancel()
		return nil, err
	}
	out := make(chan coord.Entry)
	go func() {
		defer close(out)
		defer stop()
		defer cancel()
		for e := range ch {
			select {
			case out <- e:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// event is one thing a fake runner did.
type event struct {
	at    time.Time
	box   string
	job   string
	start bool
	epoch uint64
}

// ledger records every start and stop of every box, and fails the test when a job
// starts on a box while another live box runs it.
type ledger struct {
	t      *testing.T
	mu     sync.Mutex
	events []event
	owners map[string]map[string]uint64 // job → box → epoch, of the live boxes
}

func newLedger(t *testing.T) *ledger {
	return &ledger{t: t, owners: map[string]map[string]uint64{}}
}

func (l *ledger) record(e event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	if l.owners[e.job] == nil {
		l.owners[e.job] = map[string]uint64{}
	}
	if !e.start {
		delete(l.owners[e.job], e.box)
		return
	}
	for box, epoch := range l.owners[e.job] {
		if box != e.box {
			l.t.Errorf("job %s starts on %s at epoch %d while %s runs it at epoch %d", e.job, e.box, e.epoch, box, epoch)
		}
	}
	l.owners[e.job][e.box] = e.epoch
}

// died forgets what box ran: a dead box's ffmpeg is gone with it.
func (l *ledger) died(box string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, o := range l.owners {
		delete(o, box)
	}
}

// find returns the first event after since that match says.
func (l *ledger) find(since time.Time, match func(event) bool) (event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.events {
		if !e.at.Before(since) && match(e) {
			return e, true
		}
	}
	return event{}, false
}

// waitFor waits up to d for an event after since that match says.
func (l *ledger) waitFor(since time.Time, d time.Duration, what string, match func(event) bool) event {
	l.t.Helper()
	deadline := time.Now().Add(d)
	for {
		if e, ok := l.find(since, match); ok {
			return e
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("no %s within %v", what, d)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fakeRunner is a box's job manager: it records starts and stops.
type fakeRunner struct {
	box string
	l   *ledger
}

func (r *fakeRunner) Start(spec JobSpec, a Assignment) error {
	r.l.record(event{at: time.Now(), box: r.box, job: spec.ID, start: true, epoch: a.Epoch})
	return nil
}

func (r *fakeRunner) Stop(id string) error {
	r.l.record(event{at: time.Now(), box: r.box, job: id})
	return nil
}

// box is one member of a test fleet: its agent and its scheduler candidate, over its
// own (cuttable) view of the store.
type box struct {
	name   string
	store  *cutStore
	nc     *nats.Conn // its NATS connection; nil on bbolt
	b      *Buckets
	agent  *Agent
	sched  *Scheduler
	cancel context.CancelFunc
	done   sync.WaitGroup
}

// fleet is a set of boxes over one store.
type fleet struct {
	t       *testing.T
	timing  Timing
	ledger  *ledger
	connect func() (coord.Store, *nats.Conn) // a new connection to the store
	admin   *Buckets
	boxes   map[string]*box
}

func boltFleet(t *testing.T) *fleet {
	s, err := coord.OpenBolt(filepath.Join(t.TempDir(), "coord.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return newFleet(t, func() (coord.Store, *nats.Conn) { return s, nil })
}

func natsFleet(t *testing.T) *fleet {
	c := coordtest.StartCluster(t, 3)
	t.Logf("3-server NATS cluster ready in %v", c.Ready.Round(time.Millisecond))
	return newFleet(t, func() (coord.Store, *nats.Conn) {
		nc := c.Connect(t)
		js, err := coord.NewJetStream(nc, 3)
		if err != nil {
			t.Fatal(err)
		}
		return js, nc
	})
}

// backends runs fn against bbolt and against the 3-server NATS cluster.
func backends(t *testing.T, fn func(t *testing.T, f *fleet)) {
	for _, b := range []struct {
		name string
		new  func(*testing.T) *fleet
	}{{"bolt", boltFleet}, {"nats", natsFleet}} {
		t.Run(b.name, func(t *testing.T) { fn(t, b.new(t)) })
	}
}

func newFleet(t *testing.T, connect func() (coord.Store, *nats.Conn)) *fleet {
	f := &fleet{t: t, timing: testTiming(), ledger: newLedger(t), connect: connect, boxes: map[string]*box{}}
	s, _ := connect()
	f.admin = f.open(s)
	return f
}

func (f *fleet) open(s coord.Store) *Buckets {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := Open(ctx, s, f.timing)
	if err != nil {
		f.t.Fatal(err)
	}
	return b
}

func (f *fleet) log() zerolog.Logger {
	if testing.Verbose() {
		return zerolog.New(zerolog.NewTestWriter(f.t)).With().Timestamp().Logger()
	}
	return zerolog.Nop()
}

// start adds a box with cores of CPU limit and gpus; scheduler says whether it
// campaigns for the scheduler lease too.
func (f *fleet) start(name string, cores float64, scheduler bool, gpus ...GPU) *box {
	f.t.Helper()
	s, nc := f.connect()
	bx := &box{name: name, store: newCutStore(s), nc: nc}
	bx.b = f.open(bx.store)
	var err error
	bx.agent, err = NewAgent(bx.b, AgentConfig{Box: name, Runner: &fakeRunner{box: name, l: f.ledger}, Log: f.log(),
		Capacity: func() Node { return Node{Version: "test", CPULimit: cores, GPUs: gpus} }})
	if err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	bx.cancel = cancel
	bx.done.Go(func() { bx.agent.Run(ctx) })
	if scheduler {
		if bx.sched, err = NewScheduler(bx.b, name, f.log()); err != nil {
			f.t.Fatal(err)
		}
		bx.done.Go(func() { bx.sched.Run(ctx) })
	}
	f.boxes[name] = bx
	f.t.Cleanup(func() { cancel(); bx.done.Wait() })
	return bx
}

// kill stops a box at once, as kill -9 or a power loss would: nothing is released,
// its cut store fails, and its jobs are gone.
func (f *fleet) kill(bx *box) {
	bx.store.Cut()
	bx.cancel()
	bx.done.Wait()
	f.ledger.died(bx.name)
}

// submit adds a live job of cost cores.
func (f *fleet) submit(id string, cost Cost) {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := Submit(ctx, f.admin, JobSpec{ID: id, Source: "rtmp://src/" + id, Live: true, Cost: cost}); err != nil {
		f.t.Fatal(err)
	}
}

// leader waits up to d for one box's scheduler to lead, and returns it.
func (f *fleet) leader(d time.Duration, except ...*box) *box {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for _, bx := range f.boxes {
			if bx.sched != nil && bx.sched.Leading() && !contains(except, bx) {
				return bx
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("no scheduler leads within %v", d)
	return nil
}

// registered waits up to d until every box of the fleet has a Node record.
func (f *fleet) registered(d time.Duration) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ns, err := Nodes(ctx, f.admin)
		cancel()
		if err == nil && len(ns) == len(f.boxes) {
			return
		}
		if time.Now().After(deadline) {
			f.t.Fatalf("%d of %d boxes registered within %v (%v)", len(ns), len(f.boxes), d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func contains(bs []*box, b *box) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}

// running waits up to d until job runs somewhere at epoch or later, and returns the
// box's name and the epoch.
func (f *fleet) running(job string, minEpoch uint64, d time.Duration) (string, uint64) {
	f.t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		for name, bx := range f.boxes {
			for _, r := range bx.agent.Running() {
				if r.ID == job && r.Epoch >= minEpoch {
					return name, r.Epoch
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.t.Fatalf("job %s not running at epoch ≥ %d within %v", job, minEpoch, d)
	return "", 0
}

// lastOK is when box's last successful heartbeat was sent.
func (bx *box) lastOK() time.Time {
	bx.agent.mu.Lock()
	defer bx.agent.mu.Unlock()
	return bx.agent.lastOK
}

var jobSeq atomic.Int64

func jobID(prefix string) string { return fmt.Sprintf("%s-%d", prefix, jobSeq.Add(1)) }
