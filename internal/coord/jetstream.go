package coord

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream is the fleet backend: each bucket is a JetStream KV bucket with History 1,
// file storage and the store's replica count; a TTL bucket has the same MaxAge and
// keeps expiry markers, which is how watchers learn that a key expired (OpExpire).
type JetStream struct {
	js       jetstream.JetStream
	replicas int
}

// NewJetStream uses nc (which the caller keeps and closes) with buckets of replicas
// copies: 3 on the fleet's three core boxes, 1 on a single server.
func NewJetStream(nc *nats.Conn, replicas int) (*JetStream, error) {
	if replicas < 1 || replicas > 5 {
		return nil, fmt.Errorf("coord: replicas %d: want 1 to 5", replicas)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("coord: jetstream: %w", err)
	}
	return &JetStream{js: js, replicas: replicas}, nil
}

// Close does nothing: the connection belongs to the caller.
func (j *JetStream) Close() error { return nil }

// Bucket creates or updates the KV bucket. A fresh cluster needs a moment to elect its
// meta leader and a single long call just waits, so it retries with 2 s tries until ctx
// ends.
func (j *JetStream) Bucket(ctx context.Context, cfg BucketConfig) (Bucket, error) {
	if err := checkBucket(cfg); err != nil {
		return nil, fmt.Errorf("coord: %w", err)
	}
	kc := jetstream.KeyValueConfig{
		Bucket: cfg.Name, History: 1, Storage: jetstream.FileStorage, Replicas: j.replicas, TTL: cfg.TTL,
	}
	if cfg.TTL > 0 {
		kc.LimitMarkerTTL = max(time.Minute, cfg.TTL)
	}
	for {
		try, cancel := context.WithTimeout(ctx, 2*time.Second)
		kv, err := j.js.CreateOrUpdateKeyValue(try, kc)
		cancel()
		if err == nil {
			return &jsBucket{kv: kv, name: cfg.Name}, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("coord: create bucket %s: %w", cfg.Name, errors.Join(err, ctx.Err()))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

type jsBucket struct {
	kv   jetstream.KeyValue
	name string
}

func (b *jsBucket) Name() string { return b.name }

func (b *jsBucket) Get(ctx context.Context, key string) (Entry, error) {
	if err := checkKey(b.name, key); err != nil {
		return Entry{}, fmt.Errorf("coord: get: %w", err)
	}
	e, err := b.kv.Get(ctx, key)
	for errors.Is(err, nats.ErrNoResponders) {
		// A bucket's replicas answer direct gets once each has applied the new stream,
		// a moment after the create returns (and again after a replica restarts);
		// publishes already retry the same way inside nats.go.
		select {
		case <-ctx.Done():
			return Entry{}, fmt.Errorf("coord: get %s/%s: %w", b.name, key, errors.Join(err, ctx.Err()))
		case <-time.After(50 * time.Millisecond):
		}
		e, err = b.kv.Get(ctx, key)
	}
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return Entry{}, fmt.Errorf("coord: get %s/%s: %w", b.name, key, ErrNotFound)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("coord: get %s/%s: %w", b.name, key, err)
	}
	return Entry{Key: key, Value: e.Value(), Revision: e.Revision(), Op: OpPut}, nil
}

func (b *jsBucket) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	if err := checkKey(b.name, key); err != nil {
		return 0, fmt.Errorf("coord: create: %w", err)
	}
	rev, err := b.kv.Create(ctx, key, value)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, fmt.Errorf("coord: create %s/%s: %w (%v)", b.name, key, ErrExists, err)
	}
	if err != nil {
		return 0, fmt.Errorf("coord: create %s/%s: %w", b.name, key, err)
	}
	return rev, nil
}

func (b *jsBucket) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := checkKey(b.name, key); err != nil {
		return 0, fmt.Errorf("coord: update: %w", err)
	}
	if rev == 0 {
		// JetStream would take revision 0 as "the key must not exist".
		return 0, fmt.Errorf("coord: update %s/%s: revision 0: use Create", b.name, key)
	}
	n, err := b.kv.Update(ctx, key, value, rev)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return 0, fmt.Errorf("coord: update %s/%s at revision %d: %w (%v)", b.name, key, rev, ErrConflict, err)
	}
	if err != nil {
		return 0, fmt.Errorf("coord: update %s/%s: %w", b.name, key, err)
	}
	return n, nil
}

func (b *jsBucket) Delete(ctx context.Context, key string, rev uint64) error {
	if err := checkKey(b.name, key); err != nil {
		return fmt.Errorf("coord: delete: %w", err)
	}
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := b.kv.Delete(ctx, key, opts...)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return fmt.Errorf("coord: delete %s/%s at revision %d: %w (%v)", b.name, key, rev, ErrConflict, err)
	}
	if err != nil {
		return fmt.Errorf("coord: delete %s/%s: %w", b.name, key, err)
	}
	return nil
}

