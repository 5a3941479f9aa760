package cluster

import (
	"context"
	"errors"
	"sort"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// Scheduler places the fleet's jobs. Every box runs one; the one that holds the lease
// (tx_leader/scheduler) schedules, the others campaign. While it holds the lease it
// reconciles every Reconcile interval and on watch events: jobs without a box are
// placed, the jobs of a box whose record expired move to other boxes with epoch+1, a
// draining box's live jobs move one at a time, and the assignments of removed jobs
// are deleted. Every assignment write is a Create or an Update at the revision read,
// so a scheduler that lost the lease without knowing it cannot overwrite its
// successor's decisions.
type Scheduler struct {
	b     *Buckets
	t     Timing
	box   string
	log   zerolog.Logger
	lease *coord.Lease
	held  func() bool // the lease's Held; tests replace it

	// onWrite, if set, sees every assignment write that succeeded (tests).
	onWrite func(Assignment)

	seen       map[string]seenNode  // box → its record's last revision, and when it changed
	moving     map[string]move      // draining box → the job moving off it
	unreported map[string]time.Time // job on a draining box → when it was first seen not listed by it
	drainNext  atomic.Bool          // a move is under way: node heartbeats kick a reconcile
	knownBoxes atomic.Pointer[map[string]bool]
}

type seenNode struct {
	rev uint64
	at  time.Time
}

// move is one job leaving a draining box, until its new box reports it running.
type move struct {
	job, to string
	epoch   uint64
	since   time.Time
}

// NewScheduler returns the scheduler candidate of box.
func NewScheduler(b *Buckets, box string, log zerolog.Logger) (*Scheduler, error) {
	l, err := coord.NewLease(b.Leader, b.timing.TTL, leaderKey, box)
	if err != nil {
		return nil, err
	}
	return &Scheduler{
		b: b, t: b.timing, box: box, log: log.With().Str("box", box).Logger(), lease: l, held: l.Held,
		seen: map[string]seenNode{}, moving: map[string]move{}, unreported: map[string]time.Time{},
	}, nil
}

// Leading reports whether this scheduler holds the lease now.
func (s *Scheduler) Leading() bool { return s.held() }

// Run campaigns for the lease and schedules while it holds it, until ctx ends; then it
// releases the lease so that another box takes over at once.
func (s *Scheduler) Run(ctx context.Context) error {
	for {
		if err := s.lease.Campaign(ctx, s.t.Heartbeat); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn().Err(err).Msg("scheduler campaign")
			sleep(ctx, s.t.Heartbeat)
			continue
		}
		s.log.Info().Uint64("term", s.lease.Term()).Msg("scheduler lease acquired")
		s.lead(ctx)
		if ctx.Err() != nil {
			rctx, cancel := context.WithTimeout(context.Background(), s.t.Heartbeat)
			s.lease.Release(rctx)
			cancel()
			return nil
		}
		s.log.Warn().Uint64("term", s.lease.Term()).Msg("scheduler lease lost")
	}
}

// lead schedules until the lease is lost or ctx ends.
func (s *Scheduler) lead(ctx context.Context) {
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	kick := make(chan struct{}, 1)
	go s.watch(lctx, s.b.Jobs, kick, func(coord.Entry) bool { return true })
	go s.watch(lctx, s.b.Drain, kick, func(coord.Entry) bool { return true })
	go s.watch(lctx, s.b.Nodes, kick, func(e coord.Entry) bool {
		return e.Op != coord.OpPut || !s.known(e.Key) || s.drainNext.Load()
	})
	renew := time.NewTicker(s.t.Heartbeat)
	defer renew.Stop()
	tick := time.NewTicker(s.t.Reconcile)
	defer tick.Stop()
	s.seen = map[string]seenNode{} // a new term observes the boxes afresh
	s.reconcile(lctx)
	for s.held() {
		select {
		case <-ctx.Done():
			return
		case <-renew.C:
			rctx, rcancel := context.WithTimeout(lctx, s.t.Heartbeat)
			err := s.lease.Renew(rctx)
			rcancel()
			if errors.Is(err, coord.ErrLost) {
				return
			}
			if err != nil {
				s.log.Warn().Err(err).Msg("scheduler lease renewal")
			}
		case <-tick.C:
			s.reconcile(lctx)
		case <-kick:
			s.reconcile(lctx)
		}
	}
}

// known reports whether the last reconcile saw box: a hint for the watch goroutines,
// where a stale answer costs one reconcile at most.
func (s *Scheduler) known(box string) bool {
	m := s.knownBoxes.Load()
	return m != nil && (*m)[box]
}

