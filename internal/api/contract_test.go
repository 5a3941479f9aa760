package api

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	spec "github.com/transcoderd/transcoderd/api"
	"github.com/transcoderd/transcoderd/api/apitest"
	"github.com/transcoderd/transcoderd/internal/gpu"
	"github.com/transcoderd/transcoderd/internal/job"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

func contract(t *testing.T) *apitest.Contract {
	t.Helper()
	c, err := apitest.Load()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestContractRoutes walks the router: every route is in api/openapi.yaml with its
// method, and every operation of openapi.yaml is a route.
func TestContractRoutes(t *testing.T) {
	c := contract(t)
	h := testServer(t, false).Handler() // with /metrics
	var routes []string
	err := chi.Walk(h.(chi.Routes), func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		for name, wild := range apitest.Wildcards {
			if route == wild {
				route = name
			}
		}
		routes = append(routes, method+" "+route)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(routes)
	ops := c.Operations()
	for _, r := range routes {
		if !slices.Contains(ops, r) {
			t.Errorf("route %s is not in api/openapi.yaml", r)
		}
	}
	for _, op := range ops {
		if !slices.Contains(routes, op) {
			t.Errorf("api/openapi.yaml describes %s, which the router does not serve", op)
		}
	}
	if len(routes) < 15 {
		t.Errorf("the walk found only %d routes: %v", len(routes), routes)
	}
}

// TestContractRequest: the body of POST /v1/jobs, as openapi.yaml describes it, has the
// fields that job.Request reads (decodeStrict refuses any other).
func TestContractRequest(t *testing.T) {
	var fields []string
	rt := reflect.TypeFor[job.Request]()
	for i := range rt.NumField() {
		name, _, _ := strings.Cut(rt.Field(i).Tag.Get("json"), ",")
		fields = append(fields, name)
	}
	slices.Sort(fields)
	if got := contract(t).Properties("JobRequest"); !slices.Equal(got, fields) {
		t.Errorf("openapi.yaml's JobRequest has %v; job.Request reads %v", got, fields)
	}
}

// TestContractProgressOnce: what ffmpeg reports is told once, in a job's progress; the
// job repeats none of it at its top level (it used to carry fps, speed and out_time
// twice).
func TestContractProgressOnce(t *testing.T) {
	c := contract(t)
	job, progress := c.Properties("Job"), c.Properties("Progress")
	if len(job) == 0 || len(progress) == 0 {
		t.Fatalf("openapi.yaml's Job has %v and Progress %v", job, progress)
	}
	for _, name := range progress {
		if slices.Contains(job, name) {
			t.Errorf("openapi.yaml's Job has %q, which its progress has too", name)
		}
	}
}

// fakeGPU answers the capabilities routes with every field set, so that the schema
// meets each of them.
type fakeGPU struct{}

func (fakeGPU) Capabilities() (gpu.Capabilities, bool) {
	cuda := 0
	trial := &gpu.Trial{OK: false, Error: "No capable devices found", Kind: "no-encoder", Frames: 0, Keyframes: []int{0, 30}, TookMS: 120, CPUMS: 95, Args: []string{"ffmpeg", "-f", "lavfi"}}
	return gpu.Capabilities{
		ProbedAt: time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC), TookMS: 2300,
		FFmpeg:    gpu.Build{Encoders: []string{"libx264", "h264_nvenc"}, HWAccels: []string{"cuda"}, Filters: []string{"scale_cuda"}},
		NvidiaSMI: "ok",
		Devices: []gpu.Device{{
			ID: "renderD128", Vendor: "nvidia", VendorID: "0x10de", DeviceID: "0x2330", PCI: "0000:01:00.0",
			RenderNode: "/dev/dri/renderD128", KernelDriver: "nvidia", Name: "NVIDIA H100", Driver: "NVIDIA 550.54",
			DriverLine: "a line", DriverError: "an error", CUDAIndex: &cuda, SessionsInUse: 1,
			Encoders: []gpu.EncoderResult{{Backend: "nvenc", Encoder: "h264_nvenc", Working: false, Error: "No capable devices found",
				Kind: "no-encoder", Trial: trial, Sessions: 3, SessionsAtLeast: true, SessionsError: "OpenEncodeSessionEx failed", CPUPerMpx: 0.004}},
			Decode: trial, Status: "no-encoder", Summary: "no encoder",
		}},
		Auto:     gpu.Choice{Encoder: "x264", Device: "renderD128", DecodeOn: "renderD128", Reason: "no encoder"},
		Summary:  []string{"auto: x264"},
		Problems: []string{"unreadable sysfs"},
	}, true
}

func (fakeGPU) Sessions() []gpu.PoolView {
	return []gpu.PoolView{{Pool: "nvenc@renderD128", Device: "renderD128", Backend: "nvenc", Capacity: 3, InUse: 1, Jobs: []string{"cam"}, Learned: "a job hit the limit"}}
}

func (f fakeGPU) Probe(context.Context) gpu.Capabilities { c, _ := f.Capabilities(); return c }

// TestContractAnswers sends each route the requests that make it answer each way it
// can without ffmpeg (the e2e tests of internal/daemon check the jobs' answers), and
// holds every answer to api/openapi.yaml: a status it declares, a body of its schema.
func TestContractAnswers(t *testing.T) {
	c := contract(t)
	s := testServer(t, true)
	profiles := t.TempDir()
	for name, body := range map[string]string{
		"good":   "segment_duration: 2s\nwindow: 1m\nvideo:\n  renditions:\n    - {name: r360, height: 360, bitrate: 800k, maxrate: 900k, bufsize: 1800k, profile: main, encoder: x264}\n  max_fps: 30\n  tune: zerolatency\n  shed_top_rung: true\naudio:\n  - {name: aac, bitrate: 96k}\naudio_only: true\ndescription: a ladder\n",
		"broken": "segment_duration: 2s\nvideo:\n  renditions:\n    - {name: big, height: 99999, bitrate: 1k}\n",
	} {
		if err := os.WriteFile(filepath.Join(profiles, name+".yaml"), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s.Ladders = ladder.NewStore(profiles, nil)
	s.GPU = fakeGPU{}
	noGPU := testServer(t, true)
	open := testServer(t, true)
	open.Token = ""

	token := "Bearer " + testToken
	tests := []struct {
		name, method, target, body string
		srv                        *Server
		auth, origin, host         string
		want                       int
	}{
		{name: "healthz", method: "GET", target: "/healthz", want: 200},
		{name: "the contract itself", method: "GET", target: "/v1/openapi.yaml", want: 200},
		{name: "jobs, none", method: "GET", target: "/v1/jobs", auth: token, want: 200},
		{name: "jobs without the token", method: "GET", target: "/v1/jobs", want: 401},
		{name: "jobs with a wrong token", method: "GET", target: "/v1/jobs", auth: "Bearer nope-0123456789", want: 401},
		{name: "jobs from another site", method: "GET", target: "/v1/jobs", auth: token, origin: "https://evil.example", want: 403},
		{name: "jobs by a rebound name", srv: open, method: "GET", target: "/v1/jobs", host: "evil.example", want: 403},
		{name: "create, bad JSON", method: "POST", target: "/v1/jobs", body: `{"source":`, auth: token, want: 400},
		{name: "create, unknown field", method: "POST", target: "/v1/jobs", body: `{"source":"a.mp4","args":[]}`, auth: token, want: 400},
		{name: "create, no such file", method: "POST", target: "/v1/jobs", body: `{"source":"a.mp4","ladder":"good"}`, auth: token, want: 400},
		{name: "create, bad id", method: "POST", target: "/v1/jobs", body: `{"source":"a.mp4","id":"A/B"}`, auth: token, want: 400},
		{name: "create without the token", method: "POST", target: "/v1/jobs", body: `{}`, want: 401},
		{name: "job not found", method: "GET", target: "/v1/jobs/nope", auth: token, want: 404},
		{name: "events not found", method: "GET", target: "/v1/jobs/nope/events", auth: token, want: 404},
		{name: "delete not found", method: "DELETE", target: "/v1/jobs/nope", auth: token, want: 404},
		{name: "delete, purge not a bool", method: "DELETE", target: "/v1/jobs/nope?purge=please", auth: token, want: 400},
		{name: "delete, purge twice", method: "DELETE", target: "/v1/jobs/nope?purge=true&purge=false", auth: token, want: 400},
		{name: "ladders", method: "GET", target: "/v1/ladders", auth: token, want: 200},
		{name: "a valid ladder", method: "GET", target: "/v1/ladders/good", auth: token, want: 200},
		{name: "a broken ladder", method: "GET", target: "/v1/ladders/broken", auth: token, want: 200},
		{name: "no such ladder", method: "GET", target: "/v1/ladders/nope", auth: token, want: 404},
		{name: "capabilities", method: "GET", target: "/v1/capabilities", auth: token, want: 200},
		{name: "probe", method: "POST", target: "/v1/capabilities/probe", auth: token, want: 200},
		{name: "capabilities not configured", srv: noGPU, method: "GET", target: "/v1/capabilities", auth: token, want: 503},
		{name: "probe not configured", srv: noGPU, method: "POST", target: "/v1/capabilities/probe", auth: token, want: 503},
		{name: "cluster on a single box", method: "GET", target: "/v1/cluster", auth: token, want: 404},
		{name: "drain on a single box", method: "POST", target: "/v1/cluster/boxes/a/drain", auth: token, want: 404},
		{name: "metrics without the token", method: "GET", target: "/metrics", want: 401},
		{name: "metrics", method: "GET", target: "/metrics", auth: token, want: 200},
		{name: "preview page", method: "GET", target: "/", want: 200},
		{name: "preview script", method: "GET", target: "/ui/app.js", want: 200},
		{name: "preview folder", method: "GET", target: "/ui/vendor/", want: 404},
		{name: "preview files' root", method: "GET", target: "/ui/", want: 404},
		{name: "metrics from another site", method: "GET", target: "/metrics", auth: token, origin: "https://evil.example", want: 403},
		{name: "output file", method: "GET", target: "/out/cam/master.m3u8", want: 200},
		{name: "output file, HEAD", method: "HEAD", target: "/out/cam/master.m3u8", want: 200},
		{name: "output file, missing", method: "GET", target: "/out/cam/nope.m4s", want: 404},
		{name: "output dot file", method: "GET", target: "/out/cam/.hidden", want: 404},
		{name: "output folder", method: "GET", target: "/out/cam", want: 404},
		{name: "output is read-only", method: "PUT", target: "/out/cam/master.m3u8", body: "x", want: 405},
		{name: "no such route", method: "GET", target: "/v2/jobs", auth: token, want: 404},
		{name: "wrong method", method: "PUT", target: "/v1/jobs/x", body: "{}", auth: token, want: 405},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			srv := tc.srv
			if srv == nil {
				srv = s
			}
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.target, body)
			req.Host = "127.0.0.1:8080"
			if tc.host != "" {
				req.Host = tc.host
			}
			if tc.auth != "" {
				req.Header.Set("Authorization", tc.auth)
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			w := httptest.NewRecorder()
			srv.Handler().ServeHTTP(w, req)
			if w.Code != tc.want {
				t.Fatalf("%s %s: %d %s, want %d", tc.method, tc.target, w.Code, w.Body, tc.want)
			}
			if err := c.Check(req, w.Code, w.Header(), w.Body.Bytes()); err != nil {
				t.Error(err)
			}
			seen[tc.method+" "+tc.target] = true
		})
	}
	if got := do(t, s.Handler(), "GET", "/v1/openapi.yaml", ""); got.Body.String() != spec.OpenAPI || !strings.HasPrefix(got.Header().Get("Content-Type"), "application/yaml") {
		t.Errorf("GET /v1/openapi.yaml serves %.100q as %q, not api/openapi.yaml", got.Body, got.Header().Get("Content-Type"))
	}
}

// TestContractCatchesDrift: the check fails an answer that is not the contract's, so
// that the tests relying on it can fail.
func TestContractCatchesDrift(t *testing.T) {
	c := contract(t)
	job := `{"id":"cam","state":"running","source":"rtmp://x/live","ladder":"default","live":true,"renditions":[],"hls":"cam/master.m3u8","dash":"cam/manifest.mpd",` +
		`"progress":{"frame":1,"fps":30,"speed":1,"lag":0,"out_time":1.5,"drop_frames":0,"dup_frames":0},"segments":0,"restarts":0,"stalls":0,"cpu":0.5,"behind":false,"created":"2025-06-01T12:00:00Z"}`
	json := http.Header{"Content-Type": {"application/json"}}
	tests := []struct {
		name, method, target string
		code                 int
		body                 string
		ok                   bool
	}{
		{name: "a job", method: "GET", target: "/v1/jobs/cam", code: 200, body: job, ok: true},
		{name: "a renamed field", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `"segments"`, `"segment_count"`, 1)},
		{name: "a missing field", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `"behind":false,`, ``, 1)},
		{name: "a duration as a string", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.ReplaceAll(job, `"out_time":1.5`, `"out_time":"1.5s"`)},
		{name: "renditions null", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `"renditions":[]`, `"renditions":null`, 1)},
		{name: "an unknown state", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `"running"`, `"paused"`, 1)},
		{name: "a percent over 100", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `"out_time":1.5,"drop`, `"out_time":1.5,"percent":101,"drop`, 1)},
		{name: "a time that is not RFC 3339", method: "GET", target: "/v1/jobs/cam", code: 200, body: strings.Replace(job, `2025-06-01T12:00:00Z`, `2025-06-01 12:00`, 1)},
		{name: "a status not declared", method: "GET", target: "/v1/jobs/cam", code: 418, body: `{"error":"teapot"}`},
		{name: "an error with more", method: "GET", target: "/v1/jobs/cam", code: 404, body: `{"error":"x","code":7}`},
		{name: "events null", method: "GET", target: "/v1/jobs/cam/events", code: 200, body: `{"events":null}`},
		{name: "a route not in the contract", method: "GET", target: "/v1/jobs/cam/logs", code: 200, body: `{}`},
		{name: "the router's 404", method: "GET", target: "/v1/jobs/cam/logs", code: 404, body: `{"error":"no such route"}`, ok: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Check(httptest.NewRequest(tc.method, tc.target, nil), tc.code, json, []byte(tc.body))
			if err != nil {
				t.Log(err)
			}
			if (err == nil) != tc.ok {
				t.Errorf("Check = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
