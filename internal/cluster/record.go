package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Schema versions of the records; a box refuses a record newer than it knows.
const (
	nodeVersion   = 1
	jobVersion    = 1
	assignVersion = 1
	statusVersion = 1
	drainVersion  = 1
)

// Node is one box as its agent publishes it every heartbeat (tx_nodes/<box>).
type Node struct {
	Box      string  `json:"box"`
	APIURL   string  `json:"api_url,omitempty"`
	Version  string  `json:"version,omitempty"`
	FFmpeg   string  `json:"ffmpeg,omitempty"`
	CPULimit float64 `json:"cpu_limit"` // cores the CPU cap allows ffmpeg (cpucap.Cap.Limit)
	CPUUsed  float64 `json:"cpu_used"`  // cores its jobs reserve or use now, measured
	GPUs     []GPU   `json:"gpus,omitempty"`
	// Jobs are the jobs this box runs now, with their epochs.
	Jobs     []Running `json:"jobs,omitempty"`
	Draining bool      `json:"draining,omitempty"`
	// Heartbeat is the box's own clock at the write: for people; decisions never
	// compare it with another box's clock.
	Heartbeat time.Time `json:"heartbeat"`
}

// GPU is one session pool of a box: a device and the hardware encoders that work on it
// (gpu.Service.Sessions).
type GPU struct {
	ID       string   `json:"id"`
	Vendor   string   `json:"vendor,omitempty"`
	Model    string   `json:"model,omitempty"`
	Encoders []string `json:"encoders"`      // backends that work: nvenc, qsv, vaapi, amf
	Sessions int      `json:"sessions"`      // encoder sessions it opens at once; -1: not limited
	Used     int      `json:"sessions_used"` // held by the box's jobs now
}

// Running is one job a box runs, at the epoch it was assigned.
type Running struct {
	ID    string `json:"id"`
	Epoch uint64 `json:"epoch"`
}

// JobSpec is a job of the fleet (tx_jobs/<id>), as the API of any box took it.
type JobSpec struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Live   bool   `json:"live"`
	// Ladder is the ladder resolved on the box that took the request, so that every box
	// encodes the same one whatever its own ladder files say.
	Ladder *ladder.Ladder `json:"ladder,omitempty"`
	// Request is the body of POST /v1/jobs as the API took it (job.Request).
	Request json.RawMessage `json:"request,omitempty"`
	Cost    Cost            `json:"cost"`
	Created time.Time       `json:"created"`
}

// Assignment says which box runs a job (tx_assign/<id>). Epoch rises each time the job
// moves (or starts to wait); a box runs a job only at the epoch of its assignment, and
// segment names carry it, so a late writer of an older epoch cannot overwrite.
type Assignment struct {
	Job   string `json:"job"`
	Box   string `json:"box,omitempty"` // "" while the job waits (Waiting says why)
	Epoch uint64 `json:"epoch"`
	GPU   string `json:"gpu,omitempty"` // the GPU the job's hardware rungs use on Box
	// Reserve is what the job takes of Box: cores, and sessions on GPU.
	Reserve Reserve   `json:"reserve"`
	Waiting string    `json:"waiting,omitempty"`
	Reason  string    `json:"reason,omitempty"` // placed | node_lost | drain | waiting
	Term    uint64    `json:"term"`             // the scheduler lease's term that wrote it
	At      time.Time `json:"at"`
}

// Reserve is what one assignment takes of its box.
type Reserve struct {
	Cores    float64 `json:"cores"`
	Sessions int     `json:"sessions,omitempty"`
}

// Status is the checkpoint the owning box keeps of a job (tx_status/<id>), from which
// the next owner continues the presentation. Readers ignore one whose epoch is below
// the assignment's.
type Status struct {
	Job      string           `json:"job"`
	Box      string           `json:"box"`
	Epoch    uint64           `json:"epoch"`
	State    string           `json:"state"` // the job's state (job.State); finished, failed and stopped end it
	NextSeq  map[string]int64 `json:"next_seq,omitempty"`
	NextPTS  float64          `json:"next_pts,omitempty"`
	DiscSeq  int              `json:"disc_seq,omitempty"`
	PeriodID string           `json:"period_id,omitempty"`
	// Resume is what the next box needs to continue the job, as the daemon keeps it
	// (its job record and segment index), opaque here.
	Resume json.RawMessage `json:"resume,omitempty"`
	At     time.Time       `json:"at"`
}

// Ended reports whether the job will not run again anywhere.
func (s Status) Ended() bool {
	return s.State == "finished" || s.State == "failed" || s.State == "stopped"
}

// drainMark is a box being drained (tx_drain/<box>).
type drainMark struct {
	Box   string    `json:"box"`
	Since time.Time `json:"since"`
}

// record is one decoded value with its revision.
type record[T any] struct {
	v   T
	rev uint64
}

// listAll reads every record of b, by key; records it cannot decode are skipped with
// their errors joined (a newer build's record stops nothing else).
func listAll[T any](ctx context.Context, b coord.Bucket, version int) (map[string]record[T], error) {
	es, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	out := make(map[string]record[T], len(es))
	var errs []error
	for _, e := range es {
		var v T
		if _, err := coord.Decode(e.Value, version, &v); err != nil {
			errs = append(errs, fmt.Errorf("cluster: %s/%s: %w", b.Name(), e.Key, err))
			continue
		}
		out[e.Key] = record[T]{v: v, rev: e.Revision}
	}
	return out, errors.Join(errs...)
}

