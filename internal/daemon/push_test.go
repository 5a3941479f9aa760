package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestPushRTMP is OBS streaming to a push job, simulated by ffmpeg: the job waits for
// its publisher, a wrong key is refused without starting anything, the right one starts
// the job, and a publisher killed and back continues the same presentation. The stream
// key is shown at creation only, and rotating it refuses the old one.
func TestPushRTMP(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 40 s")
	}
	d := startDaemon(t, "", func(c *Config) { c.IngestRTMPListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1" })
	v := d.create(t, `{"source":"push","ladder":"test","id":"stage"}`)
	if v.Ingest == nil || len(v.Ingest.StreamKey) != 26 || !strings.HasPrefix(v.Ingest.RTMPURL, "rtmp://127.0.0.1:") {
		t.Fatalf("creation answer's ingest %+v: want an rtmp url and a 26-character key", v.Ingest)
	}
	key, server := v.Ingest.StreamKey, v.Ingest.RTMPURL
	v = d.waitFor(t, "stage", 10*time.Second, "waiting", func(v job.View) bool { return v.State == job.Waiting })
	if v.Waiting != "publisher" || v.Ingest == nil || v.Ingest.StreamKey != "" || v.Ingest.RTMPURL != server {
		t.Errorf("waiting job shows waiting %q, ingest %+v: want publisher, its url and no key", v.Waiting, v.Ingest)
	}

	refused(t, server+"/"+strings.ToUpper(key))
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/stage/events", "", &events)
	for _, e := range events.Events {
		if e.Type == "start" || e.Type == "publisher" {
			t.Errorf("after a wrong key: event %s %q, want no publisher and no ffmpeg", e.Type, e.Message)
		}
	}
	// Counted once the hub has closed the connection, just after the publisher read
	// the refusal.
	n := 0.0
	for deadline := time.Now().Add(2 * time.Second); n != 1 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		n = value(t, scrapeMetrics(t, d), "transcoderd_ingest_rejected_total", "reason", "key")
	}
	if n != 1 {
		t.Errorf("transcoderd_ingest_rejected_total{reason=\"key\"} is %v, want 1", n)
	}
	if v := d.job(t, "stage"); v.State != job.Waiting || len(v.FFmpeg) != 0 {
		t.Fatalf("after a wrong key the job is %s with ffmpeg %v, want waiting with none started", v.State, v.FFmpeg)
	}

	opts := testmedia.SourceOptions{Width: 320, Height: 180, FPS: 30}
	began := time.Now()
	pub := testmedia.Publish(t, server+"/"+key, opts)
	v = d.waitFor(t, "stage", 20*time.Second, "a first segment", func(v job.View) bool { return v.Segments > 0 })
	t.Logf("publisher started → first segment indexed: %v (from its connection: %v)", time.Since(began).Round(10*time.Millisecond), sinceConnected(t, v))
	v = d.waitFor(t, "stage", 30*time.Second, "segments", func(v job.View) bool { return v.State == job.Running && v.Segments >= 3*len(v.Renditions) })
	p := v.Ingest.Publisher
	if p == nil || p.Protocol != "rtmp" || p.Width != 320 || p.Video != "h264" || p.Audio != "aac" || p.Bitrate <= 0 {
		t.Errorf("publisher %+v, want rtmp h264/aac 320 wide with a bitrate", p)
	}
	if argv := strings.Join(v.FFmpeg, " "); !strings.Contains(argv, "-i pipe:3") || strings.Contains(argv, key) {
		t.Errorf("ffmpeg %s: want pipe:3 and never the key", argv)
	}

	pub.Kill()
	before := d.waitFor(t, "stage", 20*time.Second, "waiting again", func(v job.View) bool { return v.State == job.Waiting })
	began = time.Now()
	back := testmedia.Publish(t, server+"/"+key, opts)
	v = d.waitFor(t, "stage", 30*time.Second, "segments after the publisher came back", func(v job.View) bool {
		return v.State == job.Running && v.Segments >= before.Segments+2*len(v.Renditions)
	})
	t.Logf("publisher back → 2 new segments per rendition: %v", time.Since(began).Round(10*time.Millisecond))

	// The job's ffmpeg dies; the publisher does not notice, and the next run starts at
	// its next keyframe.
	if err := syscall.Kill(lastPID(t, d, "stage"), syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	d.waitFor(t, "stage", 30*time.Second, "segments after ffmpeg was killed", func(w job.View) bool {
		return w.State == job.Running && w.Restarts > v.Restarts && w.Segments >= v.Segments+2*len(w.Renditions)
	})
	t.Logf("job's ffmpeg killed → 2 new segments per rendition: %v", time.Since(began).Round(10*time.Millisecond))
	select {
	case <-back.Exited():
		t.Errorf("the publisher was cut off when the job's ffmpeg died: %s", back.Stderr())
	default:
	}
	jobDir := filepath.Join(d.out, "stage")
	for name, disc := range checkContinuous(t, checkOutputs(t, jobDir, d.job(t, "stage"))) {
		if disc < 1 {
			t.Errorf("%s: %d discontinuities, want one where the publisher came back", name, disc)
		}
	}
	if m := checkMPD(t, jobDir); len(m.Periods) < 2 {
		t.Errorf("%d periods, want a new one where the publisher came back", len(m.Periods))
	}

	var rotated job.View
	if code := d.call(t, http.MethodPost, "/v1/jobs/stage/ingest/rotate", "", &rotated); code != http.StatusOK || rotated.Ingest == nil || len(rotated.Ingest.StreamKey) != 26 || rotated.Ingest.StreamKey == key {
		t.Fatalf("rotate: %d %+v, want a new key", code, rotated.Ingest)
	}
	refused(t, server+"/"+key)
	d.call(t, http.MethodGet, "/v1/jobs/stage/events", "", &events)
	all, _ := json.Marshal(events)
	list, _ := json.Marshal(d.job(t, "stage"))
	for _, k := range []string{key, rotated.Ingest.StreamKey} {
		if strings.Contains(string(all), k) || strings.Contains(string(list), k) {
			t.Errorf("a stream key shows in the events or the job")
		}
	}
}

// refused publishes to url and checks that the hub refuses it: ffmpeg exits non-zero
// within 2 s.
func refused(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	began := time.Now()
	out, err := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-loglevel", "error", "-re", "-f", "lavfi", "-i", "testsrc2=size=160x90:rate=10",
		"-t", "5", "-c:v", "libx264", "-preset", "ultrafast", "-f", "flv", url).CombinedOutput()
	if took := time.Since(began); err == nil || took > 2*time.Second {
		t.Errorf("publisher with a wrong key ended after %v with %v, want an error within 2 s: %s", took.Round(time.Millisecond), err, out)
	}
}

