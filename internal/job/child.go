package job

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/fileio"
	"github.com/transcoderd/transcoderd/internal/source"
	"github.com/transcoderd/transcoderd/internal/supervise"
)

// child is one run of ffmpeg, as the runner's loop sees it.
type child struct {
	proc     *supervise.Process
	stop     context.CancelFunc    // asks it to stop (SIGINT to its group), for a reshape
	exited   chan supervise.Result // once it has exited and its stdout is read
	stopping <-chan struct{}       // the job's end; nil once seen
	wake     chan struct{}         // a rename of one of its playlists
	unwatch  func()                // ends the subscription to wake
	beat     *beat                 // the checks that need no event
	progress *progress             // what it reports on stdout
	meter    *cpucap.Meter         // its CPU use; nil when it cannot be measured
	threads  *cpucap.Threads       // whether one thread holds it back; live jobs only
	probed   chan probed           // the probe of a source that came back (replan.go); nil when none
	held     bool                  // its segments are not listed until the probe answers

	woken             bool          // by a rename since the last beat, and polled every track
	began             time.Time     // when it started
	lastSegment       time.Time     // when the index last grew
	produced          int           // the index's segments then
	nextMeter         time.Time     // when its CPU use is measured next
	running, starting time.Duration // stallLimits
	hung              time.Duration
	stall, reshape    error // why the runner ended it
	lost              error // a segment given up: it runs again (checkLost)
}

// errStalled is returned by runFFmpeg when it killed an ffmpeg that stopped making progress.
var errStalled = errors.New("ffmpeg stalled")

// stallLimits returns how long ffmpeg may go without progress or without a new segment
// before it is killed and restarted: a few segment durations once segments flow, and
// more before the first one (connecting, probing, filling the first GOP). hung is how
// long a live job's ffmpeg may go without progress once segments flow: its viewers sit
// about three segments behind the live edge, so a hung ffmpeg (or a source that went
// silent without closing) is seen within three segments, a beat included (checkStall
// runs at each checkInterval), but never before it has missed two progress reports
// (ffmpeg.StatsPeriod). A file job has no viewers waiting: it keeps running.
func stallLimits(segDur time.Duration, live bool) (running, starting, hung time.Duration) {
	running = max(4*segDur, 8*time.Second)
	hung = running
	if live {
		hung = max(3*segDur-checkInterval, 2*ffmpeg.StatsPeriod)
	}
	return running, max(running, 30*time.Second), hung
}

// runFFmpeg runs one ffmpeg process to its end, indexing and rendering as segments
// appear (see publish.go for how it learns of them). Cancelling ctx stops ffmpeg
// gracefully: SIGINT to its process group, so it closes its last segment, then SIGKILL
// after the grace period (internal/supervise). An ffmpeg that is alive but makes no
// progress (a hung source, a stopped process) is killed: errStalled. One that must
// restart with other rungs (shed.go) is stopped: errReshape. Each case of its loop is
// one call.
func (r *runner) runFFmpeg(ctx context.Context, argv []string, feed Feed) error {
	c, err := r.start(ctx, argv, feed)
	if err != nil {
		return err
	}
	defer r.close(c)
	for {
		select {
		case res := <-c.exited:
			return r.onExit(ctx, c, res)
		case <-c.stopping:
			r.onStop(ctx, c)
		case <-c.wake:
			r.onWake(c)
		case <-c.beat.C:
			r.onBeat(c)
		case p := <-c.probed:
			r.onProbe(c, p)
		}
	}
}