func watchFilter(prefix string) string {
	if prefix == "" {
		return ">"
	}
	return prefix + ">"
}

// convert maps a KV entry; nil is the end of the initial values. A purge is only ever
// an expiry marker here: this package never purges.
func convert(e jetstream.KeyValueEntry) Entry {
	if e == nil {
		return Entry{Op: OpSynced}
	}
	out := Entry{Key: e.Key(), Revision: e.Revision()}
	switch e.Operation() {
	case jetstream.KeyValuePut:
		out.Op, out.Value = OpPut, e.Value()
	case jetstream.KeyValueDelete:
		out.Op = OpDelete
	default:
		out.Op = OpExpire
	}
	return out
}

func (b *jsBucket) Watch(ctx context.Context, prefix string) (<-chan Entry, error) {
	if err := checkPrefix(b.name, prefix); err != nil {
		return nil, fmt.Errorf("coord: watch: %w", err)
	}
	w, err := b.kv.Watch(ctx, watchFilter(prefix))
	if err != nil {
		return nil, fmt.Errorf("coord: watch %s: %w", b.name, err)
	}
	out := make(chan Entry)
	go func() {
		defer close(out)
		defer w.Stop()
		synced := false
		for {
			var e jetstream.KeyValueEntry
			var ok bool
			select {
			case <-ctx.Done():
				return
			case e, ok = <-w.Updates():
				if !ok {
					return
				}
			}
			c := convert(e)
			if !synced && (c.Op == OpDelete || c.Op == OpExpire) {
				continue // the initial values list live keys only, as on bbolt
			}
			synced = synced || c.Op == OpSynced
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out, nil
}

// List reads the initial values of a watch: one consumer, values and revisions from
// one pass (a Keys call then a Get per key could miss a concurrent delete).
func (b *jsBucket) List(ctx context.Context, prefix string) ([]Entry, error) {
	if err := checkPrefix(b.name, prefix); err != nil {
		return nil, fmt.Errorf("coord: list: %w", err)
	}
	w, err := b.kv.Watch(ctx, watchFilter(prefix), jetstream.IgnoreDeletes())
	if err != nil {
		return nil, fmt.Errorf("coord: list %s: %w", b.name, err)
	}
	defer w.Stop()
	var out []Entry
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("coord: list %s: %w", b.name, ctx.Err())
		case e, ok := <-w.Updates():
			if !ok {
				return nil, fmt.Errorf("coord: list %s: watch ended", b.name)
			}
			if e == nil {
				sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
				return out, nil
			}
			out = append(out, convert(e))
		}
	}
}

// ServerConfig is an embedded NATS server: one per core box.
type ServerConfig struct {
	// Name is the server's name in the cluster: the box id.
	Name     string
	StoreDir string
	// Host and Port are the client listener; Port -1 picks a free one. DontListen opens
	// no client port at all (clients then use nats.InProcessServer).
	Host       string
	Port       int
	DontListen bool
	// ClusterName, ClusterHost and ClusterPort are the route listener, Routes the other
	// servers' route addresses ("nats-route://host:port"). No ClusterPort: standalone.
	ClusterName string
	ClusterHost string
	ClusterPort int
	Routes      []string
	// NoAdvertise keeps the other servers' client URLs from the clients: a client
	// reaches the cluster only by the URLs it was given (a proxy, a NAT).
	NoAdvertise bool
	// Log sends the server's own log lines to stderr.
	Log bool
}

// StartServer starts an embedded nats-server with JetStream and waits up to ready for
// it to accept clients. Every write is fsynced (SyncAlways): coordination writes are a
// few a second, and the default lazy fsync lost acknowledged writes in Jepsen's 2.12.1
// analysis.
func StartServer(cfg ServerConfig, ready time.Duration) (*server.Server, error) {
	if err := os.MkdirAll(cfg.StoreDir, 0o700); err != nil {
		return nil, fmt.Errorf("coord: nats store: %w", err)
	}
	opts := &server.Options{
		ServerName: cfg.Name, Host: cfg.Host, Port: cfg.Port, DontListen: cfg.DontListen,
		JetStream: true, StoreDir: cfg.StoreDir, SyncAlways: true,
		NoLog: !cfg.Log, NoSigs: true,
	}
	if cfg.ClusterPort != 0 {
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: cfg.ClusterHost, Port: cfg.ClusterPort, NoAdvertise: cfg.NoAdvertise}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("coord: route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("coord: nats server %s: %w", cfg.Name, err)
	}
	if cfg.Log {
		s.ConfigureLogger()
	}
	s.Start()
	if !s.ReadyForConnections(ready) {
		s.Shutdown()
		return nil, fmt.Errorf("coord: nats server %s not ready after %v", cfg.Name, ready)
	}
	return s, nil
}
