package daemon

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestIngestTLSRefusesStart checks that RTMPS settings that cannot serve stop the
// daemon before anything starts (TestSecurityConfig has every case of Validate).
func TestIngestTLSRefusesStart(t *testing.T) {
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testmedia.SelfSigned(t, cert, key)
	testmedia.SelfSigned(t, cert+".other", key+".other")
	c := Config{Listen: "127.0.0.1:0", Output: filepath.Join(dir, "o"), Profiles: "p", Data: filepath.Join(dir, "d"), MediaRoot: filepath.Join(dir, "m"),
		IngestRTMPSListen: "127.0.0.1:0", IngestTLSCert: cert, IngestTLSKey: key + ".other"}
	started := false
	if err := Run(context.Background(), c, zerolog.Nop(), func(string) { started = true }); err == nil || started || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("a key of another certificate: started %v, error %v; want the start refused", started, err)
	}
	if _, err := os.Stat(c.Data); err == nil {
		t.Error("the refused start created its data folder")
	}
}

// TestPushRTMPS is OBS streaming over RTMPS (TLS, a self-signed certificate: ffmpeg
// does not verify it, nor does OBS by default): the API shows the rtmps URL beside the
// rtmp one, a wrong key is refused over TLS as over plain RTMP, and the right one
// starts the job.
func TestPushRTMPS(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 15 s")
	}
	dir := t.TempDir()
	cert, key := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	testmedia.SelfSigned(t, cert, key)
	d := startDaemon(t, "", func(c *Config) {
		c.IngestRTMPListen, c.IngestRTMPSListen, c.IngestPublicHost = "127.0.0.1:0", "127.0.0.1:0", "127.0.0.1"
		c.IngestTLSCert, c.IngestTLSKey = cert, key
	})
	v := d.create(t, `{"source":"push:rtmp","ladder":"test","id":"tls"}`)
	in := v.Ingest
	if in == nil || !strings.HasPrefix(in.RTMPSURL, "rtmps://127.0.0.1:") || !strings.HasSuffix(in.RTMPSURL, "/live") || in.RTMPURL == "" || in.RTMPSURL == strings.Replace(in.RTMPURL, "rtmp:", "rtmps:", 1) {
		t.Fatalf("creation answer's ingest %+v: want rtmp and rtmps urls on their own ports", in)
	}
	if w := d.job(t, "tls"); w.Ingest == nil || w.Ingest.RTMPSURL != in.RTMPSURL || w.Ingest.StreamKey != "" {
		t.Errorf("job shows ingest %+v, want the rtmps url and no key", w.Ingest)
	}
	refused(t, in.RTMPSURL+"/"+strings.ToUpper(in.StreamKey))
	if v := d.job(t, "tls"); len(v.FFmpeg) != 0 {
		t.Fatalf("after a wrong key ffmpeg %v started, want none", v.FFmpeg)
	}
	began := time.Now()
	testmedia.Publish(t, in.RTMPSURL+"/"+in.StreamKey, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 30})
	d.waitFor(t, "tls", 20*time.Second, "a first segment", func(v job.View) bool { return v.Segments > 0 })
	t.Logf("rtmps publisher started → first segment indexed: %v", time.Since(began).Round(10*time.Millisecond))
	v = d.waitFor(t, "tls", 30*time.Second, "segments", func(v job.View) bool { return v.State == job.Running && v.Segments >= 3*len(v.Renditions) })
	if p := v.Ingest.Publisher; p == nil || p.Width != 320 {
		t.Errorf("publisher %+v, want one 320 wide", p)
	}
	checkOutputs(t, filepath.Join(d.out, "tls"), v)
}

// TestPushBindings is an nginx-rtmp-style setup: no job is created by hand, the
// bindings file binds a key (from the environment) to a job id and ladder, and the
// key's first publish creates the job, which then plays as any push job. A key bound
// to nothing is refused and creates nothing; a bad bindings file stops the start.
func TestPushBindings(t *testing.T) {
	if testing.Short() {
		t.Skip("push test takes about 15 s")
	}
	const key = "bound-0123456789abcdef"
	t.Setenv("TRANSCODERD_TEST_BOUND_KEY", key)
	dir := t.TempDir()
	file := filepath.Join(dir, "bindings.yaml")
	if err := os.WriteFile(file, []byte("env:TRANSCODERD_TEST_BOUND_KEY: {id: hall, ladder: test}\nother-0123456789abcdef: {id: foyer, ladder: test, protocols: [rtmp]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	server := fmt.Sprintf("rtmp://127.0.0.1:%d/live", freePort(t))
	d := startDaemon(t, "", func(c *Config) {
		c.IngestRTMPListen, c.IngestPublicHost, c.IngestBindings = strings.TrimPrefix(strings.TrimSuffix(server, "/live"), "rtmp://"), "127.0.0.1", file
	})
	var list struct{ Jobs []job.View }
	if d.call(t, http.MethodGet, "/v1/jobs", "", &list); len(list.Jobs) != 0 {
		t.Fatalf("jobs %+v before any publish, want none", list.Jobs)
	}
	refused(t, server+"/unbound-0123456789abcdef")
	if d.call(t, http.MethodGet, "/v1/jobs", "", &list); len(list.Jobs) != 0 {
		t.Fatalf("jobs %+v after an unbound key, want none", list.Jobs)
	}

	began := time.Now()
	testmedia.Publish(t, server+"/"+key, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 30})
	for d.call(t, http.MethodGet, "/v1/jobs/hall", "", nil) == http.StatusNotFound {
		if time.Since(began) > 10*time.Second {
			t.Fatal("the bound key's publish created no job in 10 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("bound key's first publish → job created: %v", time.Since(began).Round(10*time.Millisecond))
	v := d.waitFor(t, "hall", 30*time.Second, "segments", func(v job.View) bool { return v.State == job.Running && v.Segments >= 3*len(v.Renditions) })
	t.Logf("bound key's first publish → 3 segments per rendition: %v", time.Since(began).Round(10*time.Millisecond))
	if d.call(t, http.MethodGet, "/v1/jobs", "", &list); len(list.Jobs) != 1 || list.Jobs[0].ID != "hall" || list.Jobs[0].Ladder != "test" || list.Jobs[0].Source != "push" {
		t.Errorf("jobs %+v, want hall on ladder test, a push job", list.Jobs)
	}
	if in := v.Ingest; in == nil || in.RTMPURL != server || in.StreamKey != "" || in.Publisher == nil {
		t.Errorf("bound job's ingest %+v, want its url, its publisher and no key", in)
	}
	checkOutputs(t, filepath.Join(d.out, "hall"), v)

	// A bad file (here, readable by everyone) stops the start before the API listens.
	if err := os.Chmod(file, 0o644); err != nil {
		t.Fatal(err)
	}
	c := Config{Listen: "127.0.0.1:0", Output: filepath.Join(dir, "o"), Profiles: d.profiles, Data: filepath.Join(dir, "d"), MediaRoot: filepath.Join(dir, "m"),
		FFmpeg: "ffmpeg", FFprobe: "ffprobe", IngestRTMPListen: "127.0.0.1:0", IngestBindings: file}
	started := false
	if err := Run(context.Background(), c, zerolog.Nop(), func(string) { started = true }); err == nil || started || !strings.Contains(err.Error(), "readable by every user") {
		t.Errorf("a world-readable bindings file: started %v, error %v; want the start refused", started, err)
	}
}
