package daemon

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Eyevinn/dash-mpd/mpd"
	"github.com/Eyevinn/hls-m3u8/m3u8"
	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/api/apitest"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/manifest"
	"github.com/transcoderd/transcoderd/internal/media"
	"github.com/transcoderd/transcoderd/internal/testmedia"
)

// daemon is a transcoderd running in the test process on a free port.
type daemon struct {
	api       string // http://127.0.0.1:port
	out       string
	mediaRoot string
	profiles  string
	token     string // sent as a bearer token by call when not empty
}

// startDaemon runs Run with its own folders; profiles "" uses the repository's profiles/.
// opts change the Config before the start.
func startDaemon(t *testing.T, profiles string, opts ...func(*Config)) *daemon {
	t.Helper()
	testmedia.RequireFFmpeg(t)
	dir := t.TempDir()
	if profiles == "" {
		p, err := filepath.Abs("../../profiles")
		if err != nil {
			t.Fatal(err)
		}
		profiles = p
	}
	c := Config{
		Listen:    "127.0.0.1:0",
		Output:    filepath.Join(dir, "out"),
		Profiles:  profiles,
		Data:      filepath.Join(dir, "data"),
		MediaRoot: filepath.Join(dir, "media"),
		FFmpeg:    "ffmpeg",
		FFprobe:   "ffprobe",
		Version:   "test",
	}
	for _, o := range opts {
		o(&c)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.InfoLevel)
	go func() { done <- Run(ctx, c, log, func(a string) { addr <- a }) }()
	var d daemon
	select {
	case a := <-addr:
		d = daemon{api: "http://" + a, out: c.Output, mediaRoot: c.MediaRoot, profiles: profiles, token: c.APIToken}
	case err := <-done:
		cancel()
		t.Fatalf("daemon did not start: %v", err)
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatal("daemon did not start in 20s")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("daemon: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("daemon did not stop in 30s")
		}
	})
	return &d
}

// call sends a request and decodes the JSON answer into out (when not nil).
func (d *daemon) call(t *testing.T, method, path, body string, out any) int {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, d.api+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	data, _ := io.ReadAll(res.Body)
	checkContract(t, req, res, data)
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			t.Fatalf("%s %s: %d %s: %v", method, path, res.StatusCode, data, err)
		}
	}
	return res.StatusCode
}

// checkContract holds one answer of the daemon to the API's contract, api/openapi.yaml:
// a route it describes (or the router's 404 or 405), a status the route declares, and a
// body of the route's schema. Every call of the e2e tests goes through it.
func checkContract(t *testing.T, req *http.Request, res *http.Response, body []byte) {
	t.Helper()
	c, err := apitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Check(req, res.StatusCode, res.Header, body); err != nil {
		t.Errorf("the API broke its contract: %v", err)
	}
}

func (d *daemon) create(t *testing.T, body string) job.View {
	t.Helper()
	var v job.View
	if code := d.call(t, http.MethodPost, "/v1/jobs", body, &v); code != http.StatusCreated {
		var e map[string]string
		d.call(t, http.MethodPost, "/v1/jobs", body, &e)
		t.Fatalf("POST /v1/jobs %s: %d %v", body, code, e)
	}
	return v
}

func (d *daemon) job(t *testing.T, id string) job.View {
	t.Helper()
	var v job.View
	if code := d.call(t, http.MethodGet, "/v1/jobs/"+id, "", &v); code != http.StatusOK {
		t.Fatalf("GET job %s: %d", id, code)
	}
	return v
}

