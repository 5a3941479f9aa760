package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

const hostileToken = "hostile-test-token-0123456789"

// fakeDNS resolves from a table; anything else does not exist.
type fakeDNS map[string]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := f[host]
	if !ok {
		return nil, errors.New("no such host")
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}

// recordingTools writes ffmpeg and ffprobe wrappers that log each run to the
// returned file before running the real tool.
func recordingTools(t *testing.T) (ffmpegPath, ffprobePath, logPath string) {
	t.Helper()
	dir := t.TempDir()
	logPath = filepath.Join(dir, "runs.log")
	wrap := func(tool string) string {
		real, err := exec.LookPath(tool)
		if err != nil {
			testmedia.Missing(t, tool+" not installed (apt-get install ffmpeg)")
		}
		p := filepath.Join(dir, tool)
		script := fmt.Sprintf("#!/bin/sh\necho %s >> '%s'\nexec '%s' \"$@\"\n", tool, logPath, real)
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return wrap("ffmpeg"), wrap("ffprobe"), logPath
}

// runs returns how many times each tool ran so far.
func runs(t *testing.T, logPath string) (ffmpegRuns, ffprobeRuns int) {
	t.Helper()
	data, err := os.ReadFile(logPath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		switch line {
		case "ffmpeg":
			ffmpegRuns++
		case "ffprobe":
			ffprobeRuns++
		}
	}
	return ffmpegRuns, ffprobeRuns
}

// raw sends one request as given and returns the status, the error message
// of a JSON error answer, and the WWW-Authenticate header.
func raw(t *testing.T, base, method, path, body string, header map[string]string) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	checkContract(t, req, res, data)
	msg := string(data)
	if i := strings.Index(msg, `"error": "`); i >= 0 {
		msg = msg[i+len(`"error": "`):]
	}
	return res.StatusCode, msg, res.Header.Get("WWW-Authenticate")
}

