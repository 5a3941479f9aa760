package job

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/transcoderd/transcoderd/internal/source"
)

// Restore brings back the jobs of a previous run of the daemon: an ffmpeg it left
// behind is killed, ended jobs are listed as they ended, and jobs that had not ended
// are started again: a live job continues its presentation in the same folder, a file
// job starts over.
func (m *Manager) Restore(ctx context.Context) error {
	recs, err := m.cfg.Store.Jobs()
	if err != nil {
		return fmt.Errorf("read stored jobs: %w", err)
	}
	m.queue.pause() // until every running job holds its cores again
	for id, raw := range recs {
		rec, err := decodeRecord(raw)
		if err != nil {
			m.cfg.Log.Error().Err(err).Str("job", id).Msg("unreadable stored job: skipped")
			continue
		}
		dir := filepath.Join(m.cfg.Output, id)
		if rec.PID > 0 && killOrphan(rec.PID, dir) {
			m.cfg.Log.Warn().Str("job", id).Int("pid", rec.PID).Msg("killed the ffmpeg a previous daemon left running")
		}
		if err := m.restoreOne(id, rec, 0); err != nil {
			m.cfg.Log.Error().Err(err).Str("job", id).Msg("restore job")
		}
	}
	m.queue.resume()
	return nil
}

// restoreOne lists the job of rec again, and queues or resumes it if it had not ended,
// at the fleet's epoch (0 on a single box).
func (m *Manager) restoreOne(id string, rec storedJob, epoch uint64) error {
	if rec.Ladder == nil {
		return fmt.Errorf("stored job has no ladder")
	}
	view := rec.view()
	src, err := source.Parse(rec.Request.Source, m.cfg.MediaRoot)
	if err != nil {
		view.State = Failed
		view.Error = "not resumed: " + err.Error()
	}
	j := m.newJob(id, Request(rec.Request), src, rec.Ladder, view)
	j.plan, j.ast, j.epoch = rec.Plan, rec.AST, epoch
	if rec.Recording != nil && j.rec != nil {
		segs, err := m.cfg.Store.Segments(id)
		if err != nil {
			return fmt.Errorf("stored recording: %w", err)
		}
		j.rec = rec.Recording.restored(segs)
	}
	m.mu.Lock()
	m.jobs[id] = j
	m.mu.Unlock()
	m.resumeExports(j)
	switch {
	case j.view.State.Ended():
		close(j.done)
		if err != nil {
			j.persist()
		}
		m.scheduleExpiry(j)
		return nil
	case j.view.State == Queued && src.Live:
		j.cost = m.costOf(rec.Ladder, planOrNominal(rec.Ladder, rec.Input), rec.Input)
		j.view.Cost = j.cost
		m.queue.add(j) // in order of creation once all are restored
		j.event(Event{Type: "restore", Message: "still queued after a daemon restart"})
		return nil
	case j.view.State == Stopping:
		return m.finalize(j, rec)
	}
	if src.Kind == source.Push {
		if err := m.rejoinHub(j, rec); err != nil {
			j.update(func(v *View) { v.Error = "not resumed: " + err.Error() })
			j.setState(Failed)
			close(j.done)
			return err
		}
	}
	return m.resume(j, rec)
}

// resume starts again a job that was running, reconnecting, or queued without a cap now: a live job with its stored plan and index.
func (m *Manager) resume(j *Job, rec storedJob) error {
	j.view.State = Starting
	j.view.Waiting = ""
	start, err := m.startOf(j, rec)
	if err != nil {
		return err
	}
	if j.src.Live {
		j.cost = m.costOf(rec.Ladder, nominalPlan(rec.Ladder), rec.Input)
		j.view.Cost = j.cost
		if err := m.cfg.CPU.Admit(j.id, j.cost); err != nil {
			m.cfg.Log.Warn().Err(err).Str("job", j.id).Msg("resuming a job over the CPU limit: it was admitted before the restart")
			m.cfg.CPU.Reserve(j.id, j.cost)
		}
	}
	j.event(Event{Type: "restore", Message: "resumed after a daemon restart"})
	j.log.Info().Bool("live", j.src.Live).Msg("resuming job after a daemon restart")
	m.mu.Lock()
	m.launch(j, start)
	m.mu.Unlock()
	return nil
}

// finalize carries out the stop asked of a job before the previous daemon died: it is
// not resumed, only given the final manifests of what it wrote and ended (runner.finalize).
func (m *Manager) finalize(j *Job, rec storedJob) error {
	start := startState{info: rec.Input, plan: rec.Plan, ast: rec.AST, final: true}
	if rec.Plan != nil {
		segs, err := m.cfg.Store.Segments(j.id)
		if err != nil {
			m.cfg.Log.Warn().Err(err).Str("job", j.id).Msg("stored index unreadable: no final manifests")
		}
		start.segments = segs
	}
	j.event(Event{Type: "restore", Message: "it was stopping when the daemon stopped: it is not resumed"})
	m.mu.Lock()
	m.launch(j, start)
	m.mu.Unlock()
	return nil
}

// killOrphan kills the process group of pid if pid is still an ffmpeg writing into dir
// (a daemon killed with -9 whose child outlived it). It reports whether it killed one.
func killOrphan(pid int, dir string) bool {
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(string(cmdline), "\x00")
	if len(args) == 0 || filepath.Base(args[0]) != "ffmpeg" && !strings.Contains(args[0], "ffmpeg") {
		return false
	}
	if !strings.Contains(string(cmdline), dir+string(filepath.Separator)) {
		return false
	}
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	_ = syscall.Kill(pid, syscall.SIGKILL)
	return true
}

// startOf is what a resumed job starts from: a live job that had planned, its stored
// plan and index on the same timeline; any other, its probe, if it had one.
func (m *Manager) startOf(j *Job, rec storedJob) (startState, error) {
	if !j.src.Live || rec.Plan == nil {
		return startState{info: rec.Input}, nil
	}
	segs, err := m.cfg.Store.Segments(j.id)
	if err != nil {
		return startState{}, err
	}
	return startState{info: rec.Input, plan: rec.Plan, segments: segs, ast: rec.AST}, nil
}
