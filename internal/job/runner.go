package job

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/backoff"
	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/dirwatch"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/publish"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// deps is what a runner needs from the daemon, each always there (null objects stand
// in for what a test leaves out).
type deps struct {
	ffmpeg   string
	store    Store
	cores    cores                    // the CPU cap's reservations, through the queue
	cgroup   supervise.Cgroup         // where ffmpeg runs under the cap
	gpu      *gpu.Service             // hardware encoders and their sessions
	watcher  func() *dirwatch.Watcher // nil where inotify is unavailable: the runner polls
	fs       fileio.FS                // the hot path's files under the output folder
	pressure *cpucap.Pressure         // whether the jobs as a whole are short of CPU (shedding)
	observer Observer
	publish  publish.Publisher // delivers the served files (publish.FS: the folder is served)
	now      func() time.Time
	timing   timing
}

// cores is the runner's side of the CPU cap: the queue (queue.go) reacts to what it
// is told.
type cores interface {
	// measured replaces the job's reservation with what its ffmpeg used.
	measured(id string, used float64)
	// grow reserves more cores for the job, unless live jobs wait for room.
	grow(id string, more float64) error
	// recost replaces the job's reservation with cores, whether they fit or not.
	recost(id string, cores float64) error
}

// timing is how long a runner waits for things: the daemon's figures, which tests
// shorten. A zero field takes the daemon's.
type timing struct {
	poll         time.Duration // how often ffmpeg's output is polled where it cannot be watched (100 ms)
	stopGrace    time.Duration // SIGINT to SIGKILL (10 s)
	probe        time.Duration // ffprobe's limit (20 s)
	segmentGrace time.Duration // how long a segment stays on disk after leaving the window (30 s + 3 segments)
	shedHoldOff  time.Duration // how long a shed rung stays off before it is tried again, at first (shedHoldOff)
}

// orDaemon fills the zero fields of t with the daemon's figures.
func (t timing) orDaemon() timing {
	or := func(d *time.Duration, def time.Duration) {
		if *d <= 0 {
			*d = def
		}
	}
	or(&t.poll, 100*time.Millisecond)
	or(&t.stopGrace, 10*time.Second)
	or(&t.probe, 20*time.Second)
	or(&t.shedHoldOff, shedHoldOff)
	return t // a zero segmentGrace is the index's own (newIndex)
}

// startState is what a job starts from: nothing for a new live job (it probes), the
// probe for a new file job, and the stored plan and index for a resumed live job.
type startState struct {
	info     *ladder.SourceInfo
	plan     *ladder.Plan
	segments map[string][]manifest.Segment
	ast      time.Time
	final    bool // the previous daemon was stopping the job: end it, run nothing (finalize)
}

// runner runs one job's ffmpeg, again and again, until the job ends. It is owned by
// its goroutine: nothing else reads or writes its fields. What the API reads it writes
// into the Job.
type runner struct {
	j    *Job
	deps // each runner's own copy
	log  zerolog.Logger
	in   Input
	live bool
	bo   *backoff.Backoff

	plan ladder.Plan   // the ladder applied to the source
	adm  gpu.Admission // where its rungs run now
	idx  *index        // every segment on disk
	shed shedding      // the rung shed while the box is over capacity
	pub  publish.Job   // delivers what the job writes and deletes
	pace pace          // how the running ffmpeg keeps up with real time

	gone        time.Time              // a live job: when its segments last stopped flowing (retryWait)
	sourceEnded bool                   // the last run ended with its source: the next probes it (replan.go)
	replan      *replanned             // the plan the next run encodes, when the source changed
	stderr      []string               // the last lines of the last ffmpeg's stderr
	written     map[string][]byte      // manifests as last written
	master      *manifest.Presentation // what the master playlist was last written from
	persistedAt time.Time              // when the segment index was last stored
	lost        error                  // a segment given up by the last refresh (errSegmentLost), until acted on
}

func newRunner(j *Job, d deps, in Input) *runner {
	bo := backoff.New()
	if j.src.Live {
		bo.Min = liveRetryMin
	}
	pub := d.publish.Job(j.id, j.dir, j.log)
	return &runner{j: j, deps: d, log: j.log, in: in, live: j.src.Live, bo: bo, gone: d.now(), pub: pub, written: map[string][]byte{}}
}

