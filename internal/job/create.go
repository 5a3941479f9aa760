package job

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
)

// Create validates req and starts the job. Nothing is started and nothing is written
// when it returns an error.
func (m *Manager) Create(ctx context.Context, req Request) (*Job, error) {
	return m.create(ctx, req, nil)
}

// create is Create; a push job's stream key is the one whose hash is bound, or a new
// one when bound is nil.
func (m *Manager) create(ctx context.Context, req Request, bound *ingest.Hash) (*Job, error) {
	id, src, l, err := m.check(ctx, &req)
	if err != nil {
		return nil, err
	}
	in := m.inputOf(src) // the job's: what its probe learns, its runner knows
	info, err := m.probeNew(ctx, in, src, l)
	if err != nil {
		return nil, err
	}
	return m.register(id, req, src, l, info, in, bound, 0)
}

// check validates req, filling in its defaults: the job's id, its source and its ladder.
func (m *Manager) check(ctx context.Context, req *Request) (string, source.Source, *ladder.Ladder, error) {
	return m.checkWith(ctx, req, nil)
}

// checkWith is check with ladder given, when not nil, instead of the request's by name.
func (m *Manager) checkWith(ctx context.Context, req *Request, given *ladder.Ladder) (string, source.Source, *ladder.Ladder, error) {
	id := req.ID
	if id == "" {
		id = newID()
	} else if !ladder.ValidName(id) {
		return "", source.Source{}, nil, fmt.Errorf("%w: id %q must match [a-z0-9_-]{1,64}", ErrInvalid, id)
	}
	if req.Ladder == "" {
		req.Ladder = "default"
	}
	src, err := source.Parse(req.Source, m.cfg.MediaRoot)
	if err == nil {
		err = m.cfg.Hosts.Check(ctx, src)
	}
	if err != nil {
		return "", source.Source{}, nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	l := given
	if l == nil {
		if l, err = m.cfg.Ladders.Get(req.Ladder); err != nil {
			return "", source.Source{}, nil, fmt.Errorf("%w: ladder %q: %w", ErrInvalid, req.Ladder, err)
		}
	}
	if req.Record != nil && *req.Record && !src.Live {
		return "", source.Source{}, nil, fmt.Errorf("%w: record is for live sources: a file job keeps every segment", ErrInvalid)
	}
	if err := m.checkPushRequest(src, req.SRTPassphrase); err != nil {
		return "", source.Source{}, nil, err
	}
	if err := m.cfg.Limits.checkLadder(l, src.Live); err != nil {
		return "", source.Source{}, nil, err
	}
	m.mu.Lock()
	err = m.cfg.Limits.checkJobs(m.jobs) // again when registered: this one spares a probe
	m.mu.Unlock()
	return id, src, l, err
}

// probeNew probes the source of a new job. A live source is probed briefly, to admit
// the job on the rungs it will really encode (a 720p camera drops a 1080p rung): one
// not reachable yet is admitted on its ladder's full cost, then measured, and the job
// starts as reconnecting. A file is probed in full, so that a file that is not media
// is refused with a 4xx.
func (m *Manager) probeNew(ctx context.Context, in Input, src source.Source, l *ladder.Ladder) (*ladder.SourceInfo, error) {
	if src.Live {
		pctx, cancel := context.WithTimeout(ctx, min(m.deps.timing.probe, 8*time.Second))
		defer cancel()
		if info, err := in.Probe(pctx); err == nil {
			return &info, nil
		}
		return nil, nil
	}
	pctx, cancel := context.WithTimeout(ctx, m.deps.timing.probe)
	defer cancel()
	info, err := in.Probe(pctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, src.Display, err)
	}
	if _, err := l.Plan(info); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrInvalid, src.Display, err)
	}
	return &info, nil
}