// TestPushSRT is a hardware encoder publishing a push:srt job over SRT: the job shows
// no RTMP URL, its SRT URL carries the key only in the creation answer, and the
// publisher starts it.
func TestPushSRT(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 15 s")
	}
	d := startDaemon(t, "", func(c *Config) {
		c.IngestRTMPListen, c.IngestSRTListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"
	})
	v := d.create(t, `{"source":"push:srt","ladder":"test","id":"enc"}`)
	if v.Ingest == nil || v.Ingest.RTMPURL != "" || !strings.HasSuffix(v.Ingest.SRTURL, "?streamid=publish:"+v.Ingest.StreamKey) {
		t.Fatalf("creation answer's ingest %+v: want an srt url with the key, no rtmp url", v.Ingest)
	}
	srtURL, key := v.Ingest.SRTURL, v.Ingest.StreamKey
	if w := d.waitFor(t, "enc", 10*time.Second, "waiting", func(v job.View) bool { return v.State == job.Waiting }); strings.Contains(w.Ingest.SRTURL, key) {
		t.Errorf("the job shows its key in %s", w.Ingest.SRTURL)
	}
	began := time.Now()
	testmedia.Publish(t, srtURL+"&pkt_size=1316", testmedia.SourceOptions{Width: 320, Height: 180, FPS: 30})
	d.waitFor(t, "enc", 20*time.Second, "a first segment", func(v job.View) bool { return v.Segments > 0 })
	t.Logf("srt publisher started → first segment indexed: %v (from its connection: %v)", time.Since(began).Round(10*time.Millisecond), sinceEvent(t, d, "enc", "publisher"))
	v = d.waitFor(t, "enc", 30*time.Second, "segments", func(v job.View) bool { return v.State == job.Running && v.Segments >= 2*len(v.Renditions) })
	if p := v.Ingest.Publisher; p == nil || p.Protocol != "srt" || p.Width != 320 {
		t.Errorf("publisher %+v, want srt 320 wide", p)
	}
	// The link's counters, numbers in the JSON, read anew at each request.
	received := srtCounters(t, d, "enc")
	time.Sleep(time.Second)
	if again := srtCounters(t, d, "enc"); again <= received {
		t.Errorf("ingest.publisher.srt.packets_received %v then %v a second later, want it to grow while publishing", received, again)
	}
	checkOutputs(t, filepath.Join(d.out, "enc"), v)
}

// srtCounters checks that the job's publisher shows its SRT counters as numbers, and
// returns the packets received.
func srtCounters(t *testing.T, d *daemon, id string) float64 {
	t.Helper()
	var raw struct {
		Ingest struct {
			Publisher struct {
				SRT map[string]any `json:"srt"`
			} `json:"publisher"`
		} `json:"ingest"`
	}
	d.call(t, http.MethodGet, "/v1/jobs/"+id, "", &raw)
	srt := raw.Ingest.Publisher.SRT
	for _, k := range []string{"packets_received", "packets_lost", "packets_retransmitted", "packets_dropped", "rtt_ms"} {
		if _, ok := srt[k].(float64); !ok {
			t.Errorf("ingest.publisher.srt.%s is %#v, want a number", k, srt[k])
		}
	}
	n, _ := srt["packets_received"].(float64)
	return n
}

// sinceConnected is the time since the job's publisher connected.
func sinceConnected(t *testing.T, v job.View) time.Duration {
	t.Helper()
	if v.Ingest == nil || v.Ingest.Publisher == nil {
		t.Fatalf("job %s has no publisher", v.ID)
	}
	return time.Since(v.Ingest.Publisher.Since).Round(10 * time.Millisecond)
}

// sinceEvent is the time since the job's first event of that type.
func sinceEvent(t *testing.T, d *daemon, id, typ string) time.Duration {
	t.Helper()
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &events)
	for _, e := range events.Events {
		if e.Type == typ {
			return time.Since(e.Time).Round(10 * time.Millisecond)
		}
	}
	t.Fatalf("no %s event", typ)
	return 0
}

// lastPID is the process id of the job's last started ffmpeg, from its events.
func lastPID(t *testing.T, d *daemon, id string) int {
	t.Helper()
	var events struct{ Events []job.Event }
	d.call(t, http.MethodGet, "/v1/jobs/"+id+"/events", "", &events)
	pid := 0
	for _, e := range events.Events {
		if e.Type == "start" {
			pid = e.PID
		}
	}
	if pid == 0 {
		t.Fatal("no start event")
	}
	return pid
}
