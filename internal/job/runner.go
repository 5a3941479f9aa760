package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/transcoderd/transcoderd/internal/backoff"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
)

// startState is what a job starts from: nothing for a new live job (it probes), the
// probe for a new file job, and the stored plan and index for a resumed live job.
type startState struct {
	info     *ladder.SourceInfo
	plan     *ladder.Plan
	segments map[string][]manifest.Segment
	ast      time.Time
}

// run is the job's whole life: probe, plan, then ffmpeg runs until the source ends
// (VOD), the job is stopped, or it fails. Live sources are retried with backoff.
func (j *Job) run(ctx context.Context, st startState) {
	bo := backoff.New()
	if st.plan != nil {
		idx, err := j.resumeIndex(*st.plan, st)
		if err != nil {
			j.log.Warn().Err(err).Msg("cannot resume the stored index: starting the presentation again")
		} else {
			j.persistSegments(idx, true) // what catchUp found, before anything can overwrite it
			j.loop(ctx, bo, *st.plan, idx, st.info)
			return
		}
	}
	info := st.info
	if info == nil {
		in, err := j.probeLive(ctx, bo)
		if ctx.Err() != nil && j.m.closing() && j.m.cfg.Store != nil {
			j.log.Info().Msg("daemon stopping: the job probes its source again when it starts again")
			return
		}
		if err != nil || ctx.Err() != nil {
			j.finish(err) // stopped before the source was ever reached: nothing to end
			return
		}
		info = &in
	}
	plan, err := j.ladder.Plan(*info)
	if err != nil {
		j.finish(fmt.Errorf("plan ladder %s: %w", j.ladder.Name, err))
		return
	}
	j.update(func(v *View) {
		v.Input = info
		v.Renditions = renditionsOf(plan)
		v.Dropped = plan.Dropped
	})
	for _, n := range plan.Notes { // why audio renditions were dropped
		j.event(Event{Type: "dropped", Message: n})
	}
	j.mu.Lock()
	j.plan = &plan
	j.mu.Unlock()
	j.persist()

	idx, err := j.freshIndex(plan)
	if err != nil {
		j.finish(err)
		return
	}
	j.loop(ctx, bo, plan, idx, info)
}

// admitGPU places the plan's rungs on the GPU the probe found (or on x264), reserving
// encoder sessions, and says so in the job for every rung moved to software.
func (j *Job) admitGPU(plan ladder.Plan, info *ladder.SourceInfo) (gpu.Admission, error) {
	svc := j.m.cfg.GPU
	if svc == nil {
		return gpu.Admission{Plan: plan}, nil
	}
	var src ladder.SourceInfo
	if info != nil {
		src = *info
	}
	adm, err := svc.Admit(j.id, j.ladder, plan, src)
	if err != nil {
		return adm, fmt.Errorf("encoder: %w", err)
	}
	j.announce(adm, nil)
	return adm, nil
}

// announce publishes where the rungs run: never a silent fallback.
func (j *Job) announce(adm gpu.Admission, before []gpu.Move) {
	for _, mv := range adm.Moved[len(before):] {
		msg := fmt.Sprintf("rung %s: %s → %s: %s", mv.Rung, mv.Wanted, mv.To, mv.Reason)
		j.log.Warn().Str("rung", mv.Rung).Str("wanted", mv.Wanted).Str("to", mv.To).Msg("encoder fallback: " + mv.Reason)
		j.event(Event{Type: "fallback", Message: msg})
	}
	for _, n := range adm.Notes {
		j.event(Event{Type: "encoder", Message: n})
	}
	enc := map[string]string{}
	for _, v := range adm.Plan.Video {
		enc[v.Name] = v.Encoder
	}
	j.update(func(v *View) {
		for i := range v.Renditions {
			if e, ok := enc[v.Renditions[i].Name]; ok {
				v.Renditions[i].Encoder = e
			}
		}
	})
}

