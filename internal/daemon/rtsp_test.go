package daemon

import (
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestLiveRTSPRefusingTCP pulls from an RTSP server that answers a SETUP for RTP
// over TCP with 461 Unsupported Transport, as VLC's server and many cameras do.
// Before, such a job asked for TCP alone and stayed reconnecting forever. Now: the
// job plays over UDP and says so; a reconnect stays on UDP without trying TCP
// again; a job resumed after a daemon restart (not probed) tries TCP, is refused
// and goes over to UDP at once; ?transport=tcp fails with a reason and
// ?transport=udp plays directly.
func TestLiveRTSPRefusingTCP(t *testing.T) {
	src := testmedia.StartRTSPUDP(t, testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30})
	dir := t.TempDir()
	shared := func(c *Config) { // one daemon after another on the same folders
		c.Output, c.Data, c.MediaRoot = filepath.Join(dir, "out"), filepath.Join(dir, "data"), filepath.Join(dir, "media")
	}
	jobDir := filepath.Join(dir, "out", "cam")
	playing := func(v job.View) bool { return v.State == job.Running && v.Segments >= 4*len(v.Renditions) }

	t.Run("auto", func(t *testing.T) {
		d := startDaemon(t, "", shared)
		d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"cam"}`)
		v := d.waitFor(t, "cam", 90*time.Second, "4 segments per rendition", playing)
		checkUDP(t, v, src.URL)
		checkOutputs(t, jobDir, v)
		checkMPD(t, jobDir)
		ev := events(t, d, "cam")
		if got := ofType(ev, "transport"); len(got) != 1 || !strings.HasPrefix(got[0].Message, "tcp → udp: the RTSP server refuses RTP over TCP (461 Unsupported Transport)") {
			t.Errorf("transport events %+v, want one that tells tcp → udp and why", got)
		}
		// The probe found UDP: ffmpeg started over it at once. (A run may still end for
		// another reason: on a loaded box the stall watchdog can restart a slow start.)
		for _, e := range ofType(ev, "exit") {
			if slices.ContainsFunc(e.Stderr, func(l string) bool { return strings.Contains(l, "461") }) {
				t.Errorf("ffmpeg exited: %+v; want the first run over UDP, not a refused TCP one", e)
			}
		}

		// The source goes away and comes back: the job reconnects over UDP, and
		// does not pay a refused TCP attempt again.
		seen := len(ev)
		src.Pause()
		d.waitFor(t, "cam", 60*time.Second, "reconnecting", func(v job.View) bool { return v.State == job.Reconnecting })
		src.Resume()
		before := d.job(t, "cam").Segments
		v = d.waitFor(t, "cam", 90*time.Second, "segments after the source came back", func(v job.View) bool {
			return v.State == job.Running && v.Segments >= before+2*len(v.Renditions)
		})
		checkUDP(t, v, src.URL)
		for _, e := range events(t, d, "cam")[seen:] {
			if e.Type == "transport" || slices.ContainsFunc(e.Stderr, func(l string) bool { return strings.Contains(l, "461") }) {
				t.Errorf("after a reconnect: %+v; want UDP again, without TCP", e)
			}
		}
	})
	if t.Failed() {
		return
	}

	t.Run("resumed after a daemon restart", func(t *testing.T) {
		// The daemon before stopped with the job running: this one resumes it from
		// the store, without a probe, so its first run is over TCP.
		began := time.Now()
		d := startDaemon(t, "", shared)
		before := d.job(t, "cam").Segments
		v := d.waitFor(t, "cam", 60*time.Second, "resumed segments", func(v job.View) bool {
			return v.State == job.Running && v.Segments >= before+2*len(v.Renditions)
		})
		t.Logf("resumed job plays again after %v, %d restarts", time.Since(began).Round(100*time.Millisecond), v.Restarts)
		checkUDP(t, v, src.URL)
		ev := events(t, d, "cam")
		refused := slices.IndexFunc(ev, func(e job.Event) bool {
			return e.Type == "exit" && slices.ContainsFunc(e.Stderr, func(l string) bool { return strings.Contains(l, "method SETUP failed: 461") })
		})
		changed := slices.IndexFunc(ev, func(e job.Event) bool { return e.Type == "transport" && strings.HasPrefix(e.Message, "tcp → udp") })
		if refused < 0 || changed < refused {
			t.Fatalf("events %+v: want a run refused with 461, then tcp → udp", ev)
		}
		for _, e := range ev[changed:] {
			if e.Type == "restart" {
				t.Errorf("%+v: the change of transport must not wait for the backoff", e)
			}
		}
		checkOutputs(t, jobDir, v)
		checkMPD(t, jobDir)

		if code := d.call(t, http.MethodDelete, "/v1/jobs/cam", "", &v); code != http.StatusOK || v.State != job.Finished || v.Transport != "udp" {
			t.Errorf("DELETE: %d, state %s, transport %q", code, v.State, v.Transport)
		}

		// Forced TCP against a server that refuses it: the job says why.
		d.create(t, `{"source":"`+src.URL+`?transport=tcp","ladder":"test","id":"tcp"}`)
		want := "the RTSP server refuses RTP over TCP (461 Unsupported Transport), and the source forces ?transport=tcp: use ?transport=udp or auto"
		v = d.waitFor(t, "tcp", 30*time.Second, "the reason", func(v job.View) bool { return strings.Contains(v.Error, want) })
		if v.State != job.Reconnecting || v.Source != src.URL+"?transport=tcp" || v.Segments != 0 {
			t.Errorf("forced tcp: state %s, source %q, %d segments; want reconnecting, the source as asked, none", v.State, v.Source, v.Segments)
		}
		t.Logf("forced tcp: %s", v.Error)
		d.call(t, http.MethodDelete, "/v1/jobs/tcp", "", nil)

		// Forced UDP plays directly: no refused TCP on the way.
		d.create(t, `{"source":"`+src.URL+`?transport=udp","ladder":"test","id":"udp"}`)
		v = d.waitFor(t, "udp", 90*time.Second, "4 segments per rendition", playing)
		checkUDP(t, v, src.URL)
		if v.Source != src.URL+"?transport=udp" {
			t.Errorf("source %q, want it as asked", v.Source)
		}
		// A restart of the stall watchdog (a slow first run on a loaded box) is not TCP.
		for _, e := range events(t, d, "udp") {
			if e.Type == "transport" || slices.ContainsFunc(e.Stderr, func(l string) bool { return strings.Contains(l, "461") }) {
				t.Errorf("forced udp: %+v; want no TCP tried", e)
			}
		}
		checkOutputs(t, filepath.Join(d.out, "udp"), v)
		checkMPD(t, filepath.Join(d.out, "udp"))
		d.call(t, http.MethodDelete, "/v1/jobs/udp", "", nil)
	})
}

// checkUDP checks that a job pulls url over UDP, and that ffmpeg gets the URL
// without transcoderd's ?transport=.
func checkUDP(t *testing.T, v job.View, url string) {
	t.Helper()
	if v.Transport != "udp" {
		t.Errorf("job shows transport %q, want udp", v.Transport)
	}
	i := slices.Index(v.FFmpeg, "-rtsp_transport")
	if i < 0 || i+1 >= len(v.FFmpeg) || v.FFmpeg[i+1] != "udp" || !slices.Contains(v.FFmpeg, url) {
		t.Errorf("ffmpeg argv %q: want -rtsp_transport udp and -i %s", v.FFmpeg, url)
	}
}

// events returns a job's events, oldest first.
func events(t *testing.T, d *daemon, id string) []job.Event {
	t.Helper()
	var ev struct{ Events []job.Event }
	if code := d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &ev); code != http.StatusOK {
		t.Fatalf("GET events of %s: %d", id, code)
	}
	return ev.Events
}

// ofType returns the events of type typ.
func ofType(ev []job.Event, typ string) []job.Event {
	var out []job.Event
	for _, e := range ev {
		if e.Type == typ {
			out = append(out, e)
		}
	}
	return out
}
