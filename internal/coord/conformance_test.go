package coord_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/coord/coordtest"
)

// backend opens a fresh store for one test.
type backend struct {
	name string
	open func(t testing.TB) coord.Store
}

func boltBackend() backend {
	return backend{"bolt", func(t testing.TB) coord.Store {
		s, err := coord.OpenBolt(filepath.Join(t.TempDir(), "coord.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}}
}

// natsSingle is one embedded server with no client port (in-process connection), R1.
func natsSingle() backend {
	return backend{"nats1", func(t testing.TB) coord.Store {
		js, err := coord.NewJetStream(soloServer(t), 1)
		if err != nil {
			t.Fatal(err)
		}
		return js
	}}
}

// soloServer starts one embedded server with no client port and connects to it in
// process; the test's end stops both.
func soloServer(t testing.TB) *nats.Conn {
	t.Helper()
	s, err := coord.StartServer(coord.ServerConfig{Name: "solo", StoreDir: t.TempDir(), DontListen: true}, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	nc, err := nats.Connect("", nats.InProcessServer(s))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// natsCluster shares one 3-server cluster between the subtests of a test; each subtest
// uses its own buckets.
func natsCluster(t *testing.T) backend {
	var once sync.Once
	var c *coordtest.Cluster
	return backend{"nats3", func(st testing.TB) coord.Store {
		once.Do(func() {
			c = coordtest.StartCluster(t, 3)
			t.Logf("3-server cluster ready in %v", c.Ready.Round(time.Millisecond))
		})
		return c.Store(st, 3)
	}}
}

func backends(t *testing.T) []backend {
	return []backend{boltBackend(), natsSingle(), natsCluster(t)}
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func bucket(t *testing.T, s coord.Store, cfg coord.BucketConfig) coord.Bucket {
	t.Helper()
	b, err := s.Bucket(ctxFor(t, 30*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var conformance = []struct {
	name string
	run  func(t *testing.T, s coord.Store)
}{
	{"create once", testCreateOnce},
	{"update with a stale revision", testUpdateCAS},
	{"delete at a revision", testDeleteRevision},
	{"watch sees changes in order", testWatchOrder},
	{"list", testList},
	{"invalid names", testInvalidNames},
	{"ttl expiry", testTTLExpiry},
	{"concurrent cas: one winner per revision", testConcurrentCAS},
	{"concurrent increments lose nothing", testConcurrentIncrements},
	{"lease handover after expiry", testLeaseExpiry},
	{"lease never held twice", testLeaseExclusive},
}

// TestConformance runs every case against bbolt, one embedded NATS server (R1) and a
// cluster of three (R3).
func TestConformance(t *testing.T) {
	for _, be := range backends(t) {
		t.Run(be.name, func(t *testing.T) {
			for _, c := range conformance {
				t.Run(c.name, func(t *testing.T) { c.run(t, be.open(t)) })
			}
		})
	}
}

func testCreateOnce(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "jobs"})
	if _, err := b.Get(ctx, "j1"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("get before create: err %v, want ErrNotFound", err)
	}
	rev, err := b.Create(ctx, "j1", []byte(`{"a":1}`))
	if err != nil || rev == 0 {
		t.Fatalf("create: rev %d, err %v", rev, err)
	}
	if _, err := b.Create(ctx, "j1", []byte(`{"a":2}`)); !errors.Is(err, coord.ErrExists) {
		t.Fatalf("second create: err %v, want ErrExists", err)
	}
	e, err := b.Get(ctx, "j1")
	if err != nil || string(e.Value) != `{"a":1}` || e.Revision != rev || e.Key != "j1" || e.Op != coord.OpPut {
		t.Fatalf("get: %+v %v, want the first value at revision %d", e, err, rev)
	}
}

func testUpdateCAS(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "assign"})
	r1, err := b.Create(ctx, "j1", []byte("1"))
	if err != nil {
		t.Fatal(err)
	}
	r2, err := b.Update(ctx, "j1", []byte("2"), r1)
	if err != nil || r2 <= r1 {
		t.Fatalf("update at the latest revision: rev %d (was %d), err %v", r2, r1, err)
	}
	if _, err := b.Update(ctx, "j1", []byte("stale"), r1); !errors.Is(err, coord.ErrConflict) {
		t.Fatalf("update at a stale revision: err %v, want ErrConflict", err)
	}
	if _, err := b.Update(ctx, "nope", []byte("x"), r2); !errors.Is(err, coord.ErrConflict) {
		t.Fatalf("update of a missing key: err %v, want ErrConflict", err)
	}
	if _, err := b.Update(ctx, "new", []byte("x"), 0); err == nil {
		t.Fatal("update at revision 0 succeeded: it must not act as a create")
	}
	if e, err := b.Get(ctx, "j1"); err != nil || string(e.Value) != "2" || e.Revision != r2 {
		t.Fatalf("get: %+v %v, want 2 at %d", e, err, r2)
	}
}

func testDeleteRevision(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "del"})
	r1, _ := b.Create(ctx, "k", []byte("1"))
	r2, err := b.Update(ctx, "k", []byte("2"), r1)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "k", r1); !errors.Is(err, coord.ErrConflict) {
		t.Fatalf("delete at a stale revision: err %v, want ErrConflict", err)
	}
	if _, err := b.Get(ctx, "k"); err != nil {
		t.Fatalf("the failed delete removed the key: %v", err)
	}
	if err := b.Delete(ctx, "k", r2); err != nil {
		t.Fatalf("delete at the latest revision: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("get after delete: err %v, want ErrNotFound", err)
	}
	if err := b.Delete(ctx, "k", r2); !errors.Is(err, coord.ErrConflict) {
		t.Fatalf("delete of a deleted key at its old revision: err %v, want ErrConflict", err)
	}
	r3, err := b.Create(ctx, "k", []byte("3"))
	if err != nil || r3 <= r2 {
		t.Fatalf("create after delete: rev %d (last %d), err %v", r3, r2, err)
	}
	if err := b.Delete(ctx, "k", 0); err != nil {
		t.Fatalf("unconditional delete: %v", err)
	}
	if _, err := b.Get(ctx, "k"); !errors.Is(err, coord.ErrNotFound) {
		t.Fatalf("get after unconditional delete: err %v", err)
	}
}

// next reads one entry or fails after d.
func next(t *testing.T, ch <-chan coord.Entry, d time.Duration) coord.Entry {
	t.Helper()
	select {
	case e, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return e
	case <-time.After(d):
		t.Fatalf("no watch entry within %v", d)
	}
	return coord.Entry{}
}

func testWatchOrder(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "watch"})
	ra, _ := b.Create(ctx, "w.a", []byte("a1"))
	rz, _ := b.Create(ctx, "w.z", []byte("z"))
	if err := b.Delete(ctx, "w.z", rz); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "x.out", []byte("x")); err != nil {
		t.Fatal(err)
	}
	ch, err := b.Watch(ctx, "w.")
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch, 5*time.Second); e.Key != "w.a" || e.Op != coord.OpPut || string(e.Value) != "a1" || e.Revision != ra {
		t.Fatalf("initial entry %+v, want w.a=a1 at %d (deleted w.z and x.out must not appear)", e, ra)
	}
	if e := next(t, ch, 5*time.Second); e.Op != coord.OpSynced {
		t.Fatalf("after the initial entries: %+v, want OpSynced", e)
	}
	rb, _ := b.Create(ctx, "w.b", []byte("b1"))
	ra2, _ := b.Update(ctx, "w.a", []byte("a2"), ra)
	if err := b.Delete(ctx, "w.b", rb); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "x.other", []byte("x")); err != nil {
		t.Fatal(err)
	}
	rc, _ := b.Create(ctx, "w.c", []byte("c1"))
	want := []struct {
		key, val string
		op       coord.Op
		rev      uint64
	}{
		{"w.b", "b1", coord.OpPut, rb}, {"w.a", "a2", coord.OpPut, ra2},
		{"w.b", "", coord.OpDelete, 0}, {"w.c", "c1", coord.OpPut, rc},
	}
	var last uint64
	for i, w := range want {
		e := next(t, ch, 5*time.Second)
		if e.Key != w.key || e.Op != w.op || string(e.Value) != w.val || (w.rev != 0 && e.Revision != w.rev) || e.Revision <= last {
			t.Fatalf("change %d: %+v, want %s %s=%q at %d (after %d)", i, e, w.op, w.key, w.val, w.rev, last)
		}
		last = e.Revision
	}
}