// loop runs ffmpeg again and again until the job ends.
func (j *Job) loop(ctx context.Context, bo *backoff.Backoff, plan ladder.Plan, idx *index, info *ladder.SourceInfo) {
	adm, err := j.admitGPU(plan, info)
	if err != nil {
		j.finish(err)
		return
	}
	if j.m.cfg.GPU != nil {
		defer j.m.cfg.GPU.Release(j.id)
	}
	for attempt := 1; ; attempt++ {
		start := idx.beginAttempt()
		argv, err := ffmpeg.BuildArgs(ffmpeg.Job{
			Source:       j.src.URL,
			Kind:         j.src.Kind,
			Live:         j.src.Live,
			Plan:         without(adm.Plan, j.shed.rung),
			HW:           adm.HW,
			Preset:       j.ladder.Video.Preset,
			Dir:          j.dir,
			StartNumbers: start,
		})
		if err != nil {
			j.finish(fmt.Errorf("build ffmpeg command: %w", err))
			return
		}
		shown := append([]string{j.m.cfg.FFmpeg}, argv...)
		for i, a := range shown {
			if a == j.src.URL && j.src.Display != "" {
				shown[i] = j.src.Display // never show a source's password in the API
			}
		}
		j.update(func(v *View) {
			v.FFmpeg = shown
			v.Restarts = attempt - 1
		})
		began := time.Now()
		runErr := j.runFFmpeg(ctx, argv, adm.Env(), adm.Plan, idx)
		ran := time.Since(began)

		stopped := ctx.Err() != nil
		if !stopped && errors.Is(runErr, errReshape) {
			continue // at once: the source is fine, only the rungs change
		}
		if stopped && j.m.closing() && j.m.cfg.Store != nil {
			j.log.Info().Msg("daemon stopping: the job resumes when it starts again")
			return
		}
		if stopped || (!j.src.Live && runErr == nil) {
			if err := j.render(idx, true); err != nil {
				j.log.Error().Err(err).Msg("render final manifests")
			}
			j.update(func(v *View) {
				if stopped {
					v.Progress.ETA = nil // it will not go on
				} else if !j.src.Live {
					v.Progress.finished()
				}
			})
			j.finish(nil)
			return
		}
		if runErr == nil {
			runErr = errors.New("the live source ended") // ffmpeg exits 0 when a live source closes
		}
		if j.m.cfg.GPU != nil {
			if f, ok := gpu.Diagnose(adm, j.stderrTail()); ok {
				// The hardware failed, not the source: move its rungs to x264 (if the
				// ladder allows) and start again at once.
				next, err := j.m.cfg.GPU.Fallback(j.id, j.ladder, adm, f)
				if err != nil {
					j.finish(err)
					return
				}
				j.announce(next, adm.Moved)
				adm = next
				for _, t := range idx.tracks {
					t.init = nil // the codec string may change with the encoder
				}
				if !j.src.Live {
					if idx, err = j.freshIndex(plan); err != nil {
						j.finish(err)
						return
					}
				}
				continue
			}
		}
		if !j.src.Live && attempt >= maxFileAttempts {
			j.finish(fmt.Errorf("gave up after %d attempts: %w", attempt, runErr))
			return
		}
		// A live source dropped or ffmpeg died: the presentation goes on after a pause.
		// A file is encoded again from the start, into a clean folder.
		wait := bo.Next(ran)
		j.log.Warn().Err(runErr).Dur("ran", ran).Dur("retry_in", wait).Int("attempt", attempt).Msg("ffmpeg exited; restarting")
		j.event(Event{Type: "restart", Message: fmt.Sprintf("restart %d in %v: %v", attempt, wait.Round(time.Millisecond), runErr)})
		j.update(func(v *View) { v.Error = runErr.Error() })
		j.setState(Reconnecting)
		if !j.src.Live {
			if idx, err = j.freshIndex(plan); err != nil {
				j.finish(err)
				return
			}
		}
		if !sleep(ctx, wait) {
			if err := j.render(idx, true); err != nil {
				j.log.Error().Err(err).Msg("render final manifests")
			}
			j.finish(nil)
			return
		}
	}
}

