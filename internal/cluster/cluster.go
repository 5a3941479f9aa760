// Package cluster is the fleet's brain (issue 18): several transcoderd boxes share one
// job list in a coord store and behave as one service. It owns the records the boxes
// exchange (Node, JobSpec, Assignment, Status), the placement of a job on a box
// (Place, a pure function), the Scheduler (one at a time, under a coord.Lease) that
// places jobs, moves a lost box's jobs with a higher epoch and drains boxes, and the
// Agent on every box that heartbeats its Node record, adopts the assignments naming
// its box through a Runner, stops those that moved, and fences itself when it cannot
// heartbeat.
//
// Safety rests on two rules. Every assignment write is a compare-and-set at the
// revision read (coord Create or Update), so two schedulers cannot both win a job at
// one epoch. A box stops its jobs when its last successful heartbeat is Fence old,
// before its Node record can expire (TTL) and the scheduler moves them: no clocks are
// compared between machines, so two boxes never run one job at once.
//
// Watches make the loops prompt; a List every Reconcile interval makes them correct,
// since a NATS watch can stay quiet for up to 20 s after a server is lost.
package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// Timing is the fleet's clock. The defaults (DefaultTiming) are the design's: a box
// heartbeats every 2 s into a bucket whose TTL is 10 s and fences at 7 s, leaving 3 s
// for its ffmpeg to stop before another box may take its jobs.
type Timing struct {
	TTL       time.Duration // a Node record (and the scheduler lease) expires this long after its last write
	Heartbeat time.Duration // how often an agent rewrites its Node (and the scheduler renews its lease)
	Fence     time.Duration // an agent stops its jobs when its last successful heartbeat is this old
	Reconcile time.Duration // how often scheduler and agents List, besides watching
}

// DefaultTiming is 10 s TTL, 2 s heartbeat, 7 s fence, 2 s reconcile.
func DefaultTiming() Timing {
	return Timing{TTL: 10 * time.Second, Heartbeat: 2 * time.Second, Fence: 7 * time.Second, Reconcile: 2 * time.Second}
}

// Validate checks that the fence comes before expiry with a heartbeat to spare.
func (t Timing) Validate() error {
	switch {
	case t.Heartbeat <= 0 || t.Reconcile <= 0:
		return fmt.Errorf("cluster: heartbeat %v and reconcile %v must be positive", t.Heartbeat, t.Reconcile)
	case t.Fence <= t.Heartbeat:
		return fmt.Errorf("cluster: fence %v must be longer than the heartbeat %v", t.Fence, t.Heartbeat)
	case t.TTL <= t.Fence:
		return fmt.Errorf("cluster: ttl %v must be longer than the fence %v", t.TTL, t.Fence)
	}
	return nil
}

// Bucket names, as in issue 18's design.
const (
	JobsBucket   = "tx_jobs"
	NodesBucket  = "tx_nodes"
	LeaderBucket = "tx_leader"
	AssignBucket = "tx_assign"
	StatusBucket = "tx_status"
	DrainBucket  = "tx_drain"
	PartsBucket  = "tx_parts"
)

// leaderKey is the scheduler lease's key in LeaderBucket.
const leaderKey = "scheduler"

// Buckets are the fleet's buckets in one coord store.
type Buckets struct {
	Jobs   coord.Bucket // JobSpec by job id; written by the API of any box
	Nodes  coord.Bucket // Node by box id, TTL; written by each box's agent
	Leader coord.Bucket // the scheduler lease, TTL
	Assign coord.Bucket // Assignment by job id; written by the scheduler only
	Status coord.Bucket // Status checkpoint by job id; written by the owning box
	Drain  coord.Bucket // a key per box being drained; written by the API of any box
	Parts  coord.Bucket // a checkpoint's parts (parts.go); written by the owning box
	timing Timing
}

// Open creates or opens the fleet's buckets in s with the TTLs of t.
func Open(ctx context.Context, s coord.Store, t Timing) (*Buckets, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	b := &Buckets{timing: t}
	for _, o := range []struct {
		name string
		ttl  time.Duration
		to   *coord.Bucket
	}{
		{JobsBucket, 0, &b.Jobs}, {NodesBucket, t.TTL, &b.Nodes}, {LeaderBucket, t.TTL, &b.Leader},
		{AssignBucket, 0, &b.Assign}, {StatusBucket, 0, &b.Status}, {DrainBucket, 0, &b.Drain},
		{PartsBucket, 0, &b.Parts},
	} {
		bk, err := s.Bucket(ctx, coord.BucketConfig{Name: o.name, TTL: o.ttl})
		if err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		*o.to = bk
	}
	return b, nil
}

// Timing is what the buckets were opened with.
func (b *Buckets) Timing() Timing { return b.timing }
