package coord

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrLost: Renew found the lease taken by someone else (or gone): stop acting as its
// holder at once.
var ErrLost = errors.New("lease lost")

// Lease is one contender's claim on a key in a TTL bucket: the fleet's scheduler lease
// (tx_leader/scheduler). Acquire is Create, Renew is Update at the revision last
// written (which also restarts the bucket's TTL), Release is Delete at that revision.
//
// The holder's own deadline is the time just before its last successful write plus the
// TTL. The server expires the key no earlier than TTL after it stored that write, and
// no one else can Create the key before then, so while Held reports true no other
// contender holds it. No clocks are compared between machines. Term is the revision of
// the acquiring write: a fencing token that rises with every new holder.
type Lease struct {
	b      Bucket
	ttl    time.Duration
	key    string
	holder string

	mu       sync.Mutex
	rev      uint64 // latest write of ours; 0: not held
	term     uint64
	deadline time.Time
}

type leaseValue struct {
	Holder string    `json:"holder"`
	Since  time.Time `json:"since"`
}

const leaseVersion = 1

// NewLease claims key in b, whose bucket TTL is ttl, for holder (the box id).
func NewLease(b Bucket, ttl time.Duration, key, holder string) (*Lease, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("coord: lease %s/%s: ttl %v: the bucket needs a TTL", b.Name(), key, ttl)
	}
	if holder == "" {
		return nil, fmt.Errorf("coord: lease %s/%s: empty holder", b.Name(), key)
	}
	return &Lease{b: b, ttl: ttl, key: key, holder: holder}, nil
}

// Acquire takes the lease if no one holds it, and reports whether this holder now has
// it. A key still held under this holder's name (a restart within the TTL) is taken
// over with Update at its revision.
func (l *Lease) Acquire(ctx context.Context) (bool, error) {
	val, err := Encode(leaseVersion, leaseValue{Holder: l.holder, Since: time.Now().UTC()})
	if err != nil {
		return false, err
	}
	start := time.Now()
	rev, err := l.b.Create(ctx, l.key, val)
	if errors.Is(err, ErrExists) {
		rev, err = l.takeOver(ctx, val)
	}
	if err != nil || rev == 0 {
		return false, err
	}
	l.mu.Lock()
	l.rev, l.term, l.deadline = rev, rev, start.Add(l.ttl)
	l.mu.Unlock()
	return true, nil
}

// takeOver returns 0 and no error when someone else holds the key.
func (l *Lease) takeOver(ctx context.Context, val []byte) (uint64, error) {
	e, err := l.b.Get(ctx, l.key)
	if errors.Is(err, ErrNotFound) {
		return 0, nil // gone meanwhile: the next Acquire may win it
	}
	if err != nil {
		return 0, err
	}
	var cur leaseValue
	if _, err := Decode(e.Value, leaseVersion, &cur); err != nil || cur.Holder != l.holder {
		return 0, nil
	}
	rev, err := l.b.Update(ctx, l.key, val, e.Revision)
	if errors.Is(err, ErrConflict) {
		return 0, nil
	}
	return rev, err
}

// Renew rewrites the lease, which extends the deadline to TTL after this call began.
// ErrLost means someone else has it (or it expired); any other error leaves the lease
// held until its deadline, and Renew may be tried again.
func (l *Lease) Renew(ctx context.Context) error {
	l.mu.Lock()
	rev := l.rev
	l.mu.Unlock()
	if rev == 0 {
		return fmt.Errorf("coord: renew %s/%s: %w: not held", l.b.Name(), l.key, ErrLost)
	}
	val, err := Encode(leaseVersion, leaseValue{Holder: l.holder, Since: time.Now().UTC()})
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := l.b.Update(ctx, l.key, val, rev)
	l.mu.Lock()
	defer l.mu.Unlock()
	if errors.Is(err, ErrConflict) {
		l.rev = 0
		return fmt.Errorf("coord: renew %s/%s: %w: %w", l.b.Name(), l.key, ErrLost, err)
	}
	if err != nil {
		return fmt.Errorf("coord: renew %s/%s: %w", l.b.Name(), l.key, err)
	}
	l.rev, l.deadline = n, start.Add(l.ttl)
	return nil
}

// Release gives the lease up: this holder stops holding before the delete is sent.
// Releasing a lease already lost is not an error.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	rev := l.rev
	l.rev = 0
	l.mu.Unlock()
	if rev == 0 {
		return nil
	}
	err := l.b.Delete(ctx, l.key, rev)
	if err != nil && !errors.Is(err, ErrConflict) {
		return fmt.Errorf("coord: release %s/%s: %w", l.b.Name(), l.key, err)
	}
	return nil
}

// Held reports whether this holder has the lease now: acquired, not released or lost,
// and its deadline not passed.
func (l *Lease) Held() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rev != 0 && time.Now().Before(l.deadline)
}

// Deadline is when the lease stops being held unless renewed.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Term is the revision that acquired the lease: larger for every later holder.
func (l *Lease) Term() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.term
}

// Campaign tries Acquire until it wins or ctx ends: again at once when a watch shows the
// key deleted or expired, and every retry in any case (a watch can miss nothing on a
// healthy store, but retry covers a store that was unreachable).
func (l *Lease) Campaign(ctx context.Context, retry time.Duration) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, err := l.b.Watch(wctx, "")
	if err != nil {
		return fmt.Errorf("coord: campaign %s/%s: %w", l.b.Name(), l.key, err)
	}
	for {
		ok, err := l.Acquire(ctx)
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("coord: campaign %s/%s: %w", l.b.Name(), l.key, errors.Join(ctx.Err(), err))
		}
		events = waitFree(ctx, events, l.key, retry)
	}
}

// waitFree returns when key is deleted or expires, retry passes or ctx ends; a closed
// events channel becomes nil (polling only).
func waitFree(ctx context.Context, events <-chan Entry, key string, retry time.Duration) <-chan Entry {
	t := time.NewTimer(retry)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return events
		case <-t.C:
			return events
		case e, open := <-events:
			if !open {
				return nil
			}
			if e.Key == key && (e.Op == OpDelete || e.Op == OpExpire) {
				return events
			}
		}
	}
}
