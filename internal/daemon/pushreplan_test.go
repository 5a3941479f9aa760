package daemon

import (
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// stageLadder has a rung that a 360p publisher cannot feed and a 720p one can.
const stageLadder = `description: push replan test
segment_duration: 1s
window: 2m
encoder: x264
fallback: none
video:
  codec: h264
  preset: ultrafast
  renditions:
    - {name: 720p, height: 720, bitrate: 1200k, profile: baseline}
    - {name: 360p, height: 360, bitrate: 400k, profile: baseline}
audio:
  - {name: aac, codec: aac, bitrate: 64k, channels: 2, sample_rate: 48000}
`

// TestPushReplan is OBS switched from 360p to 720p between two sessions with the same
// key: the job probes the new publisher's first GOP and plans again, as for a pull
// source that came back changed: a new master playlist with the rung the publisher now
// feeds, a new DASH Period with it.
func TestPushReplan(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 40 s")
	}
	profiles := t.TempDir()
	writeFile(t, filepath.Join(profiles, "stage.yaml"), stageLadder)
	d := startDaemon(t, profiles, func(c *Config) { c.IngestRTMPListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1" })
	v := d.create(t, `{"source":"push:rtmp","ladder":"stage","id":"stage"}`)
	url := v.Ingest.RTMPURL + "/" + v.Ingest.StreamKey
	dir := filepath.Join(d.out, "stage")
	check := func(t *testing.T, w, h int, want map[string]string) {
		t.Helper()
		d.waitFor(t, "stage", 45*time.Second, fmt.Sprintf("rungs %v", want), func(v job.View) bool {
			_, err := os.Stat(filepath.Join(dir, manifest.MasterName))
			return v.State == job.Running && v.Input != nil && v.Input.Width == w && v.Input.Height == h &&
				err == nil && maps.Equal(masterRungs(t, dir), want)
		})
		var last map[string]string
		for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
			m := checkMPD(t, dir) // valid (xmllint against the DASH schema) and conformant
			last = map[string]string{}
			for _, as := range m.Periods[len(m.Periods)-1].AdaptationSets {
				for _, r := range as.Representations {
					if r.Width > 0 {
						last[r.Id] = fmt.Sprintf("%dx%d", r.Width, r.Height)
					}
				}
			}
			if maps.Equal(last, want) {
				break
			}
		}
		if !maps.Equal(last, want) {
			t.Errorf("newest DASH Period: rungs %v, want %v", last, want)
		}
	}

	pub := testmedia.Publish(t, url, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	check(t, 640, 360, map[string]string{"360p": "640x360"})
	for i, c := range []struct {
		name string
		opts testmedia.SourceOptions
		want map[string]string
	}{
		{"back at 720p", testmedia.SourceOptions{Width: 1280, Height: 720, FPS: 30}, map[string]string{"720p": "1280x720", "360p": "640x360"}},
		{"back at 25 fps", testmedia.SourceOptions{Width: 1280, Height: 720, FPS: 25}, map[string]string{"720p": "1280x720", "360p": "640x360"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			pub.Kill()
			d.waitFor(t, "stage", 20*time.Second, "waiting", func(v job.View) bool { return v.State == job.Waiting })
			began := time.Now()
			pub = testmedia.Publish(t, url, c.opts)
			check(t, c.opts.Width, c.opts.Height, c.want)
			v := d.waitFor(t, "stage", 30*time.Second, "the new plan's frame rate", func(v job.View) bool { return v.Input.FPS == float64(c.opts.FPS) })
			t.Logf("publisher back → new plan in the master playlist and the MPD: %v", time.Since(began).Round(10*time.Millisecond))
			if p := v.Ingest.Publisher; p == nil || p.Width != c.opts.Width || p.FPS != float64(c.opts.FPS) {
				t.Errorf("publisher %+v, want %dx%d at %d fps", p, c.opts.Width, c.opts.Height, c.opts.FPS)
			}
			var events struct{ Events []job.Event }
			d.call(t, http.MethodGet, "/v1/jobs/stage/events", "", &events)
			if n := len(slices.DeleteFunc(events.Events, func(e job.Event) bool { return e.Type != "replan" })); n != i+1 {
				t.Errorf("%d replan events, want %d", n, i+1)
			}
			d.waitFor(t, "stage", 30*time.Second, "2 segments of 720p", func(v job.View) bool { return segmentsOf(t, dir, "720p") >= 2 })
			decode(t, filepath.Join(dir, "720p", "index.m3u8"))
		})
	}
}

// segmentsOf is how many segments the media playlist of rendition name lists.
func segmentsOf(t *testing.T, dir, name string) int {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name, "index.m3u8"))
	if err != nil {
		return 0
	}
	return strings.Count(string(data), "#EXTINF")
}
