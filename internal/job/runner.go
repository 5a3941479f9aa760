package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"

	"github.com/transcoderd/transcoderd/internal/backoff"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
)

// run is the job's whole life: probe, plan, then ffmpeg runs until the source ends
// (VOD), the job is stopped, or it fails. Live sources are retried with backoff.
func (j *Job) run(ctx context.Context, info *ladder.SourceInfo) {
	bo := backoff.New()
	if info == nil {
		in, err := j.probeLive(ctx, bo)
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

	idx, err := j.freshIndex(plan)
	if err != nil {
		j.finish(err)
		return
	}

	for attempt := 1; ; attempt++ {
		start := idx.beginAttempt()
		argv, err := ffmpeg.BuildArgs(ffmpeg.Job{
			Source:       j.src.URL,
			Kind:         j.src.Kind,
			Live:         j.src.Live,
			Plan:         plan,
			Preset:       j.ladder.Video.Preset,
			Dir:          j.dir,
			StartNumbers: start,
		})
		if err != nil {
			j.finish(fmt.Errorf("build ffmpeg command: %w", err))
			return
		}
		j.update(func(v *View) {
			v.FFmpeg = append([]string{j.m.cfg.FFmpeg}, argv...)
			v.Restarts = attempt - 1
		})
		began := time.Now()
		runErr := j.runFFmpeg(ctx, argv, idx)
		ran := time.Since(began)

		stopped := ctx.Err() != nil
		if stopped || (!j.src.Live && runErr == nil) {
			if err := j.render(idx, true); err != nil {
				j.log.Error().Err(err).Msg("render final manifests")
			}
			j.finish(nil)
			return
		}
		if runErr == nil {
			runErr = errors.New("the live source ended") // ffmpeg exits 0 when a live source closes
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

// maxFileAttempts bounds how often a file job's ffmpeg is started.
const maxFileAttempts = 3

// freshIndex returns an empty index for plan, with empty rendition folders.
func (j *Job) freshIndex(plan ladder.Plan) (*index, error) {
	idx := newIndex(j.src.Live, plan.SegmentDuration, j.ladder.Window, j.m.now)
	if j.m.cfg.SegmentGrace > 0 {
		idx.grace = j.m.cfg.SegmentGrace
	}
	for _, v := range plan.Video {
		t := idx.addTrack(v.Name, manifest.Video, filepath.Join(j.dir, v.Name), v.MaxRate)
		t.FrameRate = ffmpeg.FrameRate(plan.FPS)
	}
	for _, a := range plan.Audio {
		idx.addTrack(a.Name, manifest.Audio, filepath.Join(j.dir, a.Name), a.Bitrate)
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
// appear. Cancelling ctx stops ffmpeg gracefully: SIGINT to its process group, so it
// closes its last segment, then SIGKILL after the grace period. An ffmpeg that is alive
// but makes no progress (a hung source, a stopped process) is killed: errStalled.
func (j *Job) runFFmpeg(ctx context.Context, argv []string, idx *index) error {
	cmd := exec.Command(j.m.cfg.FFmpeg, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tail := ffmpeg.NewTail(20)
	cmd.Stderr = io.MultiWriter(tail, newStderrLog(j.log, j.m.now))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	pid := cmd.Process.Pid
	j.setPID(pid)
	defer j.setPID(0)
	j.log.Info().Int("pid", pid).Msg("ffmpeg started")
	j.event(Event{Type: "start", PID: pid, Message: "ffmpeg started"})

	began := time.Now()
	j.update(func(v *View) { v.Progress = Progress{} })
	j.mu.Lock()
	j.lastProgress = began
	j.mu.Unlock()
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		var last time.Duration = -1
		_ = ffmpeg.ReadProgress(stdout, func(p ffmpeg.Progress) {
			j.update(func(v *View) { v.Progress = progressOf(p) })
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
	tick := time.NewTicker(j.m.cfg.PollInterval)
	defer tick.Stop()
	var waitErr, stall error
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
		case now := <-tick.C:
			j.pollAndRender(idx)
			if idx.produced != produced {
				produced, lastSegment = idx.produced, now
			}
			if stall != nil || stopping == nil {
				continue
			}
			j.mu.Lock()
			quiet := now.Sub(j.lastProgress)
			j.mu.Unlock()
			limit := running
			if idx.produced == 0 || lastSegment == began {
				limit = starting
			}
			if noSeg := now.Sub(lastSegment); noSeg > limit || quiet > limit {
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
	j.pollAndRender(idx)

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

func (j *Job) pollAndRender(idx *index) {
	changed, err := idx.poll()
	if err != nil {
		j.log.Warn().Err(err).Msg("index segments")
	}
	if !changed {
		return
	}
	defer j.observeLatency(idx)
	for _, err := range idx.prune() {
		j.log.Warn().Err(err).Msg("delete old segment")
	}
	if j.state() == Starting || j.state() == Reconnecting {
		j.update(func(v *View) { v.Error = "" })
		j.setState(Running)
	}
	if err := j.render(idx, false); err != nil {
		j.log.Error().Err(err).Msg("render manifests")
	}
}

// observeLatency reports, for the segments indexed by the last poll, the time from
// ffmpeg closing each (its file's modification time) to now, when the manifests naming
// it have been written.
func (j *Job) observeLatency(idx *index) {
	obs := j.m.cfg.Observer
	fresh := idx.fresh
	idx.fresh = idx.fresh[:0]
	if obs == nil {
		return
	}
	now := time.Now()
	for _, path := range fresh {
		if fi, err := os.Stat(path); err == nil {
			obs.ManifestsWritten(j.id, now.Sub(fi.ModTime()))
		}
	}
}

// render writes every manifest that has something to say. The MPD of a VOD job is
// written once, when it ends; a live MPD follows every new segment.
func (j *Job) render(idx *index, ended bool) error {
	p := idx.presentation(ended)
	var errs []error
	for _, tr := range append(append([]manifest.Track(nil), p.Video...), p.Audio...) {
		if tr.Codecs == "" || len(tr.Segments) == 0 {
			continue
		}
		data, err := manifest.RenderMedia(p, &tr)
		if err == nil {
			err = manifest.WriteAtomic(filepath.Join(j.dir, tr.Name, manifest.MediaName), data)
		}
		errs = append(errs, err)
	}
	codecs := map[string]string{}
	for _, t := range idx.tracks {
		codecs[t.Name] = t.Codecs
	}
	j.update(func(v *View) {
		v.Segments = idx.produced
		for i := range v.Renditions {
			v.Renditions[i].Codecs = codecs[v.Renditions[i].Name]
		}
	})
	if !idx.ready() {
		return errors.Join(errs...)
	}
	data, err := manifest.RenderMaster(p)
	if err == nil {
		err = manifest.WriteAtomic(filepath.Join(j.dir, manifest.MasterName), data)
	}
	errs = append(errs, err)
	if idx.live || ended {
		data, err := manifest.RenderMPD(p)
		if err == nil {
			err = manifest.WriteAtomic(filepath.Join(j.dir, manifest.MPDName), data)
		}
		errs = append(errs, err)
	}
	return errors.Join(errs...)
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