// register admits the new job, creates its folder and starts it, or queues it. A job of
// the fleet (epoch > 0) may find its folder holding what its earlier boxes wrote.
func (m *Manager) register(id string, req Request, src source.Source, l *ladder.Ladder, info *ladder.SourceInfo, in Input, bound *ingest.Hash, epoch uint64) (*Job, error) {
	dir := filepath.Join(m.cfg.Output, id)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	if _, ok := m.jobs[id]; ok {
		return nil, fmt.Errorf("%w: job %q exists", ErrConflict, id)
	}
	if err := m.cfg.Limits.checkJobs(m.jobs); err != nil {
		return nil, err
	}
	if err := checkJobDir(dir); err != nil {
		return nil, err
	}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 && epoch == 0 {
		return nil, fmt.Errorf("%w: output folder %s is not empty: delete it or choose another id", ErrConflict, dir)
	}
	m.queue.mu.Lock() // admitted and queued or started at once: no room freed in between is missed
	defer m.queue.mu.Unlock()
	cost, waiting, err := m.admitNew(id, src, l, info, req.Queue)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		m.cfg.CPU.Release(id) // no room was freed: nothing for the queue
		return nil, fmt.Errorf("create job folder: %w", err)
	}
	state := Starting
	if waiting != "" {
		state = Queued
	}
	j := m.newJob(id, Request{Source: req.Source, Ladder: l.Name, ID: id, Queue: req.Queue, SRTPassphrase: req.SRTPassphrase, Record: req.Record}, src, l, View{
		ID: id, State: state, Source: src.Display, Ladder: l.Name, Live: src.Live, Input: info,
		HLS: id + "/" + manifest.MasterName, DASH: id + "/" + manifest.MPDName, Waiting: waiting, Cost: cost, Created: m.deps.now().UTC(),
	})
	j.cost, j.in, j.epoch = cost, in, epoch
	if src.Kind == source.Push {
		if err := m.joinHub(j, bound); err != nil {
			m.cfg.CPU.Release(id)
			_ = os.Remove(dir) // created empty just above
			return nil, err
		}
	}
	m.jobs[id] = j
	j.persist()
	j.log.Info().Str("source", src.Display).Str("ladder", l.Name).Bool("live", src.Live).Str("state", string(state)).Msg("job created")
	if state == Queued {
		m.queue.waiting = append(m.queue.waiting, j)
		j.event(Event{Type: "queued", Message: "waiting for room under the CPU cap: " + waiting})
		return j, nil
	}
	m.launch(j, startState{info: info})
	return j, nil
}

// admitNew reserves cores for a new live job under the CPU cap: a live job must keep
// up with real time, so it is admitted only if its estimated cost (costOf: on the
// encoders it will run on) fits beside what the running live jobs reserve (measured
// once they run). When it does not fit and the job may queue, waiting says why it
// waits. The queue's lock is held.
func (m *Manager) admitNew(id string, src source.Source, l *ladder.Ladder, info *ladder.SourceInfo, mayQueue bool) (cost float64, waiting string, err error) {
	if !src.Live {
		return 0, "", nil
	}
	cost = m.costOf(l, planOrNominal(l, info), info)
	if limit := m.cfg.CPU.Limit(); cost > limit {
		return 0, "", fmt.Errorf("%w: this job needs about %.2f cores, more than the whole limit of %.2f: it could never start", cpucap.ErrOverCapacity, cost, limit)
	}
	if err := m.queue.admitLocked(id, cost); err != nil {
		if !mayQueue || !errors.Is(err, cpucap.ErrOverCapacity) {
			return 0, "", err
		}
		return cost, err.Error(), nil
	}
	return cost, "", nil
}

// costOf is the cores plan p of ladder l needs in real time on the encoders the GPU
// service would choose for it now (gpu.Service.Place): a rung on a hardware encoder
// costs its share of the CPU, as the probe's trial encode measured it, not an x264
// encode (cpucap.Cost). info is the probed source, nil when not probed.
func (m *Manager) costOf(l *ladder.Ladder, p ladder.Plan, info *ladder.SourceInfo) float64 {
	var src ladder.SourceInfo
	if info != nil {
		src = *info
	}
	return admissionCost(m.cfg.GPU.Place(l, p, src), l.Video.Preset)
}

// admissionCost is the cores the plan of a takes on the encoders a places it on.
func admissionCost(a gpu.Admission, preset string) float64 {
	onGPU := func(v ladder.PlannedVideo) bool { return encoder.IsHardware(v.Encoder) }
	return cpucap.Cost(a.Plan, preset, onGPU, a.CPUPerMpx)
}

// newJob returns a job of m with view, started by nothing yet.
func (m *Manager) newJob(id string, req Request, src source.Source, l *ladder.Ladder, view View) *Job {
	j := &Job{
		id: id, req: req, src: src, ladder: l, dir: filepath.Join(m.cfg.Output, id),
		log: m.cfg.Log.With().Str("job", id).Logger(), now: m.deps.now, store: m.cfg.Store,
		done: make(chan struct{}), view: view, in: m.inputOf(src),
	}
	if records(req, l, src.Live) {
		j.rec = &recording{}
	}
	return j
}

// planOrNominal is l applied to the probed source, or to a nominal one (nominalPlan)
// when it was not probed or does not fit.
func planOrNominal(l *ladder.Ladder, info *ladder.SourceInfo) ladder.Plan {
	if info != nil {
		if p, err := l.Plan(*info); err == nil {
			return p
		}
	}
	return nominalPlan(l)
}

// nominalPlan is a ladder applied to a source as large as its top rung, at 30 fps (or
// its max_fps): the cost of a live job before its source has been probed.
func nominalPlan(l *ladder.Ladder) ladder.Plan {
	top := 0
	for _, r := range l.Video.Renditions {
		top = max(top, r.Height)
	}
	fps := 30.0
	if l.Video.MaxFPS > 0 {
		fps = min(fps, l.Video.MaxFPS)
	}
	p, err := l.Plan(ladder.SourceInfo{HasVideo: top > 0, Width: (top*16/9 + 1) &^ 1, Height: top, FPS: fps, HasAudio: true, Channels: 2})
	if err != nil {
		return ladder.Plan{}
	}
	return p
}
