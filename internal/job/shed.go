package job

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

// Shedding the top rung (a ladder's video.shed_top_rung). A live job whose ffmpeg runs
// slower than real time stutters in every rung: each segment comes late. A ladder that
// opts in gives up its top rung instead, which is most of the encoding work: ffmpeg is
// restarted without it, its rendition leaves the master playlist and its media playlist
// is removed (HLS players on it get a 404 and switch to another variant), and its
// Representation is left out of the new DASH Period. The rest go on in real time.
//
// It is shed as soon as the job has lost shedLag to real time for want of CPU: the
// sooner, the less its viewers stall, and the shorter the gap in the presentation
// before the new run (players wait out a gap, or jump it). A job slow because its
// source sends slowly keeps its rungs: encoding less would not help it.
//
// The rung is tried again once it has been shed for a hold-off, when the CPU cap has
// room for it; if the job falls behind again, it is shed again and the hold-off doubles.
const (
	shedHoldOff    = 5 * time.Minute // first wait before the rung is tried again
	shedHoldOffMax = time.Hour
)

// shedLag is how much real time a job whose segments last segDur may lose before it
// sheds: two segments. Players start about three segments behind the live edge (the
// HLS hold-back, the MPD's suggested presentation delay), so by then they are close to
// running dry.
func shedLag(segDur time.Duration) time.Duration {
	return max(2*segDur, 2*time.Second)
}

// pace is how a live job's ffmpeg keeps up with real time, at one of the runner's checks.
type pace struct {
	slowSince time.Time     // when it fell below real time; zero while it keeps up
	lag       time.Duration // real time lost since it last kept up (speedMeter)

	// Since the sample before (5 s earlier, or a beat while the job is slow):
	load         cpucap.Load // the box and the CPU cap
	loadKnown    bool
	busiest      float64 // share of the time ffmpeg's busiest thread was ready to run
	busiestKnown bool
}

// shortOfCPU tells whether ffmpeg is slow for want of CPU rather than because it waits
// for its source: the cap's quota keeps running out or every core is busy, or one of
// its threads has work all the time. Unmeasured counts as short of CPU: shedding is
// what the ladder asked for.
func (p pace) shortOfCPU() bool {
	if !p.loadKnown && !p.busiestKnown {
		return true
	}
	return (p.loadKnown && p.load.Short()) || (p.busiestKnown && p.busiest >= cpucap.SerialBound)
}

// cpu says what the figures behind shortOfCPU were.
func (p pace) cpu() string {
	var parts []string
	if p.loadKnown {
		parts = append(parts, p.load.String())
	}
	if p.busiestKnown {
		parts = append(parts, fmt.Sprintf("ffmpeg's busiest thread had work %.0f%% of the time", 100*p.busiest))
	}
	if len(parts) == 0 {
		return "CPU not measured"
	}
	return strings.Join(parts, ", ")
}

// errReshape ends an ffmpeg run that must start again at once with another set of rungs.
var errReshape = errors.New("ladder reshaped")

// shedding is a live job's record of its shed rung. Its runner owns it.
type shedding struct {
	rung    string        // the rung not encoded now; "" when every rung is
	since   time.Time     // when it was shed
	holdOff time.Duration // how long it stays shed before it is tried again
}

// shedRung is the rung that shedding gives up: the plan's tallest, highest bitrate.
func shedRung(p ladder.Plan) (ladder.PlannedVideo, bool) {
	if len(p.Video) < 2 {
		return ladder.PlannedVideo{}, false // a single rung is never shed: nothing would be left
	}
	top := p.Video[0]
	for _, v := range p.Video[1:] {
		if v.Height > top.Height || (v.Height == top.Height && v.Bitrate > top.Bitrate) {
			top = v
		}
	}
	return top, true
}

// without returns p without the video rung called name.
func without(p ladder.Plan, name string) ladder.Plan {
	if name == "" {
		return p
	}
	out := p
	out.Video = nil
	for _, v := range p.Video {
		if v.Name != name {
			out.Video = append(out.Video, v)
		}
	}
	return out
}