// start starts ffmpeg with argv on feed, and what watches it.
func (r *runner) start(ctx context.Context, argv []string, feed Feed) (*child, error) {
	defer closeAll(feed.Files) // the child has its own copies
	if err := r.clearPrivate(); err != nil {
		return nil, err
	}
	c := &child{stopping: ctx.Done(), wake: make(chan struct{}, 1)}
	interval := r.timing.poll
	var watching bool
	if c.unwatch, watching = r.watch(c.wake); watching {
		interval = checkInterval
	}
	// The run's own context: a reshape stops this ffmpeg, not the job.
	rctx, stop := context.WithCancel(ctx)
	proc, err := supervise.Start(rctx, r.spec(argv, feed))
	if err != nil {
		stop()
		c.unwatch()
		return nil, fmt.Errorf("start ffmpeg: %w", err)
	}
	c.proc, c.stop = proc, stop
	if proc.CgroupErr != nil {
		r.log.Warn().Err(proc.CgroupErr).Msg("ffmpeg runs outside the CPU cap")
	}
	if proc.NiceErr != nil {
		r.log.Warn().Err(proc.NiceErr).Msg("file job runs at the priority of live jobs")
	}
	c.meter, _ = cpucap.NewMeter(proc.Pid)
	if r.live {
		c.threads = cpucap.NewThreads(proc.Pid)
	}
	r.pace = pace{}
	r.j.setPID(proc.Pid)
	r.log.Info().Int("pid", proc.Pid).Msg("ffmpeg started")
	r.j.event(Event{Type: "start", PID: proc.Pid, Message: "ffmpeg started"})
	c.began = r.now()
	c.nextMeter = c.began.Add(5 * time.Second)
	c.lastSegment, c.produced = c.began, r.idx.produced
	c.running, c.starting, c.hung = stallLimits(r.idx.segDur, r.live)
	c.progress = newProgress(r.j, r.live, r.now)
	c.exited = make(chan supervise.Result, 1)
	go func() {
		c.progress.read(pollable(proc.Stdout)) // Wait closes stdout: read it to the end first
		c.exited <- proc.Wait()
	}()
	c.beat = newBeat(interval, r.now)
	c.probed = r.probeRun(ctx)
	c.held = c.probed != nil
	return c, nil
}

// clearPrivate empties the folder of ffmpeg's playlists and makes the folders it
// writes to. Those of the run before have
// been read to the end (the refresh after it exited, or a restore's catch-up): left in
// place, they would be read again as this run's before it writes its own (the index
// forgets what it last saw of them at each attempt), with an init segment being
// rewritten under them.
func (r *runner) clearPrivate() error {
	if err := os.RemoveAll(filepath.Join(r.j.dir, ffmpeg.PrivateDir)); err != nil {
		return fmt.Errorf("clear folder of ffmpeg's playlists: %w", err)
	}
	for _, dir := range ffmpeg.OutputDirs(ffmpeg.Job{Dir: r.j.dir, Plan: r.plan}) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("create ffmpeg's output folder: %w", err)
		}
	}
	return nil
}

// spec is how ffmpeg runs: under the CPU cap, a file job at a low priority, its stderr
// logged and kept with the source's secrets masked.
func (r *runner) spec(argv []string, feed Feed) supervise.Spec {
	// ffmpeg names its input in errors: never with its password in a log, an event or
	// the API.
	redact := source.Redactor(feed.Source.URL)
	s := supervise.Spec{Path: r.ffmpeg, Args: argv, Env: r.adm.Env(), PipeStdout: true, ExtraFiles: feed.Files,
		Stderr: newStderrLog(r.log, r.now, redact), Redact: redact, Grace: r.timing.stopGrace, Cgroup: r.cgroup}
	if !r.live {
		// A file job yields to live ones: its viewers do not watch it being made. Under
		// the same cgroup, CFS weighs nice 19 at 15 against 1024 for nice 0.
		s.Nice = fileNice
	}
	return s
}

// pollable reads stdout through the runtime's poller when it can (it is a pipe from
// os.Pipe): see fileio.PollReader.
func pollable(stdout io.Reader) io.Reader {
	if f, ok := stdout.(*os.File); ok {
		if pr, err := fileio.NewPollReader(f); err == nil {
			return pr
		}
	}
	return stdout
}

// close ends what start set up, once ffmpeg has exited.
func (r *runner) close(c *child) {
	r.j.setPID(0)
	c.beat.stop()
	c.stop()
	c.unwatch()
}

