package publish

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/testmedia"
)

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		spec, want, err string
	}{
		{spec: "", want: "publish.FS"},
		{spec: "fs", want: "publish.FS"},
		{spec: "http://origin:8082/live", want: "*publish.Remote"},
		{spec: "https://origin/live", want: "*publish.Remote"},
		{spec: "s3://bucket/prefix", want: "*publish.Remote"},
		{spec: "s3://bucket", want: "*publish.Remote"},
		{spec: "s3:///prefix", err: "no bucket"},
		{spec: "s3://key:secret@bucket/prefix", err: "credentials"},
		{spec: "s3://Bad_Bucket/prefix", err: "bucket name"},
		{spec: "ftp://origin/live", err: "want fs"},
		{spec: "http:///live", err: "no host"},
		{spec: "http://origin/live?x=1", err: "no query"},
		{spec: "origin/live", err: "want fs"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			p, err := Parse(Config{Spec: tc.spec})
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), "'publish'") {
					t.Fatalf("Parse(%q) = %v; want an error with %q", tc.spec, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%T", p); got != tc.want {
				t.Fatalf("Parse(%q) is a %s, want %s", tc.spec, got, tc.want)
			}
			p.Close(0)
		})
	}
}

// recorder is an Observer that keeps what it is told.
type recorder struct {
	mu       sync.Mutex
	segments []time.Duration
	failed   map[string]int
	pending  int
}

func (r *recorder) Uploaded(kind string, took time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if kind == KindSegment {
		r.segments = append(r.segments, took)
	}
}

func (r *recorder) Failed(op string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.failed[op]++
}

func (r *recorder) Pending(delta int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pending += delta
}

// TestHTTPOrigin plays a live job (playLive) to a real nginx with the sample origin
// configuration, behind a proxy that checks every manifest put and every delete.
func TestHTTPOrigin(t *testing.T) {
	o := testmedia.StartOrigin(t, "../../scripts/nginx-origin.conf")
	base, _ := url.Parse(o.URL)
	obs := &recorder{failed: map[string]int{}}
	p := NewHTTP(HTTPConfig{Base: base, Options: Options{Observer: obs, RetryMin: 50 * time.Millisecond, RetryMax: 400 * time.Millisecond}})
	defer p.Close(0)
	playLive(t, p, obs, testOrigin{
		name: "nginx on loopback", fail: o.Fail, errors: o.Errors, puts: o.Puts,
		file: func(rel string) ([]byte, bool) {
			data, err := os.ReadFile(o.File("/live/j/" + rel))
			return data, err == nil
		},
	})
}

// testOrigin is what playLive sees of the origin of a test.
type testOrigin struct {
	name   string
	fail   func(on bool)                   // the origin fails every request while on
	errors func() []string                 // what its checks found wrong
	puts   func(ext string) int            // how many files with ext were put
	file   func(rel string) ([]byte, bool) // the file rel of job "j" there
}

// playLive plays a live job "j" to p, whose origin is o: segments of 100 KB every
// 100 ms, a window of 5, each segment deleted 3 segments after it left the window, and
// the origin failing for 1.5 s in the middle. The origin's checks see that every
// manifest put names only files on the origin, and that no file deleted is named by a
// manifest there. After the outage, the origin catches up: its playlist is the job's
// last, and the segments that left the window are gone.
func playLive(t *testing.T, p Publisher, obs *recorder, o testOrigin) {
	dir := t.TempDir()
	j := p.Job("j", dir, zerolog.New(zerolog.NewTestWriter(t)))
	write := func(rel string, data []byte) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, rel)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, rel), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("v/init_1.mp4", []byte("init"))
	const window, grace, total = 5, 3, 60
	var playlist []byte
	for n := range total {
		seg := make([]byte, 100<<10)
		_, _ = rand.Read(seg)
		write(fmt.Sprintf("v/seg_1_%d.m4s", n), seg)
		from := max(0, n-window+1)
		var b bytes.Buffer
		fmt.Fprintf(&b, "#EXTM3U\n#EXT-X-MEDIA-SEQUENCE:%d\n#EXT-X-MAP:URI=\"init_1.mp4\"\n", from)
		names := []string{"v/init_1.mp4"}
		for k := from; k <= n; k++ {
			fmt.Fprintf(&b, "#EXTINF:0.1,\nseg_1_%d.m4s\n", k)
			names = append(names, fmt.Sprintf("v/seg_1_%d.m4s", k))
		}
		playlist = b.Bytes()
		write("v/index.m3u8", playlist)
		j.Manifest("v/index.m3u8", playlist, func() []string { return names })
		if n == 0 {
			write("master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv/index.m3u8\n"))
			j.Manifest("master.m3u8", []byte("#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=800000\nv/index.m3u8\n"), func() []string { return []string{"v/index.m3u8"} })
		}
		if old := n - window - grace; old >= 0 {
			rel := fmt.Sprintf("v/seg_1_%d.m4s", old)
			if err := os.Remove(filepath.Join(dir, rel)); err != nil {
				t.Fatal(err)
			}
			j.Removed(rel)
		}
		switch n {
		case 20:
			o.fail(true)
		case 35:
			o.fail(false)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, _ := o.file("v/index.m3u8")
		if bytes.Equal(got, playlist) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the origin never caught up; its playlist:\n%s", got)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, e := range o.errors() {
		t.Error(e)
	}
	// The deletes follow the last manifest.
	time.Sleep(500 * time.Millisecond)
	for n := range total {
		_, on := o.file(fmt.Sprintf("v/seg_1_%d.m4s", n))
		if want := n > total-1-window-grace; on != want {
			t.Errorf("segment %d on the origin: %v, want %v", n, on, want)
		}
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if obs.failed["put"] == 0 {
		t.Error("the origin failed for 1.5 s, and no failed PUT was counted")
	}
	if got, _ := o.file("master.m3u8"); len(got) == 0 {
		t.Error("no master playlist on the origin")
	}
	if obs.pending != 0 {
		t.Errorf("%d uploads or deletes still counted as pending", obs.pending)
	}
	// Catching up uploads only what the manifests name then: not every segment of the
	// outage.
	t.Logf("segment PUTs %d (of %d segments), failed PUTs %d, failed DELETEs %d", o.puts(".m4s"), total, obs.failed["put"], obs.failed["delete"])
	lat := slices.Clone(obs.segments)
	slices.Sort(lat)
	t.Logf("upload latency of a 100 KB segment to %s, %d uploads: p50 %v, p95 %v, max %v",
		o.name, len(lat), lat[len(lat)/2], lat[len(lat)*95/100], lat[len(lat)-1])
}
