package job

import (
	"context"
	"errors"
	"fmt"
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
		if err := os.MkdirAll(t.dir, 0o755); err != nil {
			j.finish(fmt.Errorf("create rendition folder: %w", err))
			return
		}
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
		if !j.src.Live {
			j.finish(runErr)
			return
		}
		// A live source dropped or ffmpeg died: the presentation goes on after a pause.
		wait := bo.Next(ran)
		j.log.Warn().Err(runErr).Dur("ran", ran).Dur("retry_in", wait).Int("attempt", attempt).Msg("ffmpeg exited; restarting")
		j.setState(Reconnecting)
		if !sleep(ctx, wait) {
			if err := j.render(idx, true); err != nil {
				j.log.Error().Err(err).Msg("render final manifests")
			}
			j.finish(nil)
			return
		}
	}
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

// runFFmpeg runs one ffmpeg process to its end, indexing and rendering as segments
// appear. Cancelling ctx stops ffmpeg gracefully: SIGINT to its process group, so it
// closes its last segment, then SIGKILL after the grace period.
func (j *Job) runFFmpeg(ctx context.Context, argv []string, idx *index) error {
	cmd := exec.Command(j.m.cfg.FFmpeg, argv...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	tail := ffmpeg.NewTail(20)
	cmd.Stderr = tail
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return fmt.Errorf("ffmpeg stdout: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start ffmpeg: %w", err)
	}
	pid := cmd.Process.Pid
	j.log.Info().Int("pid", pid).Msg("ffmpeg started")

	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		_ = ffmpeg.ReadProgress(stdout, func(p ffmpeg.Progress) {
			j.update(func(v *View) { v.Progress = progressOf(p) })
		})
	}()
	exited := make(chan error, 1)
	go func() {
		<-progressDone // Wait closes stdout; read it to the end first
		exited <- cmd.Wait()
	}()

	tick := time.NewTicker(j.m.cfg.PollInterval)
	defer tick.Stop()
	var waitErr error
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
		case <-tick.C:
			j.pollAndRender(idx)
		}
	}
	// Whatever the exit, no process of the group may outlive the run.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	j.pollAndRender(idx)

	if waitErr == nil {
		j.log.Info().Int("pid", pid).Msg("ffmpeg exited")
		return nil
	}
	code := -1
	var ee *exec.ExitError
	if errors.As(waitErr, &ee) {
		code = ee.ExitCode()
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
