package job

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/cpucap"
	"github.com/transcoderd/transcoderd/internal/ladder"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/source"
)

// TestReshape walks a live job through falling behind, shedding its top rung, waiting
// for room, taking it back and shedding it again, on a fake clock.
func TestReshape(t *testing.T) {
	plan := ladder.Plan{FPS: 30, Video: []ladder.PlannedVideo{
		{Name: "360p", Width: 640, Height: 360, Bitrate: 800_000},
		{Name: "1080p", Width: 1920, Height: 1080, Bitrate: 5_000_000},
		{Name: "720p", Width: 1280, Height: 720, Bitrate: 2_800_000},
	}}
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	slow := pace{slowSince: t0, lag: time.Minute} // far behind; CPU not measured, so short of it
	holdOff := time.Minute
	// 1080p at veryfast needs about 1.9 cores; the cap has 4.
	cap := cpucap.New(4, t.TempDir())

	newJob := func(opt bool, live bool) (*runner, *index) {
		m := newManager(Config{Log: zerolog.Nop(), CPU: cap}, timing{shedHoldOff: holdOff}, time.Now)
		l := &ladder.Ladder{Video: ladder.Video{Preset: "veryfast", ShedTopRung: opt}}
		j := m.newJob("cam", Request{}, source.Source{Live: live}, l, View{Renditions: renditionsOf(plan)})
		idx := newIndex(live, time.Second, time.Minute, time.Now)
		for _, v := range plan.Video {
			idx.addTrack(v.Name, manifest.Video, "", "", v.Bitrate)
		}
		return newRunner(j, m.deps, nil), idx
	}
	withdrawn := func(idx *index) []string {
		var out []string
		for _, tr := range idx.tracks {
			if tr.Withdrawn {
				out = append(out, tr.Name)
			}
		}
		return out
	}

	t.Run("not opted in, or not live", func(t *testing.T) {
		for _, c := range []struct{ opt, live bool }{{false, true}, {true, false}} {
			r, idx := newJob(c.opt, c.live)
			if err := r.reshape(t0.Add(time.Hour), slow, plan, idx); err != nil {
				t.Errorf("opt %v live %v: %v", c.opt, c.live, err)
			}
		}
	})
	t.Run("one rung is never shed", func(t *testing.T) {
		r, idx := newJob(true, true)
		one := plan
		one.Video = plan.Video[:1]
		if err := r.reshape(t0.Add(time.Hour), slow, one, idx); err != nil {
			t.Error(err)
		}
	})

	r, idx := newJob(true, true)
	// The index's segments last 1 s: the job sheds once it has lost 2 s for want of CPU.
	// What the figures said over the last 5 s (nil: not measured).
	var (
		throttled = &pace{load: cpucap.Load{Throttled: 0.9, Busy: 0.6}, loadKnown: true, busiest: 0.5, busiestKnown: true}
		waiting   = &pace{load: cpucap.Load{Throttled: 0.1, Busy: 0.6}, loadKnown: true, busiest: 0.2, busiestKnown: true}
		unknown   *pace
	)
	steps := []struct {
		name      string
		at        time.Duration // after t0
		slowFor   time.Duration // how long the job has been slower than real time; 0: it is not
		lag       time.Duration
		cpu       *pace
		reserved  float64 // cores the other jobs hold
		reshape   bool
		shed      string
		withdrawn []string // in the index: a rung taken back stays out until its first new segment
	}{
		{"slow, 1.9 s lost: not yet", 4 * time.Second, 4 * time.Second, 1900 * time.Millisecond, throttled, 0, false, "", nil},
		{"slow, far behind, waiting for the source", 30 * time.Second, 30 * time.Second, 15 * time.Second, waiting, 0, false, "", nil},
		{"2 s lost but keeping up again", 31 * time.Second, 0, 2 * time.Second, throttled, 0, false, "", nil},
		{"slow, 2 s lost, the cap's quota spent: shed the tallest", 40 * time.Second, 5 * time.Second, 2 * time.Second, throttled, 0, true, "1080p", []string{"1080p"}},
		{"still within the hold-off", 40*time.Second + holdOff - time.Second, 0, 0, nil, 0, false, "1080p", []string{"1080p"}},
		{"hold-off over, no room", 40*time.Second + holdOff, 0, 0, nil, 3, false, "1080p", []string{"1080p"}},
		{"another hold-off, still no room", 40*time.Second + 2*holdOff - time.Second, 0, 0, nil, 0, false, "1080p", []string{"1080p"}},
		{"room again: take it back", 40*time.Second + 2*holdOff, 0, 0, nil, 0, true, "", []string{"1080p"}},
		{"slow again, no figures: shed again", 50*time.Second + 2*holdOff, 10 * time.Second, 3 * time.Second, unknown, 0, true, "1080p", []string{"1080p"}},
		{"the hold-off doubled", 50*time.Second + 4*holdOff - time.Second, 0, 0, nil, 0, false, "1080p", []string{"1080p"}},
		{"after the doubled hold-off", 50*time.Second + 4*holdOff, 0, 0, nil, 0, true, "", []string{"1080p"}},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		var p pace
		if s.cpu != nil {
			p = *s.cpu
		}
		p.lag = s.lag
		if s.slowFor > 0 {
			p.slowSince = now.Add(-s.slowFor)
		}
		cap.Release("others")
		if s.reserved > 0 {
			if err := cap.Admit("others", s.reserved); err != nil {
				t.Fatal(err)
			}
		}
		err := r.reshape(now, p, plan, idx)
		if got := errors.Is(err, errReshape); got != s.reshape {
			t.Fatalf("%s: reshape %v (%v), want %v", s.name, got, err, s.reshape)
		}
		if r.shed.rung != s.shed {
			t.Errorf("%s: shed %q, want %q", s.name, r.shed.rung, s.shed)
		}
		if got := withdrawn(idx); !reflect.DeepEqual(got, s.withdrawn) {
			t.Errorf("%s: withdrawn tracks %v, want %v", s.name, got, s.withdrawn)
		}
		var wantView []string
		if s.shed != "" {
			wantView = []string{s.shed}
		}
		if v := r.j.View(); !reflect.DeepEqual(v.Shed, wantView) {
			t.Errorf("%s: view lists %v shed, want %v", s.name, v.Shed, wantView)
		}
	}
	var types []string
	for _, e := range r.j.Events() {
		types = append(types, e.Type)
	}
	if want := []string{"shed", "unshed", "shed", "unshed"}; !reflect.DeepEqual(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}

func TestShortOfCPU(t *testing.T) {
	load := func(throttled, busy float64) pace {
		return pace{load: cpucap.Load{Throttled: throttled, Busy: busy}, loadKnown: true}
	}
	withThread := func(p pace, busiest float64) pace {
		p.busiest, p.busiestKnown = busiest, true
		return p
	}
	tests := []struct {
		name string
		p    pace
		want bool
	}{
		{"not measured", pace{}, true},
		{"the cap's quota ran out in most periods", withThread(load(0.9, 0.6), 0.5), true},
		{"every core busy", withThread(load(0, 0.99), 0.5), true},
		{"one thread has work all the time, cores to spare", withThread(load(0, 0.3), 0.95), true},
		{"room everywhere: waits for its source", withThread(load(0.1, 0.6), 0.2), false},
		{"only the box measured, room", load(0, 0.5), false},
		{"only the threads measured, none busy", withThread(pace{}, 0.3), false},
	}
	for _, tc := range tests {
		if got := tc.p.shortOfCPU(); got != tc.want {
			t.Errorf("%s (%s): %v, want %v", tc.name, tc.p.cpu(), got, tc.want)
		}
	}
}

func TestWithout(t *testing.T) {
	p := ladder.Plan{Video: []ladder.PlannedVideo{{Name: "a"}, {Name: "b"}, {Name: "c"}}}
	if got := without(p, "b"); len(got.Video) != 2 || got.Video[0].Name != "a" || got.Video[1].Name != "c" {
		t.Errorf("without b: %+v", got.Video)
	}
	if got := without(p, ""); len(got.Video) != 3 {
		t.Errorf("without nothing: %+v", got.Video)
	}
	if len(p.Video) != 3 || p.Video[1].Name != "b" {
		t.Errorf("the plan itself changed: %+v", p.Video)
	}
}

func TestSpeedMeter(t *testing.T) {
	t0 := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	var m speedMeter
	// One report a second, each second of wall-clock time encoding rate seconds of media.
	media := time.Duration(0)
	var speed float64
	var ok bool
	sec := 0
	run := func(seconds int, rate float64) {
		for range seconds {
			sec++
			media += time.Duration(rate * float64(time.Second))
			speed, ok = m.add(t0.Add(time.Duration(sec)*time.Second), media)
		}
	}
	lagIs := func(when string, want time.Duration) {
		t.Helper()
		if d := m.lag - want; d < -time.Millisecond || d > time.Millisecond {
			t.Errorf("%s: lag %v, want %v", when, m.lag, want)
		}
	}
	m.add(t0, 0)
	run(3600, 1)
	if !ok || speed != 1 {
		t.Fatalf("after an hour at 1.0x: %v %v", speed, ok)
	}
	if len(m.samples) > 7 {
		t.Errorf("%d samples kept for a 5 s window of 1 s reports", len(m.samples))
	}
	lagIs("after an hour at 1.0x", 0)
	run(6, 0.8)
	if speed < 0.79 || speed > 0.81 {
		t.Errorf("6 s after dropping to 0.8x, speed %.3f", speed)
	}
	// Over 5 s, the first second at 0.8x still averages 0.96x: it lost 0.2 s a second
	// since the drop.
	lagIs("6 s after dropping to 0.8x", 1200*time.Millisecond)
	run(3, 1)
	lagIs("3 s back at 1.0x", 1200*time.Millisecond)
	run(2, 1)
	lagIs("5 s back at 1.0x, keeping up over the window", 0)
	// Ahead of real time (a live source's buffer read at once), then at 0.5x: the window
	// still keeps up for 2 s, then it loses 0.5 s a second.
	run(2, 1.5)
	run(5, 0.5)
	lagIs("2 s at 1.5x, then 5 s at 0.5x", 1500*time.Millisecond)

	var fresh speedMeter
	if _, ok := fresh.add(t0, 0); ok {
		t.Error("a speed from one sample")
	}
	if _, ok := fresh.add(t0.Add(4*time.Second), 4*time.Second); ok {
		t.Error("a speed from less than the window")
	}
	if s, ok := fresh.add(t0.Add(5*time.Second), 3*time.Second); !ok || s != 0.6 {
		t.Errorf("speed %v %v, want 0.6", s, ok)
	}
}