// fileNice is the nice value of a file job's ffmpeg.
const fileNice = 19

// maxFileAttempts bounds how often a file job's ffmpeg is started.
const maxFileAttempts = 3

// resumeIndex rebuilds the index of a live job from the store and the files on disk.
func (j *Job) resumeIndex(plan ladder.Plan, st startState) (*index, error) {
	idx := j.newIndex(plan)
	idx.ast = st.ast
	for _, t := range idx.tracks {
		if err := idx.restore(t, st.segments[t.Name]); err != nil {
			return nil, err
		}
	}
	if idx.produced == 0 {
		return nil, fmt.Errorf("no segment of the stored index is on disk")
	}
	idx.attempt = 1 // the next run is a restart: new period, discontinuity
	return idx, nil
}

// newIndex returns an index with plan's tracks, touching nothing on disk.
func (j *Job) newIndex(plan ladder.Plan) *index {
	idx := newIndex(j.src.Live, plan.SegmentDuration, j.ladder.Window, j.m.now)
	idx.fs = j.m.fs
	if j.m.cfg.SegmentGrace > 0 {
		idx.grace = j.m.cfg.SegmentGrace
	}
	for _, v := range plan.Video {
		t := idx.addTrack(v.Name, manifest.Video, filepath.Join(j.dir, v.Name), filepath.Join(j.dir, ffmpeg.PrivatePlaylist(v.Name)), v.MaxRate)
		t.FrameRate = ffmpeg.FrameRate(plan.FPS)
	}
	for _, a := range plan.Audio {
		t := idx.addTrack(a.Name, manifest.Audio, filepath.Join(j.dir, a.Name), filepath.Join(j.dir, ffmpeg.PrivatePlaylist(a.Name)), a.Bitrate)
		t.Language, t.Label, t.Group, t.SourceTrack = a.Language, a.Label, a.Group, a.Track
	}
	return idx
}

// freshIndex returns an empty index for plan, with empty rendition folders.
func (j *Job) freshIndex(plan ladder.Plan) (*index, error) {
	idx := j.newIndex(plan)
	if j.m.cfg.Store != nil {
		if err := j.m.cfg.Store.ClearSegments(j.id); err != nil {
			return nil, fmt.Errorf("clear stored index: %w", err)
		}
	}
	for _, t := range idx.tracks {
		if err := os.RemoveAll(t.dir); err != nil {
			return nil, fmt.Errorf("clear rendition folder: %w", err)
		}
		if err := os.MkdirAll(t.dir, 0o755); err != nil {
			return nil, fmt.Errorf("create rendition folder: %w", err)
		}
	}
	return idx, nil
}

// probeLive probes a live source, retrying with backoff while it is unreachable.
func (j *Job) probeLive(ctx context.Context, bo *backoff.Backoff) (ladder.SourceInfo, error) {
	for {
		pctx, cancel := context.WithTimeout(ctx, j.m.cfg.ProbeTimeout)
		began := time.Now()
		in, err := ffmpeg.Probe(pctx, j.m.cfg.FFprobe, j.src.URL, j.src.Kind)
		cancel()
		if err == nil {
			return in, nil
		}
		if ctx.Err() != nil {
			return ladder.SourceInfo{}, nil
		}
		wait := bo.Next(time.Since(began))
		j.log.Warn().Err(err).Dur("retry_in", wait).Msg("source not reachable")
		j.update(func(v *View) { v.Error = err.Error() })
		j.setState(Reconnecting)
		if !sleep(ctx, wait) {
			return ladder.SourceInfo{}, nil
		}
	}
}

// measure records the cores ffmpeg used since the last call; for a running live job
// under the CPU cap, the measure replaces its reservation.
func (j *Job) measure(meter *cpucap.Meter, now time.Time) {
	cores, err := meter.Cores(float64(now.UnixNano()) / 1e9)
	if err != nil {
		return
	}
	j.update(func(v *View) { v.CPU = cores })
	// Once segments flow: a job still connecting uses less than it will.
	if j.m.cfg.CPU != nil && j.src.Live && j.state() == Running {
		j.m.cfg.CPU.Observe(j.id, cores)
		j.m.admitQueued() // the measure may free part of the estimate
	}
}

