package daemon

import (
	"bytes"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/Eyevinn/hls-m3u8/m3u8"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestSourceChangesSize: an RTMP source that comes back at another size gets the plan
// of its new size (issue 16, item 5). From 320x180 (the test ladder drops its 360p rung)
// to 640x360 (360p is encoded), then to 240x180, 4:3 (360p is dropped again, never
// upscaled, and 180p takes the new aspect instead of being stretched). After each
// change, the job's plan, the master playlist and the newest DASH Period list exactly
// the new rungs at their new sizes, and the MPD stays valid.
func TestSourceChangesSize(t *testing.T) {
	if testing.Short() {
		t.Skip("takes about a minute")
	}
	d := startDaemon(t, "")
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"resize"}`)
	dir := filepath.Join(d.out, v.ID)
	check := func(t *testing.T, srcW, srcH int, want map[string]string) {
		t.Helper()
		d.waitFor(t, v.ID, 45*time.Second, fmt.Sprintf("rungs %v", want), func(v job.View) bool {
			return v.State == job.Running && v.Input != nil && v.Input.Width == srcW && v.Input.Height == srcH &&
				maps.Equal(masterRungs(t, dir), want)
		})
		v := d.job(t, v.ID)
		got := map[string]string{}
		for _, r := range v.Renditions {
			if r.Kind == "video" {
				got[r.Name] = fmt.Sprintf("%dx%d", r.Width, r.Height)
			}
		}
		if !maps.Equal(got, want) {
			t.Errorf("job's rungs %v, want %v", got, want)
		}
		// The newest Period lists the new rungs once each of them has a segment in it.
		var last map[string]string
		deadline := time.Now().Add(15 * time.Second)
		for time.Now().Before(deadline) {
			m := checkMPD(t, dir)
			last = map[string]string{}
			for _, as := range m.Periods[len(m.Periods)-1].AdaptationSets {
				for _, r := range as.Representations {
					if r.Width > 0 {
						last[r.Id] = fmt.Sprintf("%dx%d", r.Width, r.Height)
						if int(r.Height) > srcH {
							t.Errorf("MPD: %s is %dx%d, taller than the %dx%d source", r.Id, r.Width, r.Height, srcW, srcH)
						}
					}
				}
			}
			if maps.Equal(last, want) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if !maps.Equal(last, want) {
			t.Errorf("newest DASH Period: rungs %v, want %v", last, want)
		}
	}
	check(t, 320, 180, map[string]string{"180p": "320x180"})
	for _, c := range []struct {
		name string
		w, h int
		want map[string]string
	}{
		{"grows to 640x360", 640, 360, map[string]string{"360p": "640x360", "180p": "320x180"}},
		{"shrinks to 240x180 4:3", 240, 180, map[string]string{"180p": "240x180"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			src.Pause()
			time.Sleep(2 * time.Second)
			src.ResumeAs(testmedia.SourceOptions{Width: c.w, Height: c.h, FPS: 25})
			check(t, c.w, c.h, c.want)
		})
	}
	var events struct{ Events []job.Event }
	d.call(t, "GET", "/v1/jobs/"+v.ID+"/events", "", &events)
	if n := len(slices.DeleteFunc(events.Events, func(e job.Event) bool { return e.Type != "replan" })); n != 2 {
		t.Errorf("%d replan events, want 2", n)
	}
}

// masterRungs returns the video variants the master playlist lists: name → WxH.
func masterRungs(t *testing.T, dir string) map[string]string {
	t.Helper()
	data := readFile(t, filepath.Join(dir, manifest.MasterName))
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(data), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("master.m3u8 does not parse: %v\n%s", err, data)
	}
	out := map[string]string{}
	for _, v := range pl.(*m3u8.MasterPlaylist).Variants {
		if v.Resolution != "" {
			out[filepath.Dir(v.URI)] = v.Resolution
		}
	}
	return out
}