// onStop is the job's stop: supervise sends SIGINT to the group, SIGKILL after the grace.
// A daemon that stops suspends the job rather than stopping it: its state stays, so that
// the next daemon resumes it (a job stored as stopping is ended by the next, finalize).
func (r *runner) onStop(ctx context.Context, c *child) {
	c.stopping = nil
	if !suspended(ctx) {
		r.j.setState(Stopping)
	}
}

// onWake indexes what a rename announced; a poll that failed is tried again at the beat.
func (r *runner) onWake(c *child) {
	if !c.held {
		c.woken = r.refresh()
	}
	r.checkLost(c)
}

// onBeat makes the checks that need no event.
func (r *runner) onBeat(c *child) {
	c.beat.next()
	now := r.now()
	// A wake-up since the last beat polled every track: the safety poll is for a beat
	// without one.
	if !c.woken && !c.held {
		r.refresh()
	}
	c.woken = false
	r.checkLost(c)
	r.sampleCPU(c, now)
	r.checkBehind(now)
	r.holdAudio(!r.pace.slowSince.IsZero())
	if r.idx.produced != c.produced {
		c.produced, c.lastSegment = r.idx.produced, now
	}
	if c.stall != nil || c.reshape != nil || c.lost != nil || c.stopping == nil {
		return // it is ending already
	}
	if !r.checkReshape(c, now) {
		r.checkStall(c, now)
	}
}

// checkLost stops ffmpeg when the index gave up a segment (errSegmentLost), so that it
// runs again with the track going on at the lost number; it says so in the log, the
// job's events and its count of lost segments, and names a full disk as the cause.
func (r *runner) checkLost(c *child) {
	if r.lost == nil {
		return
	}
	lost := r.lost
	r.lost = nil
	if c.lost != nil || c.stall != nil || c.reshape != nil || c.stopping == nil {
		return // it is ending already
	}
	lost = r.onFullDisk(lost)
	c.lost = lost
	r.log.Error().Err(lost).Int("pid", c.proc.Pid).Msg("segment lost; restarting ffmpeg")
	r.j.event(Event{Type: "lost", PID: c.proc.Pid, Message: lost.Error()})
	r.j.update(func(v *View) { v.SegmentsLost++ })
	c.stop() // SIGINT: the other tracks close their segments
}

// diskFull is the free space under which the output's file system counts as full: a
// segment that could not be read was cut short by ENOSPC (ffmpeg writes 32 KiB at a
// time). ffmpeg then runs again once the segments past the window are deleted.
const diskFull = 1 << 20

// onFullDisk returns err saying that the output's disk is full, when it is: ffmpeg 5.1
// neither exits nor says so when a write fails for want of space, so a run that stalls,
// fails or leaves a segment cut short says it for it.
func (r *runner) onFullDisk(err error) error {
	if avail, ok := freeBytes(r.j.dir); ok && avail < diskFull {
		return fmt.Errorf("%w (the disk is full: %d bytes free)", err, avail)
	}
	return err
}

// freeBytes returns the space left to unprivileged writers on the file system of dir.
func freeBytes(dir string) (uint64, bool) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, false
	}
	return st.Bavail * uint64(st.Bsize), true
}

// sampleCPU reads what holds ffmpeg back, every 5 s, and at every beat while it is
// slow (a shed must not wait for figures), and measures its CPU use every 5 s.
func (r *runner) sampleCPU(c *child, now time.Time) {
	if c.threads != nil && (now.After(c.nextMeter) || !r.pace.slowSince.IsZero()) {
		r.pace.busiest, r.pace.busiestKnown = c.threads.Busiest(now)
		r.pace.load, r.pace.loadKnown = r.pressure.Sample(now)
	}
	if now.After(c.nextMeter) {
		c.nextMeter = now.Add(5 * time.Second)
		if c.meter != nil {
			r.measure(c.meter, now)
		}
	}
}

