// Package coord is the small coordination store the fleet (issue 18) is built on:
// named buckets of keys whose values are versioned JSON, each write carrying a
// revision, with compare-and-set writes (Create, Update at a revision, Delete at a
// revision), ordered watches, and buckets whose keys expire when they are not
// rewritten within the bucket's TTL.
//
// Two backends implement it. OpenBolt keeps one box's buckets in a bbolt file and
// watches through an in-process broadcast: the default, one box, no ports. NewJetStream
// keeps them in NATS JetStream KV buckets (replicated R3 on the three core boxes, on a
// server embedded with StartServer or an external one ≥ 2.11). One conformance suite
// runs against both, so the code above sees the same semantics either way.
//
// How the fleet uses it (the design of issue 18):
//   - the API writes job specs to tx_jobs with Create (idempotent by job id) and edits
//     them with Update at the revision it read;
//   - each box's agent rewrites its capacity record in tx_nodes (TTL 10 s) every 2 s;
//     when a box dies its key expires and watchers see OpExpire;
//   - one scheduler at a time holds a Lease in tx_leader (TTL 10 s); its fencing token
//     is the lease's revision;
//   - the scheduler writes tx_assign only with Update at the revision it read, so even
//     two overlapping schedulers cannot both win a placement (ErrConflict for one);
//   - agents Watch tx_assign and adopt or stop jobs; they write checkpoints to tx_status.
//
// Decisions use revisions and watches, never "Get right after another box's Put":
// JetStream does not promise read-your-writes across clients.
package coord

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
)

// Errors callers branch on; every error returned wraps one of them with context.
var (
	// ErrNotFound: the key does not exist (never written, deleted or expired).
	ErrNotFound = errors.New("key not found")
	// ErrExists: Create of a key that exists.
	ErrExists = errors.New("key exists")
	// ErrConflict: Update or Delete at a revision that is not the key's latest.
	ErrConflict = errors.New("revision mismatch")
)

// Op says what happened to a key in an Entry from Watch.
type Op int

const (
	// OpPut: the key was created or updated; the Entry holds its value.
	OpPut Op = iota + 1
	// OpDelete: the key was deleted.
	OpDelete
	// OpExpire: the key was removed because its bucket's TTL passed without a write.
	OpExpire
	// OpSynced: the entries before this one were the bucket's state when the watch
	// started; the ones after it are changes. Key and Value are empty.
	OpSynced
)

func (o Op) String() string {
	switch o {
	case OpPut:
		return "put"
	case OpDelete:
		return "delete"
	case OpExpire:
		return "expire"
	case OpSynced:
		return "synced"
	}
	return fmt.Sprintf("op(%d)", int(o))
}

// Entry is one key's value at one revision, or one change seen by Watch.
type Entry struct {
	Key   string
	Value []byte
	// Revision rises with every write to the bucket (puts, deletes and expiries).
	// Only its order means something: the backends number differently.
	Revision uint64
	Op       Op
}

// BucketConfig names a bucket and how it behaves. The same name opened twice with
// different settings is an error on JetStream; keep one definition per bucket.
type BucketConfig struct {
	Name string
	// TTL, if set, removes a key that has not been written for TTL (watchers see
	// OpExpire). Renewing a key means writing it again (Update). JetStream's minimum
	// is 100 ms; its expiry markers live for max(1 min, TTL).
	TTL time.Duration
}

// Store opens buckets. Close releases what the Store opened (not a NATS connection
// handed to NewJetStream).
type Store interface {
	Bucket(ctx context.Context, cfg BucketConfig) (Bucket, error)
	Close() error
}

// Bucket is one named set of keys. Keys are NATS-subject-like: tokens of
// [-/_=a-zA-Z0-9] separated by single dots. Every method is safe for concurrent use.
type Bucket interface {
	Name() string
	// Get returns the key's latest value, or ErrNotFound.
	Get(ctx context.Context, key string) (Entry, error)
	// Create writes the key only if it does not exist (ErrExists otherwise) and
	// returns the new revision.
	Create(ctx context.Context, key string, value []byte) (uint64, error)
	// Update writes the key only if its latest revision is rev (ErrConflict otherwise,
	// also when the key is gone) and returns the new revision. rev must be > 0.
	Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error)
	// Delete removes the key only if its latest revision is rev (ErrConflict otherwise);
	// rev 0 deletes whatever is there.
	Delete(ctx context.Context, key string, rev uint64) error
	// Watch sends the live entries under prefix, then one OpSynced entry, then every
	// change in revision order, until ctx ends; then it closes the channel. prefix is
	// "" (every key) or ends with "." (the keys below that token, as in "box.a.").
	Watch(ctx context.Context, prefix string) (<-chan Entry, error)
	// List returns the live entries under prefix (as for Watch), sorted by key.
	List(ctx context.Context, prefix string) ([]Entry, error)
}

var (
	bucketRE = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)
	keyRE    = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)
)

func checkBucket(cfg BucketConfig) error {
	if !bucketRE.MatchString(cfg.Name) {
		return fmt.Errorf("bucket name %q: want letters, digits, '-' or '_'", cfg.Name)
	}
	if cfg.TTL < 0 || (cfg.TTL > 0 && cfg.TTL < 100*time.Millisecond) {
		return fmt.Errorf("bucket %s: ttl %v: want 0 or at least 100ms", cfg.Name, cfg.TTL)
	}
	return nil
}

func checkKey(bucket, key string) error {
	if !keyRE.MatchString(key) {
		return fmt.Errorf("bucket %s: invalid key %q", bucket, key)
	}
	return nil
}

func checkPrefix(bucket, prefix string) error {
	if prefix == "" {
		return nil
	}
	if len(prefix) < 2 || prefix[len(prefix)-1] != '.' || !keyRE.MatchString(prefix[:len(prefix)-1]) {
		return fmt.Errorf("bucket %s: invalid prefix %q: want \"\" or key tokens ending in \".\"", bucket, prefix)
	}
	return nil
}

// envelope is how every value is stored: the schema version next to the data, so a
// box running an older build can refuse a record it does not understand.
type envelope struct {
	V    int             `json:"v"`
	Data json.RawMessage `json:"data"`
}

// Encode wraps v (encoded as JSON) with its schema version.
func Encode(version int, v any) ([]byte, error) {
	if version < 1 {
		return nil, fmt.Errorf("encode: schema version %d: want ≥ 1", version)
	}
	data, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode: %w", err)
	}
	return json.Marshal(envelope{V: version, Data: data})
}

// Decode reads a value written by Encode into v and returns its schema version. A
// version above maxVersion is an error: the record comes from a newer build.
func Decode(b []byte, maxVersion int, v any) (int, error) {
	var e envelope
	if err := json.Unmarshal(b, &e); err != nil {
		return 0, fmt.Errorf("decode: %w", err)
	}
	if e.V < 1 || len(e.Data) == 0 {
		return 0, errors.New("decode: not a versioned value")
	}
	if e.V > maxVersion {
		return e.V, fmt.Errorf("decode: schema version %d is newer than %d", e.V, maxVersion)
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return e.V, fmt.Errorf("decode version %d: %w", e.V, err)
	}
	return e.V, nil
}
