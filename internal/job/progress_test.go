package job

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ffmpeg"
)

func TestFileProgress(t *testing.T) {
	none := -1.0 // nil
	tests := []struct {
		name         string
		done, length time.Duration
		speed        float64
		percent, eta float64
	}{
		{name: "start", done: 0, length: 60 * time.Second, speed: 0, percent: 0, eta: none},
		{name: "a quarter at 2x", done: 15 * time.Second, length: 60 * time.Second, speed: 2, percent: 25, eta: 22.5},
		{name: "a third at real time", done: 10 * time.Second, length: 30 * time.Second, speed: 1, percent: 33.3, eta: 20},
		{name: "slower than real time", done: 6 * time.Second, length: 12 * time.Second, speed: 0.5, percent: 50, eta: 12},
		{name: "no speed yet", done: 6 * time.Second, length: 12 * time.Second, speed: 0, percent: 50, eta: none},
		{name: "nearly done stays below 100", done: 59990 * time.Millisecond, length: 60 * time.Second, speed: 3, percent: 99.9, eta: 0},
		{name: "past the probed duration", done: 61 * time.Second, length: 60 * time.Second, speed: 3, percent: 99.9, eta: 0},
		{name: "negative media time", done: -time.Second, length: 60 * time.Second, speed: 1, percent: 0, eta: 60},
		{name: "unknown duration", done: 10 * time.Second, length: 0, speed: 1, percent: none, eta: none},
	}
	show := func(p *float64) float64 {
		if p == nil {
			return none
		}
		return *p
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, e := fileProgress(tc.done, tc.length, tc.speed)
			if show(p) != tc.percent || show(e) != tc.eta {
				t.Errorf("fileProgress(%v, %v, %v) = %v%%, eta %v; want %v%%, eta %v (-1: absent)", tc.done, tc.length, tc.speed, show(p), show(e), tc.percent, tc.eta)
			}
		})
	}
}

// TestProgressJSON: times are seconds; percent and eta are absent when unknown, and
// present at 0.
func TestProgressJSON(t *testing.T) {
	p := progressOf(ffmpeg.Progress{Frame: 10, OutTime: 62*time.Second + 345678*time.Microsecond})
	b, _ := json.Marshal(p)
	if !strings.Contains(string(b), `"out_time":62.346,`) || strings.Contains(string(b), "percent") || strings.Contains(string(b), "eta") {
		t.Errorf("progress of a live job: %s", b)
	}
	p.Percent, p.ETA = fileProgress(0, time.Minute, 2)
	b, _ = json.Marshal(p)
	if !strings.Contains(string(b), `"percent":0,"eta":30,`) {
		t.Errorf("progress of a file job at its start: %s", b)
	}
	p.finished()
	b, _ = json.Marshal(p)
	if !strings.Contains(string(b), `"percent":100,"eta":0,`) {
		t.Errorf("progress of a finished file job: %s", b)
	}
}