// Retrying a live source: its viewers wait. A run after which segments flowed starts
// again after liveRetryMin, and a source that is away is tried about every second for
// the first fastRetryFor of its outage (an encoder reconnecting, a camera rebooting),
// then less and less often up to slowRetry, so that a source gone for good costs an
// ffmpeg start every slowRetry, not every second. A file job keeps backoff's defaults.
const (
	liveRetryMin = 100 * time.Millisecond
	fastRetry    = time.Second
	fastRetryFor = 2 * time.Minute
	slowRetry    = 10 * time.Second
)

// retryWait returns how long to wait before the next try, after one that ran for ran.
func (r *runner) retryWait(ran time.Duration) time.Duration {
	if r.live {
		r.bo.Max = slowRetry
		if r.now().Sub(r.gone) < fastRetryFor {
			r.bo.Max = fastRetry
		}
	}
	return r.bo.Next(ran)
}

// run is the job's whole life: probe, plan, then ffmpeg runs until the source ends
// (VOD), the job is stopped, or it fails. Live sources are retried with backoff.
func (r *runner) run(ctx context.Context, st startState) {
	if st.final {
		r.finalize(st)
		return
	}
	if st.plan != nil && r.resume(*st.plan, st) {
		r.loop(ctx, st.info)
		return
	}
	if st.plan != nil && r.j.rec != nil && len(st.segments) > 0 {
		// Starting the presentation again would clear the rendition folders: the
		// recording and every clip's segments. The job fails with them kept.
		r.j.finish(errors.New("cannot resume the stored index of a recording job (see the log): not starting it again, which would delete the recording; its files and clips are kept"))
		return
	}
	info := st.info
	if info == nil {
		in, err := r.probeLive(ctx)
		if ctx.Err() != nil && suspended(ctx) {
			r.log.Info().Msg("daemon stopping: the job probes its source again when it starts again")
			return
		}
		if err != nil || ctx.Err() != nil {
			r.j.finish(err) // stopped before the source was ever reached: nothing to end
			return
		}
		info = &in
	}
	plan, err := r.j.ladder.Plan(*info)
	if err != nil {
		r.j.finish(fmt.Errorf("plan ladder %s: %w", r.j.ladder.Name, err))
		return
	}
	r.plan = plan
	for _, n := range plan.Notes { // why audio renditions were dropped
		r.j.event(Event{Type: "dropped", Message: n})
	}
	r.j.setPlan(plan, info)
	if err := r.freshIndex(); err != nil {
		r.j.finish(err)
		return
	}
	r.loop(ctx, info)
}

// resume rebuilds the index of a live job from the store and the files on disk; it
// reports false, having said why, when the presentation must start again.
func (r *runner) resume(plan ladder.Plan, st startState) bool {
	r.plan = plan
	r.idx = r.newIndex()
	r.idx.ast = st.ast
	r.fromOrigin(st.segments)
	err := r.idx.restoreTracks(st.segments)
	if err != nil {
		r.log.Warn().Err(err).Msg("cannot resume the stored index: starting the presentation again")
		return false
	}
	r.knownAtOrigin()
	r.idx.attempt = 1       // the next run is a restart: new period, discontinuity
	r.persistSegments(true) // what catchUp found, before anything can overwrite it
	r.snapshotRecording()
	return true
}

// finalize ends a job that the previous daemon was stopping when it died, as that stop
// would have: the final manifests of the segments on disk (with ENDLIST, a static MPD),
// and the state a stop ends in. No ffmpeg runs.
func (r *runner) finalize(st startState) {
	if st.plan != nil {
		r.plan = *st.plan
		r.idx = r.newIndex()
		r.idx.ast = st.ast
		if err := r.idx.restoreTracks(st.segments); err != nil {
			r.log.Warn().Err(err).Msg("no final manifests for the stopped job")
		} else if err := r.render(true); err != nil {
			r.log.Error().Err(err).Msg("render final manifests")
		}
	}
	r.j.endStopped(r.live)
}

