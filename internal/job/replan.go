package job

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// Sources that change. A camera or an encoder that comes back after its stream ended
// may come back at another size, aspect or frame rate (an OBS canvas changed, a camera
// reconfigured). The plan was made from the source as first probed: kept, it would drop
// a rung the source can now feed, upscale one it no longer can, stretch a new aspect
// and keep the old GOP. So after a live source ended, the next run probes it again, in
// parallel with the new ffmpeg so that recovery is not slowed down, and the new run's
// segments are not listed until the probe has answered. When the probe plans other
// rungs, that run is stopped unlisted and the next one encodes the new plan: a new
// Period and an HLS discontinuity, a new master playlist, as shedding does. A rung the
// source no longer feeds is withdrawn; one it feeds again comes back.

// probed is what the probe of a run's source found.
type probed struct {
	info ladder.SourceInfo
	err  error
}

// replanned is a plan to encode from the next run on, and the probe it comes from.
type replanned struct {
	plan ladder.Plan
	info ladder.SourceInfo
}

// probeRun probes the source of a live run that follows one whose source ended, and
// returns where the answer comes; nil when there is nothing to probe.
func (r *runner) probeRun(ctx context.Context) chan probed {
	if !r.live || !r.sourceEnded {
		return nil
	}
	r.sourceEnded = false
	out := make(chan probed, 1)
	go func() {
		pctx, cancel := context.WithTimeout(ctx, r.timing.probe)
		defer cancel()
		info, err := r.in.Probe(pctx)
		out <- probed{info, err}
	}()
	return out
}

// onProbe compares what the probe of the running ffmpeg's source found with the plan:
// the same rungs, and the run's segments are listed at last; other rungs, and the run is
// stopped, unlisted, for the next one to encode them.
func (r *runner) onProbe(c *child, p probed) {
	c.probed = nil
	plan, err := p.info, p.err
	if err != nil {
		r.log.Warn().Err(err).Msg("probe of the source after its return failed: the plan stays")
		c.held = false
		r.refresh()
		return
	}
	next, err := r.j.ladder.Plan(plan)
	if err != nil || samePlan(next, r.plan) {
		if err != nil {
			r.log.Warn().Err(err).Msg("the source changed to one the ladder cannot plan: the plan stays")
		}
		c.held = false
		r.refresh()
		return
	}
	r.replan = &replanned{plan: next, info: p.info}
	c.reshape = fmt.Errorf("%w: the source changed to %dx%d at %.4g fps", errReshape, p.info.Width, p.info.Height, p.info.FPS)
	c.stop() // SIGINT; its segments are never listed (held)
}

// samePlan reports whether a and b encode the same rungs at the same sizes and rate.
func samePlan(a, b ladder.Plan) bool {
	return a.FPS == b.FPS && a.GOP == b.GOP && slices.Equal(a.Video, b.Video) && slices.Equal(a.Audio, b.Audio)
}

// applyReplan makes the plan that onProbe found the job's: the view, the index's
// tracks, the encoders.
func (r *runner) applyReplan() error {
	rp := r.replan
	r.replan = nil
	was := renditionsOf(r.plan)
	r.plan = rp.plan
	r.retrack(rp.plan)
	r.j.setPlan(rp.plan, &rp.info)
	msg := fmt.Sprintf("the source changed to %dx%d at %.4g fps: rungs %s, were %s", rp.info.Width, rp.info.Height, rp.info.FPS,
		rungNames(renditionsOf(rp.plan)), rungNames(was))
	r.log.Warn().Msg(msg)
	r.j.event(Event{Type: "replan", Message: msg})
	return r.admitGPU(&rp.info)
}

// retrack fits the index's tracks to plan: a new rung gets a track, one the plan drops
// is withdrawn (its segments stay listed while in the window), one it takes back comes
// back with its first new segment. Every track reads its init segment again: its size
// may have changed.
// The video rungs of a Period number their segments alike (DASH players switch rungs by
// $Number$): a new rung, or one back after sitting out runs, numbers on from the others.
func (r *runner) retrack(plan ladder.Plan) {
	last := int64(-1)
	for _, t := range r.idx.tracks {
		if t.Kind == manifest.Video {
			last = max(last, t.last)
		}
	}
	keep := map[string]bool{}
	for _, v := range plan.Video {
		keep[v.Name] = true
		i := slices.IndexFunc(r.idx.tracks, func(t *track) bool { return t.Name == v.Name })
		if i < 0 {
			t := r.idx.addTrack(v.Name, manifest.Video, filepath.Join(r.j.dir, v.Name), filepath.Join(r.j.dir, ffmpeg.PrivatePlaylist(v.Name)), v.MaxRate)
			t.last = last
		} else if t := r.idx.tracks[i]; t.Withdrawn && r.shed.rung != v.Name {
			t.returning = true
			t.last = last
		}
	}
	for _, t := range r.idx.tracks {
		t.init = nil
		if t.Kind != manifest.Video {
			continue
		}
		t.FrameRate = ffmpeg.FrameRate(plan.FPS)
		if !keep[t.Name] {
			t.Withdrawn, t.returning = true, false
		}
	}
}

func rungNames(rs []Rendition) string {
	var names []string
	for _, r := range rs {
		if r.Kind == string(manifest.Video) {
			names = append(names, r.Name)
		}
	}
	return fmt.Sprint(names)
}
