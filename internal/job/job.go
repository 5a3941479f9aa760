// Package job owns transcoding jobs: it validates a request, probes the source, applies
// the ladder, and gives each job a runner (a goroutine of its own) that runs the job's
// single ffmpeg process through internal/supervise, watches it, indexes the segments it
// writes and renders the HLS and DASH manifests from that index. The Job holds what the
// API reads; the queue admits live jobs under the CPU cap; the store keeps a record of
// each job (storedJob) so that a restarted daemon resumes them.
package job

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
	"github.com/transcoderd/transcoderd/internal/ingest"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
)

// State is where a job is in its life.
type State string

// Job states.
const (
	Queued       State = "queued"       // a live job waiting for room under the CPU cap (Request.Queue)
	Starting     State = "starting"     // probing the source, launching ffmpeg
	Running      State = "running"      // ffmpeg is producing segments
	Reconnecting State = "reconnecting" // a live source went away; waiting to retry
	Waiting      State = "waiting"      // a push job without a publisher (View.Waiting: "publisher")
	Stopping     State = "stopping"     // asked to stop; ffmpeg is finishing its last segment
	Finished     State = "finished"     // VOD done, or a live job stopped on request
	Stopped      State = "stopped"      // a file job stopped on request before its end: its output is partial
	Failed       State = "failed"       // see Error
)

// Ended reports whether the job will not change any more.
func (s State) Ended() bool { return s == Finished || s == Failed || s == Stopped }

// Rendition is one output of a job, as the API shows it.
type Rendition struct {
	Name    string `json:"name"`
	Kind    string `json:"kind"` // video | audio
	Width   int    `json:"width,omitempty"`
	Height  int    `json:"height,omitempty"`
	Bitrate int64  `json:"bitrate"`
	Encoder string `json:"encoder"`
	Codecs  string `json:"codecs,omitempty"`
	Shed    bool   `json:"shed,omitempty"` // not encoded now: the box is over capacity (video.shed_top_rung)

	// Language and Track are an audio rendition's BCP 47 language and source track.
	Language string `json:"language,omitempty"`
	Track    int    `json:"track,omitempty"`
}

// Progress is the live figures of the running ffmpeg. Times are seconds.
type Progress struct {
	Frame   int64   `json:"frame"`
	FPS     float64 `json:"fps"`
	Speed   float64 `json:"speed"`    // media time per wall-clock time over the last 5 s (see speedMeter)
	Lag     float64 `json:"lag"`      // live: seconds of real time lost since ffmpeg last kept up
	OutTime float64 `json:"out_time"` // seconds of media encoded by this run of ffmpeg
	// Percent and ETA are a file job's: how much of the source's probed duration is
	// encoded (100 once the job has finished it), and the seconds left at the recent
	// speed. Absent when unknown: a live job, a source of unknown duration, no speed yet.
	Percent    *float64 `json:"percent,omitempty"`
	ETA        *float64 `json:"eta,omitempty"`
	Bitrate    float64  `json:"bitrate_kbps,omitempty"`
	DropFrames int64    `json:"drop_frames"`
	DupFrames  int64    `json:"dup_frames"`
}

// View is a snapshot of a job, safe to encode as JSON.
type View struct {
	ID         string             `json:"id"`
	State      State              `json:"state"`
	Source     string             `json:"source"`
	Ladder     string             `json:"ladder"`
	Live       bool               `json:"live"`
	Input      *ladder.SourceInfo `json:"input,omitempty"`
	Renditions []Rendition        `json:"renditions"`
	Dropped    []string           `json:"dropped,omitempty"`
	HLS        string             `json:"hls"`
	DASH       string             `json:"dash"`
	Error      string             `json:"error,omitempty"`
	FFmpeg     []string           `json:"ffmpeg,omitempty"`
	Progress   Progress           `json:"progress"`
	Segments   int                `json:"segments"`
	Restarts   int                `json:"restarts"`
	Stalls     int                `json:"stalls"`
	// SegmentsLost counts the segments given up since the daemon started: ffmpeg wrote
	// them, but they could not be read (see errSegmentLost).
	SegmentsLost int         `json:"segments_lost"`
	CPU          float64     `json:"cpu"`               // cores ffmpeg used over the last 5 s
	Behind       bool        `json:"behind"`            // live, and slower than real time for 10 s
	Shed         []string    `json:"shed,omitempty"`    // rungs not encoded now (video.shed_top_rung)
	Waiting      string      `json:"waiting,omitempty"` // queued or waiting: what the job waits for
	Created      time.Time   `json:"created"`
	Ended        *time.Time  `json:"ended,omitempty"`
	Transport    string      `json:"transport,omitempty"` // rtsp: tcp | udp, of the current (or last) ffmpeg run
	Ingest       *IngestView `json:"ingest,omitempty"`    // push: where to publish, and the publisher

	// Cost is a live job's reservation under the CPU cap, in cores, as estimated: its
	// ladder on the encoders chosen for it, a hardware rung at its CPU share (the
	// probe's trial figure), priced again when its rungs move (to x264 when a GPU
	// fails). Once ffmpeg runs, its measured use (CPU) stands in for it under the cap.
	Cost float64 `json:"cost,omitempty"`

	// Recording is a recording job's (record: true): what it has recorded so far.
	Recording *RecordingView `json:"recording,omitempty"`
}