// probeLive probes a live source, retrying with backoff while it is unreachable.
func (r *runner) probeLive(ctx context.Context) (ladder.SourceInfo, error) {
	for {
		if !r.awaitPublisher(ctx) {
			return ladder.SourceInfo{}, nil
		}
		pctx, cancel := context.WithTimeout(ctx, r.timing.probe)
		began := r.now()
		in, err := r.in.Probe(pctx)
		cancel()
		if err == nil {
			return in, nil
		}
		if ctx.Err() != nil {
			return ladder.SourceInfo{}, nil
		}
		wait := r.retryWait(r.now().Sub(began))
		r.log.Warn().Err(err).Dur("retry_in", wait).Msg("source not reachable")
		r.j.update(func(v *View) { v.Error = err.Error() })
		r.j.setState(Reconnecting)
		if !sleep(ctx, wait) {
			return ladder.SourceInfo{}, nil
		}
	}
}

// admitGPU places the plan's rungs on the GPU the probe found (or on x264), reserving
// encoder sessions, and says so in the job for every rung moved to software.
func (r *runner) admitGPU(info *ladder.SourceInfo) error {
	var src ladder.SourceInfo
	if info != nil {
		src = *info
	}
	adm, err := r.gpu.Admit(r.j.id, r.j.ladder, r.plan, src)
	if err != nil {
		return fmt.Errorf("encoder: %w", err)
	}
	r.announce(adm, nil)
	r.adm = adm
	return nil
}

// announce publishes where the rungs run: never a silent fallback.
func (r *runner) announce(adm gpu.Admission, before []gpu.Move) {
	for _, mv := range adm.Moved[len(before):] {
		msg := fmt.Sprintf("rung %s: %s → %s: %s", mv.Rung, mv.Wanted, mv.To, mv.Reason)
		r.log.Warn().Str("rung", mv.Rung).Str("wanted", mv.Wanted).Str("to", mv.To).Msg("encoder fallback: " + mv.Reason)
		r.j.event(Event{Type: "fallback", Message: msg})
	}
	for _, n := range adm.Notes {
		r.j.event(Event{Type: "encoder", Message: n})
	}
	enc := map[string]string{}
	for _, v := range adm.Plan.Video {
		enc[v.Name] = v.Encoder
	}
	r.j.update(func(v *View) {
		for i := range v.Renditions {
			if e, ok := enc[v.Renditions[i].Name]; ok {
				v.Renditions[i].Encoder = e
			}
		}
	})
}

// recost prices a live job again on the encoders its rungs run on now (the GPU's
// admission, or a fallback to x264) and replaces its reservation under the CPU cap,
// saying so when that puts the cap over its limit (queue.recost says what follows).
func (r *runner) recost() {
	if !r.live {
		return
	}
	a := r.adm
	a.Plan = without(a.Plan, r.shed.rung)
	cost := admissionCost(a, r.j.ladder.Video.Preset)
	r.j.mu.Lock()
	was := r.j.view.Cost
	r.j.view.Cost = cost
	r.j.mu.Unlock()
	if math.Abs(cost-was) < 0.005 {
		return
	}
	msg := fmt.Sprintf("CPU reservation %.2f → %.2f cores on the encoders it runs on: %s", was, cost, r.adm)
	if err := r.cores.recost(r.j.id, cost); err != nil {
		msg += "; the CPU cap is over its limit now (" + err.Error() + "): the job runs on, new live jobs wait for room"
		r.log.Warn().Float64("cost", cost).Err(err).Msg("CPU reservation over the cap after its encoders changed")
	}
	r.j.event(Event{Type: "cost", Message: msg})
}

// loop runs ffmpeg again and again until the job ends.
func (r *runner) loop(ctx context.Context, info *ladder.SourceInfo) {
	r.tellProbed()
	if err := r.admitGPU(info); err != nil {
		r.j.finish(err)
		return
	}
	defer r.gpu.Release(r.j.id)
	r.recost()
	for attempt := 1; ; attempt++ {
		began, produced := r.now(), r.idx.produced
		err := r.attempt(ctx, attempt)
		if r.idx.produced != produced {
			r.bo.Reset() // segments flowed: the source is back, the next try comes soon
			r.gone = r.now()
		}
		if !r.next(ctx, attempt, err, r.now().Sub(began)) {
			return
		}
	}
}

// fatal wraps an error that ends the job at once: running ffmpeg again cannot help.
type fatal struct{ error }

func (f fatal) Unwrap() error { return f.error }

