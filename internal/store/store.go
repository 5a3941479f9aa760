// Package store keeps the daemon's state across restarts in one bbolt file under
// --data: every job's record, and for each job the index of the segments it has on
// disk, so that a live job resumes into the same presentation after a crash.
package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/transcoderd/transcoderd/internal/manifest"
)

// FileName is the database file inside the data folder.
const FileName = "transcoderd.db"

var (
	jobsBucket     = []byte("jobs")
	segmentsBucket = []byte("segments") // one sub-bucket per job, one per track inside
)

// Store is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

// Open opens (or creates) the store in dir. Only one daemon may hold it: a second one
// waits up to 2 s for the lock, then fails.
func Open(dir string) (*Store, error) {
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		if errors.Is(err, bolt.ErrTimeout) {
			return nil, fmt.Errorf("open %s: another transcoderd holds it", path)
		}
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{jobsBucket, segmentsBucket} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return &Store{db: db}, nil
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// PutJob stores a job record (any JSON-encodable value) under id, replacing it.
func (s *Store) PutJob(id string, record any) error {
	data, err := json.Marshal(record)
	if err != nil {
		return fmt.Errorf("encode job %s: %w", id, err)
	}
	return s.db.Update(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).Put([]byte(id), data)
	})
}

// Jobs returns every job record, raw, by id.
func (s *Store) Jobs() (map[string]json.RawMessage, error) {
	out := map[string]json.RawMessage{}
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(jobsBucket).ForEach(func(k, v []byte) error {
			out[string(k)] = append(json.RawMessage(nil), v...)
			return nil
		})
	})
	return out, err
}

// Job returns one job's record, raw; nil when there is none.
func (s *Store) Job(id string) (json.RawMessage, error) {
	var out json.RawMessage
	err := s.db.View(func(tx *bolt.Tx) error {
		if v := tx.Bucket(jobsBucket).Get([]byte(id)); v != nil {
			out = append(json.RawMessage(nil), v...)
		}
		return nil
	})
	return out, err
}

// DeleteJob forgets a job and its segment index.
func (s *Store) DeleteJob(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(jobsBucket).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket(segmentsBucket).DeleteBucket([]byte(id)); err != nil && !errors.Is(err, bolt.ErrBucketNotFound) {
			return err
		}
		return nil
	})
}

// SegmentChange is what one poll of a job changed in its index.
type SegmentChange struct {
	Track   string
	Added   []manifest.Segment
	Removed []uint64 // segment numbers deleted from disk
}

// UpdateSegments applies a job's index changes in one transaction.
func (s *Store) UpdateSegments(id string, changes []SegmentChange) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		jb, err := tx.Bucket(segmentsBucket).CreateBucketIfNotExists([]byte(id))
		if err != nil {
			return err
		}
		for _, c := range changes {
			tb, err := jb.CreateBucketIfNotExists([]byte(c.Track))
			if err != nil {
				return err
			}
			for _, seg := range c.Added {
				data, err := json.Marshal(seg)
				if err != nil {
					return err
				}
				if err := tb.Put(key(seg.Number), data); err != nil {
					return err
				}
			}
			for _, n := range c.Removed {
				if err := tb.Delete(key(n)); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ClearSegments forgets a job's segment index (a file job starting over).
func (s *Store) ClearSegments(id string) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		err := tx.Bucket(segmentsBucket).DeleteBucket([]byte(id))
		if errors.Is(err, bolt.ErrBucketNotFound) {
			return nil
		}
		return err
	})
}

// Segments returns a job's segment index by track, each in number order.
func (s *Store) Segments(id string) (map[string][]manifest.Segment, error) {
	out := map[string][]manifest.Segment{}
	err := s.db.View(func(tx *bolt.Tx) error {
		jb := tx.Bucket(segmentsBucket).Bucket([]byte(id))
		if jb == nil {
			return nil
		}
		return jb.ForEach(func(track, _ []byte) error {
			tb := jb.Bucket(track)
			if tb == nil {
				return nil
			}
			return tb.ForEach(func(_, v []byte) error {
				var seg manifest.Segment
				if err := json.Unmarshal(v, &seg); err != nil {
					return fmt.Errorf("job %s track %s: %w", id, track, err)
				}
				out[string(track)] = append(out[string(track)], seg)
				return nil
			})
		})
	})
	return out, err
}

// key orders segments by number (big-endian).
func key(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}
