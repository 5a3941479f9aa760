package daemon

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// The push faults of issue 17: what a streaming crew's encoders and links do to a push
// job, with OBS simulated by ffmpeg on loopback. Each test logs the figure it measures
// and asserts a bound generous enough for a busy box.

// pushSource is the publishers' picture: small, so that several jobs fit a CI box.
var pushSource = testmedia.SourceOptions{Width: 320, Height: 180, FPS: 30}

// startPushJob is a daemon with both ingest listeners on loopback, and a push job on
// it (id stage, test ladder), as created.
func startPushJob(t *testing.T) (*daemon, job.View) {
	t.Helper()
	d := startPushDaemon(t)
	return d, d.create(t, `{"source":"push","ladder":"test","id":"stage"}`)
}

// waitPlaying waits for the job to run with 3 segments per rendition.
func waitPlaying(t *testing.T, d *daemon, id string) job.View {
	t.Helper()
	return d.waitFor(t, id, time.Minute, "3 segments per rendition", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= 3*len(v.Renditions)
	})
}

// startPushDaemon is a daemon with both ingest listeners on loopback.
func startPushDaemon(t *testing.T) *daemon {
	t.Helper()
	return startDaemon(t, "", func(c *Config) {
		c.IngestRTMPListen, c.IngestSRTListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"
	})
}

// TestPushTwoJobs publishes two push jobs at once on the same ports, one over RTMP and
// one over SRT, at different sizes: each job shows its own publisher, is planned from its
// own picture and writes its own segments; the first publisher going leaves the other
// job running.
func TestPushTwoJobs(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 30 s")
	}
	d := startPushDaemon(t)
	a := d.create(t, `{"source":"push","ladder":"test","id":"a"}`)
	b := d.create(t, `{"source":"push","ladder":"test","id":"b"}`)
	pubA := testmedia.Publish(t, a.Ingest.RTMPURL+"/"+a.Ingest.StreamKey, pushSource)
	testmedia.Publish(t, b.Ingest.SRTURL+"&pkt_size=1316", testmedia.SourceOptions{Width: 256, Height: 144, FPS: 25})
	want := map[string]struct {
		protocol string
		height   int
	}{"a": {"rtmp", 180}, "b": {"srt", 144}}
	views := map[string]job.View{}
	for id, w := range want {
		v := waitPlaying(t, d, id)
		views[id] = v
		if p := v.Ingest.Publisher; p == nil || string(p.Protocol) != w.protocol || p.Height != w.height {
			t.Errorf("job %s's publisher %+v, want %s %dp", id, p, w.protocol, w.height)
		}
		for _, r := range v.Renditions {
			if r.Kind == "video" && r.Height > w.height {
				t.Errorf("job %s plans %s at %dp from a %dp publisher: another job's picture", id, r.Name, r.Height, w.height)
			}
		}
		checkOutputs(t, filepath.Join(d.out, id), v)
	}
	fams := scrapeMetrics(t, d)
	for id := range want {
		if n := value(t, fams, "transcoderd_ingest_bytes_total", "job", id); n <= 0 {
			t.Errorf("transcoderd_ingest_bytes_total{job=%q} is %v", id, n)
		}
	}
	for _, p := range []string{"rtmp", "srt"} {
		if n := value(t, fams, "transcoderd_ingest_publishers", "protocol", p); n != 1 {
			t.Errorf("transcoderd_ingest_publishers{protocol=%q} is %v, want 1", p, n)
		}
	}

	// A's publisher goes: a waits, b goes on with its publisher of before.
	pubA.Kill()
	d.waitFor(t, "a", 20*time.Second, "waiting", func(v job.View) bool { return v.State == job.Waiting })
	before := views["b"]
	v := d.waitFor(t, "b", 20*time.Second, "segments after a's publisher went", func(v job.View) bool {
		return v.Segments >= before.Segments+2*len(v.Renditions)
	})
	if v.State != job.Running || v.Restarts != before.Restarts || v.Ingest.Publisher == nil || !v.Ingest.Publisher.Since.Equal(before.Ingest.Publisher.Since) {
		t.Errorf("job b after a's publisher went: %s, restarts %d (was %d), publisher %+v: want it untouched", v.State, v.Restarts, before.Restarts, v.Ingest.Publisher)
	}
}

