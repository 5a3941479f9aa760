package coord

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltRoot holds one sub-bucket per coord bucket. A record is the revision (8 bytes,
// big endian), the write time (unix ns, 8 bytes) and the value.
var boltRoot = []byte("coord")

// BoltStore is the one-box backend: buckets in a bbolt file, revisions from each
// bucket's sequence, watches by broadcast inside this process, expiry by a sweeper per
// TTL bucket (and hidden at once from Get, List and Create when the sweeper is late).
// Expiry compares wall-clock write times, so it survives a restart.
type BoltStore struct {
	db     *bolt.DB
	ownsDB bool

	wmu      sync.Mutex // orders writes with their broadcast, and watch registration
	watchers map[string]map[*boltWatch]struct{}
	ttls     map[string]time.Duration

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// OpenBolt opens (or creates) the bbolt file at path.
func OpenBolt(path string) (*BoltStore, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("coord: open %s: %w", path, err)
	}
	s, err := NewBolt(db)
	if err != nil {
		db.Close()
		return nil, err
	}
	s.ownsDB = true
	return s, nil
}

// NewBolt keeps the buckets in an open bbolt database (under its "coord" bucket); the
// caller keeps closing db.
func NewBolt(db *bolt.DB) (*BoltStore, error) {
	err := db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(boltRoot)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("coord: init %s: %w", db.Path(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &BoltStore{
		db: db, watchers: map[string]map[*boltWatch]struct{}{}, ttls: map[string]time.Duration{},
		ctx: ctx, cancel: cancel,
	}, nil
}

// Close stops the sweepers and ends every watch, then closes the file if OpenBolt
// opened it.
func (s *BoltStore) Close() error {
	s.cancel()
	s.wg.Wait()
	if s.ownsDB {
		return s.db.Close()
	}
	return nil
}

// Bucket creates the bucket if needed; a TTL bucket gets its sweeper once.
func (s *BoltStore) Bucket(_ context.Context, cfg BucketConfig) (Bucket, error) {
	if err := checkBucket(cfg); err != nil {
		return nil, fmt.Errorf("coord: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		_, err := tx.Bucket(boltRoot).CreateBucketIfNotExists([]byte(cfg.Name))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("coord: create bucket %s: %w", cfg.Name, err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if old, ok := s.ttls[cfg.Name]; ok && old != cfg.TTL {
		return nil, fmt.Errorf("coord: bucket %s is open with ttl %v, not %v", cfg.Name, old, cfg.TTL)
	}
	if _, ok := s.ttls[cfg.Name]; !ok && cfg.TTL > 0 {
		s.wg.Add(1)
		go s.sweep(cfg.Name, cfg.TTL)
	}
	s.ttls[cfg.Name] = cfg.TTL
	return &boltBucket{s: s, name: cfg.Name, nameB: []byte(cfg.Name), ttl: cfg.TTL}, nil
}

type boltBucket struct {
	s     *BoltStore
	name  string
	nameB []byte
	ttl   time.Duration
}

func (b *boltBucket) Name() string { return b.name }

type boltRecord struct {
	rev     uint64
	written int64
	value   []byte
}

func decodeRecord(v []byte) boltRecord {
	return boltRecord{
		rev:     binary.BigEndian.Uint64(v[0:8]),
		written: int64(binary.BigEndian.Uint64(v[8:16])),
		value:   append([]byte(nil), v[16:]...),
	}
}

func encodeRecord(rev uint64, written int64, value []byte) []byte {
	out := make([]byte, 16+len(value))
	binary.BigEndian.PutUint64(out[0:8], rev)
	binary.BigEndian.PutUint64(out[8:16], uint64(written))
	copy(out[16:], value)
	return out
}

func (b *boltBucket) expired(r boltRecord, now time.Time) bool {
	return b.ttl > 0 && now.UnixNano()-r.written >= int64(b.ttl)
}

// lookup returns the key's live record, or ok false.
func (b *boltBucket) lookup(bk *bolt.Bucket, key string, now time.Time) (boltRecord, bool) {
	v := bk.Get([]byte(key))
	if v == nil {
		return boltRecord{}, false
	}
	r := decodeRecord(v)
	if b.expired(r, now) {
		return boltRecord{}, false
	}
	return r, true
}

func (b *boltBucket) Get(_ context.Context, key string) (Entry, error) {
	if err := checkKey(b.name, key); err != nil {
		return Entry{}, fmt.Errorf("coord: get: %w", err)
	}
	var e Entry
	found := false
	err := b.s.db.View(func(tx *bolt.Tx) error {
		r, ok := b.lookup(tx.Bucket(boltRoot).Bucket(b.nameB), key, time.Now())
		if ok {
			found = true
			e = Entry{Key: key, Value: r.value, Revision: r.rev, Op: OpPut}
		}
		return nil
	})
	if err != nil {
		return Entry{}, fmt.Errorf("coord: get %s/%s: %w", b.name, key, err)
	}
	if !found {
		return Entry{}, fmt.Errorf("coord: get %s/%s: %w", b.name, key, ErrNotFound)
	}
	return e, nil
}

// write runs one read-modify-write of key in a transaction and broadcasts the events
// it produced after the commit, under wmu so that watchers see commit order.
func (b *boltBucket) write(key string, fn func(bk *bolt.Bucket, cur boltRecord, live bool, now time.Time) ([]Entry, error)) ([]Entry, error) {
	b.s.wmu.Lock()
	defer b.s.wmu.Unlock()
	var events []Entry
	err := b.s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltRoot).Bucket(b.nameB)
		now := time.Now()
		var pre []Entry
		cur, live := b.lookup(bk, key, now)
		if v := bk.Get([]byte(key)); v != nil && !live {
			// Expired but not swept yet: remove it first, as the sweeper would have.
			exp, err := b.removeExpired(bk, key)
			if err != nil {
				return err
			}
			pre = append(pre, exp)
		}
		evs, err := fn(bk, cur, live, now)
		if err != nil {
			return err
		}
		events = append(pre, evs...)
		return nil
	})
	if err == nil {
		b.s.broadcast(b.name, events)
	}
	return events, err
}

func (b *boltBucket) removeExpired(bk *bolt.Bucket, key string) (Entry, error) {
	rev, err := bk.NextSequence()
	if err != nil {
		return Entry{}, err
	}
	if err := bk.Delete([]byte(key)); err != nil {
		return Entry{}, err
	}
	return Entry{Key: key, Revision: rev, Op: OpExpire}, nil
}

func (b *boltBucket) put(bk *bolt.Bucket, key string, value []byte, now time.Time) ([]Entry, error) {
	rev, err := bk.NextSequence()
	if err != nil {
		return nil, err
	}
	if err := bk.Put([]byte(key), encodeRecord(rev, now.UnixNano(), value)); err != nil {
		return nil, err
	}
	return []Entry{{Key: key, Value: append([]byte(nil), value...), Revision: rev, Op: OpPut}}, nil
}

func lastRev(events []Entry) uint64 {
	if len(events) == 0 {
		return 0
	}
	return events[len(events)-1].Revision
}

func (b *boltBucket) Create(_ context.Context, key string, value []byte) (uint64, error) {
	if err := checkKey(b.name, key); err != nil {
		return 0, fmt.Errorf("coord: create: %w", err)
	}
	events, err := b.write(key, func(bk *bolt.Bucket, cur boltRecord, live bool, now time.Time) ([]Entry, error) {
		if live {
			return nil, fmt.Errorf("at revision %d: %w", cur.rev, ErrExists)
		}
		return b.put(bk, key, value, now)
	})
	if err != nil {
		return 0, fmt.Errorf("coord: create %s/%s: %w", b.name, key, err)
	}
	return lastRev(events), nil
}

func (b *boltBucket) Update(_ context.Context, key string, value []byte, rev uint64) (uint64, error) {
	if err := checkKey(b.name, key); err != nil {
		return 0, fmt.Errorf("coord: update: %w", err)
	}
	if rev == 0 {
		return 0, fmt.Errorf("coord: update %s/%s: revision 0: use Create", b.name, key)
	}
	events, err := b.write(key, func(bk *bolt.Bucket, cur boltRecord, live bool, now time.Time) ([]Entry, error) {
		if !live || cur.rev != rev {
			return nil, conflict(rev, cur.rev, live)
		}
		return b.put(bk, key, value, now)
	})
	if err != nil {
		return 0, fmt.Errorf("coord: update %s/%s: %w", b.name, key, err)
	}
	return lastRev(events), nil
}

func conflict(want, have uint64, live bool) error {
	if !live {
		return fmt.Errorf("want revision %d, key is gone: %w", want, ErrConflict)
	}
	return fmt.Errorf("want revision %d, latest is %d: %w", want, have, ErrConflict)
}

func (b *boltBucket) Delete(_ context.Context, key string, rev uint64) error {
	if err := checkKey(b.name, key); err != nil {
		return fmt.Errorf("coord: delete: %w", err)
	}
	_, err := b.write(key, func(bk *bolt.Bucket, cur boltRecord, live bool, _ time.Time) ([]Entry, error) {
		if rev != 0 && (!live || cur.rev != rev) {
			return nil, conflict(rev, cur.rev, live)
		}
		if !live {
			return nil, nil
		}
		seq, err := bk.NextSequence()
		if err != nil {
			return nil, err
		}
		if err := bk.Delete([]byte(key)); err != nil {
			return nil, err
		}
		return []Entry{{Key: key, Revision: seq, Op: OpDelete}}, nil
	})
	if err != nil {
		return fmt.Errorf("coord: delete %s/%s: %w", b.name, key, err)
	}
	return nil
}

func (b *boltBucket) list(tx *bolt.Tx, prefix string) []Entry {
	var out []Entry
	now := time.Now()
	c := tx.Bucket(boltRoot).Bucket(b.nameB).Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		r := decodeRecord(v)
		if !b.expired(r, now) {
			out = append(out, Entry{Key: string(k), Value: r.value, Revision: r.rev, Op: OpPut})
		}
	}
	return out
}

