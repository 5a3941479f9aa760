package cluster

import (
	"context"
	"testing"
	"time"
)

// TestSelfFence: a box cut off from the store (bbolt: a store wrapper that starts
// failing; NATS: its connection closed) stops its job within Fence (+ slack) of its
// last successful heartbeat, and before its record can expire (TTL), so it is stopped
// before another box starts the job. The job then runs on the other box at epoch 2,
// and the cut-off box, back on the store, does not take it again.
func TestSelfFence(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) { selfFence(t, f, false) })
}

// TestSelfFenceHung is TestSelfFence with a store that hangs instead of failing: every
// call of the cut-off box waits 5 s (NATS's request timeout) before it fails, as in a
// network partition, and the agent's loop with it; its fence must not wait for them.
func TestSelfFenceHung(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) { selfFence(t, f, true) })
}

func selfFence(t *testing.T, f *fleet, hung bool) {
	tm := f.timing
	a := f.start("a", 8, false)
	f.start("b", 2, true)
	f.leader(tm.TTL + slack)
	f.registered(tm.Heartbeat + slack)
	job := jobID("live")
	f.submit(job, Cost{Cores: 1})
	if box, _ := f.running(job, 1, tm.Reconcile+slack); box != "a" {
		t.Fatalf("job on %s, want a (most free CPU)", box)
	}

	switch {
	case hung:
		a.store.Hang(5 * time.Second)
	case a.nc != nil:
		a.nc.Close()
	default:
		a.store.Cut()
	}
	last := a.lastOK()
	stopped := f.ledger.waitFor(last, tm.Fence+slack, "stop on the cut-off box", func(e event) bool {
		return e.box == "a" && e.job == job && !e.start
	})
	took := stopped.at.Sub(last)
	t.Logf("fence %v, ttl %v: cut-off box stopped its job %v after its last heartbeat", tm.Fence, tm.TTL, took.Round(time.Millisecond))
	if took < tm.Fence-50*time.Millisecond || took >= tm.TTL {
		t.Errorf("stopped %v after the last heartbeat: want from the fence %v to before the ttl %v", took, tm.Fence, tm.TTL)
	}
	// The ledger fails the test if b starts it while a still runs it.
	moved := f.ledger.waitFor(last, tm.TTL+time.Second+slack, "restart on b", func(e event) bool {
		return e.box == "b" && e.job == job && e.start
	})
	if moved.epoch != 2 {
		t.Errorf("restarted at epoch %d, want 2", moved.epoch)
	}
	if a.nc != nil && !hung {
		return
	}
	back := time.Now()
	a.store.Restore()
	time.Sleep(2*tm.Reconcile + tm.Heartbeat)
	if e, ok := f.ledger.find(back, func(e event) bool { return e.box == "a" && e.start }); ok {
		t.Errorf("box a back on the store started %s at epoch %d; it runs on b", e.job, e.epoch)
	}
}

// TestEpochFence: an assignment of the job to another box at a higher epoch (as a
// newer scheduler writes it) stops it on the old owner and starts it on the new one;
// an older assignment replayed afterwards changes nothing.
func TestEpochFence(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) {
		tm := f.timing
		f.start("a", 4, false)
		f.start("b", 4, false)
		f.registered(tm.Heartbeat + slack)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		job := jobID("live")
		f.submit(job, Cost{Cores: 1})
		// No scheduler runs: the test writes the assignments, with CAS as one would.
		rev, err := write(ctx, f.admin.Assign, job, assignVersion, Assignment{Job: job, Box: "a", Epoch: 1}, 0)
		if err != nil {
			t.Fatal(err)
		}
		if box, _ := f.running(job, 1, tm.Reconcile+slack); box != "a" {
			t.Fatalf("job on %s, want a", box)
		}
		// As the scheduler's drain does, move it once a's record says it runs it.
		for deadline := time.Now().Add(tm.Heartbeat + slack); ; time.Sleep(20 * time.Millisecond) {
			if n, err := Nodes(ctx, f.admin); err == nil && len(n["a"].Jobs) == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("box a's record does not list its job")
			}
		}
		moved := time.Now()
		rev, err = write(ctx, f.admin.Assign, job, assignVersion, Assignment{Job: job, Box: "b", Epoch: 2}, rev)
		if err != nil {
			t.Fatal(err)
		}
		stop := f.ledger.waitFor(moved, tm.Reconcile+slack, "stop on a", func(e event) bool { return e.box == "a" && e.job == job && !e.start })
		start := f.ledger.waitFor(moved, tm.Reconcile+slack, "start on b", func(e event) bool { return e.box == "b" && e.job == job && e.start })
		t.Logf("epoch 2 written: a stopped after %v, b started after %v", stop.at.Sub(moved).Round(time.Millisecond), start.at.Sub(moved).Round(time.Millisecond))
		if start.epoch != 2 {
			t.Errorf("b started it at epoch %d, want 2", start.epoch)
		}
		// The same box at a higher epoch: its agent restarts the job at the new epoch.
		again := time.Now()
		rev, err = write(ctx, f.admin.Assign, job, assignVersion, Assignment{Job: job, Box: "b", Epoch: 3}, rev)
		if err != nil {
			t.Fatal(err)
		}
		f.ledger.waitFor(again, tm.Reconcile+slack, "stop of epoch 2 on b", func(e event) bool { return e.box == "b" && !e.start })
		f.ledger.waitFor(again, tm.Reconcile+slack, "start of epoch 3 on b", func(e event) bool { return e.box == "b" && e.start && e.epoch == 3 })
		// A write of an older epoch naming a (a stale scheduler without CAS would do it)
		// is refused by the store; the agents do not move.
		if _, err := write(ctx, f.admin.Assign, job, assignVersion, Assignment{Job: job, Box: "a", Epoch: 2}, rev-1); err == nil {
			t.Fatal("a write at a stale revision succeeded")
		}
		time.Sleep(tm.Reconcile + tm.Heartbeat)
		if e, ok := f.ledger.find(again, func(e event) bool { return e.box == "a" }); ok {
			t.Errorf("box a acted after the stale write: %+v", e)
		}
	})
}

// TestStaleAssignment: a box reads an assignment of a job to itself while another
// box's record lists the job at a later epoch (a box restarted after kill -9 whose
// NATS server had not caught up read its old assignment, and started a second
// ffmpeg): it does not start the job while that record lives.
func TestStaleAssignment(t *testing.T) {
	f := boltFleet(t)
	tm := f.timing
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	job := jobID("live")
	f.submit(job, Cost{Cores: 1})
	// Box b's record says it runs the job at epoch 2; the assignment this box reads
	// still names it, at epoch 1. No scheduler runs.
	b := Node{Box: "b", CPULimit: 4, Jobs: []Running{{ID: job, Epoch: 2}}, Heartbeat: time.Now().UTC()}
	if _, err := write(ctx, f.admin.Nodes, "b", nodeVersion, b, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := write(ctx, f.admin.Assign, job, assignVersion, Assignment{Job: job, Box: "a", Epoch: 1}, 0); err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	f.start("a", 4, false)
	time.Sleep(min(tm.TTL-tm.Heartbeat, 2*tm.Reconcile)) // while b's record lives
	if e, ok := f.ledger.find(began, func(e event) bool { return e.box == "a" && e.job == job && e.start }); ok {
		t.Errorf("box a started %s at epoch %d while box b's record lists it at epoch 2", e.job, e.epoch)
	}
}