// Job is one source being transcoded to one ladder: what the API reads of it, under
// its mutex. Its runner (runner.go), a goroutine of its own, runs its ffmpeg and writes
// here what it does.
type Job struct {
	id     string
	req    Request
	src    source.Source
	ladder *ladder.Ladder
	dir    string
	log    zerolog.Logger
	now    func() time.Time
	store  Store         // where its record is kept
	done   chan struct{} // closed when the runner has returned
	cost   float64       // cores the job was admitted (or waits) for; the queue's
	in     Input         // where its ffmpeg reads: Create's probe, then its runner's
	epoch  uint64        // the fleet assignment's epoch it runs at (Adopt); 0 on a single box

	mu     sync.Mutex
	view   View
	events []Event
	pid    int // the running ffmpeg, 0 when none
	plan   *ladder.Plan
	ast    time.Time               // the presentation's availability start, once known
	cancel context.CancelCauseFunc // ends the runner; nil until it starts

	// A push job's place on the ingest hub (push.go); nil stream for other jobs.
	hub     *ingest.Hub
	stream  *ingest.Stream
	keyHash ingest.Hash // stored; the key itself is not
	newKey  string      // the key made by Create, until CreatedView shows it

	rec     *recording            // a recording job's recording and clips; nil when it does not record
	clipMu  sync.Mutex            // held while a clip is cut or deleted
	exports map[string]*exportRun // the clips' MP4 files being written, by clip id (clipmp4.go)
}

// ID returns the job id.
func (j *Job) ID() string { return j.id }

// View returns a snapshot of the job.
func (j *Job) View() View {
	j.mu.Lock()
	defer j.mu.Unlock()
	v := j.view
	v.Renditions = append([]Rendition{}, v.Renditions...) // [] before the plan, not null
	v.FFmpeg = append([]string(nil), v.FFmpeg...)
	v.Ingest = j.ingestViewLocked(j.hub)
	v.Recording = j.recordingViewLocked()
	return v
}

// CreatedView is the view of a job Create just made: with a push job's stream key,
// which no other view shows.
func (j *Job) CreatedView() View {
	j.mu.Lock()
	key := j.newKey
	j.newKey = ""
	j.mu.Unlock()
	return j.viewWithKey(key)
}

func (j *Job) setPID(pid int) {
	j.mu.Lock()
	j.pid = pid
	j.mu.Unlock()
	j.persist()
}

// PID returns the process id of the job's running ffmpeg, 0 when none runs.
func (j *Job) PID() int {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.pid
}

// Done is closed when the job has ended and its ffmpeg has exited.
func (j *Job) Done() <-chan struct{} { return j.done }

// stop ends the job's runner, for cause (nil: a stop asked for; errDaemonStopping: the
// job is suspended). A job whose runner has not started is not touched.
func (j *Job) stop(cause error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.cancel != nil {
		j.cancel(cause)
	}
}

func (j *Job) update(fn func(v *View)) {
	j.mu.Lock()
	defer j.mu.Unlock()
	fn(&j.view)
}

func (j *Job) setState(s State) {
	j.update(func(v *View) {
		if v.State.Ended() {
			return
		}
		v.State = s
		if s.Ended() {
			now := j.now().UTC()
			v.Ended = &now
		}
	})
	j.log.Info().Str("state", string(s)).Msg("job state")
	j.event(Event{Type: "state", Message: string(s)})
	j.persist()
}