// watch kicks a reconcile for the entries of b that want says matter, until ctx ends
// or the watch closes (the periodic reconcile goes on without it).
func (s *Scheduler) watch(ctx context.Context, b coord.Bucket, kick chan<- struct{}, want func(coord.Entry) bool) {
	events, err := b.Watch(ctx, "")
	if err != nil {
		s.log.Warn().Err(err).Str("bucket", b.Name()).Msg("scheduler watch")
		return
	}
	synced := false
	for e := range events {
		if e.Op == coord.OpSynced {
			synced = true
			continue
		}
		if synced && want(e) {
			select {
			case kick <- struct{}{}:
			default:
			}
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// view is the fleet as one reconcile read it.
type view struct {
	jobs   map[string]record[JobSpec]
	assign map[string]record[Assignment]
	nodes  map[string]record[Node]
	status map[string]record[Status]
	drain  map[string]record[drainMark]
	cands  map[string]*Candidate // boxes with a live, fresh record
}

func (s *Scheduler) read(ctx context.Context) (*view, error) {
	v := &view{}
	var errs []error
	var err error
	v.jobs, err = listAll[JobSpec](ctx, s.b.Jobs, jobVersion)
	errs = append(errs, err)
	v.assign, err = listAll[Assignment](ctx, s.b.Assign, assignVersion)
	errs = append(errs, err)
	v.nodes, err = listAll[Node](ctx, s.b.Nodes, nodeVersion)
	errs = append(errs, err)
	v.status, err = listAll[Status](ctx, s.b.Status, statusVersion)
	errs = append(errs, err)
	v.drain, err = listAll[drainMark](ctx, s.b.Drain, drainVersion)
	errs = append(errs, err)
	if v.jobs == nil || v.assign == nil || v.nodes == nil || v.status == nil || v.drain == nil {
		return nil, errors.Join(errs...) // a List failed: decide nothing on half a picture
	}
	if err := errors.Join(errs...); err != nil {
		s.log.Warn().Err(err).Msg("scheduler: records skipped")
	}
	v.cands = s.candidates(v)
	return v, nil
}

// candidates are the boxes with a record, their draining and staleness by this
// scheduler's own clock, and what their assignments reserve.
func (s *Scheduler) candidates(v *view) map[string]*Candidate {
	now := time.Now()
	out := map[string]*Candidate{}
	known := map[string]bool{}
	for box, n := range v.nodes {
		known[box] = true
		sn, ok := s.seen[box]
		if !ok || sn.rev != n.rev {
			sn = seenNode{rev: n.rev, at: now}
			s.seen[box] = sn
		}
		_, marked := v.drain[box]
		out[box] = &Candidate{Node: n.v, Draining: n.v.Draining || marked, Stale: now.Sub(sn.at) > s.t.TTL}
	}
	for box := range s.seen {
		if !known[box] {
			delete(s.seen, box)
		}
	}
	s.knownBoxes.Store(&known)
	for _, a := range v.assign {
		if c, ok := out[a.v.Box]; ok {
			c.Reserved.add(a.v.Reserve, a.v.GPU)
		}
	}
	return out
}

// alive reports whether box has a fresh record.
func (v *view) alive(box string) bool {
	c, ok := v.cands[box]
	return ok && !c.Stale
}

func (v *view) list() []Candidate {
	out := make([]Candidate, 0, len(v.cands))
	for _, c := range v.cands {
		out = append(out, *c)
	}
	return out
}

// reconcile reads the fleet and makes one pass over its jobs, oldest first.
func (s *Scheduler) reconcile(ctx context.Context) {
	if !s.held() {
		return
	}
	v, err := s.read(ctx)
	if err != nil {
		s.log.Warn().Err(err).Msg("scheduler: read the fleet")
		return
	}
	s.settleMoves(v)
	ids := make([]string, 0, len(v.jobs))
	for id := range v.jobs {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		a, b := v.jobs[ids[i]].v, v.jobs[ids[j]].v
		if !a.Created.Equal(b.Created) {
			return a.Created.Before(b.Created)
		}
		return a.ID < b.ID
	})
	for _, id := range ids {
		if !s.held() {
			return
		}
		s.step(ctx, v, id)
	}
	for id, a := range v.assign {
		if _, ok := v.jobs[id]; !ok && s.held() {
			if err := s.b.Assign.Delete(ctx, id, a.rev); err != nil {
				s.log.Debug().Err(err).Str("job", id).Msg("scheduler: delete the assignment of a removed job")
			}
		}
	}
	for id, st := range v.status {
		// A minute old: an import writes the checkpoint just before the job.
		if _, ok := v.jobs[id]; !ok && time.Since(st.v.At) > time.Minute && s.held() {
			s.forget(ctx, id, st.rev)
		}
	}
}

// forget deletes the checkpoint of a removed job, and its parts.
func (s *Scheduler) forget(ctx context.Context, id string, rev uint64) {
	err := s.b.Status.Delete(ctx, id, rev)
	if err == nil {
		err = DeleteParts(ctx, s.b, id, 0)
	}
	if err != nil {
		s.log.Debug().Err(err).Str("job", id).Msg("scheduler: delete the checkpoint of a removed job")
	}
}

// step decides one job.
func (s *Scheduler) step(ctx context.Context, v *view, id string) {
	spec := v.jobs[id].v
	cur, ok := v.assign[id]
	if st, done := v.status[id]; done && ok && st.v.Epoch >= cur.v.Epoch && st.v.Ended() {
		return // it ended where it ran: nothing to place or move
	}
	req := Request{Cost: spec.Cost, Live: spec.Live}
	switch {
	case !ok:
		s.place(ctx, v, id, req, Assignment{Job: id, Epoch: 1}, 0, "placed")
	case cur.v.Box == "":
		req.Prefer = lastBox(v, id)
		s.place(ctx, v, id, req, cur.v, cur.rev, "placed")
	case !v.alive(cur.v.Box):
		req.Avoid = cur.v.Box
		s.place(ctx, v, id, req, cur.v, cur.rev, "node_lost")
	case v.cands[cur.v.Box].Draining && spec.Live:
		if _, busy := s.moving[cur.v.Box]; busy || !s.reported(v, cur.v) {
			return
		}
		req.Avoid = cur.v.Box
		from := cur.v.Box
		if a, moved := s.place(ctx, v, id, req, cur.v, cur.rev, "drain"); moved {
			s.moving[from] = move{job: id, to: a.Box, epoch: a.Epoch, since: time.Now()}
			s.drainNext.Store(true)
		}
	}
}

// reported reports whether a's box lists the job running at a's epoch, or has not
// for a TTL (it never started it): only then may a drain move it, since a box that
// started it but has not said so yet could not be waited for by the next one.
func (s *Scheduler) reported(v *view, a Assignment) bool {
	for _, r := range v.cands[a.Box].Node.Jobs {
		if r.ID == a.Job && r.Epoch == a.Epoch {
			delete(s.unreported, a.Job)
			return true
		}
	}
	since, ok := s.unreported[a.Job]
	if !ok {
		s.unreported[a.Job] = time.Now()
		return false
	}
	return time.Since(since) > s.t.TTL
}

// lastBox is the box whose checkpoint the job has: it ran there last.
func lastBox(v *view, id string) string { return v.status[id].v.Box }

// place writes job id's next assignment after cur (at revision rev; 0: none yet):
// the box Place chooses with epoch+1, or no box and why while nothing fits (the epoch
// rises then only if it had a box, so that box stops it). A drain move writes
// nothing when nothing fits: the job stays where it is.
func (s *Scheduler) place(ctx context.Context, v *view, id string, req Request, cur Assignment, rev uint64, reason string) (Assignment, bool) {
	c, why := Place(req, v.list())
	next := Assignment{Job: id, Epoch: cur.Epoch, Box: c.Box, GPU: c.GPU, Reserve: c.Reserve, Reason: reason}
	switch {
	case c.Box != "":
		if rev != 0 {
			next.Epoch++
		}
	case reason == "drain":
		s.log.Info().Str("job", id).Str("from", cur.Box).Str("why", why).Msg("scheduler: no room to move a job off a draining box")
		return cur, false
	case cur.Box == "" && rev != 0 && cur.Waiting == why:
		return cur, false // waits, for the same reason
	default:
		if cur.Box != "" {
			next.Epoch++
		}
		next.Waiting, next.Reason = why, "waiting"
	}
	if !s.write(ctx, next, rev) {
		return cur, false
	}
	if c.Box != "" {
		v.cands[c.Box].Reserved.add(c.Reserve, c.GPU)
	}
	return next, c.Box != ""
}

// write stores a, unless the lease is gone; false when it did not (a conflict: another
// writer won, the next reconcile reads what it wrote).
func (s *Scheduler) write(ctx context.Context, a Assignment, rev uint64) bool {
	if !s.held() {
		return false
	}
	a.Term, a.At = s.lease.Term(), time.Now().UTC()
	if _, err := write(ctx, s.b.Assign, a.Job, assignVersion, a, rev); err != nil {
		lvl := s.log.Warn()
		if errors.Is(err, coord.ErrConflict) || errors.Is(err, coord.ErrExists) {
			lvl = s.log.Debug()
		}
		lvl.Err(err).Str("job", a.Job).Msg("scheduler: assignment not written")
		return false
	}
	if s.onWrite != nil {
		s.onWrite(a)
	}
	s.log.Info().Str("job", a.Job).Str("to", a.Box).Uint64("epoch", a.Epoch).Str("gpu", a.GPU).
		Str("reason", a.Reason).Str("waiting", a.Waiting).Msg("scheduler: assigned")
	return true
}

// settleMoves ends the drain moves whose job runs on its new box (its record lists
// it at the new epoch), or that cannot finish (the box is gone, the job moved again,
// or it took three TTLs).
func (s *Scheduler) settleMoves(v *view) {
	for from, m := range s.moving {
		done := !v.alive(m.to) || time.Since(m.since) > 3*s.t.TTL
		if a, ok := v.assign[m.job]; !ok || a.v.Epoch != m.epoch {
			done = true
		}
		if c, ok := v.cands[m.to]; ok {
			for _, r := range c.Node.Jobs {
				done = done || (r.ID == m.job && r.Epoch == m.epoch)
			}
		}
		if done {
			delete(s.moving, from)
		}
	}
	s.drainNext.Store(len(s.moving) > 0)
}
