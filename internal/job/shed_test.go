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
	slow := t0 // slower than real time since t0
	holdOff := time.Minute
	// 1080p at veryfast needs about 1.9 cores; the cap has 4.
	cap := cpucap.New(4, t.TempDir())

	newJob := func(opt bool, live bool) (*Job, *index) {
		m := NewManager(Config{Log: zerolog.Nop(), CPU: cap, ShedHoldOff: holdOff})
		l := &ladder.Ladder{Video: ladder.Video{Preset: "veryfast", ShedTopRung: opt}}
		j := &Job{id: "cam", m: m, ladder: l, src: source.Source{Live: live}, log: zerolog.Nop()}
		j.view.Renditions = renditionsOf(plan)
		idx := newIndex(live, time.Second, time.Minute, time.Now)
		for _, v := range plan.Video {
			idx.addTrack(v.Name, manifest.Video, "", "", v.Bitrate)
		}
		return j, idx
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
			j, idx := newJob(c.opt, c.live)
			if err := j.reshape(t0.Add(time.Hour), slow, plan, idx); err != nil {
				t.Errorf("opt %v live %v: %v", c.opt, c.live, err)
			}
		}
	})
	t.Run("one rung is never shed", func(t *testing.T) {
		j, idx := newJob(true, true)
		one := plan
		one.Video = plan.Video[:1]
		if err := j.reshape(t0.Add(time.Hour), slow, one, idx); err != nil {
			t.Error(err)
		}
	})

	j, idx := newJob(true, true)
	steps := []struct {
		name      string
		at        time.Duration // after t0
		slowFor   time.Duration // how long the job has been slower than real time; 0: it is not
		reserved  float64       // cores the other jobs hold
		reshape   bool
		shed      string
		withdrawn []string // in the index: a rung taken back stays out until its first new segment
	}{
		{"slow for 19 s: only behind", 19 * time.Second, 19 * time.Second, 0, false, "", nil},
		{"slow for 20 s: shed the tallest", 20 * time.Second, 20 * time.Second, 0, true, "1080p", []string{"1080p"}},
		{"still within the hold-off", 20*time.Second + holdOff - time.Second, 0, 0, false, "1080p", []string{"1080p"}},
		{"hold-off over, no room", 20*time.Second + holdOff, 0, 3, false, "1080p", []string{"1080p"}},
		{"another hold-off, still no room", 20*time.Second + 2*holdOff - time.Second, 0, 0, false, "1080p", []string{"1080p"}},
		{"room again: take it back", 20*time.Second + 2*holdOff, 0, 0, true, "", []string{"1080p"}},
		{"slow again: shed again", 20*time.Second + 2*holdOff + shedAfter, shedAfter, 0, true, "1080p", []string{"1080p"}},
		{"the hold-off doubled", 20*time.Second + 4*holdOff + shedAfter - time.Second, 0, 0, false, "1080p", []string{"1080p"}},
		{"after the doubled hold-off", 20*time.Second + 4*holdOff + shedAfter, 0, 0, true, "", []string{"1080p"}},
	}
	for _, s := range steps {
		now := t0.Add(s.at)
		var since time.Time
		if s.slowFor > 0 {
			since = now.Add(-s.slowFor)
		}
		cap.Release("others")
		if s.reserved > 0 {
			if err := cap.Admit("others", s.reserved); err != nil {
				t.Fatal(err)
			}
		}
		err := j.reshape(now, since, plan, idx)
		if got := errors.Is(err, errReshape); got != s.reshape {
			t.Fatalf("%s: reshape %v (%v), want %v", s.name, got, err, s.reshape)
		}
		if j.shed.rung != s.shed {
			t.Errorf("%s: shed %q, want %q", s.name, j.shed.rung, s.shed)
		}
		if got := withdrawn(idx); !reflect.DeepEqual(got, s.withdrawn) {
			t.Errorf("%s: withdrawn tracks %v, want %v", s.name, got, s.withdrawn)
		}
		var wantView []string
		if s.shed != "" {
			wantView = []string{s.shed}
		}
		if v := j.View(); !reflect.DeepEqual(v.Shed, wantView) {
			t.Errorf("%s: view lists %v shed, want %v", s.name, v.Shed, wantView)
		}
	}
	var types []string
	for _, e := range j.Events() {
		types = append(types, e.Type)
	}
	if want := []string{"shed", "unshed", "shed", "unshed"}; !reflect.DeepEqual(types, want) {
		t.Errorf("events %v, want %v", types, want)
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
	// An hour at 1.0x, one report a second, then 0.8x.
	media := time.Duration(0)
	var speed float64
	var ok bool
	for i := 0; i <= 3600; i++ {
		speed, ok = m.add(t0.Add(time.Duration(i)*time.Second), media)
		media += time.Second
	}
	if !ok || speed != 1 {
		t.Fatalf("after an hour at 1.0x: %v %v", speed, ok)
	}
	if len(m.samples) > 7 {
		t.Errorf("%d samples kept for a 5 s window of 1 s reports", len(m.samples))
	}
	for i := 3601; i <= 3606; i++ {
		media += 800 * time.Millisecond
		speed, _ = m.add(t0.Add(time.Duration(i)*time.Second), media)
	}
	if speed < 0.79 || speed > 0.81 {
		t.Errorf("6 s after dropping to 0.8x, speed %.3f", speed)
	}

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