// checkBehind reports a live job whose ffmpeg has run slower than real time for 10 s:
// its viewers will stall. It returns p with slowSince set to when the slow spell began
// (zero when not slow).
func (j *Job) checkBehind(now time.Time, p pace) pace {
	if !j.src.Live {
		return pace{}
	}
	j.mu.Lock()
	speed, behind := j.view.Progress.Speed, j.view.Behind
	p.lag = time.Duration(j.view.Progress.Lag * float64(time.Second))
	j.mu.Unlock()
	switch {
	case speed == 0:
		return p
	case speed >= realTime:
		if behind {
			j.update(func(v *View) { v.Behind = false })
			j.event(Event{Type: "behind", Message: fmt.Sprintf("back to real time (speed %.2fx)", speed)})
		}
		p.slowSince = time.Time{}
		return p
	case p.slowSince.IsZero():
		p.slowSince = now
	case !behind && now.Sub(p.slowSince) >= 10*time.Second:
		j.update(func(v *View) { v.Behind = true })
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
		msg := fmt.Sprintf("slower than real time for %v (speed %.2fx, %.1f s behind): %s",
			now.Sub(p.slowSince).Round(time.Second), speed, p.lag.Seconds(), why)
		j.log.Warn().Float64("speed", speed).Float64("lag", p.lag.Seconds()).Msg(msg)
		j.event(Event{Type: "behind", Message: msg})
	}
	return p
}

// holdAudio sets whether the manifests hold audio to the video (index.audioLimit).
// When the hold ends, they list the held segments at once rather than with the next
// segment.
func (j *Job) holdAudio(idx *index, on bool) {
	was := idx.holdAudio
	idx.holdAudio = on
	if was && !on {
		j.publish(idx)
	}
}

// errStalled is returned by runFFmpeg when it killed an ffmpeg that stopped making progress.
var errStalled = errors.New("ffmpeg stalled")

// stallLimits returns how long ffmpeg may go without progress or without a new segment
// before it is killed and restarted: a few segment durations once segments flow, and
// more before the first one (connecting, probing, filling the first GOP).
func stallLimits(segDur time.Duration) (running, starting time.Duration) {
	running = max(4*segDur, 8*time.Second)
	return running, max(running, 30*time.Second)
}