func (b *boltBucket) List(_ context.Context, prefix string) ([]Entry, error) {
	if err := checkPrefix(b.name, prefix); err != nil {
		return nil, fmt.Errorf("coord: list: %w", err)
	}
	var out []Entry
	err := b.s.db.View(func(tx *bolt.Tx) error {
		out = b.list(tx, prefix)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("coord: list %s: %w", b.name, err)
	}
	return out, nil // bbolt keys are sorted
}

// Watch registers the watcher and reads the snapshot under wmu, so no write falls
// between the snapshot and the first change.
func (b *boltBucket) Watch(ctx context.Context, prefix string) (<-chan Entry, error) {
	if err := checkPrefix(b.name, prefix); err != nil {
		return nil, fmt.Errorf("coord: watch: %w", err)
	}
	w := &boltWatch{prefix: prefix, wake: make(chan struct{}, 1)}
	b.s.wmu.Lock()
	err := b.s.db.View(func(tx *bolt.Tx) error {
		w.queue = append(b.list(tx, prefix), Entry{Op: OpSynced})
		return nil
	})
	if err != nil {
		b.s.wmu.Unlock()
		return nil, fmt.Errorf("coord: watch %s: %w", b.name, err)
	}
	if b.s.watchers[b.name] == nil {
		b.s.watchers[b.name] = map[*boltWatch]struct{}{}
	}
	b.s.watchers[b.name][w] = struct{}{}
	b.s.wmu.Unlock()

	out := make(chan Entry)
	b.s.wg.Add(1)
	go func() {
		defer b.s.wg.Done()
		defer close(out)
		defer func() {
			b.s.wmu.Lock()
			delete(b.s.watchers[b.name], w)
			b.s.wmu.Unlock()
		}()
		w.run(ctx, b.s.ctx, out)
	}()
	return out, nil
}

// boltWatch queues events without bound so a slow reader never blocks writers; the
// coordination traffic it carries is a few writes a second.
type boltWatch struct {
	prefix string
	mu     sync.Mutex
	queue  []Entry
	wake   chan struct{}
}

func (w *boltWatch) push(events []Entry) {
	w.mu.Lock()
	for _, e := range events {
		if strings.HasPrefix(e.Key, w.prefix) {
			w.queue = append(w.queue, e)
		}
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *boltWatch) run(ctx, storeCtx context.Context, out chan<- Entry) {
	for {
		w.mu.Lock()
		batch := w.queue
		w.queue = nil
		w.mu.Unlock()
		for _, e := range batch {
			select {
			case out <- e:
			case <-ctx.Done():
				return
			case <-storeCtx.Done():
				return
			}
		}
		select {
		case <-w.wake:
		case <-ctx.Done():
			return
		case <-storeCtx.Done():
			return
		}
	}
}

// broadcast is called with wmu held.
func (s *BoltStore) broadcast(bucket string, events []Entry) {
	if len(events) == 0 {
		return
	}
	for w := range s.watchers[bucket] {
		w.push(events)
	}
}

// sweep removes expired keys of one TTL bucket every TTL/4 (at most every second),
// so a watcher sees OpExpire at most TTL/4 after the TTL passed.
func (s *BoltStore) sweep(name string, ttl time.Duration) {
	defer s.wg.Done()
	every := min(max(ttl/4, 25*time.Millisecond), time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	b := &boltBucket{s: s, name: name, nameB: []byte(name), ttl: ttl}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-t.C:
		}
		// A failed sweep has no one to report to: the next tick tries again, and
		// reads hide expired keys meanwhile.
		_ = b.sweepOnce()
	}
}

func (b *boltBucket) sweepOnce() error {
	b.s.wmu.Lock()
	defer b.s.wmu.Unlock()
	var events []Entry
	now := time.Now()
	var keys []string
	err := b.s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(boltRoot).Bucket(b.nameB).ForEach(func(k, v []byte) error {
			if b.expired(decodeRecord(v), now) {
				keys = append(keys, string(k))
			}
			return nil
		})
	})
	if err != nil || len(keys) == 0 {
		return err
	}
	sort.Strings(keys)
	err = b.s.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket(boltRoot).Bucket(b.nameB)
		for _, k := range keys {
			e, err := b.removeExpired(bk, k)
			if err != nil {
				return err
			}
			events = append(events, e)
		}
		return nil
	})
	if err == nil {
		b.s.broadcast(b.name, events)
	}
	return err
}
