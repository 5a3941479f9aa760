package job

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/ladder"
)

func TestLimitsCheckLadder(t *testing.T) {
	lim := Limits{MaxRenditions: 3, MaxHeight: 1080, MaxBitrate: 6_000_000, MaxWindow: time.Hour}
	rung := func(name string, h int, b, maxrate int64) ladder.Rendition {
		return ladder.Rendition{Name: name, Height: h, Bitrate: b, MaxRate: maxrate}
	}
	ok := ladder.Ladder{Name: "ok", Window: 10 * time.Minute, Video: ladder.Video{Renditions: []ladder.Rendition{rung("1080p", 1080, 5_000_000, 6_000_000)}},
		Audio: []ladder.Audio{{Name: "aac", Bitrate: 128_000}}}
	tests := []struct {
		name   string
		lim    Limits
		change func(l *ladder.Ladder)
		live   bool
		want   []string
	}{
		{name: "within", lim: lim, live: true},
		{name: "zero limits check nothing", lim: Limits{}, live: true, change: func(l *ladder.Ladder) {
			l.Window = 0
			l.Video.Renditions[0].Height = 4320
		}},
		{name: "too tall", lim: lim, change: func(l *ladder.Ladder) { l.Video.Renditions[0].Height = 2160 }, want: []string{"video.renditions[0] (1080p): height 2160 is above the limit of 1080 (max-height)"}},
		{name: "maxrate counts", lim: lim, change: func(l *ladder.Ladder) { l.Video.Renditions[0].MaxRate = 6_500_000 }, want: []string{"6500k is above the limit of 6000k"}},
		{name: "audio bitrate", lim: lim, change: func(l *ladder.Ladder) { l.Audio[0].Bitrate = 7_000_000 }, want: []string{"audio[0] (aac): 7000k"}},
		{name: "renditions", lim: lim, change: func(l *ladder.Ladder) {
			l.Audio = append(l.Audio, ladder.Audio{Name: "b", Bitrate: 1}, ladder.Audio{Name: "c", Bitrate: 1})
		}, want: []string{"4 renditions, the limit is 3"}},
		{name: "live window 0", lim: lim, live: true, change: func(l *ladder.Ladder) { l.Window = 0 }, want: []string{"window 0 keeps every segment"}},
		{name: "VOD window 0 is fine", lim: lim, change: func(l *ladder.Ladder) { l.Window = 0 }},
		{name: "live window too long", lim: lim, live: true, change: func(l *ladder.Ladder) { l.Window = 2 * time.Hour }, want: []string{"window 2h0m0s is above the limit of 1h0m0s"}},
		{name: "every problem at once", lim: lim, live: true, change: func(l *ladder.Ladder) {
			l.Window = 0
			l.Video.Renditions[0].Height = 2160
			l.Audio[0].Bitrate = 7_000_000
		}, want: []string{"height 2160", "audio[0]", "window 0", `ladder "ok"`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l := ok
			l.Video.Renditions = append([]ladder.Rendition(nil), ok.Video.Renditions...)
			l.Audio = append([]ladder.Audio(nil), ok.Audio...)
			if tc.change != nil {
				tc.change(&l)
			}
			err := tc.lim.checkLadder(&l, tc.live)
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrLimit) {
				t.Fatalf("err = %v, want ErrLimit", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("%q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLimitsCheckJobs(t *testing.T) {
	running := &Job{view: View{State: Running}}
	ended := &Job{view: View{State: Finished}}
	jobs := map[string]*Job{"a": running, "b": ended, "c": ended}
	if err := (Limits{MaxJobs: 2}).checkJobs(jobs); err != nil {
		t.Errorf("1 running of 2: %v", err)
	}
	jobs["d"] = &Job{view: View{State: Reconnecting}}
	if err := (Limits{MaxJobs: 2}).checkJobs(jobs); !errors.Is(err, ErrTooManyJobs) || !strings.Contains(err.Error(), "2 jobs are running or queued, the limit is 2") {
		t.Errorf("2 running of 2: %v", err)
	}
	if err := (Limits{}).checkJobs(jobs); err != nil {
		t.Errorf("no limit: %v", err)
	}
}

func TestCheckJobDir(t *testing.T) {
	out := t.TempDir()
	elsewhere := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.Mkdir(filepath.Join(out, "real"), 0o755))
	must(os.Symlink(elsewhere, filepath.Join(out, "link")))
	must(os.Symlink(filepath.Join(out, "nowhere"), filepath.Join(out, "dangling")))
	must(os.WriteFile(filepath.Join(out, "file"), nil, 0o644))
	for name, want := range map[string]string{
		"new": "", "real": "", "link": "symbolic link", "dangling": "symbolic link", "file": "not a folder",
	} {
		err := checkJobDir(filepath.Join(out, name))
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: %v", name, err)
		case want != "" && (err == nil || !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want a conflict containing %q", name, err, want)
		}
	}
}