// runFFmpeg runs one ffmpeg process to its end, indexing and rendering as segments
// appear (see publish.go for how it learns of them). Cancelling ctx stops ffmpeg
// gracefully: SIGINT to its process group, so it closes its last segment, then SIGKILL
// after the grace period. An ffmpeg that is alive but makes no progress (a hung source,
// a stopped process) is killed: errStalled. One that must restart with other rungs of
// plan (shed.go) is stopped: errReshape.
func (j *Job) runFFmpeg(ctx context.Context, argv, env []string, plan ladder.Plan, idx *index) error {
	cmd := exec.Command(j.m.cfg.FFmpeg, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if len(env) > 0 {
		cmd.Env = append(os.Environ(), env...)
	}
	// ffmpeg names its input in errors: never with its password in a log, an event or
	// the API.
	redact := source.Redactor(j.src.URL)
	tail := ffmpeg.NewTail(20)
	tail.SetRedactor(redact)
	j.mu.Lock()
	j.tail = tail
	j.mu.Unlock()
	cmd.Stderr = io.MultiWriter(tail, newStderrLog(j.log, j.m.now, redact))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdout: %w", err)
	}
	progress := io.Reader(stdout)
	if f, ok := stdout.(*os.File); ok { // it is: a pipe from os.Pipe
		if r, err := fileio.NewPollReader(f); err == nil {
			progress = r
		}
	}
	// ffmpeg's playlists of the run before have been read to the end (the refresh after
	// it exited, or a restore's catch-up): left in place, they would be read again as
	// this run's before it writes its own (the index forgets what it last saw of them at
	// each attempt), with an init segment being rewritten under them.
	if err := os.RemoveAll(filepath.Join(j.dir, ffmpeg.PrivateDir)); err != nil {
		return fmt.Errorf("clear folder of ffmpeg's playlists: %w", err)
	}
	for _, dir := range ffmpeg.OutputDirs(ffmpeg.Job{Dir: j.dir, Plan: plan}) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create ffmpeg's output folder: %w", err)
		}
	}
	wake := make(chan struct{}, 1)
	stopWatch, watching := j.watch(wake)
	defer stopWatch()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	pid := cmd.Process.Pid
	if cap := j.m.cfg.CPU; cap != nil {
		if err := cap.Attach(pid); err != nil {
			j.log.Warn().Err(err).Msg("ffmpeg runs outside the CPU cap")
		}
	}
	if !j.src.Live {
		// A file job yields to live ones: its viewers do not watch it being made. Under
		// the same cgroup, CFS weighs nice 19 at 15 against 1024 for nice 0.
		if err := syscall.Setpriority(syscall.PRIO_PGRP, pid, fileNice); err != nil {
			j.log.Warn().Err(err).Msg("file job runs at the priority of live jobs")
		}
	}
	meter, _ := cpucap.NewMeter(pid)
	var threads *cpucap.Threads // whether one thread holds ffmpeg back; live jobs only
	if j.src.Live {
		threads = cpucap.NewThreads(pid)
	}
	nextMeter := time.Now().Add(5 * time.Second)
	var pc pace
	j.setPID(pid)
	defer j.setPID(0)
	j.log.Info().Int("pid", pid).Msg("ffmpeg started")
	j.event(Event{Type: "start", PID: pid, Message: "ffmpeg started"})

	began := time.Now()
	j.update(func(v *View) { v.Progress = Progress{} })
	j.mu.Lock()
	j.lastProgress = began
	var duration time.Duration // of a file source, as probed
	if j.view.Input != nil {
		duration = j.view.Input.Duration
	}
	j.mu.Unlock()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		var last time.Duration = -1
		var speed speedMeter
		_ = ffmpeg.ReadProgress(progress, func(p ffmpeg.Progress) {
			pr := progressOf(p)
			if s, ok := speed.add(time.Now(), p.OutTime); ok {
				pr.Speed = s
			}
			if j.src.Live {
				pr.Lag = math.Round(speed.lag.Seconds()*100) / 100
			} else {
				pr.Percent, pr.ETA = fileProgress(p.OutTime, duration, pr.Speed)
			}
			j.update(func(v *View) { v.Progress = pr })
			if p.OutTime != last {
				last = p.OutTime
				j.mu.Lock()
				j.lastProgress = time.Now()
				j.mu.Unlock()
			}
		})
	}()
	exited := make(chan error, 1)
	go func() {
		<-progressDone // Wait closes stdout; read it to the end first
		exited <- cmd.Wait()
	}()

	running, starting := stallLimits(idx.segDur)
	lastSegment := began
	produced := idx.produced
	interval := j.m.cfg.PollInterval
	if watching {
		interval = checkInterval
	}
	tick := newBeat(interval)
	defer tick.stop()
	var waitErr, stall, reshape error
	woken := false // by a rename since the last beat, and polled every track
	stopping := ctx.Done()
	var kill <-chan time.Time