// attempt runs ffmpeg once, the n-th time, on what the input feeds it.
func (r *runner) attempt(ctx context.Context, n int) error {
	if !r.awaitPublisher(ctx) {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fatal{errors.New("the job left the ingest hub")}
	}
	feed, err := r.in.Open(ctx)
	if err != nil {
		return fmt.Errorf("open the source: %w", err)
	}
	if r.replan != nil {
		if err := r.applyReplan(); err != nil {
			closeAll(feed.Files)
			return fatal{err}
		}
	}
	start := r.idx.beginAttempt()
	argv, err := ffmpeg.BuildArgs(ffmpeg.Job{
		Source:       feed.Source.URL,
		Kind:         feed.Source.Kind,
		Live:         r.live,
		Plan:         without(r.adm.Plan, r.shed.rung),
		HW:           r.adm.HW,
		Preset:       r.j.ladder.Video.Preset,
		Dir:          r.j.dir,
		StartNumbers: start,
		Transport:    feed.Source.Transport,
		Run:          r.idx.run,
	})
	if err != nil {
		closeAll(feed.Files)
		return fatal{fmt.Errorf("build ffmpeg command: %w", err)}
	}
	shown := append([]string{r.ffmpeg}, argv...)
	for i, a := range shown {
		if a == feed.Source.URL {
			shown[i] = source.Redact(a) // never show a source's password in the API
		}
	}
	r.j.update(func(v *View) {
		v.FFmpeg = shown
		v.Restarts = n - 1
		v.Transport = string(feed.Source.Transport)
	})
	produced := r.idx.produced
	err = r.runFFmpeg(ctx, argv, feed)
	if ctx.Err() != nil || errors.Is(err, errReshape) {
		return err
	}
	return r.transportEnded(err, r.idx.produced > produced)
}

// next decides, after a run of ffmpeg that ended with runErr, whether ffmpeg runs
// again; it ends the job when not.
func (r *runner) next(ctx context.Context, attempt int, runErr error, ran time.Duration) bool {
	var f fatal
	stopped := ctx.Err() != nil
	switch {
	case errors.As(runErr, &f):
		r.j.finish(f.error)
		return false
	case !stopped && errors.Is(runErr, errReshape):
		return true // at once: the source is fine, only the rungs change
	case !stopped && errors.Is(runErr, errTransport):
		return true // at once: the server answered, only the transport changes
	case stopped && suspended(ctx):
		r.log.Info().Msg("daemon stopping: the job resumes when it starts again")
		return false
	case stopped || (!r.live && runErr == nil):
		r.end(stopped)
		return false
	case runErr == nil && r.pushed():
		return true // the publisher went: the next run waits for it, in state waiting
	}
	if runErr == nil {
		runErr = errors.New("the live source ended") // ffmpeg exits 0 when a live source closes
	}
	if failed, again := r.fallback(); failed {
		return again
	}
	if !r.live && attempt >= maxFileAttempts {
		r.j.finish(fmt.Errorf("gave up after %d attempts: %w", attempt, runErr))
		return false
	}
	return r.retry(ctx, attempt, runErr, ran)
}

// end ends the job after its last run: stopped, or a file encoded to its end.
//
// A file job stopped half way gets the manifests of a finished one (ENDLIST, VOD
// playlists, a static MPD as long as what was encoded): no segment will be added, which
// is all ENDLIST says, and a player plays what there is from its start. Without it,
// players would take the playlists for a live event, start near its end and reload
// them for ever. That the output is partial, the job's state (stopped) and an event say.
func (r *runner) end(stopped bool) {
	if err := r.render(true); err != nil {
		r.log.Error().Err(err).Msg("render final manifests")
	}
	r.j.update(func(v *View) {
		if stopped {
			v.Progress.ETA = nil // it will not go on
		} else if !r.live {
			v.Progress.finished()
		}
	})
	if stopped {
		r.j.endStopped(r.live)
		return
	}
	r.j.finish(nil)
}

// fallback moves the rungs of a hardware encoder that failed to x264, if the ladder
// allows, when the last run's stderr says the hardware failed rather than the source;
// ffmpeg starts again at once. failed is false when the hardware did not fail; again
// is false when the job ended.
func (r *runner) fallback() (failed, again bool) {
	f, ok := gpu.Diagnose(r.adm, r.stderr)
	if !ok {
		return false, true
	}
	next, err := r.gpu.Fallback(r.j.id, r.j.ladder, r.adm, f)
	if err != nil {
		r.j.finish(err)
		return true, false
	}
	r.announce(next, r.adm.Moved)
	r.adm = next
	r.recost()
	for _, t := range r.idx.tracks {
		t.init = nil // the codec string may change with the encoder
	}
	if !r.live {
		if err := r.freshIndex(); err != nil {
			r.j.finish(err)
			return true, false
		}
	}
	return true, true
}

