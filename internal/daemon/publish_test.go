package daemon

import (
	"bytes"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// TestPublishHTTP runs a live job (publishLive) with --publish http:// to a real nginx
// with the sample origin configuration (scripts/nginx-origin.conf), behind a proxy that
// checks every manifest put and every delete; the players' server serves the MPD and
// playlists with the right types.
func TestPublishHTTP(t *testing.T) {
	if testing.Short() {
		t.Skip("the publish test takes about a minute")
	}
	origin := testmedia.StartOrigin(t, "../../scripts/nginx-origin.conf")
	publishLive(t, publishTarget{
		config: func(c *Config) { c.Publish = origin.URL }, fail: origin.Fail, errors: origin.Errors,
		file: func(rel string) ([]byte, bool) {
			data, err := os.ReadFile(origin.File("/live/pub/" + rel))
			return data, err == nil
		},
	})
	for _, tc := range []struct{ name, ctype string }{
		{manifest.MasterName, "application/vnd.apple.mpegurl"},
		{manifest.MPDName, "application/dash+xml"},
	} {
		res, err := http.Get(origin.Players + "/pub/" + tc.name)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != tc.ctype || res.Header.Get("Access-Control-Allow-Origin") != "*" {
			t.Errorf("players' GET %s: %d, Content-Type %q, CORS %q", tc.name, res.StatusCode, res.Header.Get("Content-Type"), res.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// TestPublishS3 runs a live job (publishLive) with --publish s3://live/events to an
// S3-protocol store on loopback (gofakes3 in this process, not AWS), through minio-go,
// with the credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY; the store checks
// every manifest put and every delete, and fails with 503 SlowDown for 5 s.
func TestPublishS3(t *testing.T) {
	if testing.Short() {
		t.Skip("the publish test takes about a minute")
	}
	s3 := testmedia.StartS3(t)
	s3.SetCredentials(t)
	publishLive(t, publishTarget{
		config: func(c *Config) {
			c.Publish, c.S3Endpoint, c.S3URLStyle = "s3://"+s3.Bucket+"/events", s3.Endpoint, "path"
		},
		fail: s3.Fail, errors: s3.Errors,
		file: func(rel string) ([]byte, bool) {
			data, _, ok := s3.Object("events/pub/" + rel)
			return data, ok
		},
	})
	for name, ctype := range map[string]string{manifest.MasterName: "application/vnd.apple.mpegurl", manifest.MPDName: "application/dash+xml"} {
		if _, meta, _ := s3.Object("events/pub/" + name); meta["Content-Type"] != ctype {
			t.Errorf("%s stored with Content-Type %q, want %q", name, meta["Content-Type"], ctype)
		}
	}
}

// publishTarget is where publishLive publishes, as the test sees it.
type publishTarget struct {
	config func(*Config)
	fail   func(on bool)                   // the origin fails every request while on
	errors func() []string                 // what its checks found wrong
	file   func(rel string) ([]byte, bool) // the file rel of job "pub" there
}

// publishLive runs a live job "pub" published to o, whose checks see, at every
// manifest put, that every file it names is on the origin, and at every delete, that no
// manifest on the origin names the file. The origin fails for 5 s: the job runs on
// locally, the failures are counted, and the origin catches up. Segments that left the
// window (3 s, then the 33 s grace) are deleted on the origin too; the MPD there
// validates.
func publishLive(t *testing.T, o publishTarget) {
	profiles := t.TempDir()
	writeFile(t, filepath.Join(profiles, "pub.yaml"), "segment_duration: 1s\nwindow: 3s\nencoder: x264\nfallback: none\n"+
		"video:\n  preset: ultrafast\n  renditions:\n    - {name: 180p, height: 180, bitrate: 250k, profile: baseline}\n"+
		"audio:\n  - {name: aac, codec: aac, bitrate: 64k, channels: 2, sample_rate: 48000}\n")
	d := startDaemon(t, profiles, o.config)
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 25})
	v := d.create(t, `{"source":"`+src.URL+`","ladder":"pub","id":"pub"}`)
	local := filepath.Join(d.out, v.ID)
	on := func(rel string) bool { _, ok := o.file(rel); return ok }
	waitUntil(t, 60*time.Second, "the manifests on the origin", func() bool {
		return on(manifest.MasterName) && on(manifest.MPDName)
	})

	// The origin fails for 5 s; the job runs on locally.
	before := d.job(t, v.ID)
	o.fail(true)
	time.Sleep(5 * time.Second)
	during := d.job(t, v.ID)
	o.fail(false)
	if during.State != job.Running || during.Segments <= before.Segments {
		t.Errorf("while the origin failed the job was %s with %d segments (%d before): it must run on locally", during.State, during.Segments, before.Segments)
	}
	// It catches up: the origin's playlist is the job's, as the job writes it.
	waitUntil(t, 20*time.Second, "the origin caught up", func() bool {
		got, _ := o.file("180p/" + manifest.MediaName)
		want, _ := os.ReadFile(filepath.Join(local, "180p", manifest.MediaName))
		return len(got) > 0 && bytes.Equal(got, want)
	})
	fams := scrapeMetrics(t, d)
	if n := value(t, fams, "transcoderd_publish_failures_total", "op", "put"); n == 0 {
		t.Error("the origin failed for 5 s and no failed PUT was counted")
	}

	// The first segments leave the window, then the disk after the grace period, and then
	// the origin.
	first := firstSegment(t, local)
	waitUntil(t, 90*time.Second, "the first segment deleted locally", func() bool {
		_, err := os.Stat(filepath.Join(local, first))
		return os.IsNotExist(err)
	})
	waitUntil(t, 10*time.Second, "the first segment deleted on the origin", func() bool { return !on(first) })
	for _, e := range o.errors() {
		t.Error(e)
	}
	mpd, _ := o.file(manifest.MPDName)
	testmedia.ValidateMPDBytes(t, mpd)
	fams = scrapeMetrics(t, d)
	for _, m := range fams["transcoderd_publish_upload_seconds"].GetMetric() {
		h := m.GetHistogram()
		if hasLabel(m, "kind", "segment") && h.GetSampleCount() > 0 {
			t.Logf("segment uploads %d, mean %.1f ms; failed PUTs %v", h.GetSampleCount(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()),
				value(t, fams, "transcoderd_publish_failures_total", "op", "put"))
		}
	}
}

// firstSegment returns the path, relative to the job folder local, of the lowest
// numbered segment of the 180p rendition.
func firstSegment(t *testing.T, local string) string {
	t.Helper()
	segs, _ := filepath.Glob(filepath.Join(local, "180p", "seg_*.m4s"))
	best, low := "", uint64(0)
	for _, s := range segs {
		if _, n, ok := manifest.ParseSegmentName(filepath.Base(s)); ok && (best == "" || n < low) {
			best, low = s, n
		}
	}
	if best == "" {
		t.Fatal("no segment in 180p")
	}
	return "180p/" + filepath.Base(best)
}

// waitUntil polls cond every 100 ms until it holds, failing the test after limit.
func waitUntil(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
