package publish

import (
	"context"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// newTestS3 returns a publisher to the test's S3 store (gofakes3 on loopback, not AWS),
// through minio-go, with the credentials of the environment.
func newTestS3(t *testing.T, s *testmedia.S3, obs Observer) *Remote {
	t.Helper()
	s.SetCredentials(t)
	p, err := NewS3(S3Config{Bucket: s.Bucket, Prefix: "events/2026", S3Options: S3Options{Endpoint: s.Endpoint, URLStyle: "path"},
		Options: Options{Observer: obs, RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close(0) })
	if err := p.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestS3Store plays a live job (playLive) to an S3-protocol store through minio-go:
// the same order, deletes and retries as to nginx, and each object served with the
// type and caching of its kind.
func TestS3Store(t *testing.T) {
	s := testmedia.StartS3(t)
	obs := &recorder{failed: map[string]int{}}
	p := newTestS3(t, s, obs)
	playLive(t, p, obs, testOrigin{
		name: "gofakes3 on loopback through minio-go", fail: s.Fail, errors: s.Errors, puts: s.Puts,
		file: func(rel string) ([]byte, bool) {
			data, _, ok := s.Object("events/2026/j/" + rel)
			return data, ok
		},
	})
	for key, want := range map[string][2]string{
		"events/2026/j/master.m3u8":    {"application/vnd.apple.mpegurl", "no-cache"},
		"events/2026/j/v/seg_1_59.m4s": {"video/iso.segment", "public, max-age=86400, immutable"},
		"events/2026/j/v/init_1.mp4":   {"video/mp4", "no-cache"},
		"events/2026/j/v/index.m3u8":   {"application/vnd.apple.mpegurl", "no-cache"},
	} {
		_, meta, ok := s.Object(key)
		if !ok || meta["Content-Type"] != want[0] {
			t.Errorf("%s: stored %v with %v; want Content-Type %q", key, ok, meta, want[0])
		}
		if got := s.Sent(key).Get("Cache-Control"); got != want[1] {
			t.Errorf("%s: sent with Cache-Control %q, want %q", key, got, want[1])
		}
	}
}

// TestS3Check: the start-up check names what is wrong.
func TestS3Check(t *testing.T) {
	s := testmedia.StartS3(t)
	for _, tc := range []struct {
		name, bucket, key, endpoint, err string
	}{
		{name: "no bucket", bucket: "missing", key: "k", endpoint: s.Endpoint, err: `bucket "missing" does not exist`},
		{name: "no credentials", bucket: s.Bucket, endpoint: s.Endpoint, err: "AWS_ACCESS_KEY_ID"},
		{name: "unreachable", bucket: s.Bucket, key: "k", endpoint: "http://127.0.0.1:1", err: ErrUnreachable.Error()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("AWS_ACCESS_KEY_ID", tc.key)
			t.Setenv("AWS_SECRET_ACCESS_KEY", tc.key)
			t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "none"))
			p, err := NewS3(S3Config{Bucket: tc.bucket, S3Options: S3Options{Endpoint: tc.endpoint}})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close(0)
			err = p.Check(context.Background())
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "'publish'") {
				t.Fatalf("Check = %v; want an error with %q", err, tc.err)
			}
		})
	}
	for _, tc := range []struct{ endpoint, style, err string }{
		{endpoint: "ftp://store", err: "'s3-endpoint'"},
		{endpoint: "http://store:3900/bucket", err: "'s3-endpoint'"},
		{endpoint: "store:3900", style: "sideways", err: "'s3-url-style'"},
	} {
		if _, err := NewS3(S3Config{Bucket: "bucket", S3Options: S3Options{Endpoint: tc.endpoint, URLStyle: tc.style, Creds: credentials.NewStaticV4("k", "s", "")}}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("NewS3(%q, %q) = %v; want an error with %s", tc.endpoint, tc.style, err, tc.err)
		}
	}
}

