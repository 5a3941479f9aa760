package job

import (
	"io"
	"math"
	"sync"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
)

// progress reads what one run of ffmpeg reports on its stdout (-progress pipe:1) into
// the job's view, and remembers when ffmpeg last made progress: the runner's stall
// check reads that.
type progress struct {
	j        *Job
	live     bool
	duration time.Duration // of a file source, as probed
	now      func() time.Time

	mu    sync.Mutex
	moved time.Time // when ffmpeg's out_time last moved
}

func newProgress(j *Job, live bool, now func() time.Time) *progress {
	p := &progress{j: j, live: live, now: now, moved: now()}
	j.mu.Lock()
	if j.view.Input != nil {
		p.duration = j.view.Input.Duration
	}
	j.view.Progress = Progress{}
	j.mu.Unlock()
	return p
}

// read reads ffmpeg's reports from r until it ends.
func (p *progress) read(r io.Reader) {
	var last time.Duration = -1
	var speed speedMeter
	_ = ffmpeg.ReadProgress(r, func(rep ffmpeg.Progress) {
		pr := progressOf(rep)
		if s, ok := speed.add(p.now(), rep.OutTime); ok {
			pr.Speed = s
		}
		if p.live {
			pr.Lag = math.Round(speed.lag.Seconds()*100) / 100
		} else {
			pr.Percent, pr.ETA = fileProgress(rep.OutTime, p.duration, pr.Speed)
		}
		p.j.update(func(v *View) { v.Progress = pr })
		if rep.OutTime != last {
			last = rep.OutTime
			p.mu.Lock()
			p.moved = p.now()
			p.mu.Unlock()
		}
	})
}

// quiet is how long ffmpeg has gone without progress at now.
func (p *progress) quiet(now time.Time) time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	return now.Sub(p.moved)
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
