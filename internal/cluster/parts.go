package cluster

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/transcoderd/transcoderd/internal/coord"
)

// A checkpoint (Status) stays small: what grows with the job, its segment index, is
// kept beside it in parts (tx_parts), each a value of its own under
// "<job>.<epoch>.<name>", so that a box rewrites only the parts that changed rather
// than the whole index every second. The parts of one epoch are written only by the
// box that runs the job at that epoch (Agent.CheckpointPart), and a box that adopts the
// job writes its own at its new epoch before it deletes the older ones: a box cut off
// from the others, writing late, can touch only the parts of an epoch no one reads.

const partVersion = 1

// Part is one stored part of a checkpoint.
type Part struct {
	Name  string // what follows "<job>.<epoch>." in its key
	Value []byte
	Rev   uint64 // its revision: Update it at this one
}

func partPrefix(job string, epoch uint64) string {
	return job + "." + strconv.FormatUint(epoch, 10) + "."
}

// CheckpointPart writes part name of the job's checkpoint at epoch: Create when rev is
// 0, else Update at rev; it returns the new revision. As for Checkpoint, only while
// this box runs the job at that epoch.
func (a *Agent) CheckpointPart(ctx context.Context, job string, epoch uint64, name string, v any, rev uint64) (uint64, error) {
	a.mu.Lock()
	e, runs := a.running[job]
	a.mu.Unlock()
	if !runs || e != epoch {
		return 0, fmt.Errorf("cluster: checkpoint part %s of %s at epoch %d: this box does not run it at that epoch", name, job, epoch)
	}
	return putPart(ctx, a.b, job, epoch, name, v, rev)
}

// putPart writes part name of the job's checkpoint at epoch, at revision rev (0:
// Create). Only one box writes the parts of an epoch: a revision it lost (a write
// that timed out yet landed) is read again.
func putPart(ctx context.Context, b *Buckets, job string, epoch uint64, name string, v any, rev uint64) (uint64, error) {
	key := partPrefix(job, epoch) + name
	n, err := write(ctx, b.Parts, key, partVersion, v, rev)
	if errors.Is(err, coord.ErrExists) || errors.Is(err, coord.ErrConflict) {
		var e coord.Entry
		if e, err = b.Parts.Get(ctx, key); err == nil {
			n, err = write(ctx, b.Parts, key, partVersion, v, e.Revision)
		} else if errors.Is(err, coord.ErrNotFound) {
			n, err = write(ctx, b.Parts, key, partVersion, v, 0)
		}
	}
	return n, err
}

// DeletePart deletes part name of the job's checkpoint at epoch.
func (a *Agent) DeletePart(ctx context.Context, job string, epoch uint64, name string) error {
	err := a.b.Parts.Delete(ctx, partPrefix(job, epoch)+name, 0)
	if err != nil && !errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("cluster: delete checkpoint part %s of %s: %w", name, job, err)
	}
	return nil
}

// Parts returns the parts of the job's checkpoint at epoch, decoding each value into
// a new T.
func Parts[T any](ctx context.Context, b *Buckets, job string, epoch uint64) (map[string]T, error) {
	es, err := b.Parts.List(ctx, partPrefix(job, epoch))
	if err != nil {
		return nil, fmt.Errorf("cluster: parts of %s at epoch %d: %w", job, epoch, err)
	}
	out := make(map[string]T, len(es))
	for _, e := range es {
		var v T
		if _, err := coord.Decode(e.Value, partVersion, &v); err != nil {
			return nil, fmt.Errorf("cluster: part %s: %w", e.Key, err)
		}
		out[strings.TrimPrefix(e.Key, partPrefix(job, epoch))] = v
	}
	return out, nil
}

// DeleteParts deletes the job's parts of the epochs below keep (0: of every epoch);
// those of a later epoch are a newer owner's.
func DeleteParts(ctx context.Context, b *Buckets, job string, keep uint64) error {
	es, err := b.Parts.List(ctx, job+".")
	if err != nil {
		return fmt.Errorf("cluster: parts of %s: %w", job, err)
	}
	var errs []error
	for _, e := range es {
		epoch, _, _ := strings.Cut(strings.TrimPrefix(e.Key, job+"."), ".")
		if n, err := strconv.ParseUint(epoch, 10, 64); keep != 0 && (err != nil || n >= keep) {
			continue
		}
		if err := b.Parts.Delete(ctx, e.Key, e.Revision); err != nil && !errors.Is(err, coord.ErrNotFound) && !errors.Is(err, coord.ErrConflict) {
			errs = append(errs, fmt.Errorf("cluster: delete %s: %w", e.Key, err))
		}
	}
	return errors.Join(errs...)
}