// TestJobClose: a job's delivery closed (the job moved to another box) flushes what it
// can, then never sends anything more, even when the store comes back: a box the job
// left never overwrites its new box's manifests.
func TestJobClose(t *testing.T) {
	s := testmedia.StartS3(t)
	obs := &recorder{failed: map[string]int{}}
	p := newTestS3(t, s, obs)
	dir := t.TempDir()
	writeFile := func(rel, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	j := p.Job("j", dir, zerolog.New(zerolog.NewTestWriter(t)))
	writeFile("v/seg_1_0.m4s", "segment")
	j.Manifest("v/index.m3u8", []byte("#EXTM3U\nseg_1_0.m4s\n"), func() []string { return []string{"v/seg_1_0.m4s"} })
	s.Fail(true)
	j.Manifest("v/index.m3u8", []byte("#EXTM3U\nold\n"), nil)
	began := time.Now()
	j.Close(300 * time.Millisecond)
	if took := time.Since(began); took > 5*time.Second {
		t.Errorf("Close took %v with a flush of 300 ms", took)
	}
	s.Fail(false)
	j.Manifest("v/index.m3u8", []byte("#EXTM3U\nlater\n"), nil)
	time.Sleep(time.Second)
	if got, _, _ := s.Object("events/2026/j/v/index.m3u8"); strings.Contains(string(got), "old") || strings.Contains(string(got), "later") {
		t.Errorf("the closed delivery put a manifest: %q", got)
	}
	obs.mu.Lock()
	pending := obs.pending
	obs.mu.Unlock()
	if pending != 0 {
		t.Errorf("%d still counted as pending after Close", pending)
	}
	// The next delivery of the id (the job back on this box) is a new one.
	j = p.Job("j", dir, zerolog.New(zerolog.NewTestWriter(t)))
	j.Manifest("v/index.m3u8", []byte("#EXTM3U\nnew\n"), nil)
	waitFor(t, "the new delivery's manifest", func() bool {
		got, _, _ := s.Object("events/2026/j/v/index.m3u8")
		return string(got) == "#EXTM3U\nnew\n"
	})
}

// TestJobPurge: a purge deletes the job's files at the origin, those it put and those
// it did not know of, and leaves the other jobs' alone; to an S3 store and to nginx.
func TestJobPurge(t *testing.T) {
	t.Run("s3", func(t *testing.T) {
		s := testmedia.StartS3(t)
		purgeJob(t, newTestS3(t, s, nil), s.Errors,
			func(id string) []string { return s.Keys("events/2026/" + id + "/") },
			func(id, rel string) { s.Put("events/2026/"+id+"/"+rel, []byte("an earlier box's")) })
	})
	t.Run("nginx", func(t *testing.T) {
		o := testmedia.StartOrigin(t, "../../scripts/nginx-origin.conf")
		base, _ := url.Parse(o.URL)
		p := NewHTTP(HTTPConfig{Base: base})
		defer p.Close(0)
		purgeJob(t, p, o.Errors,
			func(id string) []string {
				var files []string
				_ = filepath.WalkDir(o.File("/live/"+id), func(path string, d fs.DirEntry, err error) error {
					if err == nil && !d.IsDir() {
						files = append(files, path)
					}
					return nil
				})
				return files
			},
			func(id, rel string) {
				if err := os.WriteFile(o.File("/live/"+id+"/"+rel), []byte("an earlier box's"), 0o644); err != nil {
					t.Fatal(err)
				}
			})
	})
}

// purgeJob puts a playlist and its two files for jobs j and other, a file of j's that
// p never put (put), then purges j: files lists what the origin holds of a job.
func purgeJob(t *testing.T, p Publisher, errs func() []string, files func(id string) []string, put func(id, rel string)) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "v"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"seg_1_0.m4s", "init_1.mp4"} {
		if err := os.WriteFile(filepath.Join(dir, "v", n), []byte(n), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	log := zerolog.New(zerolog.NewTestWriter(t))
	for _, id := range []string{"j", "other"} {
		p.Job(id, dir, log).Manifest("v/index.m3u8", []byte("#EXTM3U\n#EXT-X-MAP:URI=\"init_1.mp4\"\nseg_1_0.m4s\n"), func() []string { return []string{"v/init_1.mp4", "v/seg_1_0.m4s"} })
	}
	waitFor(t, "both jobs at the origin", func() bool { return len(files("j")) == 3 && len(files("other")) == 3 })
	put("j", "v/seg_0_7.m4s")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Job("j", dir, log).Purge(ctx); err != nil {
		t.Fatal(err)
	}
	if left := files("j"); len(left) > 0 {
		t.Errorf("after the purge the origin still holds %v", left)
	}
	if left := files("other"); len(left) != 3 {
		t.Errorf("the other job's files: %v, want its 3", left)
	}
	for _, e := range errs() {
		t.Error(e)
	}
}

// waitFor polls cond until it holds, failing the test after 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for began := time.Now(); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Since(began) > 5*time.Second {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}
