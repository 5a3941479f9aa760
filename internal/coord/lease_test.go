package coord_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/coord"
)

func newLease(t *testing.T, b coord.Bucket, ttl time.Duration, holder string) *coord.Lease {
	t.Helper()
	l, err := coord.NewLease(b, ttl, "scheduler", holder)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// testLeaseExpiry: the holder stops renewing (a dead box); another contender that is
// campaigning gets the lease within TTL + 1 s of the holder's last write.
func testLeaseExpiry(t *testing.T, s coord.Store) {
	const ttl = time.Second
	ctx := ctxFor(t, 30*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "leader", TTL: ttl})
	a, c := newLease(t, b, ttl, "box-a"), newLease(t, b, ttl, "box-c")
	if ok, err := a.Acquire(ctx); !ok || err != nil {
		t.Fatalf("box-a acquire: %v %v", ok, err)
	}
	if ok, err := c.Acquire(ctx); ok || err != nil {
		t.Fatalf("box-c acquired a held lease: %v %v", ok, err)
	}
	if err := a.Renew(ctx); err != nil {
		t.Fatalf("renew: %v", err)
	}
	lastWrite := time.Now()
	if !a.Held() {
		t.Fatal("box-a does not hold the lease it renewed")
	}
	if err := c.Campaign(ctx, 250*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	took := time.Since(lastWrite)
	t.Logf("ttl %v: box-c got the lease %v after box-a's last write", ttl, took.Round(time.Millisecond))
	if took > ttl+time.Second {
		t.Errorf("handover took %v, want ≤ ttl + 1 s", took)
	}
	if a.Held() {
		t.Error("box-a still holds the lease after box-c got it")
	}
	if c.Term() <= a.Term() {
		t.Errorf("term %d of the new holder is not above %d", c.Term(), a.Term())
	}
	if err := a.Renew(ctx); !errors.Is(err, coord.ErrLost) {
		t.Errorf("renew by the old holder: err %v, want ErrLost", err)
	}
	if err := c.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ok, err := a.Acquire(ctx); !ok || err != nil {
		t.Errorf("acquire after release: %v %v", ok, err)
	}
}

type holding struct {
	who        string
	start, end time.Time
}

// testLeaseExclusive: three contenders take turns; each holds for a random moment,
// renews, then releases, or (every 8th turn) abandons it to expire. Each records the
// interval it believed it held the lease: from Acquire's return to its deadline or the
// moment before Release. No two intervals may overlap.
func testLeaseExclusive(t *testing.T, s coord.Store) {
	const ttl, turns = 500 * time.Millisecond, 24
	ctx := ctxFor(t, 60*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "leader_x", TTL: ttl})
	var mu sync.Mutex
	var held []holding
	started := 0
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 3 {
		l := newLease(t, b, ttl, fmt.Sprintf("box-%d", i))
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				cctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
				err := l.Campaign(cctx, 50*time.Millisecond)
				cancel()
				if err != nil {
					continue
				}
				mu.Lock()
				turn := started
				started++
				mu.Unlock()
				h := hold(ctx, l, turn)
				mu.Lock()
				held = append(held, h)
				if len(held) == turns {
					close(stop)
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	sort.Slice(held, func(i, j int) bool { return held[i].start.Before(held[j].start) })
	for i := 1; i < len(held); i++ {
		if p, h := held[i-1], held[i]; h.start.Before(p.end) {
			t.Fatalf("%s held the lease from %v while %s held it until %v", h.who, h.start, p.who, p.end)
		}
	}
	if len(held) < turns {
		t.Fatalf("%d turns, want %d", len(held), turns)
	}
}

// hold keeps the lease for a random short time with one renewal, then releases it or
// (every 8th turn) just stops, as a box that dies.
func hold(ctx context.Context, l *coord.Lease, turn int) holding {
	h := holding{start: time.Now()}
	time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
	l.Renew(ctx) // a failure (ErrLost) only shortens the holding: Deadline stays
	time.Sleep(time.Duration(rand.IntN(60)) * time.Millisecond)
	h.end = l.Deadline()
	if turn%8 == 7 {
		for l.Held() {
			time.Sleep(10 * time.Millisecond)
		}
	} else if now := time.Now(); now.Before(h.end) {
		h.end = now
		l.Release(ctx)
	}
	h.who = fmt.Sprintf("term %d", l.Term())
	return h
}