func (j *Job) state() State {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.view.State
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

// endStopped ends a job stopped on request. Stopping is how a live job ends: it is
// finished. A file job stopped before the end of its file is stopped, and says how much
// of the file its output holds: what was written stays, and is served, but is partial.
func (j *Job) endStopped(live bool) {
	if live {
		j.finish(nil)
		return
	}
	j.mu.Lock()
	msg := fmt.Sprintf("stopped at %.1f s", j.view.Progress.OutTime)
	if in := j.view.Input; in != nil && in.Duration > 0 {
		msg += fmt.Sprintf(" of %.1f s", in.Duration.Seconds())
	}
	j.view.Error = ""
	j.mu.Unlock()
	j.event(Event{Type: "state", Message: msg + ": the output is partial"})
	j.setState(Stopped)
}

// setPlan records the plan the job encodes to, with the renditions it shows.
func (j *Job) setPlan(plan ladder.Plan, info *ladder.SourceInfo) {
	j.update(func(v *View) {
		v.Input = info
		v.Renditions = renditionsOf(plan)
		v.Dropped = plan.Dropped
	})
	j.mu.Lock()
	j.plan = &plan
	j.mu.Unlock()
	j.persist()
}

// setAST records the presentation's availability start; it reports whether it changed.
func (j *Job) setAST(ast time.Time) bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	changed := !j.ast.Equal(ast)
	j.ast = ast
	return changed
}

func renditionsOf(p ladder.Plan) []Rendition {
	var out []Rendition
	for _, v := range p.Video {
		out = append(out, Rendition{Name: v.Name, Kind: string(manifest.Video), Width: v.Width, Height: v.Height, Bitrate: v.Bitrate, Encoder: v.Encoder})
	}
	for _, a := range p.Audio {
		out = append(out, Rendition{Name: a.Name, Kind: string(manifest.Audio), Bitrate: a.Bitrate, Encoder: a.Codec, Language: a.Language, Track: a.Track})
	}
	return out
}

func progressOf(p ffmpeg.Progress) Progress {
	return Progress{
		Frame:      p.Frame,
		FPS:        p.FPS,
		Speed:      p.Speed,
		OutTime:    p.OutTime.Round(time.Millisecond).Seconds(),
		Bitrate:    p.Bitrate,
		DropFrames: p.DropFrames,
		DupFrames:  p.DupFrames,
	}
}

// fileProgress returns how far a file job is: the share of the source's duration that
// ffmpeg has encoded, in percent (below 100 until the job has finished: ffmpeg still
// closes its last segments and the manifests are written after), and the seconds left
// at speed (media seconds per wall-clock second). Either is nil when it cannot be told:
// an unknown duration, no speed yet.
func fileProgress(done, duration time.Duration, speed float64) (percent, eta *float64) {
	if duration <= 0 {
		return nil, nil
	}
	done = min(max(done, 0), duration)
	share := done.Seconds() / duration.Seconds()
	pc := min(math.Round(share*1000)/10, 99.9)
	percent = &pc
	if speed > 0 {
		left := math.Round((duration-done).Seconds()/speed*10) / 10
		eta = &left
	}
	return percent, eta
}

// finished reports a file job encoded to its end.
func (p *Progress) finished() {
	hundred, none := 100.0, 0.0
	p.Percent, p.ETA = &hundred, &none
}

// Event is one thing that happened to a job: a start, an exit, a restart, a stall.
type Event struct {
	Time    time.Time `json:"time"`
	Type    string    `json:"type"` // start | exit | restart | stall | state | behind | shed | unshed | queued | admitted | fallback | encoder | restore | transport | lost | replan | cost | dropped | publisher | publisher_gone | publisher_replaced | ingest_behind | rotate | clip | recording
	Message string    `json:"message"`
	PID     int       `json:"pid,omitempty"`
	Code    *int      `json:"code,omitempty"`   // exit code; -1 when killed by a signal
	Stderr  []string  `json:"stderr,omitempty"` // ffmpeg's last lines, on exits
}

// maxEvents bounds the events a job keeps; older ones are dropped.
const maxEvents = 256

func (j *Job) event(e Event) {
	e.Time = j.now().UTC()
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.events) >= maxEvents {
		j.events = append(j.events[:0:0], j.events[len(j.events)-maxEvents+1:]...)
	}
	j.events = append(j.events, e)
}

// Events returns the job's events, oldest first; never nil (the API shows [], not null).
func (j *Job) Events() []Event {
	j.mu.Lock()
	defer j.mu.Unlock()
	return append([]Event{}, j.events...)
}