// TestHostileRequests: each request an attacker with network access (with or
// without the token) might send gets a clear 4xx; no job starts, no ffmpeg
// runs (ffprobe only where reading the file is the only way to judge it), and
// nothing is written or deleted outside the daemon's folders.
func TestHostileRequests(t *testing.T) {
	profiles := t.TempDir()
	copyFile(t, "../../profiles/test.yaml", filepath.Join(profiles, "test.yaml"))
	ladder := func(name, body string) { writeFile(t, filepath.Join(profiles, name+".yaml"), body) }
	ladder("tall", "segment_duration: 1s\nwindow: 1m\nvideo:\n  renditions:\n    - {name: 8k, height: 4320, bitrate: 20M}\n    - {name: 4k, height: 2160, bitrate: 15M}\n")
	ladder("fat", "segment_duration: 1s\nwindow: 1m\nvideo:\n  renditions:\n    - {name: hi, height: 720, bitrate: 30M}\naudio:\n  - {name: aac, bitrate: 40M}\n")
	ladder("wide", "segment_duration: 1s\nwindow: 1m\nvideo:\n  renditions:\n"+
		"    - {name: r1, height: 720, bitrate: 2000k}\n    - {name: r2, height: 640, bitrate: 1800k}\n    - {name: r3, height: 540, bitrate: 1500k}\n"+
		"    - {name: r4, height: 480, bitrate: 1200k}\n    - {name: r5, height: 360, bitrate: 900k}\n    - {name: r6, height: 240, bitrate: 600k}\n"+
		"audio:\n  - {name: a1, bitrate: 128k}\n  - {name: a2, bitrate: 96k}\n  - {name: a3, bitrate: 64k}\n")
	ladder("forever", "segment_duration: 1s\nwindow: 0\nvideo:\n  renditions:\n    - {name: r1, height: 360, bitrate: 600k}\n")
	ladder("long", "segment_duration: 1s\nwindow: 2h\nvideo:\n  renditions:\n    - {name: r1, height: 360, bitrate: 600k}\n")
	ladder("broken", "segment_duration: 2s\nvideo:\n  renditions:\n    - {name: 720p, height: 720, bitrate: 2800k}\n    - {name: big, height: 1080, bitrate: 5000k}\n")

	ffmpegPath, ffprobePath, runLog := recordingTools(t)
	outside := t.TempDir()
	d := startDaemon(t, profiles, func(c *Config) {
		c.FFmpeg, c.FFprobe = ffmpegPath, ffprobePath
		c.APIToken = hostileToken
		c.SourceDenyPrivate = true
		c.Resolver = fakeDNS{"cdn.example": "203.0.113.10", "cam.internal": "10.0.0.5", "metadata.example": "169.254.169.254"}
		c.Limits = job.Limits{MaxJobs: 4, MaxRenditions: 8, MaxHeight: 2160, MaxBitrate: 25_000_000, MaxWindow: time.Hour}
	})

	// What lies around: media to probe, references out of the media root, a
	// symlink in the output folder, and a canary outside every folder.
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "sample.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, FPS: 10, Duration: time.Second, Video: true})
	writeFile(t, filepath.Join(outside, "canary.txt"), "keep me")
	secret := filepath.Join(outside, "secret.ts")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", secret).CombinedOutput(); err != nil {
		t.Fatalf("make outside video: %v\n%s", err, out)
	}
	writeFile(t, filepath.Join(d.mediaRoot, "evil.m3u8"), "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n"+secret+"\n#EXT-X-ENDLIST\n")
	writeFile(t, filepath.Join(d.mediaRoot, "evil.mp4"), "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile:"+secret+"\n#EXT-X-ENDLIST\n")
	writeFile(t, filepath.Join(d.mediaRoot, "list.ffconcat"), "ffconcat version 1.0\nfile "+secret+"\n")
	writeFile(t, filepath.Join(d.mediaRoot, "notes.txt"), "not a video")
	if err := os.Symlink(secret, filepath.Join(d.mediaRoot, "escape.ts")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.out, "linked")); err != nil {
		t.Fatal(err)
	}
	startFFmpeg, _ := runs(t, runLog)

	auth := map[string]string{"Authorization": "Bearer " + hostileToken, "Content-Type": "application/json"}
	req := func(fields string) string { return `{` + fields + `}` }
	tests := []struct {
		name   string
		method string
		path   string
		body   string
		header map[string]string // nil: the token and a JSON content type
		code   int
		want   string
		probes bool // ffprobe may run (and must refuse): judging the file needs it
	}{
		// Access.
		{name: "no token", body: req(`"source":"sample.mp4","ladder":"test"`), header: map[string]string{}, code: 401, want: "needs a token"},
		{name: "wrong token", body: req(`"source":"sample.mp4","ladder":"test"`), header: map[string]string{"Authorization": "Bearer " + hostileToken + "x"}, code: 401, want: "not valid"},
		{name: "token in the query", path: "/v1/jobs?access_token=" + hostileToken, body: req(`"source":"sample.mp4","ladder":"test"`), header: map[string]string{}, code: 401, want: "needs a token"},
		{name: "list without token", method: "GET", header: map[string]string{}, code: 401, want: "needs a token"},
		{name: "delete without token", method: "DELETE", path: "/v1/jobs/linked?purge=true", header: map[string]string{}, code: 401, want: "needs a token"},
		// Sources that are not allowed schemes or smuggle arguments.
		{name: "file URL", body: req(`"source":"file:///etc/passwd","ladder":"test"`), code: 400, want: `scheme \"file\" is not allowed`},
		{name: "concat", body: req(`"source":"concat:sample.mp4|/etc/passwd","ladder":"test"`), code: 400, want: `scheme \"concat\" is not allowed`},
		{name: "subfile", body: req(`"source":"subfile,,start,0,end,0,,:/etc/passwd","ladder":"test"`), code: 400, want: "does not exist in the media root"}, // a file name: ffmpeg would get file:<root>/subfile,...
		{name: "data", body: req(`"source":"data:video/mp4;base64,AAAA","ladder":"test"`), code: 400, want: `scheme \"data\" is not allowed`},
		{name: "pipe", body: req(`"source":"pipe:0","ladder":"test"`), code: 400, want: `scheme \"pipe\" is not allowed`},
		{name: "gopher", body: req(`"source":"gopher://127.0.0.1:25/x","ladder":"test"`), code: 400, want: `scheme \"gopher\" is not allowed`},
		{name: "option", body: req(`"source":"-i","ladder":"test"`), code: 400, want: "must not start with '-'"},
		{name: "spaces", body: req(`"source":"rtmp://cdn.example/live -f lavfi","ladder":"test"`), code: 400, want: "spaces"},
		{name: "NUL", body: req(`"source":"sample.mp4\u0000.txt","ladder":"test"`), code: 400, want: "control"},
		// Files outside the media root, or that refer to files outside it.
		{name: "absolute path", body: req(`"source":"` + secret + `","ladder":"test"`), code: 400, want: "relative to the media root"},
		{name: "traversal", body: req(`"source":"../../../etc/passwd","ladder":"test"`), code: 400, want: "outside the media root"},
		{name: "symlink out of the root", body: req(`"source":"escape.ts","ladder":"test"`), code: 400, want: "outside the media root"},
		{name: "HLS playlist to an outside file", body: req(`"source":"evil.m3u8","ladder":"test"`), code: 400, want: "hls format refused", probes: true},
		{name: "HLS playlist named .mp4", body: req(`"source":"evil.mp4","ladder":"test"`), code: 400, want: "hls format refused", probes: true},
		{name: "concat list", body: req(`"source":"list.ffconcat","ladder":"test"`), code: 400, want: "concat format refused", probes: true},
		{name: "not media", body: req(`"source":"notes.txt","ladder":"test"`), code: 400, want: "notes.txt", probes: true},
		// Hosts: the box's own networks (SSRF).
		{name: "loopback", body: req(`"source":"rtmp://127.0.0.1:1935/live","ladder":"test"`), code: 400, want: "in the denied range 127.0.0.0/8"},
		{name: "loopback v6", body: req(`"source":"rtsp://[::1]:8554/s","ladder":"test"`), code: 400, want: "denied range ::1/128"},
		{name: "cloud metadata", body: req(`"source":"http://169.254.169.254/latest/meta-data/","ladder":"test"`), code: 400, want: "169.254.0.0/16"},
		{name: "name on the private network", body: req(`"source":"rtsp://cam.internal/s","ladder":"test"`), code: 400, want: `\"cam.internal\" is 10.0.0.5, in the denied range 10.0.0.0/8`},
		{name: "name of the metadata service", body: req(`"source":"https://metadata.example/x.m3u8","ladder":"test"`), code: 400, want: "169.254.0.0/16"},
		{name: "decimal address", body: req(`"source":"rtmp://2130706433/live","ladder":"test"`), code: 400, want: "legacy form"},
		{name: "unresolvable", body: req(`"source":"rtmp://nowhere.example/live","ladder":"test"`), code: 400, want: "cannot resolve host"},
		// Names and output.
		{name: "ladder traversal", body: req(`"source":"rtmp://cdn.example/live","ladder":"../test"`), code: 400, want: "ladder"},
		{name: "ladder absolute", body: req(`"source":"rtmp://cdn.example/live","ladder":"/etc/passwd"`), code: 400, want: "invalid ladder name"},
		{name: "id traversal", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","id":"../etc"`), code: 400, want: "id"},
		{name: "id with slash", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","id":"a/b"`), code: 400, want: "id"},
		{name: "id dot dot", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","id":".."`), code: 400, want: "id"},
		{name: "id too long", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","id":"` + strings.Repeat("a", 65) + `"`), code: 400, want: "id"},
		{name: "id is a symlink out of the output", body: req(`"source":"sample.mp4","ladder":"test","id":"linked"`), code: 409, want: "symbolic link", probes: true},
		{name: "purge traversal", method: "DELETE", path: "/v1/jobs/..%2F..%2Fetc?purge=true", code: 404, want: "not found"},
		{name: "purge the symlink", method: "DELETE", path: "/v1/jobs/linked?purge=true", code: 404, want: "not found"},
		{name: "purge not a bool", method: "DELETE", path: "/v1/jobs/linked?purge=yes-please", code: 400, want: "purge must be true or false"},
		// Limits.
		{name: "too tall", body: req(`"source":"rtmp://cdn.example/live","ladder":"tall"`), code: 422, want: "height 4320 is above the limit of 2160"},
		{name: "too fast", body: req(`"source":"rtmp://cdn.example/live","ladder":"fat"`), code: 422, want: "30000k is above the limit of 25000k"},
		{name: "too many renditions", body: req(`"source":"rtmp://cdn.example/live","ladder":"wide"`), code: 422, want: "9 renditions, the limit is 8"},
		{name: "live window 0", body: req(`"source":"rtmp://cdn.example/live","ladder":"forever"`), code: 422, want: "window 0 keeps every segment"},
		{name: "live window too long", body: req(`"source":"rtmp://cdn.example/live","ladder":"long"`), code: 422, want: "window 2h0m0s is above the limit of 1h0m0s"},
		{name: "broken ladder", body: req(`"source":"rtmp://cdn.example/live","ladder":"broken"`), code: 400, want: "broken.yaml:5: video.renditions[1].height"},
		// Bodies.
		{name: "unknown field", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","args":["-f","lavfi"]`), code: 400, want: `unknown field \"args\"`},
		{name: "big body", body: req(`"source":"rtmp://cdn.example/live","ladder":"test","id":"` + strings.Repeat("a", 70<<10) + `"`), code: 400, want: "larger than"},
		{name: "two objects", body: req(`"source":"rtmp://cdn.example/live"`) + `{}`, code: 400, want: "more than one value"},
		{name: "trailing bracket", body: req(`"source":"rtmp://cdn.example/live"`) + `]`, code: 400, want: "more than one value"},
		{name: "array", body: `[` + req(`"source":"rtmp://cdn.example/live"`) + `]`, code: 400, want: "bad JSON"},
		{name: "not JSON", body: `source=rtmp://cdn.example/live`, code: 400, want: "bad JSON"},
		{name: "wrong content type", body: req(`"source":"rtmp://cdn.example/live"`), header: map[string]string{"Authorization": "Bearer " + hostileToken, "Content-Type": "text/yaml"}, code: 400, want: "is not application/json"},
		{name: "empty", body: "", code: 400, want: "empty"},
		{name: "wrong method", method: "PUT", path: "/v1/jobs/x", code: 405, want: "not allowed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method, path, header := tc.method, tc.path, tc.header
			if method == "" {
				method = http.MethodPost
			}
			if path == "" {
				path = "/v1/jobs"
			}
			if header == nil {
				header = auth
			}
			ffmpegBefore, probeBefore := runs(t, runLog)
			code, msg, challenge := raw(t, d.api, method, path, tc.body, header)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Errorf("got %d %.300q, want %d containing %q", code, msg, tc.code, tc.want)
			}
			if code == http.StatusUnauthorized && !strings.HasPrefix(challenge, "Bearer") {
				t.Errorf("401 without a Bearer challenge: %q", challenge)
			}
			ffmpegAfter, probeAfter := runs(t, runLog)
			if ffmpegAfter != ffmpegBefore {
				t.Errorf("ffmpeg ran %d times", ffmpegAfter-ffmpegBefore)
			}
			if !tc.probes && probeAfter != probeBefore {
				t.Errorf("ffprobe ran %d times", probeAfter-probeBefore)
			}
		})
	}

	var list struct{ Jobs []job.View }
	d.call(t, http.MethodGet, "/v1/jobs", "", &list)
	if len(list.Jobs) != 0 {
		t.Errorf("refused requests left jobs: %+v", list.Jobs)
	}
	if entries, _ := os.ReadDir(d.out); len(entries) != 1 || entries[0].Name() != "linked" {
		t.Errorf("refused requests changed the output folder: %v", entries)
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 2 {
		t.Errorf("refused requests changed a folder outside the daemon's: %v", entries)
	}
	if ffmpegRuns, _ := runs(t, runLog); ffmpegRuns != startFFmpeg {
		t.Errorf("ffmpeg ran %d times", ffmpegRuns-startFFmpeg)
	}
	// The broken ladder is listed with its problem; the daemon is fine. (The folder's 7
	// ladders and the built-in ones: test is the folder's.)
	var ladders struct{ Ladders []struct{ Name string } }
	if code := d.call(t, http.MethodGet, "/v1/ladders", "", &ladders); code != http.StatusOK || len(ladders.Ladders) != 7+builtinExcept(t, "test") {
		t.Errorf("GET /v1/ladders after the hostile requests: %d %+v", code, ladders)
	}
	// Open routes stay open, and /out/ does not follow the symlink out.
	if code, _, _ := raw(t, d.api, http.MethodGet, "/healthz", "", nil); code != http.StatusOK {
		t.Errorf("/healthz without the token: %d", code)
	}
	if code, msg, _ := raw(t, d.api, http.MethodGet, "/out/linked/canary.txt", "", nil); code != http.StatusNotFound || strings.Contains(msg, "keep me") {
		t.Errorf("/out/ follows a symlink out of the output folder: %d %q", code, msg)
	}
}

// TestHostileLiveSource: a network source that is allowed but serves an HLS
// playlist naming a local file. The job is accepted (a live source is probed
// by the job), then fails to start with the whitelist's refusal in its error,
// and writes no segment.
func TestHostileLiveSource(t *testing.T) {
	outside := t.TempDir()
	secret := filepath.Join(outside, "secret.ts")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=176x144:rate=10:duration=1", "-c:v", "libx264", "-preset", "ultrafast", "-f", "mpegts", secret).CombinedOutput(); err != nil {
		t.Fatalf("make outside video: %v\n%s", err, out)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\nfile:"+secret+"\n#EXTINF:1.0,\nconcat:"+secret+"\n")
	}))
	defer srv.Close()
	d := startDaemon(t, "", func(c *Config) {
		c.APIToken = hostileToken
		c.Limits = job.Limits{MaxJobs: 1}
	})
	v := d.create(t, `{"source":"`+srv.URL+`/live.m3u8","ladder":"test","id":"pull"}`)
	deadline := time.Now().Add(time.Minute)
	for !strings.Contains(v.Error, "protocol 'file' refused") {
		if time.Now().After(deadline) {
			t.Fatalf("job error %q after a minute (state %s), want the whitelist's refusal", v.Error, v.State)
		}
		time.Sleep(200 * time.Millisecond)
		v = d.job(t, "pull")
	}
	if v.State == job.Running || v.Segments > 0 {
		t.Errorf("job = %s with %d segments", v.State, v.Segments)
	}
	err := filepath.WalkDir(filepath.Join(d.out, "pull"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			t.Errorf("the job wrote %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	// The retrying job counts against max-jobs; stopped, it does not.
	var e map[string]string
	if code := d.call(t, http.MethodPost, "/v1/jobs", `{"source":"rtmp://127.0.0.1:1/live","ladder":"test"}`, &e); code != http.StatusTooManyRequests || !strings.Contains(e["error"], "1 jobs are running or queued, the limit is 1") {
		t.Errorf("second job: %d %v", code, e)
	}
	if code := d.call(t, http.MethodDelete, "/v1/jobs/pull?purge=true", "", &v); code != http.StatusOK {
		t.Fatalf("purge: %d %+v", code, v)
	}
	if _, err := os.Lstat(filepath.Join(d.out, "pull")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("purged job folder: %v", err)
	}
	v = d.create(t, `{"source":"rtmp://127.0.0.1:1/live","ladder":"test","id":"next"}`)
	if code := d.call(t, http.MethodDelete, "/v1/jobs/next", "", &v); code != http.StatusOK {
		t.Errorf("stop: %d", code)
	}
}

// TestPurge: DELETE ?purge=true deletes the job's own folder and nothing else,
// after stopping it; without purge the files stay; a job folder replaced by a
// symlink is refused, not followed.
func TestPurge(t *testing.T) {
	d := startDaemon(t, "", func(c *Config) { c.APIToken = hostileToken })
	testmedia.WriteSample(t, filepath.Join(d.mediaRoot, "small.mp4"), testmedia.SampleOptions{Width: 320, Height: 180, FPS: 10, Duration: 2 * time.Second})
	writeFile(t, filepath.Join(d.out, "other", "keep.txt"), "another job's file")
	outside := t.TempDir()
	writeFile(t, filepath.Join(outside, "canary.txt"), "keep me")

	finished := func(id string) {
		d.create(t, `{"source":"small.mp4","ladder":"test","id":"`+id+`"}`)
		d.waitFor(t, id, 2*time.Minute, "finish", func(v job.View) bool { return v.State == job.Finished })
	}
	// Without purge: the job is forgotten, its files stay.
	finished("keep")
	var v job.View
	if code := d.call(t, http.MethodDelete, "/v1/jobs/keep", "", &v); code != http.StatusOK {
		t.Fatalf("DELETE: %d", code)
	}
	if _, err := os.Stat(filepath.Join(d.out, "keep", "master.m3u8")); err != nil {
		t.Errorf("DELETE without purge removed the files: %v", err)
	}
	// With purge: the folder goes, the neighbours stay.
	finished("gone")
	if code := d.call(t, http.MethodDelete, "/v1/jobs/gone?purge=true", "", &v); code != http.StatusOK {
		t.Fatalf("DELETE ?purge=true: %d %+v", code, v)
	}
	if _, err := os.Lstat(filepath.Join(d.out, "gone")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("purged folder still there: %v", err)
	}
	for _, p := range []string{filepath.Join(d.out, "other", "keep.txt"), filepath.Join(d.out, "keep", "master.m3u8"), filepath.Join(outside, "canary.txt")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("purge touched %s: %v", p, err)
		}
	}
	if code := d.call(t, http.MethodGet, "/v1/jobs/gone", "", nil); code != http.StatusNotFound {
		t.Errorf("purged job still listed: %d", code)
	}
	// A folder swapped for a symlink after the job ended: refused, nothing followed.
	finished("swapped")
	if err := os.Rename(filepath.Join(d.out, "swapped"), filepath.Join(d.out, "swapped-moved")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(d.out, "swapped")); err != nil {
		t.Fatal(err)
	}
	var e map[string]string
	if code := d.call(t, http.MethodDelete, "/v1/jobs/swapped?purge=true", "", &e); code != http.StatusConflict || !strings.Contains(e["error"], "symbolic link") {
		t.Errorf("purge through a symlink: %d %v", code, e)
	}
	if _, err := os.Stat(filepath.Join(outside, "canary.txt")); err != nil {
		t.Errorf("purge followed the symlink: %v", err)
	}
	// A running live job is stopped first, then deleted, and no ffmpeg is left.
	src := testmedia.StartRTMP(t, testmedia.SourceOptions{Width: 320, Height: 180, FPS: 15})
	d.create(t, `{"source":"`+src.URL+`","ladder":"test","id":"live"}`)
	dir := filepath.Join(d.out, "live")
	d.waitFor(t, "live", time.Minute, "a segment", func(v job.View) bool { return v.State == job.Running && v.Segments > 0 })
	if code := d.call(t, http.MethodDelete, "/v1/jobs/live?purge=true", "", &v); code != http.StatusOK || v.State != job.Finished {
		t.Fatalf("purge a running job: %d %s %s", code, v.State, v.Error)
	}
	if _, err := os.Lstat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("purged live folder still there: %v", err)
	}
	if pids := processesWriting(t, dir); len(pids) > 0 {
		t.Errorf("ffmpeg still running after purge: %v", pids)
	}
}