loop:
	for {
		select {
		case waitErr = <-exited:
			break loop
		case <-stopping:
			stopping = nil
			j.setState(Stopping)
			_ = syscall.Kill(-pid, syscall.SIGINT)
			kill = time.After(j.m.cfg.StopGrace)
		case <-kill:
			j.log.Warn().Int("pid", pid).Msg("ffmpeg ignored SIGINT; killing it")
			_ = syscall.Kill(-pid, syscall.SIGKILL)
		case <-wake:
			woken = j.refresh(idx) // a poll that failed is tried again at the beat
		case now := <-tick.C:
			tick.next()
			// A wake-up since the last beat polled every track: the safety poll is for
			// a beat without one.
			if !woken {
				j.refresh(idx)
			}
			woken = false
			// What holds ffmpeg back, every 5 s, and at every beat while it is slow: a
			// shed must not wait for figures.
			if threads != nil && (now.After(nextMeter) || !pc.slowSince.IsZero()) {
				pc.busiest, pc.busiestKnown = threads.Busiest(now)
				pc.load, pc.loadKnown = j.m.pressure.Sample(now)
			}
			if now.After(nextMeter) {
				nextMeter = now.Add(5 * time.Second)
				if meter != nil {
					j.measure(meter, now)
				}
			}
			pc = j.checkBehind(now, pc)
			j.holdAudio(idx, !pc.slowSince.IsZero())
			if idx.produced != produced {
				produced, lastSegment = idx.produced, now
			}
			if stall != nil || reshape != nil || stopping == nil {
				continue
			}
			if reshape = j.reshape(now, pc, plan, idx); reshape != nil {
				_ = syscall.Kill(-pid, syscall.SIGINT) // it closes its segments, then exits
				kill = time.After(j.m.cfg.StopGrace)
				continue
			}
			j.mu.Lock()
			quiet := now.Sub(j.lastProgress)
			speed := j.view.Progress.Speed
			j.mu.Unlock()
			limit := running
			if idx.produced == 0 || lastSegment == began {
				limit = starting
			}
			// Segments come slower when ffmpeg runs slower than real time (a big file
			// under the CPU cap): only progress that stops is a stall at any speed.
			segLimit := limit
			if speed > 0 && speed < 1 {
				segLimit = time.Duration(float64(limit) / max(speed, 0.05))
			}
			if noSeg := now.Sub(lastSegment); noSeg > segLimit || quiet > limit {
				stall = fmt.Errorf("%w: no progress for %v, no new segment for %v", errStalled,
					quiet.Round(time.Second), noSeg.Round(time.Second))
				j.log.Warn().Int("pid", pid).Err(stall).Msg("ffmpeg stalled; killing it")
				j.event(Event{Type: "stall", PID: pid, Message: stall.Error()})
				j.update(func(v *View) { v.Stalls++ })
				_ = syscall.Kill(-pid, syscall.SIGKILL) // a hung process may ignore SIGINT
			}
		}
	}
	// Whatever the exit, no process of the group may outlive the run.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	j.holdAudio(idx, false) // the run's last segments are all listed
	j.refresh(idx)
	j.persistSegments(idx, true)

	code := 0
	if waitErr != nil {
		code = -1
		var ee *exec.ExitError
		if errors.As(waitErr, &ee) {
			code = ee.ExitCode()
		}
	}
	j.event(Event{Type: "exit", PID: pid, Code: &code, Stderr: tail.Lines(),
		Message: fmt.Sprintf("ffmpeg exited with code %d after %v", code, time.Since(began).Round(time.Millisecond))})
	switch {
	case stall != nil:
		return stall
	case reshape != nil && ctx.Err() == nil:
		return reshape
	case waitErr == nil:
		j.log.Info().Int("pid", pid).Msg("ffmpeg exited")
		return nil
	}
	err = fmt.Errorf("ffmpeg exited with code %d: %s", code, tail.Last())
	if ctx.Err() == nil {
		j.log.Warn().Int("pid", pid).Int("code", code).Strs("stderr", tail.Lines()).Msg("ffmpeg failed")
	}
	return err
}

// stderrTail returns the last lines of the last ffmpeg's stderr.
func (j *Job) stderrTail() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.tail == nil {
		return nil
	}
	return j.tail.Lines()
}

// finish ends the job: finished when err is nil, failed otherwise.
func (j *Job) finish(err error) {
	if err != nil {
		j.update(func(v *View) { v.Error = err.Error() })
		j.log.Error().Err(err).Msg("job failed")
		j.setState(Failed)
		return
	}
	j.update(func(v *View) { v.Error = "" })
	j.setState(Finished)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