// TestPushTakeover is an encoder reconnecting while its old connection is half-open:
// the link to the first publisher freezes (a proxy stops forwarding without closing)
// and a new publisher with the same key takes over at once; then that one is killed
// (SIGKILL) and a third comes straight back. The job goes on each time with a
// discontinuity and no gap in its numbering.
func TestPushTakeover(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 40 s")
	}
	d, v := startPushJob(t)
	key, port := v.Ingest.StreamKey, rtmpAddr(t, v.Ingest.RTMPURL)
	link := newProxy(t, port)
	first := testmedia.Publish(t, link.url(key), pushSource)
	v = waitPlaying(t, d, "stage")
	dir := filepath.Join(d.out, "stage")

	link.freeze()
	time.Sleep(time.Second) // the job's input stalls; the hub's read timeout (10 s) is far
	before := discontinuitiesOf(t, dir, v)
	second := newProxy(t, port)
	frozen := time.Now()
	pub := testmedia.Publish(t, second.url(key), pushSource)
	replaced := waitEvent(t, d, "stage", "publisher_replaced", frozen, 20*time.Second)
	took := replaced.Sub(second.acceptedAt(t))
	t.Logf("frozen link: new publisher connected → takeover: %v (target ≤ 1 s)", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("new publisher connected → takeover took %v, want about 1 s", took)
	}
	t.Logf("frozen link: new publisher connected → a new segment in every rendition: %v",
		waitNewRun(t, dir, before, second.acceptedAt(t), 30*time.Second))
	select {
	case <-first.Exited():
		t.Errorf("the frozen publisher exited: %s", first.Stderr())
	default: // it never learns: its link is frozen
	}
	if p := d.job(t, "stage").Ingest.Publisher; p == nil || p.Remote != second.upstream(t) {
		t.Errorf("publisher %+v, want the new one from %s", p, second.upstream(t))
	}
	if n := value(t, scrapeMetrics(t, d), "transcoderd_ingest_takeovers_total"); n != 1 {
		t.Errorf("transcoderd_ingest_takeovers_total is %v, want 1", n)
	}

	// The publisher that took over is killed; a third comes back at once.
	pub.Kill()
	killed := time.Now()
	before = discontinuitiesOf(t, dir, v)
	third := newProxy(t, port)
	testmedia.Publish(t, third.url(key), pushSource)
	t.Logf("publisher killed → a new segment in every rendition from the next one: %v",
		waitNewRun(t, dir, before, killed, 30*time.Second))
	v = d.job(t, "stage")
	if p := v.Ingest.Publisher; p == nil || p.Remote != third.upstream(t) {
		t.Errorf("publisher %+v, want the third from %s", p, third.upstream(t))
	}
	for name, disc := range checkContinuous(t, checkOutputs(t, dir, v)) {
		if disc < 2 {
			t.Errorf("%s: %d discontinuities, want one per new publisher (2)", name, disc)
		}
	}
}

// TestPushPublisherGone is a publisher gone for 30 s: the job waits, its manifests and
// DVR window stay as they were (every segment listed and on disk), and once the
// publisher is back the job continues the same presentation within 2 segments + 2 s
// of its first keyframe.
func TestPushPublisherGone(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 60 s")
	}
	d, v := startPushJob(t)
	key, port := v.Ingest.StreamKey, rtmpAddr(t, v.Ingest.RTMPURL)
	pub := testmedia.Publish(t, v.Ingest.RTMPURL+"/"+key, pushSource)
	v = waitPlaying(t, d, "stage")
	dir := filepath.Join(d.out, "stage")

	pub.Kill()
	v = d.waitFor(t, "stage", 20*time.Second, "waiting", func(v job.View) bool { return v.State == job.Waiting })
	if v.Waiting != "publisher" || v.Ingest.Publisher != nil {
		t.Errorf("job without its publisher: waiting %q, publisher %+v; want publisher, none", v.Waiting, v.Ingest.Publisher)
	}
	time.Sleep(time.Second) // the last run's final manifests
	gone := manifests(t, dir, v)
	time.Sleep(30 * time.Second)
	if w := d.job(t, "stage"); w.State != job.Waiting || w.Segments != v.Segments {
		t.Errorf("30 s without a publisher: %s with %d segments, want waiting with %d", w.State, w.Segments, v.Segments)
	}
	for name, data := range manifests(t, dir, v) {
		if !bytes.Equal(data, gone[name]) {
			t.Errorf("%s changed while the job waited:\n%s\nwas:\n%s", name, data, gone[name])
		}
		// Still live: players keep reloading them.
		if bytes.Contains(data, []byte("#EXT-X-ENDLIST")) || bytes.Contains(data, []byte(`type="static"`)) {
			t.Errorf("%s ended while the job waited for its publisher:\n%s", name, data)
		}
	}
	checkContinuous(t, checkOutputs(t, dir, v)) // every listed segment there, from 0

	back := newProxy(t, port)
	before, began := discontinuitiesOf(t, dir, v), time.Now()
	testmedia.Publish(t, back.url(key), pushSource)
	// Its first keyframe comes right after the RTMP handshake: the time from its
	// connection bounds the time from that keyframe.
	attached := waitEvent(t, d, "stage", "publisher", began, 20*time.Second)
	connected := back.acceptedAt(t)
	took := waitNewRun(t, dir, before, connected, 30*time.Second)
	t.Logf("publisher back: connected → attached (tracks read) %v; connected → a new segment in every rendition %v (target ≤ 2 segments + 2 s)",
		attached.Sub(connected).Round(time.Millisecond), took)
	if took > 12*time.Second {
		t.Errorf("publisher back → new segments took %v, want about 4 s (2 segments + 2 s)", took)
	}
	v = d.job(t, "stage")
	for name, disc := range checkContinuous(t, checkOutputs(t, dir, v)) {
		if disc != 1 {
			t.Errorf("%s: %d discontinuities, want one where the publisher came back", name, disc)
		}
	}
	if m := checkMPD(t, dir); len(m.Periods) != 2 {
		t.Errorf("%d periods, want a new one where the publisher came back", len(m.Periods))
	}
}