// waitFor polls the job until cond holds, failing after limit.
func (d *daemon) waitFor(t *testing.T, id string, limit time.Duration, what string, cond func(job.View) bool) job.View {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		v := d.job(t, id)
		if cond(v) {
			return v
		}
		if v.State == job.Failed {
			t.Fatalf("job %s failed while waiting for %s: %s", id, what, v.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("job %s: no %s after %v; state %s, error %q", id, what, limit, v.State, v.Error)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// trackInfo is one rendition as measured from its files.
type trackInfo struct {
	name     string
	init     media.Init
	starts   []float64 // segment start times, seconds
	seconds  float64   // total duration
	bytes    int64
	playlist *m3u8.MediaPlaylist
}

// checkOutputs checks a job folder the way a player and a packager would: the manifests
// parse and validate, every listed segment exists and decodes, rungs have the planned
// size, and video segments line up across rungs. It returns what it measured per track.
func checkOutputs(t *testing.T, dir string, v job.View) map[string]*trackInfo {
	t.Helper()
	master := readFile(t, filepath.Join(dir, manifest.MasterName))
	pl, typ, err := m3u8.DecodeFrom(bytes.NewReader(master), true)
	if err != nil || typ != m3u8.MASTER {
		t.Fatalf("master.m3u8 does not parse as a master playlist: %v\n%s", err, master)
	}
	mp := pl.(*m3u8.MasterPlaylist)
	// Each video rung is offered once with each audio group (one per audio bitrate).
	groups := map[string]bool{}
	for _, alt := range mp.GetAllAlternatives() {
		groups[alt.GroupId] = true
	}
	perRung := max(1, len(groups))
	wantVariants := 0
	for _, r := range v.Renditions {
		if r.Kind == "video" {
			wantVariants += perRung
		}
	}
	if len(groups) > 0 && len(mp.Variants) > wantVariants {
		wantVariants += len(groups) // the audio-only variants
	}
	if len(mp.Variants) != wantVariants {
		t.Errorf("master has %d variants, want %d:\n%s", len(mp.Variants), wantVariants, master)
	}
	for _, va := range mp.Variants {
		if va.Bandwidth == 0 || va.Codecs == "" {
			t.Errorf("variant %s lacks BANDWIDTH or CODECS", va.URI)
		}
		if !strings.HasPrefix(va.Codecs, "mp4a") && (va.Resolution == "" || va.FrameRate == 0) {
			t.Errorf("video variant %s lacks RESOLUTION or FRAME-RATE", va.URI)
		}
	}

	tracks := map[string]*trackInfo{}
	var targets []uint
	for _, r := range v.Renditions {
		rd := filepath.Join(dir, r.Name)
		data := readFile(t, filepath.Join(rd, manifest.MediaName))
		p, typ, err := m3u8.DecodeFrom(bytes.NewReader(data), true)
		if err != nil || typ != m3u8.MEDIA {
			t.Fatalf("%s/index.m3u8 does not parse: %v\n%s", r.Name, err, data)
		}
		ml := p.(*m3u8.MediaPlaylist)
		if ml.Map == nil {
			t.Fatalf("%s/index.m3u8 has no EXT-X-MAP", r.Name)
		}
		in := parseInit(t, r, filepath.Join(rd, ml.Map.URI))
		targets = append(targets, uint(ml.TargetDuration))
		ti := &trackInfo{name: r.Name, init: in, playlist: ml}
		for _, s := range ml.GetAllSegments() {
			if s.Map != nil {
				in = parseInit(t, r, filepath.Join(rd, s.Map.URI)) // a run of its own
			}
			seg, err := media.ParseSegmentFile(filepath.Join(rd, s.URI), &in)
			if err != nil {
				t.Fatalf("%s/%s: %v", r.Name, s.URI, err)
			}
			if r.Kind == "video" && !seg.FirstIsKeyframe {
				t.Errorf("%s/%s does not start with a keyframe", r.Name, s.URI)
			}
			if d := float64(seg.Duration) / float64(in.Timescale); math.Abs(d-s.Duration) > 0.002 {
				t.Errorf("%s/%s: EXTINF %.3f, media %.3f", r.Name, s.URI, s.Duration, d)
			}
			if math.Round(s.Duration) > float64(ml.TargetDuration) { // RFC 8216 4.3.3.1
				t.Errorf("%s/%s: EXTINF %.3f above TARGETDURATION %v", r.Name, s.URI, s.Duration, ml.TargetDuration)
			}
			ti.starts = append(ti.starts, float64(seg.BaseDecodeTime)/float64(in.Timescale))
			ti.seconds += float64(seg.Duration) / float64(in.Timescale)
			ti.bytes += seg.Size
		}
		if len(ti.starts) == 0 {
			t.Errorf("%s: no segments listed", r.Name)
		}
		tracks[r.Name] = ti
		decode(t, filepath.Join(rd, manifest.MediaName))
	}
	for _, x := range targets {
		if x != targets[0] {
			t.Errorf("TARGETDURATION differs across renditions: %v", targets)
			break
		}
	}
	// Video rungs are aligned: the same segment start times, to the frame.
	var ref *trackInfo
	for _, r := range v.Renditions {
		if r.Kind != "video" {
			continue
		}
		ti := tracks[r.Name]
		if ref == nil {
			ref = ti
			continue
		}
		if len(ti.starts) != len(ref.starts) {
			t.Errorf("%s lists %d segments, %s lists %d", ti.name, len(ti.starts), ref.name, len(ref.starts))
			continue
		}
		for i := range ti.starts {
			if math.Abs(ti.starts[i]-ref.starts[i]) > 0.001 {
				t.Errorf("segment %d starts at %.3f in %s but %.3f in %s", i, ti.starts[i], ti.name, ref.starts[i], ref.name)
				break
			}
		}
	}
	checkHLSConformance(t, dir, v, tracks)
	return tracks
}

// parseInit reads the init segment at path, of rendition r.
func parseInit(t *testing.T, r job.Rendition, path string) media.Init {
	t.Helper()
	in, err := media.ParseInitFile(path)
	if err != nil {
		t.Fatalf("%s: %v", r.Name, err)
	}
	if r.Kind == "video" && (in.Width != r.Width || in.Height != r.Height) {
		t.Errorf("%s: init says %dx%d, plan says %dx%d", r.Name, in.Width, in.Height, r.Width, r.Height)
	}
	return in
}

// checkContinuous checks that every playlist of a presentation that went through
// restarts still counts from 0 without a gap, each number naming its own file, and
// returns how many discontinuities each lists.
func checkContinuous(t *testing.T, tracks map[string]*trackInfo) map[string]int {
	t.Helper()
	out := map[string]int{}
	for name, ti := range tracks {
		segs := ti.playlist.GetAllSegments()
		initURI := ti.playlist.Map.URI
		runs := map[uint64]bool{}
		for i, s := range segs {
			if s.Discontinuity {
				out[name]++
			}
			if i > 0 && s.SeqId != segs[i-1].SeqId+1 {
				t.Errorf("%s: segment %d follows %d", name, s.SeqId, segs[i-1].SeqId)
			}
			// Each run (a discontinuity starts one) has its own segment names and its own
			// init segment, which an EXT-X-MAP names again at the discontinuity.
			if s.Map != nil {
				initURI = s.Map.URI
			}
			run, n, ok := manifest.ParseSegmentName(s.URI)
			if !ok || n != s.SeqId || initURI != manifest.InitName(run) {
				t.Errorf("%s: sequence %d is %s with init %s", name, s.SeqId, s.URI, initURI)
			}
			if s.Discontinuity == (s.Map == nil) && i > 0 {
				t.Errorf("%s: sequence %d: discontinuity %v, EXT-X-MAP %v: want both or neither", name, s.SeqId, s.Discontinuity, s.Map)
			}
			if i == 0 || s.Discontinuity {
				if runs[run] {
					t.Errorf("%s: run %d has two discontinuities", name, run)
				}
				runs[run] = true
			}
		}
		if len(segs) > 0 && segs[0].SeqId != 0 {
			t.Errorf("%s: the playlist starts at sequence %d, want 0 (the window keeps everything here)", name, segs[0].SeqId)
		}
	}
	return out
}

// checkMPD validates the MPD against the DASH schema and parses it.
func checkMPD(t *testing.T, dir string) *mpd.MPD {
	t.Helper()
	path := filepath.Join(dir, manifest.MPDName)
	testmedia.ValidateMPD(t, path)
	m, err := mpd.ReadFromFile(path)
	if err != nil {
		t.Fatalf("manifest.mpd does not parse: %v", err)
	}
	checkMPDConformance(t, dir, m)
	return m
}

// decode plays a media playlist through ffmpeg's own HLS demuxer and decoder. A live
// playlist is decoded from a closed snapshot, or ffmpeg would wait for it forever.
func decode(t *testing.T, playlist string) {
	t.Helper()
	data := readFile(t, playlist)
	if !bytes.Contains(data, []byte("#EXT-X-ENDLIST")) {
		snap := filepath.Join(filepath.Dir(playlist), ".snapshot.m3u8")
		if err := os.WriteFile(snap, append(data, "#EXT-X-ENDLIST\n"...), 0o644); err != nil {
			t.Fatal(err)
		}
		defer os.Remove(snap)
		playlist = snap
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-i", playlist, "-f", "null", "-")
	out, err := cmd.CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("decoding %s: %v\n%s", playlist, err, out)
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// processesWriting lists the processes whose command line names dir: a job's ffmpeg.
func processesWriting(t *testing.T, dir string) []string {
	t.Helper()
	out, _ := exec.Command("pgrep", "-f", "--", dir).Output()
	var pids []string
	for _, p := range strings.Fields(string(out)) {
		if p != fmt.Sprint(os.Getpid()) {
			pids = append(pids, p)
		}
	}
	return pids
}
