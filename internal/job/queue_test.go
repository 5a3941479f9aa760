package job

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/store"
	"github.com/transcoderd/transcoderd/profiles"
)

// TestQueue checks that live jobs asking to queue wait in line for room under the CPU
// cap, first come first served, start when room frees up, can be removed while they
// wait, and are still queued after a daemon restart. The sources are unreachable: a
// job holds its reservation while it retries, which is all the cap sees.
func TestQueue(t *testing.T) {
	ladders := ladder.NewStore(filepath.Join(t.TempDir(), "none"), profiles.FS)
	cost := func(name string) float64 {
		l, err := ladders.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		return cpucap.Estimate(nominalPlan(l), l.Video.Preset)
	}
	small, big := cost("test"), cost("default")
	// Room for the big job alone, or two small ones, but not a small one and the big one.
	limit := big + small/2
	if big < 1.5*small {
		t.Fatalf("test setup: default ladder %.2f cores, test ladder %.2f", big, small)
	}
	data := t.TempDir()
	st, err := store.Open(data)
	if err != nil {
		t.Fatal(err)
	}
	newManager := func(st *store.Store) *Manager {
		return testManager(t, Config{Output: filepath.Join(data, "out"), Ladders: ladders, CPU: cpucap.New(limit, t.TempDir()), Store: st})
	}
	m := newManager(st)
	ctx := context.Background()
	create := func(id, ladderName string, queue bool) (*Job, error) {
		return m.Create(ctx, Request{Source: "rtmp://127.0.0.1:1/live/" + id, Ladder: ladderName, ID: id, Queue: queue})
	}
	state := func(id string) State {
		t.Helper()
		j, err := m.Get(id)
		if err != nil {
			t.Fatal(err)
		}
		return j.View().State
	}

	if _, err := create("a", "test", false); err != nil {
		t.Fatal(err)
	}
	if _, err := create("refused", "default", false); !errors.Is(err, cpucap.ErrOverCapacity) {
		t.Fatalf("over the cap without queue: %v", err)
	}
	b, err := create("b", "default", true)
	if err != nil {
		t.Fatal(err)
	}
	if v := b.View(); v.State != Queued || !strings.Contains(v.Waiting, "cores") || !hasEvent(b, "queued") {
		t.Fatalf("queued job: %+v", v)
	}
	// c would fit beside a, but b came first.
	if _, err := create("c", "test", false); !errors.Is(err, cpucap.ErrOverCapacity) || !strings.Contains(err.Error(), "queued before") {
		t.Fatalf("a job behind the queue: %v", err)
	}
	if _, err := create("d", "test", true); err != nil || state("d") != Queued {
		t.Fatalf("second queued job: %v %s", err, state("d"))
	}

	// a ends: b starts, d still waits (b and d do not fit together).
	if _, err := m.Stop(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if s := state("b"); s == Queued || s.Ended() {
		t.Fatalf("b after a ended: %s", s)
	}
	if !hasEvent(b, "admitted") {
		t.Errorf("b has no admitted event")
	}
	if state("d") != Queued {
		t.Fatalf("d: %s, want still queued", state("d"))
	}

	// The daemon restarts: b resumes, d is still queued.
	m.Close()
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if st, err = store.Open(data); err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	m = newManager(st)
	defer m.Close()
	if err := m.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	if s := state("b"); s == Queued || s.Ended() {
		t.Errorf("b after the restart: %s", s)
	}
	if state("d") != Queued {
		t.Fatalf("d after the restart: %s, want queued", state("d"))
	}

	// d leaves the queue before it starts.
	v, err := m.Stop(ctx, "d")
	if err != nil || v.State != Finished || v.Waiting != "" {
		t.Fatalf("stopping queued d: %v %+v", err, v)
	}
	if _, err := m.Stop(ctx, "d"); err != nil {
		t.Fatalf("forgetting ended d: %v", err)
	}
	if _, err := m.Get("d"); !errors.Is(err, ErrNotFound) {
		t.Errorf("d still listed: %v", err)
	}
}

// TestQueueWakes checks that removing the job at the head of the queue lets the ones
// behind it start at once, and that a job bigger than the whole limit is refused
// rather than queued forever in front of the others.
func TestQueueWakes(t *testing.T) {
	ladders := ladder.NewStore(filepath.Join(t.TempDir(), "none"), profiles.FS)
	l, _ := ladders.Get("test")
	small := cpucap.Estimate(nominalPlan(l), l.Video.Preset)
	l, _ = ladders.Get("default")
	big := cpucap.Estimate(nominalPlan(l), l.Video.Preset)
	ctx := context.Background()
	newManager := func(limit float64) *Manager {
		return testManager(t, Config{Ladders: ladders, CPU: cpucap.New(limit, t.TempDir())})
	}
	create := func(m *Manager, id, ladderName string) (*Job, error) {
		return m.Create(ctx, Request{Source: "rtmp://127.0.0.1:1/live/" + id, Ladder: ladderName, ID: id, Queue: true})
	}

	m := newManager(big + small/2)
	for _, c := range []struct{ id, ladder string }{{"s1", "test"}, {"b", "default"}, {"s2", "test"}} {
		if _, err := create(m, c.id, c.ladder); err != nil {
			t.Fatal(err)
		}
	}
	s2, _ := m.Get("s2")
	if s2.View().State != Queued || !strings.Contains(s2.View().Waiting, "1 live job(s) are queued before") {
		t.Fatalf("s2 behind b: %+v", s2.View())
	}
	if _, err := m.Stop(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if s := s2.View().State; s == Queued || s.Ended() {
		t.Errorf("s2 after b left the queue: %s", s)
	}

	m = newManager(small * 1.5)
	if _, err := create(m, "huge", "default"); !errors.Is(err, cpucap.ErrOverCapacity) || !strings.Contains(err.Error(), "more than the whole limit") {
		t.Errorf("a job bigger than the limit, queued: %v", err)
	}
	if len(m.List()) != 0 {
		t.Errorf("the refused job is listed")
	}
}