// TestPushFFmpegKilled kills the job's ffmpeg (SIGKILL) while its publisher streams:
// a new run writes segments within one segment + 2 s, and the publisher never learns
// (it still runs, on the same connection; nothing reconnected or took over).
func TestPushFFmpegKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 25 s")
	}
	d, v := startPushJob(t)
	pub := testmedia.Publish(t, v.Ingest.RTMPURL+"/"+v.Ingest.StreamKey, pushSource)
	v = waitPlaying(t, d, "stage")
	dir := filepath.Join(d.out, "stage")
	before := discontinuitiesOf(t, dir, v)
	if err := syscall.Kill(lastPID(t, d, "stage"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	took := waitNewRun(t, dir, before, time.Now(), 30*time.Second)
	t.Logf("job's ffmpeg killed → a new segment in every rendition: %v (target ≤ 1 segment + 2 s)", took)
	if took > 10*time.Second {
		t.Errorf("job's ffmpeg killed → new segments took %v, want about 3 s (1 segment + 2 s)", took)
	}
	w := d.waitFor(t, "stage", 20*time.Second, "a new run", func(w job.View) bool { return w.Restarts > v.Restarts })
	if p := w.Ingest.Publisher; p == nil || !p.Since.Equal(v.Ingest.Publisher.Since) || p.Remote != v.Ingest.Publisher.Remote {
		t.Errorf("publisher after the kill %+v, want the same session as before %+v", p, v.Ingest.Publisher)
	}
	select {
	case <-pub.Exited():
		t.Errorf("the publisher was cut off when the job's ffmpeg died: %s", pub.Stderr())
	default:
	}
	for _, typ := range []string{"publisher_gone", "publisher_replaced"} {
		if _, ok := lastEvent(t, d, "stage", typ); ok {
			t.Errorf("a %s event: the publisher noticed the kill", typ)
		}
	}
	if n := value(t, scrapeMetrics(t, d), "transcoderd_ingest_takeovers_total"); n != 0 {
		t.Errorf("transcoderd_ingest_takeovers_total is %v, want 0", n)
	}
}

// discontinuitiesOf is how many discontinuities each rendition's playlist lists.
func discontinuitiesOf(t *testing.T, dir string, v job.View) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, r := range v.Renditions {
		out[r.Name] = discontinuities(readFile(t, filepath.Join(dir, r.Name, manifest.MediaName)))
	}
	return out
}

// waitNewRun waits until every rendition lists a segment after more discontinuities
// than before, and returns the time that took from since.
func waitNewRun(t *testing.T, dir string, before map[string]int, since time.Time, limit time.Duration) time.Duration {
	t.Helper()
	last := since
	for name, n := range before {
		if at := firstNewRun(t, filepath.Join(dir, name, manifest.MediaName), n, limit); at.After(last) {
			last = at
		}
	}
	return last.Sub(since).Round(10 * time.Millisecond)
}

// manifests reads the job's playlists and MPD.
func manifests(t *testing.T, dir string, v job.View) map[string][]byte {
	t.Helper()
	out := map[string][]byte{manifest.MasterName: readFile(t, filepath.Join(dir, manifest.MasterName)), manifest.MPDName: readFile(t, filepath.Join(dir, manifest.MPDName))}
	for _, r := range v.Renditions {
		out[r.Name] = readFile(t, filepath.Join(dir, r.Name, manifest.MediaName))
	}
	return out
}

// lastEvent is the job's last event of that type.
func lastEvent(t *testing.T, d *daemon, id, typ string) (job.Event, bool) {
	t.Helper()
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &events)
	for i := len(events.Events) - 1; i >= 0; i-- {
		if events.Events[i].Type == typ {
			return events.Events[i], true
		}
	}
	return job.Event{}, false
}

