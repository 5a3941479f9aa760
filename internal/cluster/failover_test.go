package cluster

import (
	"context"
	"testing"
	"time"
)

// slack is what a shared 2-core box may add to any deadline below.
const slack = 2 * time.Second

// TestFailover: three boxes, each with an agent and a scheduler candidate, run three
// live jobs, one each (most free CPU spreads them). A box that is not the scheduler's
// dies; its Node record expires and its job runs on another box at epoch 2 within
// TTL + 1 s (+ slack) of its last heartbeat. Then the scheduler's own box dies: the
// lease moves, and the new scheduler moves that box's job too.
func TestFailover(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) {
		tm := f.timing
		for _, n := range []string{"a", "b", "c"} {
			f.start(n, 4, true)
		}
		lead := f.leader(tm.TTL + slack)
		f.registered(tm.Heartbeat + slack)
		jobs := []string{jobID("live"), jobID("live"), jobID("live")}
		on := map[string]string{}
		for _, j := range jobs {
			f.submit(j, Cost{Cores: 1})
		}
		for _, j := range jobs {
			box, epoch := f.running(j, 1, tm.Reconcile+slack)
			if epoch != 1 {
				t.Fatalf("job %s starts at epoch %d", j, epoch)
			}
			if other, ok := on[box]; ok {
				t.Fatalf("jobs %s and %s both on %s: most free CPU should spread them", other, j, box)
			}
			on[box] = j
		}

		var victim *box
		for _, bx := range f.boxes {
			if bx != lead {
				victim = bx
				break
			}
		}
		job := on[victim.name]
		f.kill(victim)
		last := victim.lastOK()
		moved := f.ledger.waitFor(last, tm.TTL+time.Second+slack, "restart of "+job+" elsewhere", func(e event) bool {
			return e.job == job && e.start && e.box != victim.name
		})
		took := moved.at.Sub(last)
		t.Logf("ttl %v: job %s of dead box %s runs on %s at epoch %d, %v after its last heartbeat",
			tm.TTL, job, victim.name, moved.box, moved.epoch, took.Round(time.Millisecond))
		if moved.epoch != 2 {
			t.Errorf("moved at epoch %d, want 2", moved.epoch)
		}
		if took > tm.TTL+time.Second+slack {
			t.Errorf("failover took %v, want ≤ ttl + 1 s (+ %v slack)", took, slack)
		}

		// The scheduler's own box dies: another box takes the lease and moves its job.
		job = on[lead.name]
		f.kill(lead)
		last = lead.lastOK()
		next := f.leader(tm.TTL+slack, lead)
		took = time.Since(last)
		moved = f.ledger.waitFor(last, tm.TTL+time.Second+2*slack, "restart of "+job+" after the scheduler's box died",
			func(e event) bool { return e.job == job && e.start && e.box != lead.name })
		t.Logf("scheduler box %s died: %s leads %v after its last heartbeat (term %d > %d); job %s runs on %s %v after",
			lead.name, next.name, took.Round(time.Millisecond), next.sched.lease.Term(), lead.sched.lease.Term(),
			job, moved.box, moved.at.Sub(last).Round(time.Millisecond))
		if next.sched.lease.Term() <= lead.sched.lease.Term() {
			t.Errorf("term %d of the new scheduler is not above %d", next.sched.lease.Term(), lead.sched.lease.Term())
		}
		// It goes on scheduling: a new job lands on the one box left.
		j := jobID("live")
		f.submit(j, Cost{Cores: 1})
		if box, _ := f.running(j, 1, tm.Reconcile+slack); box != next.name {
			t.Errorf("new job on %s, want %s", box, next.name)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		as, err := Assignments(ctx, f.admin)
		if err != nil {
			t.Fatal(err)
		}
		if as[j].Term != next.sched.lease.Term() {
			t.Errorf("assignment of %s written in term %d, want the new scheduler's %d", j, as[j].Term, next.sched.lease.Term())
		}
	})
}