func testList(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "list"})
	for _, k := range []string{"c", "b.y", "a", "b.x", "gone"} {
		if _, err := b.Create(ctx, k, []byte("v-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Delete(ctx, "gone", 0); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{"", []string{"a", "b.x", "b.y", "c"}},
		{"b.", []string{"b.x", "b.y"}},
		{"z.", nil},
	} {
		got, err := b.List(ctx, tc.prefix)
		if err != nil {
			t.Fatalf("list %q: %v", tc.prefix, err)
		}
		var keys []string
		for _, e := range got {
			keys = append(keys, e.Key)
			if string(e.Value) != "v-"+e.Key || e.Revision == 0 {
				t.Errorf("list %q: entry %+v", tc.prefix, e)
			}
		}
		if fmt.Sprint(keys) != fmt.Sprint(tc.want) {
			t.Errorf("list %q: %v, want %v", tc.prefix, keys, tc.want)
		}
	}
	if _, err := b.List(ctx, "b"); err == nil {
		t.Error("list with a prefix that does not end in '.' succeeded")
	}
}

func testInvalidNames(t *testing.T, s coord.Store) {
	ctx := ctxFor(t, 20*time.Second)
	for _, cfg := range []coord.BucketConfig{{Name: "a.b"}, {Name: ""}, {Name: "ok", TTL: 10 * time.Millisecond}} {
		if _, err := s.Bucket(ctx, cfg); err == nil {
			t.Errorf("bucket %+v accepted", cfg)
		}
	}
	b := bucket(t, s, coord.BucketConfig{Name: "names"})
	for _, k := range []string{"", "a..b", ".a", "a.", "a b", "a*", "a>"} {
		if _, err := b.Create(ctx, k, []byte("x")); err == nil {
			t.Errorf("key %q accepted", k)
		}
	}
}

func testTTLExpiry(t *testing.T, s coord.Store) {
	const ttl = time.Second
	ctx := ctxFor(t, 20*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "nodes", TTL: ttl})
	ch, err := b.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if e := next(t, ch, 5*time.Second); e.Op != coord.OpSynced {
		t.Fatalf("empty bucket's first watch entry: %+v", e)
	}
	rDead, _ := b.Create(ctx, "box-dead", []byte("hb"))
	written := time.Now()
	rLive, err := b.Create(ctx, "box-live", []byte("hb"))
	if err != nil {
		t.Fatal(err)
	}
	// box-live heartbeats every ttl/4; box-dead never again.
	hb := time.NewTicker(ttl / 4)
	defer hb.Stop()
	deadline := time.After(ttl + 2*time.Second)
	expired := time.Duration(0)
	for expired == 0 {
		select {
		case <-hb.C:
			if rLive, err = b.Update(ctx, "box-live", []byte("hb"), rLive); err != nil {
				t.Fatalf("heartbeat: %v", err)
			}
		case e := <-ch:
			switch {
			case e.Op == coord.OpExpire && e.Key == "box-dead":
				expired = time.Since(written)
			case e.Op != coord.OpPut:
				t.Fatalf("unexpected watch entry %+v", e)
			}
		case <-deadline:
			t.Fatalf("no OpExpire for box-dead within ttl %v + 2 s", ttl)
		}
	}
	t.Logf("ttl %v: the watcher saw the expiry %v after the last write", ttl, expired.Round(time.Millisecond))
	if expired < ttl-50*time.Millisecond {
		t.Errorf("expired after %v, before the ttl %v", expired, ttl)
	}
	if _, err := b.Get(ctx, "box-dead"); !errors.Is(err, coord.ErrNotFound) {
		t.Errorf("get of the expired key: err %v, want ErrNotFound", err)
	}
	if _, err := b.Get(ctx, "box-live"); err != nil {
		t.Errorf("the key written every ttl/4 expired: %v", err)
	}
	if _, err := b.Update(ctx, "box-dead", []byte("late"), rDead); !errors.Is(err, coord.ErrConflict) {
		t.Errorf("update of the expired key: err %v, want ErrConflict", err)
	}
	if r, err := b.Create(ctx, "box-dead", []byte("back")); err != nil || r <= rDead {
		t.Errorf("create after expiry: rev %d (was %d), err %v", r, rDead, err)
	}
}