// reshape decides, at one of the runner's checks, whether the running ffmpeg must be
// restarted with another set of rungs: it sheds the top rung of plan when the job is
// slower than real time, short of CPU, and has lost shedLag, and takes it back once the
// hold-off has passed and the CPU cap has room for it. It returns errReshape (wrapped,
// with the reason) or nil.
func (r *runner) reshape(now time.Time, p pace, plan ladder.Plan, idx *index) error {
	if !r.live || !r.j.ladder.Video.ShedTopRung {
		return nil
	}
	top, ok := shedRung(plan)
	if !ok {
		return nil
	}
	s := &r.shed
	switch {
	case s.rung == "" && !p.slowSince.IsZero() && p.lag >= shedLag(idx.segDur) && p.shortOfCPU():
		s.rung, s.since = top.Name, now
		s.holdOff = min(max(2*s.holdOff, r.timing.shedHoldOff), shedHoldOffMax)
		r.j.mu.Lock()
		speed := r.j.view.Progress.Speed
		r.j.mu.Unlock()
		msg := fmt.Sprintf("short of CPU (%s), %.1f s behind real time after %v (speed %.2fx): shedding the top rung %s so the others keep up; it is tried again in %v",
			p.cpu(), p.lag.Seconds(), now.Sub(p.slowSince).Round(time.Second), speed, top.Name, s.holdOff)
		r.log.Warn().Str("rung", top.Name).Float64("speed", speed).Float64("lag", p.lag.Seconds()).Msg(msg)
		r.j.event(Event{Type: "shed", Message: msg})
		r.withdraw(idx, top.Name, true)
		return fmt.Errorf("%w: %s shed", errReshape, top.Name)
	case s.rung != "" && now.Sub(s.since) >= s.holdOff:
		// Queued jobs go first; then the rung's cores are reserved before it starts.
		// On its encoder: a rung on the GPU costs its CPU share.
		need := admissionCost(gpu.Admission{Plan: ladder.Plan{FPS: plan.FPS, Video: []ladder.PlannedVideo{top}}, CPUPerMpx: r.adm.CPUPerMpx}, r.j.ladder.Video.Preset)
		if err := r.cores.grow(r.j.id, need); err != nil {
			s.since = now // no room yet: look again after another hold-off
			r.log.Info().Err(err).Str("rung", top.Name).Msg("the shed rung stays off: the CPU cap has no room for it")
			return nil
		}
		msg := fmt.Sprintf("trying the top rung %s again after %v", top.Name, now.Sub(s.since).Round(time.Second))
		r.log.Info().Str("rung", top.Name).Msg(msg)
		r.j.event(Event{Type: "unshed", Message: msg})
		s.rung = ""
		r.withdraw(idx, top.Name, false)
		return fmt.Errorf("%w: %s back", errReshape, top.Name)
	}
	return nil
}

// withdraw marks the rung called name shed (or back) in the index and the job's view.
// A rung that comes back stays out of the manifests until its first new segment.
func (r *runner) withdraw(idx *index, name string, shed bool) {
	for _, t := range idx.tracks {
		if t.Name == name {
			t.Withdrawn = true
			t.returning = !shed
		}
	}
	r.j.update(func(v *View) {
		v.Shed = nil
		for i := range v.Renditions {
			if v.Renditions[i].Name == name {
				v.Renditions[i].Shed = shed
			}
			if v.Renditions[i].Shed {
				v.Shed = append(v.Shed, v.Renditions[i].Name)
			}
		}
	})
}

// checkBehind reports a live job whose ffmpeg has run slower than real time for 10 s:
// its viewers will stall. It keeps in the runner's pace when the slow spell began (zero
// when not slow) and the lag.
func (r *runner) checkBehind(now time.Time) {
	if !r.live {
		r.pace = pace{}
		return
	}
	p := &r.pace
	r.j.mu.Lock()
	speed, behind := r.j.view.Progress.Speed, r.j.view.Behind
	p.lag = time.Duration(r.j.view.Progress.Lag * float64(time.Second))
	r.j.mu.Unlock()
	switch {
	case speed == 0:
	case speed >= realTime:
		if behind {
			r.j.update(func(v *View) { v.Behind = false })
			r.j.event(Event{Type: "behind", Message: fmt.Sprintf("back to real time (speed %.2fx)", speed)})
		}
		p.slowSince = time.Time{}
	case p.slowSince.IsZero():
		p.slowSince = now
	case !behind && now.Sub(p.slowSince) >= 10*time.Second:
		r.j.update(func(v *View) { v.Behind = true })
		msg := fmt.Sprintf("slower than real time for %v (speed %.2fx, %.1f s behind): %s",
			now.Sub(p.slowSince).Round(time.Second), speed, p.lag.Seconds(), p.why())
		r.log.Warn().Float64("speed", speed).Float64("lag", p.lag.Seconds()).Msg(msg)
		r.j.event(Event{Type: "behind", Message: msg})
	}
}

// why says why ffmpeg is slower than real time, with the figures behind it.
func (p pace) why() string {
	why := "the box is over capacity: ffmpeg is short of CPU"
	switch {
	case !p.loadKnown && !p.busiestKnown:
		why = "the cause is not measured"
	case !p.shortOfCPU():
		why = "ffmpeg waits for its source"
	}
	if p.loadKnown || p.busiestKnown {
		why += " (" + p.cpu() + ")"
	}
	return why
}
