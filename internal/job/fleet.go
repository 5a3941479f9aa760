package job

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/source"
)

// A fleet of boxes (issue 18) runs each job on one box at a time, at the epoch of the
// job's assignment. The box that takes a request checks it (Check) and hands it to
// the fleet; the box the job is assigned to runs it (Adopt); a box the job moves off
// stops its ffmpeg without ending the presentation (Suspend), and the next box
// continues it from the record and index the daemon put in its store.

// Checked is a request as Check took it.
type Checked struct {
	Request Request // with its defaults filled in, its id above all
	Ladder  *ladder.Ladder
	Live    bool
	Display string // the source as the API shows it (a password masked)
	Push    bool   // fed by an encoder publishing to the ingest hub
}

// Check validates req as Create would, without probing, starting or writing anything.
func (m *Manager) Check(ctx context.Context, req Request) (Checked, error) {
	id, src, l, err := m.check(ctx, &req)
	if err != nil {
		return Checked{}, err
	}
	req.ID, req.Ladder = id, l.Name
	return Checked{Request: req, Ladder: l, Live: src.Live, Display: src.Display, Push: src.Kind == source.Push}, nil
}

// NominalPlan is ladder l applied to a nominal source as large as its top rung: what a
// live job costs before its source is probed.
func NominalPlan(l *ladder.Ladder) ladder.Plan { return nominalPlan(l) }

// Adoption is a job of the fleet that this box is to run.
type Adoption struct {
	Request Request
	// Ladder is the ladder the box that took the request resolved; nil: by name here.
	Ladder *ladder.Ladder
	// Epoch is the assignment's (≥ 1): the job's run numbers, and so its segment
	// names, start at Epoch×epochRuns.
	Epoch uint64
}

// Adopt runs a fleet job here and returns once it is under way. When the store holds
// the job's record (the daemon put there what its previous box checkpointed, or this
// box ran it before) the job is restored from it: a live job continues its
// presentation, as after a restart, with a new run and a discontinuity. Otherwise it
// starts as a new job, without a probe first (its runner probes), in its folder even
// when that holds an earlier box's files.
func (m *Manager) Adopt(ctx context.Context, a Adoption) (*Job, error) {
	if a.Epoch == 0 {
		return nil, fmt.Errorf("%w: adopt %q: epoch 0", ErrInvalid, a.Request.ID)
	}
	if _, err := m.Get(a.Request.ID); err == nil {
		return nil, fmt.Errorf("%w: job %q runs here already", ErrConflict, a.Request.ID)
	}
	recs, err := m.cfg.Store.Jobs()
	if err != nil {
		return nil, fmt.Errorf("read stored jobs: %w", err)
	}
	if raw, ok := recs[a.Request.ID]; ok {
		rec, err := decodeRecord(raw)
		if err != nil {
			return nil, fmt.Errorf("stored job %s: %w", a.Request.ID, err)
		}
		if err := m.restoreOne(a.Request.ID, rec, a.Epoch); err != nil {
			return nil, err
		}
		return m.Get(a.Request.ID)
	}
	req := a.Request
	id, src, l, err := m.checkWith(ctx, &req, a.Ladder)
	if err != nil {
		return nil, err
	}
	return m.register(id, req, src, l, nil, m.inputOf(src), nil, a.Epoch)
}

// Suspend stops the job's ffmpeg without ending its presentation and forgets the job
// here (its record leaves the store): another box continues it. It returns once
// ffmpeg has exited. A job that has ended is left as it is.
func (m *Manager) Suspend(ctx context.Context, id string) error {
	j, err := m.Get(id)
	if err != nil {
		return err
	}
	if j.state().Ended() {
		return nil
	}
	if m.queue.remove(j) {
		m.leaveHub(j)
		close(j.done)
		m.queue.admitWaiting()
	} else {
		j.stop(errDaemonStopping)
	}
	j.stopExport("", errDaemonStopping) // the box that continues it writes them
	select {
	case <-j.done:
	case <-ctx.Done():
		return fmt.Errorf("suspend %s: %w", id, ctx.Err())
	}
	// The job's delivery to the origin ends here too: what it cannot deliver within
	// suspendFlush is dropped, never delivered after the next box has begun (the
	// agent starts it there once this returns).
	m.cfg.Publish.Job(id, j.dir, j.log).Close(suspendFlush)
	m.mu.Lock()
	delete(m.jobs, id)
	m.mu.Unlock()
	if err := m.cfg.Store.DeleteJob(id); err != nil {
		return fmt.Errorf("forget job %s: %w", id, err)
	}
	return nil
}

// suspendFlush is how long a suspended job's last segments and manifests may take to
// reach the origin. A box cut off from the fleet stops its jobs when its last heartbeat
// is 7 s old, and the next box takes them when its record expires, at 10 s (the
// defaults of cluster.Timing): the flush ends before.
const suspendFlush = 2 * time.Second

// KillOrphans kills every ffmpeg that a previous daemon of this box (killed with -9,
// its children outliving it) left writing into the folder of a job of the store, and
// returns the jobs it killed one for. Restore does the same for each job it restores;
// a box of a fleet restores none (the fleet says what it runs) and calls this at start.
func (m *Manager) KillOrphans() []string {
	recs, err := m.cfg.Store.Jobs()
	if err != nil {
		m.cfg.Log.Warn().Err(err).Msg("orphans: read stored jobs")
		return nil
	}
	var killed []string
	for id, raw := range recs {
		rec, err := decodeRecord(raw)
		if err == nil && rec.PID > 0 && killOrphan(rec.PID, filepath.Join(m.cfg.Output, id)) {
			m.cfg.Log.Warn().Str("job", id).Int("pid", rec.PID).Msg("killed the ffmpeg a previous daemon left running")
			killed = append(killed, id)
		}
	}
	return killed
}

// StoredJob is what Stored reads of a job's record.
type StoredJob struct {
	Request Request
	Ladder  *ladder.Ladder
	State   State
	Live    bool
	Source  string // as the API showed it
}

// Stored reads a record the store keeps of a job (what Store.Jobs returns).
func Stored(raw []byte) (StoredJob, error) {
	rec, err := decodeRecord(raw)
	if err != nil {
		return StoredJob{}, err
	}
	return StoredJob{Request: Request(rec.Request), Ladder: rec.Ladder, State: rec.View.State, Live: rec.View.Live, Source: rec.View.Source}, nil
}
