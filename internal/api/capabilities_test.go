package api

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/gpu"
)

func capabilitiesServer(g GPUProber) http.Handler {
	s := &Server{Log: zerolog.Nop(), Output: os.TempDir()}
	if g != nil {
		s.GPU = g
	}
	return s.Handler()
}

func capDo(t *testing.T, h http.Handler, method, path string) (int, map[string]any) {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, nil)
	req.Host = "127.0.0.1:8080" // without a token the API answers only to addresses
	h.ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%s %s: %v: %s", method, path, err, rec.Body.String())
	}
	return rec.Code, body
}

func TestCapabilitiesNotConfigured(t *testing.T) {
	h := capabilitiesServer(nil)
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		path := "/v1/capabilities"
		if m == http.MethodPost {
			path += "/probe"
		}
		code, body := capDo(t, h, m, path)
		if code != http.StatusServiceUnavailable || body["error"] != "hardware probing is not configured" {
			t.Errorf("%s %s = %d %v", m, path, code, body)
		}
	}
	svc := gpu.NewService(gpu.Prober{}, zerolog.Nop())
	if code, body := capDo(t, capabilitiesServer(svc), http.MethodGet, "/v1/capabilities"); code != http.StatusServiceUnavailable || body["error"] != "the hardware has not been probed yet" {
		t.Errorf("before the first probe: %d %v", code, body)
	}
}

// TestCapabilitiesProbe probes this machine for real: the real ffmpeg, and an
// empty sysfs so the answer does not depend on the GPUs of the box running it.
func TestCapabilitiesProbe(t *testing.T) {
	ff, err := exec.LookPath("ffmpeg")
	if err != nil {
		if os.Getenv("TRANSCODERD_REQUIRE_FFMPEG") != "" {
			t.Fatal(err)
		}
		t.Skip("ffmpeg not installed")
	}
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "sys", "class", "drm"), 0o755); err != nil {
		t.Fatal(err)
	}
	svc := gpu.NewService(gpu.Prober{FFmpeg: ff, NvidiaSMI: filepath.Join(root, "nvidia-smi"), Root: root, Timeout: time.Minute}, zerolog.Nop())
	h := capabilitiesServer(svc)

	code, body := capDo(t, h, http.MethodPost, "/v1/capabilities/probe")
	if code != http.StatusOK {
		t.Fatalf("probe = %d %v", code, body)
	}
	autoChoice, _ := body["auto"].(map[string]any)
	if autoChoice["encoder"] != "x264" || autoChoice["reason"] != "no GPU found" {
		t.Errorf("auto = %v", body["auto"])
	}
	build, _ := body["ffmpeg"].(map[string]any)
	encs, _ := build["encoders"].([]any)
	if !slices.Contains(encs, any("libx264")) {
		t.Errorf("ffmpeg encoders = %v", encs)
	}
	if devs, ok := body["devices"].([]any); !ok || len(devs) != 0 {
		t.Errorf("devices = %v, want an empty list", body["devices"])
	}
	if s, ok := body["sessions"].([]any); !ok || len(s) != 0 {
		t.Errorf("sessions = %v, want an empty list", body["sessions"])
	}
	if body["nvidia_smi"] != "not found" {
		t.Errorf("nvidia_smi = %v", body["nvidia_smi"])
	}

	code, again := capDo(t, h, http.MethodGet, "/v1/capabilities")
	if code != http.StatusOK || again["probed_at"] != body["probed_at"] {
		t.Errorf("GET after probe = %d, probed_at %v want %v", code, again["probed_at"], body["probed_at"])
	}
	if summary, _ := again["summary"].([]any); len(summary) != 1 || !strings.HasPrefix(summary[0].(string), "auto: x264") {
		t.Errorf("summary = %v", again["summary"])
	}
	if code, _ := capDo(t, h, http.MethodGet, "/v1/capabilities/probe"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET on the probe route = %d", code)
	}
}