// measure records the cores ffmpeg used since the last call; for a running live job,
// the measure replaces its reservation under the CPU cap.
func (r *runner) measure(meter *cpucap.Meter, now time.Time) {
	cores, err := meter.Cores(float64(now.UnixNano()) / 1e9)
	if err != nil {
		return
	}
	r.j.update(func(v *View) { v.CPU = cores })
	// Once segments flow: a job still connecting uses less than it will.
	if r.live && r.j.state() == Running {
		r.cores.measured(r.j.id, cores)
	}
}

// checkReshape stops ffmpeg when it must run again with other rungs (reshape); it
// reports whether it did.
func (r *runner) checkReshape(c *child, now time.Time) bool {
	if c.reshape = r.reshape(now, r.pace, r.adm.Plan, r.idx); c.reshape == nil {
		return false
	}
	c.stop() // SIGINT: it closes its segments, then exits
	return true
}

// checkStall kills an ffmpeg that has made no progress, or written no segment, for
// too long.
func (r *runner) checkStall(c *child, now time.Time) {
	quiet := c.progress.quiet(now)
	r.j.mu.Lock()
	speed := r.j.view.Progress.Speed
	r.j.mu.Unlock()
	limit, quietLimit := c.running, c.hung
	if r.idx.produced == 0 || c.lastSegment == c.began {
		limit, quietLimit = c.starting, c.starting
	}
	// Segments come slower when ffmpeg runs slower than real time (a big file under
	// the CPU cap): only progress that stops is a stall at any speed.
	segLimit := limit
	if speed > 0 && speed < 1 {
		segLimit = time.Duration(float64(limit) / max(speed, 0.05))
	}
	noSeg := now.Sub(c.lastSegment)
	if noSeg <= segLimit && quiet <= quietLimit {
		return
	}
	c.stall = r.onFullDisk(fmt.Errorf("%w: no progress for %v, no new segment for %v", errStalled,
		quiet.Round(time.Second), noSeg.Round(time.Second)))
	r.log.Warn().Int("pid", c.proc.Pid).Err(c.stall).Msg("ffmpeg stalled; killing it")
	r.j.event(Event{Type: "stall", PID: c.proc.Pid, Message: c.stall.Error()})
	r.j.update(func(v *View) { v.Stalls++ })
	c.proc.Kill() // a hung process may ignore SIGINT
}

// onExit indexes what the run left, says how it ended, and returns why.
func (r *runner) onExit(ctx context.Context, c *child, res supervise.Result) error {
	pid := c.proc.Pid
	if res.Overran {
		r.log.Warn().Int("pid", pid).Msg("ffmpeg ignored SIGINT; killing it")
	}
	r.stderr = res.Tail
	r.holdAudio(false) // the run's last segments are all listed
	if !c.held {
		r.refresh()
	}
	// A segment this refresh gave up (again) is the next run's first: it must not stop
	// that run too.
	r.lost = nil
	r.persistSegments(true)
	// A source that ended (ffmpeg exited by itself) may come back changed: probed again.
	r.sourceEnded = c.stall == nil && c.reshape == nil && res.Code >= 0
	code := res.Code
	r.j.event(Event{Type: "exit", PID: pid, Code: &code, Stderr: res.Tail,
		Message: fmt.Sprintf("ffmpeg exited with code %d after %v", code, r.now().Sub(c.began).Round(time.Millisecond))})
	switch {
	case c.stall != nil:
		return c.stall
	case c.reshape != nil && ctx.Err() == nil:
		return c.reshape
	case c.lost != nil && ctx.Err() == nil:
		return c.lost
	case code == 0:
		r.log.Info().Int("pid", pid).Msg("ffmpeg exited")
		return nil
	}
	err := r.onFullDisk(fmt.Errorf("ffmpeg exited with code %d: %s", code, res.Last()))
	if ctx.Err() == nil {
		r.log.Warn().Int("pid", pid).Int("code", code).Strs("stderr", res.Tail).Msg("ffmpeg failed")
	}
	return err
}