func testConcurrentCAS(t *testing.T, s coord.Store) {
	const workers, rounds = 8, 15
	ctx := ctxFor(t, 60*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "cas"})
	rev, err := b.Create(ctx, "job", []byte("start"))
	if err != nil {
		t.Fatal(err)
	}
	for round := range rounds {
		var wg sync.WaitGroup
		gate := make(chan struct{})
		revs := make([]uint64, workers)
		errs := make([]error, workers)
		for w := range workers {
			wg.Go(func() {
				<-gate
				revs[w], errs[w] = b.Update(ctx, "job", fmt.Appendf(nil, "r%d-w%d", round, w), rev)
			})
		}
		close(gate)
		wg.Wait()
		winner := -1
		for w := range workers {
			switch {
			case errs[w] == nil && winner >= 0:
				t.Fatalf("round %d: workers %d and %d both updated revision %d", round, winner, w, rev)
			case errs[w] == nil:
				winner = w
			case !errors.Is(errs[w], coord.ErrConflict):
				t.Fatalf("round %d: worker %d: %v, want ErrConflict", round, w, errs[w])
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: no worker updated revision %d", round, rev)
		}
		e, err := b.Get(ctx, "job")
		if err != nil || e.Revision != revs[winner] || string(e.Value) != fmt.Sprintf("r%d-w%d", round, winner) {
			t.Fatalf("round %d: get %+v %v, want the winner's value at %d", round, e, err, revs[winner])
		}
		rev = revs[winner]
	}
}

// testConcurrentIncrements: read-modify-write with retry on conflict from several
// goroutines; a lost update would show as a smaller total.
func testConcurrentIncrements(t *testing.T, s coord.Store) {
	const workers, each = 4, 20
	ctx := ctxFor(t, 60*time.Second)
	b := bucket(t, s, coord.BucketConfig{Name: "counter"})
	if _, err := b.Create(ctx, "n", []byte("0")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conflicts sync.Map
	for w := range workers {
		wg.Go(func() {
			for range each {
				for {
					e, err := b.Get(ctx, "n")
					if err != nil {
						t.Error(err)
						return
					}
					var n int
					fmt.Sscan(string(e.Value), &n)
					_, err = b.Update(ctx, "n", fmt.Append(nil, n+1), e.Revision)
					if err == nil {
						break
					}
					if !errors.Is(err, coord.ErrConflict) {
						t.Error(err)
						return
					}
					conflicts.Store(w, true)
				}
			}
		})
	}
	wg.Wait()
	e, err := b.Get(ctx, "n")
	if err != nil || string(e.Value) != fmt.Sprint(workers*each) {
		t.Fatalf("counter %q %v, want %d", e.Value, err, workers*each)
	}
}