// get reads one record; ErrNotFound (wrapped) when absent.
func get[T any](ctx context.Context, b coord.Bucket, key string, version int) (record[T], error) {
	e, err := b.Get(ctx, key)
	if err != nil {
		return record[T]{}, fmt.Errorf("cluster: %s/%s: %w", b.Name(), key, err)
	}
	var v T
	if _, err := coord.Decode(e.Value, version, &v); err != nil {
		return record[T]{}, fmt.Errorf("cluster: %s/%s: %w", b.Name(), key, err)
	}
	return record[T]{v: v, rev: e.Revision}, nil
}

// write stores v at key: Create when rev is 0, else Update at rev.
func write(ctx context.Context, b coord.Bucket, key string, version int, v any, rev uint64) (uint64, error) {
	val, err := coord.Encode(version, v)
	if err != nil {
		return 0, fmt.Errorf("cluster: %s/%s: %w", b.Name(), key, err)
	}
	var n uint64
	if rev == 0 {
		n, err = b.Create(ctx, key, val)
	} else {
		n, err = b.Update(ctx, key, val, rev)
	}
	if err != nil {
		return 0, fmt.Errorf("cluster: write %s/%s: %w", b.Name(), key, err)
	}
	return n, nil
}

// Submit adds a job to the fleet; a job of that id already there is left as it is
// (coord.ErrExists, wrapped), which makes importing a box's jobs idempotent.
func Submit(ctx context.Context, b *Buckets, spec JobSpec) error {
	if spec.Created.IsZero() {
		spec.Created = time.Now().UTC()
	}
	_, err := write(ctx, b.Jobs, spec.ID, jobVersion, spec, 0)
	return err
}

// Import submits a job a box ran alone with the checkpoint (at epoch 0), and its
// parts by name, that its first box continues from. A job of that id already in the
// fleet is left as it is (coord.ErrExists). The checkpoint is written before the job,
// so that no box can take the job up without it.
func Import(ctx context.Context, b *Buckets, spec JobSpec, st Status, parts map[string]any) error {
	if _, err := b.Jobs.Get(ctx, spec.ID); err == nil {
		return fmt.Errorf("cluster: import job %s: %w", spec.ID, coord.ErrExists)
	} else if !errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("cluster: import job %s: %w", spec.ID, err)
	}
	for name, v := range parts {
		if _, err := putPart(ctx, b, spec.ID, 0, name, v, 0); err != nil {
			return err
		}
	}
	st.Job, st.Epoch, st.At = spec.ID, 0, time.Now().UTC()
	if _, err := write(ctx, b.Status, spec.ID, statusVersion, st, 0); err != nil && !errors.Is(err, coord.ErrExists) {
		return err
	}
	return Submit(ctx, b, spec)
}

// Remove takes a job off the fleet: the scheduler then deletes its assignment and its
// box stops it.
func Remove(ctx context.Context, b *Buckets, id string) error {
	if err := b.Jobs.Delete(ctx, id, 0); err != nil && !errors.Is(err, coord.ErrNotFound) {
		return fmt.Errorf("cluster: remove job %s: %w", id, err)
	}
	return nil
}

// Drain marks box as draining (on) or not: the scheduler places nothing new on it and
// moves its live jobs elsewhere one at a time. Any box may call it.
func Drain(ctx context.Context, b *Buckets, box string, on bool) error {
	if !on {
		if err := b.Drain.Delete(ctx, box, 0); err != nil && !errors.Is(err, coord.ErrNotFound) {
			return fmt.Errorf("cluster: undrain %s: %w", box, err)
		}
		return nil
	}
	_, err := write(ctx, b.Drain, box, drainVersion, drainMark{Box: box, Since: time.Now().UTC()}, 0)
	if errors.Is(err, coord.ErrExists) {
		return nil
	}
	return err
}

// Assignments returns every assignment by job id (for GET /v1/jobs: each job's box).
func Assignments(ctx context.Context, b *Buckets) (map[string]Assignment, error) {
	return values[Assignment](ctx, b.Assign, assignVersion)
}

// Checkpoint returns the job's Status; ErrNotFound (wrapped) when it has none.
func Checkpoint(ctx context.Context, b *Buckets, id string) (Status, error) {
	r, err := get[Status](ctx, b.Status, id, statusVersion)
	return r.v, err
}

// Jobs returns every job of the fleet by id.
func Jobs(ctx context.Context, b *Buckets) (map[string]JobSpec, error) {
	return values[JobSpec](ctx, b.Jobs, jobVersion)
}

// Checkpoints returns every job's Status by id.
func Checkpoints(ctx context.Context, b *Buckets) (map[string]Status, error) {
	return values[Status](ctx, b.Status, statusVersion)
}

// Draining returns the boxes marked draining (Drain).
func Draining(ctx context.Context, b *Buckets) (map[string]bool, error) {
	marks, err := values[drainMark](ctx, b.Drain, drainVersion)
	out := make(map[string]bool, len(marks))
	for box := range marks {
		out[box] = true
	}
	return out, err
}

// Nodes returns every live box's record by box id (for GET /v1/cluster).
func Nodes(ctx context.Context, b *Buckets) (map[string]Node, error) {
	return values[Node](ctx, b.Nodes, nodeVersion)
}

// values is listAll without the revisions.
func values[T any](ctx context.Context, b coord.Bucket, version int) (map[string]T, error) {
	rs, err := listAll[T](ctx, b, version)
	if rs == nil { // the list failed: no map, so that no caller takes it for an empty one
		return nil, err
	}
	out := make(map[string]T, len(rs))
	for k, r := range rs {
		out[k] = r.v
	}
	return out, err
}
