package coord_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// TestGetWaitsForResponders: a direct get that finds no responder (the bucket's replicas
// have not yet applied a fresh stream) is retried until one answers or ctx ends, not
// returned as an error. The test takes the bucket's direct-get responders away by
// turning AllowDirect off under a client that has cached it on, then back on.
func TestGetWaitsForResponders(t *testing.T) {
	nc := soloServer(t)
	store, err := coord.NewJetStream(nc, 1)
	if err != nil {
		t.Fatal(err)
	}
	b := bucket(t, store, coord.BucketConfig{Name: "jobs"})
	ctx := ctxFor(t, 20*time.Second)
	if _, err := b.Create(ctx, "j1", []byte("v")); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	setDirect := func(on bool) error {
		st, err := js.Stream(ctx, "KV_jobs")
		if err != nil {
			return err
		}
		cfg := st.CachedInfo().Config
		cfg.AllowDirect = on
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("allow direct %v: %w", on, err)
		}
		return nil
	}
	if err := setDirect(false); err != nil {
		t.Fatal(err)
	}

	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = b.Get(short, "j1")
	cancel()
	if !errors.Is(err, nats.ErrNoResponders) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("get with no responder until the deadline: err %v, want no responders and the deadline", err)
	}

	back := make(chan error, 1)
	go func() {
		time.Sleep(300 * time.Millisecond)
		back <- setDirect(true)
	}()
	e, err := b.Get(ctx, "j1")
	if err := <-back; err != nil {
		t.Fatal(err)
	}
	if err != nil || string(e.Value) != "v" {
		t.Fatalf("get once a responder is back: %+v %v", e, err)
	}
}