// waitEvent waits up to limit for an event of that type recorded after after, and
// returns when the job recorded it.
func waitEvent(t *testing.T, d *daemon, id, typ string, after time.Time, limit time.Duration) time.Time {
	t.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(25 * time.Millisecond) {
		if e, ok := lastEvent(t, d, id, typ); ok && e.Time.After(after) {
			return e.Time
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %s event in %v", typ, limit)
		}
	}
}

// rtmpAddr is the host:port of an rtmp:// URL of the daemon.
func rtmpAddr(t *testing.T, url string) string {
	t.Helper()
	rest, ok := strings.CutPrefix(url, "rtmp://")
	host, _, found := strings.Cut(rest, "/")
	if !ok || !found {
		t.Fatalf("%s is not an rtmp URL with a path", url)
	}
	return host
}

// proxy is a TCP link between a publisher and the hub, in the test: it forwards both
// ways until frozen, then forwards nothing and closes nothing (a link gone dead under
// a half-open connection). A connection that ends on one side is closed on the other.
type proxy struct {
	ln     net.Listener
	target string

	mu       sync.Mutex
	accepted time.Time // of the latest connection
	local    string    // the latest connection's address, as the hub sees it
	frozen   chan struct{}
	done     chan struct{}
}

func newProxy(t *testing.T, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, frozen: make(chan struct{}), done: make(chan struct{})}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.serve(&wg)
	}()
	t.Cleanup(func() {
		close(p.done)
		_ = ln.Close()
		wg.Wait()
	})
	return p
}

// url is where a publisher publishes key through the proxy.
func (p *proxy) url(key string) string { return "rtmp://" + p.ln.Addr().String() + "/live/" + key }

// freeze stops forwarding, for good.
func (p *proxy) freeze() { close(p.frozen) }

// acceptedAt is when the proxy accepted its latest connection.
func (p *proxy) acceptedAt(t *testing.T) time.Time {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.accepted.IsZero() {
		t.Fatal("the proxy accepted no connection")
	}
	return p.accepted
}

// upstream is the address the hub sees the latest connection come from.
func (p *proxy) upstream(t *testing.T) string {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.local == "" {
		t.Fatal("the proxy reached the hub for no connection")
	}
	return p.local
}

func (p *proxy) serve(wg *sync.WaitGroup) {
	for {
		in, err := p.ln.Accept()
		if err != nil {
			return
		}
		at := time.Now()
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		p.mu.Lock()
		p.accepted, p.local = at, out.LocalAddr().String()
		p.mu.Unlock()
		wg.Add(2)
		go p.forward(wg, out, in)
		go p.forward(wg, in, out)
	}
}

// forward copies from src to dst until either ends (then it closes both) or the proxy
// is frozen (then it holds both open, reading nothing, until the test ends).
func (p *proxy) forward(wg *sync.WaitGroup, dst, src net.Conn) {
	defer wg.Done()
	buf := make([]byte, 32<<10)
	for {
		select {
		case <-p.frozen:
			<-p.done
			_ = src.Close()
			_ = dst.Close()
			return
		default:
		}
		_ = src.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := src.Read(buf)
		if n > 0 {
			select {
			case <-p.frozen: // what was read when the link froze is lost with it
				continue
			default:
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				err = werr
			}
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			_ = src.Close()
			_ = dst.Close()
			return
		}
	}
}

// TestPushTakeoverPlayers plays a push job in headless Chromium with hls.js, dash.js
// and Shaka while a new publisher with the same key takes over from the one streaming
// (an encoder reconnecting): every player plays on across the discontinuity (a new
// Period in DASH). See web/test/shed.mjs ("restart": the job runs again).
func TestPushTakeoverPlayers(t *testing.T) {
	requireBrowser(t)
	d, v := startPushJob(t)
	url := v.Ingest.RTMPURL + "/" + v.Ingest.StreamKey
	src := testmedia.SourceOptions{Width: 640, Height: 360, FPS: 30}
	testmedia.Publish(t, url, src)
	waitPlaying(t, d, "stage")
	var began time.Time
	res := runShedScript(t, map[string]any{"base": d.api, "job": "stage", "restart": true}, func() {
		began = time.Now()
		testmedia.Publish(t, url, src)
	})
	reportSessions(t, res)
	if e, ok := lastEvent(t, d, "stage", "publisher_replaced"); ok {
		t.Logf("new publisher started → takeover: %v", e.Time.Sub(began).Round(time.Millisecond))
	} else {
		t.Error("no publisher_replaced event: the new publisher did not take over")
	}
}
