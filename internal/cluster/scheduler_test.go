package cluster

import (
	"context"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// TestConcurrentSchedulers: two schedulers that both believe they lead (the lease
// taken away, as a paused old leader would) reconcile the same fleet at the same
// moments while boxes vanish and come back. Each assignment write is a CAS, so one of
// two racing writes fails: no job ever gets two owners at one epoch.
func TestConcurrentSchedulers(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		type key struct {
			job   string
			epoch uint64
		}
		var mu sync.Mutex
		owners := map[key][]string{}
		won := map[string]int{}
		var scheds []*Scheduler
		for _, name := range []string{"s1", "s2"} {
			s, _ := f.connect()
			sc, err := NewScheduler(f.open(s), name, f.log())
			if err != nil {
				t.Fatal(err)
			}
			sc.held = func() bool { return true }
			sc.onWrite = func(a Assignment) {
				mu.Lock()
				defer mu.Unlock()
				won[name]++
				if a.Box != "" {
					owners[key{a.Job, a.Epoch}] = append(owners[key{a.Job, a.Epoch}], name+"→"+a.Box)
				}
			}
			scheds = append(scheds, sc)
		}
		boxes := []string{"a", "b", "c", "d"}
		for _, b := range boxes {
			if _, err := write(ctx, f.admin.Nodes, b, nodeVersion, Node{Box: b, CPULimit: 4}, 0); err != nil {
				t.Fatal(err)
			}
		}
		for range 12 {
			f.submit(jobID("race"), Cost{Cores: 1})
		}
		const rounds = 30
		for round := range rounds {
			// A box vanishes (its record expired) or comes back.
			b := boxes[rand.IntN(len(boxes))]
			if _, err := f.admin.Nodes.Get(ctx, b); err == nil {
				f.admin.Nodes.Delete(ctx, b, 0)
			} else if _, err := write(ctx, f.admin.Nodes, b, nodeVersion, Node{Box: b, CPULimit: 4}, 0); err != nil {
				t.Fatalf("round %d: %v", round, err)
			}
			var wg sync.WaitGroup
			for _, sc := range scheds {
				wg.Go(func() { sc.reconcile(ctx) })
			}
			wg.Wait()
		}
		mu.Lock()
		defer mu.Unlock()
		for k, o := range owners {
			if len(o) > 1 {
				t.Errorf("job %s at epoch %d written with a box %d times: %v", k.job, k.epoch, len(o), o)
			}
		}
		t.Logf("%d rounds: assignment writes won: s1 %d, s2 %d; %d (job, epoch) owners", rounds, won["s1"], won["s2"], len(owners))
		if won["s1"] == 0 || won["s2"] == 0 || len(owners) < 12 {
			t.Errorf("the schedulers did not race: %v", won)
		}
	})
}

// TestDrain: a draining box's two live jobs move to the other boxes one at a time
// (the second move is written only once the first job runs on its new box), and the
// box gets no new job.
func TestDrain(t *testing.T) {
	backends(t, func(t *testing.T, f *fleet) {
		tm := f.timing
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		f.start("a", 8, false)
		f.start("b", 2, true)
		f.start("c", 2, false)
		f.leader(tm.TTL + slack)
		f.registered(tm.Heartbeat + slack)
		jobs := []string{jobID("live"), jobID("live")}
		for _, j := range jobs {
			f.submit(j, Cost{Cores: 1})
			if box, _ := f.running(j, 1, tm.Reconcile+slack); box != "a" {
				t.Fatalf("job %s on %s, want a (most free CPU)", j, box)
			}
		}
		type write struct {
			at time.Time
			a  Assignment
		}
		var mu sync.Mutex
		var drains []write
		wctx, wcancel := context.WithCancel(ctx)
		defer wcancel()
		events, err := f.admin.Assign.Watch(wctx, "")
		if err != nil {
			t.Fatal(err)
		}
		go func() {
			for e := range events {
				var a Assignment
				if e.Op == coord.OpPut {
					if _, err := coord.Decode(e.Value, assignVersion, &a); err == nil && a.Reason == "drain" {
						mu.Lock()
						drains = append(drains, write{time.Now(), a})
						mu.Unlock()
					}
				}
			}
		}()
		begin := time.Now()
		if err := Drain(ctx, f.admin, "a", true); err != nil {
			t.Fatal(err)
		}
		var moved []event
		for _, j := range jobs {
			moved = append(moved, f.ledger.waitFor(begin, 2*tm.Reconcile+2*tm.Heartbeat+2*slack, "move of "+j,
				func(e event) bool { return e.job == j && e.start && e.box != "a" }))
		}
		mu.Lock()
		defer mu.Unlock()
		if len(drains) != 2 {
			t.Fatalf("%d drain writes, want 2: %+v", len(drains), drains)
		}
		first := moved[0]
		if drains[0].a.Job != first.job {
			first = moved[1]
		}
		t.Logf("drain: %s → %s at %v, %s → %s at %v (second write %v after the first job started)",
			moved[0].job, moved[0].box, moved[0].at.Sub(begin).Round(time.Millisecond),
			moved[1].job, moved[1].box, moved[1].at.Sub(begin).Round(time.Millisecond),
			drains[1].at.Sub(first.at).Round(time.Millisecond))
		if drains[1].at.Before(first.at) {
			t.Errorf("second drain move written %v before the first job started on %s", first.at.Sub(drains[1].at), first.box)
		}
		if moved[0].box == moved[1].box {
			t.Errorf("both jobs moved to %s: b and c have room for one each", moved[0].box)
		}
		for _, e := range moved {
			if e.epoch != 2 {
				t.Errorf("job %s moved at epoch %d, want 2", e.job, e.epoch)
			}
		}
		j := jobID("live")
		f.submit(j, Cost{Cores: 0.5})
		if box, _ := f.running(j, 1, tm.Reconcile+slack); box == "a" {
			t.Errorf("new job %s placed on the draining box", j)
		}
	})
}