// retry waits before the next run: a live source dropped or ffmpeg died, and the
// presentation goes on after a pause. A file is encoded again from the start, into a
// clean folder. It reports false when the job was stopped while it waited.
func (r *runner) retry(ctx context.Context, attempt int, runErr error, ran time.Duration) bool {
	wait := r.retryWait(ran)
	r.log.Warn().Err(runErr).Dur("ran", ran).Dur("retry_in", wait).Int("attempt", attempt).Msg("ffmpeg exited; restarting")
	r.j.event(Event{Type: "restart", Message: fmt.Sprintf("restart %d in %v: %v", attempt, wait.Round(time.Millisecond), runErr)})
	r.j.update(func(v *View) { v.Error = runErr.Error() })
	r.j.setState(Reconnecting)
	if !r.live {
		if err := r.freshIndex(); err != nil {
			r.j.finish(err)
			return false
		}
	}
	if !sleep(ctx, wait) {
		if suspended(ctx) {
			r.log.Info().Msg("daemon stopping: the job resumes when it starts again")
			return false
		}
		if err := r.render(true); err != nil {
			r.log.Error().Err(err).Msg("render final manifests")
		}
		r.j.endStopped(r.live)
		return false
	}
	return true
}

// fileNice is the nice value of a file job's ffmpeg.
const fileNice = 19

// maxFileAttempts bounds how often a file job's ffmpeg is started.
const maxFileAttempts = 3

// newIndex returns an index with the plan's tracks, touching nothing on disk.
func (r *runner) newIndex() *index {
	idx := newIndex(r.live, r.plan.SegmentDuration, r.j.ladder.Window, r.now)
	idx.fs = r.fs
	idx.epoch = r.j.epoch
	idx.record = r.j.rec != nil
	if idx.record {
		r.j.mu.Lock()
		// A stop not carried out yet (no Kept) is, at the first publish (stopRecording).
		idx.record, idx.kept = r.j.rec.stop.Why == "" || r.j.rec.stop.Kept == nil, r.j.rec.stop.Kept
		r.j.mu.Unlock()
	}
	if r.timing.segmentGrace > 0 {
		idx.grace = r.timing.segmentGrace
	}
	dir := r.j.dir
	for _, v := range r.plan.Video {
		t := idx.addTrack(v.Name, manifest.Video, filepath.Join(dir, v.Name), filepath.Join(dir, ffmpeg.PrivatePlaylist(v.Name)), v.MaxRate)
		t.FrameRate = ffmpeg.FrameRate(r.plan.FPS)
	}
	for _, a := range r.plan.Audio {
		t := idx.addTrack(a.Name, manifest.Audio, filepath.Join(dir, a.Name), filepath.Join(dir, ffmpeg.PrivatePlaylist(a.Name)), a.Bitrate)
		t.Language, t.Label, t.Group, t.SourceTrack = a.Language, a.Label, a.Group, a.Track
	}
	return idx
}

// freshIndex starts an empty index of the plan, with empty rendition folders. The run
// numbers go on: the names of the segments encoded again must not be those of the
// segments deleted, which players and caches may hold (see manifest's layout).
func (r *runner) freshIndex() error {
	idx := r.newIndex()
	if r.idx != nil {
		idx.run = r.idx.run
	}
	if err := r.store.ClearSegments(r.j.id); err != nil {
		return fmt.Errorf("clear stored index: %w", err)
	}
	for _, t := range idx.tracks {
		if err := os.RemoveAll(t.dir); err != nil {
			return fmt.Errorf("clear rendition folder: %w", err)
		}
		if err := os.MkdirAll(t.dir, 0o755); err != nil {
			return fmt.Errorf("create rendition folder: %w", err)
		}
	}
	r.idx = idx
	return nil
}

// suspended reports whether ctx ended because the daemon stops: the job is left to
// resume, not ended.
func suspended(ctx context.Context) bool { return errors.Is(context.Cause(ctx), errDaemonStopping) }

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

func closeAll(files []*os.File) {
	for _, f := range files {
		_ = f.Close()
	}
}
