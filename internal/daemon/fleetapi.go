package daemon

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/transcoderd/transcoderd/internal/api"
	"github.com/transcoderd/transcoderd/internal/cluster"
	"github.com/transcoderd/transcoderd/internal/coord"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// fleetAPI is the fleet as the API sees it (api.Fleet).
type fleetAPI struct{ f *fleet }

func (a fleetAPI) Box() string { return a.f.box }

// placeWait is how long POST /v1/jobs waits for the scheduler to place a job.
const placeWait = 5 * time.Second

// Submit checks the request here, submits it, and waits for its placement. A live job
// that fits on no box is taken back and refused (503), as on one box, unless it asked
// to queue.
func (a fleetAPI) Submit(ctx context.Context, req job.Request) (api.FleetJob, error) {
	c, err := a.f.jobs.Check(ctx, req)
	if err != nil {
		return api.FleetJob{}, err
	}
	if c.Push {
		// The box that adopts a job makes its stream key, which this answer could not
		// show, and an encoder publishes to one box's hub: not yet for a fleet.
		return api.FleetJob{}, fmt.Errorf("%w: push jobs (%s) are not yet run by a fleet: run them on a box started without --box-id", job.ErrInvalid, c.Display)
	}
	spec, err := specOf(c)
	if err != nil {
		return api.FleetJob{}, err
	}
	if err := cluster.Submit(ctx, a.f.b, spec); errors.Is(err, coord.ErrExists) {
		return api.FleetJob{}, fmt.Errorf("%w: job %q exists in the fleet", job.ErrConflict, spec.ID)
	} else if err != nil {
		return api.FleetJob{}, err
	}
	deadline := time.Now().Add(placeWait)
	for {
		as, err := cluster.Assignments(ctx, a.f.b)
		as1, placed := as[spec.ID]
		switch {
		case err == nil && placed && as1.Box != "":
			return fleetView(spec, as1, cluster.Status{}), nil
		case err == nil && placed && as1.Waiting != "" && c.Live && !c.Request.Queue:
			_ = cluster.Remove(context.WithoutCancel(ctx), a.f.b, spec.ID)
			return api.FleetJob{}, fmt.Errorf("%w: no box has room: %s", cpucap.ErrOverCapacity, as1.Waiting)
		case err == nil && placed && as1.Waiting != "", time.Now().After(deadline):
			return fleetView(spec, as1, cluster.Status{}), nil
		}
		select {
		case <-ctx.Done():
			return api.FleetJob{}, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// fleetView is a job as the fleet's records show it: for the boxes that do not run it.
func fleetView(spec cluster.JobSpec, as cluster.Assignment, st cluster.Status) api.FleetJob {
	v := job.View{
		ID: spec.ID, State: job.Starting, Source: spec.Source, Live: spec.Live, Renditions: []job.Rendition{},
		HLS: spec.ID + "/" + manifest.MasterName, DASH: spec.ID + "/" + manifest.MPDName, Created: spec.Created,
	}
	if spec.Ladder != nil {
		v.Ladder = spec.Ladder.Name
	}
	switch {
	case st.State != "" && st.Epoch >= as.Epoch:
		v.State = job.State(st.State)
	case as.Box == "" && as.Waiting != "":
		v.State, v.Waiting = job.Queued, as.Waiting
	}
	return api.FleetJob{View: v, Box: as.Box}
}

// fleetRecords is the fleet's jobs with their assignments and checkpoints.
type fleetRecords struct {
	specs  map[string]cluster.JobSpec
	assign map[string]cluster.Assignment
	status map[string]cluster.Status
}

// recordsWait is how long the API tries again to read the fleet's records: while the
// NATS servers elect new leaders (a box with one of them died), reads fail for a few
// seconds.
const recordsWait = 8 * time.Second

func (a fleetAPI) records(ctx context.Context) (fleetRecords, error) {
	deadline := time.Now().Add(recordsWait)
	for {
		r, err := a.readRecords(ctx)
		if err == nil || time.Now().After(deadline) {
			return r, err
		}
		select {
		case <-ctx.Done():
			return r, err
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (a fleetAPI) readRecords(ctx context.Context) (fleetRecords, error) {
	var r fleetRecords
	var err1, err2, err3 error
	r.specs, err1 = cluster.Jobs(ctx, a.f.b)
	r.assign, err2 = cluster.Assignments(ctx, a.f.b)
	r.status, err3 = cluster.Checkpoints(ctx, a.f.b)
	if r.specs == nil || r.assign == nil || r.status == nil {
		return r, errors.Join(err1, err2, err3)
	}
	return r, nil
}

// view is job id: this box's own view when it runs it here, else the records'.
func (a fleetAPI) view(r fleetRecords, id string, local map[string]job.View) api.FleetJob {
	as := r.assign[id]
	if v, ok := local[id]; ok && as.Box == a.f.box {
		return api.FleetJob{View: v, Box: a.f.box}
	}
	return fleetView(r.specs[id], as, r.status[id])
}

func (a fleetAPI) localViews() map[string]job.View {
	out := map[string]job.View{}
	for _, v := range a.f.jobs.List() {
		out[v.ID] = v
	}
	return out
}

// Jobs lists the fleet's jobs, and those that ended on this box and left the fleet.
func (a fleetAPI) Jobs(ctx context.Context) ([]api.FleetJob, error) {
	r, err := a.records(ctx)
	if err != nil {
		return nil, err
	}
	local := a.localViews()
	out := make([]api.FleetJob, 0, len(r.specs))
	for id := range r.specs {
		out = append(out, a.view(r, id, local))
	}
	for id, v := range local {
		if _, ok := r.specs[id]; !ok {
			out = append(out, api.FleetJob{View: v, Box: a.f.box})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

func (a fleetAPI) Job(ctx context.Context, id string) (api.FleetJob, string, error) {
	r, err := a.records(ctx)
	if err != nil {
		return api.FleetJob{}, "", err
	}
	if _, ok := r.specs[id]; !ok {
		return api.FleetJob{}, "", fmt.Errorf("%w: %q", job.ErrNotFound, id)
	}
	v := a.view(r, id, a.localViews())
	nodes, err := cluster.Nodes(ctx, a.f.b)
	if err != nil && nodes == nil {
		return v, "", nil
	}
	return v, nodes[v.Box].APIURL, nil
}

func (a fleetAPI) Remove(ctx context.Context, id string) error { return cluster.Remove(ctx, a.f.b, id) }

func (a fleetAPI) Drain(ctx context.Context, box string, on bool) error {
	return cluster.Drain(ctx, a.f.b, box, on)
}

// boxView is one box in GET /v1/cluster.
type boxView struct {
	ID           string            `json:"id"`
	APIURL       string            `json:"api_url,omitempty"`
	Version      string            `json:"version,omitempty"`
	FFmpeg       string            `json:"ffmpeg,omitempty"`
	CPULimit     float64           `json:"cpu_limit"`
	CPUUsed      float64           `json:"cpu_used"`
	GPUs         []gpuView         `json:"gpus"`
	Jobs         []cluster.Running `json:"jobs"`
	HeartbeatAge float64           `json:"heartbeat_age"`
	Draining     bool              `json:"draining"`
}

type gpuView struct {
	ID       string   `json:"id"`
	Encoders []string `json:"encoders"`
	Sessions int      `json:"sessions"`
	Free     int      `json:"free_sessions"` // -1: not limited
}

// Boxes is every box with a live record, by id.
func (a fleetAPI) Boxes(ctx context.Context) (any, error) {
	nodes, err := cluster.Nodes(ctx, a.f.b)
	if nodes == nil {
		return nil, err
	}
	drain, _ := cluster.Draining(ctx, a.f.b)
	out := make([]boxView, 0, len(nodes))
	for id, n := range nodes {
		b := boxView{ID: id, APIURL: n.APIURL, Version: n.Version, FFmpeg: n.FFmpeg, CPULimit: n.CPULimit, CPUUsed: n.CPUUsed,
			GPUs: []gpuView{}, Jobs: append([]cluster.Running{}, n.Jobs...), Draining: n.Draining || drain[id],
			HeartbeatAge: max(0, time.Since(n.Heartbeat).Seconds())}
		for _, g := range n.GPUs {
			free := -1
			if g.Sessions >= 0 {
				free = max(0, g.Sessions-g.Used)
			}
			b.GPUs = append(b.GPUs, gpuView{ID: g.ID, Encoders: g.Encoders, Sessions: g.Sessions, Free: free})
		}
		out = append(out, b)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return map[string]any{"box": a.f.box, "boxes": out}, nil
}
