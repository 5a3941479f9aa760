// Package job owns transcoding jobs: it validates a request, probes the source, applies
// the ladder, runs and supervises the job's single ffmpeg process, indexes the segments
// it writes and renders the HLS and DASH manifests from that index.
package job

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
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
	Stopping     State = "stopping"     // asked to stop; ffmpeg is finishing its last segment
	Finished     State = "finished"     // VOD done, or a live job stopped on request
	Failed       State = "failed"       // see Error
)

// Ended reports whether the job will not change any more.
func (s State) Ended() bool { return s == Finished || s == Failed }

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
	CPU        float64            `json:"cpu"`               // cores ffmpeg used over the last 5 s
	Behind     bool               `json:"behind"`            // live, and slower than real time for 10 s
	Shed       []string           `json:"shed,omitempty"`    // rungs not encoded now (video.shed_top_rung)
	Waiting    string             `json:"waiting,omitempty"` // queued: what the job waits for
	Created    time.Time          `json:"created"`
	Ended      *time.Time         `json:"ended,omitempty"`
}

// Job is one source being transcoded to one ladder.
type Job struct {
	id     string
	req    Request
	src    source.Source
	ladder *ladder.Ladder
	dir    string
	log    zerolog.Logger
	m      *Manager

	cancel context.CancelFunc // asks the runner to stop
	done   chan struct{}      // closed when the runner has returned

	mu           sync.Mutex
	view         View
	events       []Event
	lastProgress time.Time // when ffmpeg's out_time last moved
	pid          int       // the running ffmpeg, 0 when none
	plan         *ladder.Plan
	tail         *ffmpeg.Tail // stderr of the last ffmpeg run

	written     map[string][]byte      // manifests as last written; used by the runner goroutine only
	master      *manifest.Presentation // what the master playlist was last written from; likewise
	persistedAt time.Time              // when the segment index was last stored; runner goroutine only
	shed        shedding               // the rung shed while the box is over capacity; runner goroutine only
	cost        float64                // cores the job was admitted (or waits) for; live jobs under a CPU cap
	ctx         context.Context        // the runner's context; cancel ends it
	ast         time.Time              // the presentation's availability start, once known
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
	return v
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
			now := j.m.now().UTC()
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
	Type    string    `json:"type"` // start | exit | restart | stall | state | behind | shed | unshed | queued | admitted | fallback | encoder | restore | dropped
	Message string    `json:"message"`
	PID     int       `json:"pid,omitempty"`
	Code    *int      `json:"code,omitempty"`   // exit code; -1 when killed by a signal
	Stderr  []string  `json:"stderr,omitempty"` // ffmpeg's last lines, on exits
}

// maxEvents bounds the events a job keeps; older ones are dropped.
const maxEvents = 256

func (j *Job) event(e Event) {
	e.Time = j.m.now().UTC()
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

// speedWindow is how far back speedMeter looks.
const speedWindow = 5 * time.Second

// realTime is the speed at or above which a live job keeps up: ffmpeg's reports jitter
// by a frame or two.
const realTime = 0.98

// speedMeter turns ffmpeg's progress into its recent encoding speed, and into the lag:
// the real time it has lost since it last kept up. ffmpeg's own speed is media time
// over wall-clock time since it started: after hours at 1.0x, a live job that drops to
// 0.8x would take many minutes to show it.
type speedMeter struct {
	samples []speedSample
	origin  time.Time     // the first report
	ahead   time.Duration // wall-clock time since origin less media time, when it last kept up
	lag     time.Duration
}

type speedSample struct {
	wall  time.Time
	media time.Duration
}

// add records that ffmpeg had reached media time at wall, updates the lag, and returns
// the speed over the last speedWindow; ok is false until that much time has been seen.
func (m *speedMeter) add(wall time.Time, media time.Duration) (speed float64, ok bool) {
	m.samples = append(m.samples, speedSample{wall, media})
	for len(m.samples) > 2 && wall.Sub(m.samples[1].wall) >= speedWindow {
		m.samples = m.samples[1:] // the oldest sample that still spans the window is kept
	}
	first := m.samples[0]
	if dt := wall.Sub(first.wall); dt >= speedWindow {
		speed, ok = max(media-first.media, 0).Seconds()/dt.Seconds(), true
	}
	// Until a speed is known, and whenever it keeps up, the lag starts again from here.
	if m.origin.IsZero() {
		m.origin = wall
	}
	off := wall.Sub(m.origin) - media
	if !ok || speed >= realTime || off < m.ahead {
		m.ahead = off
	}
	m.lag = off - m.ahead
	return speed, ok
}
