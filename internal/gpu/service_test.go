package gpu

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/transcoderd/transcoderd/internal/encoder"
	"github.com/transcoderd/transcoderd/internal/ladder"
)

func intp(n int) *int { return &n }

// Machines as a probe reports them.
func geforceCaps(sessions int) Capabilities {
	d := Device{ID: "renderD128", Vendor: encoder.VendorNVIDIA, PCI: "0000:01:00.0", Name: "NVIDIA GeForce RTX 3060", RenderNode: node128, CUDAIndex: intp(0),
		Encoders: []EncoderResult{{Backend: encoder.NVENC, Encoder: "h264_nvenc", Working: true, Sessions: sessions}},
		Decode:   &Trial{OK: true}, Status: statusEncoder}
	return Capabilities{Devices: []Device{d}, Auto: auto([]Device{d}), FFmpeg: Build{Filters: []string{"scale_cuda", "hwupload", "hwdownload"}}}
}

func h100Caps() Capabilities {
	line := "[h264_nvenc @ 0x55f1c3a2e6c0] OpenEncodeSessionEx failed: unsupported device (2): (no details)"
	d := Device{ID: "renderD128", Vendor: encoder.VendorNVIDIA, PCI: "0000:19:00.0", Name: "NVIDIA H100 80GB HBM3", CUDAIndex: intp(0),
		Encoders: []EncoderResult{{Backend: encoder.NVENC, Encoder: "h264_nvenc", Error: line, Kind: kindNoEncoder}},
		Decode:   &Trial{OK: true}, Status: statusNoEncoder}
	return Capabilities{Devices: []Device{d}, Auto: auto([]Device{d}), FFmpeg: Build{Filters: []string{"scale_cuda"}}}
}

func amdCaps() Capabilities {
	d := Device{ID: "renderD129", Vendor: encoder.VendorAMD, RenderNode: node129, Driver: "Mesa Gallium",
		Encoders: []EncoderResult{
			{Backend: encoder.VAAPI, Encoder: "h264_vaapi", Working: true, Sessions: 16, SessionsAtLeast: true},
			{Backend: encoder.AMF, Encoder: "h264_amf", Error: "this ffmpeg has no h264_amf encoder", Kind: kindNotInBuild},
		}, Status: statusEncoder}
	return Capabilities{Devices: []Device{d}, Auto: auto([]Device{d})}
}

func service(c Capabilities) *Service {
	s := NewService(Prober{}, zerolog.Nop())
	s.SetCapabilities(c)
	return s
}

// testLadder has four rungs; encoders is the ladder's encoder then per-rung
// overrides by name.
func testLadder(encoder, fallback string, overrides map[string]string) *ladder.Ladder {
	l := &ladder.Ladder{Name: "t", Encoder: encoder, Fallback: fallback}
	for _, n := range []string{"1080p", "720p", "480p", "360p"} {
		l.Video.Renditions = append(l.Video.Renditions, ladder.Rendition{Name: n, Encoder: overrides[n]})
	}
	return l
}

func testPlan() ladder.Plan {
	return ladder.Plan{FPS: 30, GOP: 60, Video: []ladder.PlannedVideo{
		{Name: "1080p", Width: 1920, Height: 1080, Encoder: "x264"},
		{Name: "720p", Width: 1280, Height: 720, Encoder: "x264"},
		{Name: "480p", Width: 854, Height: 480, Encoder: "x264"},
		{Name: "360p", Width: 640, Height: 360, Encoder: "x264"},
	}}
}

var h264Source = ladder.SourceInfo{HasVideo: true, VideoCodec: "h264"}

func encoders(a Admission) string {
	var s []string
	for _, v := range a.Plan.Video {
		s = append(s, v.Encoder)
	}
	return strings.Join(s, " ")
}

func TestAdmitNoGPU(t *testing.T) {
	s := service(Capabilities{Auto: auto(nil)})
	a, err := s.Admit("j", testLadder("auto", "x264", nil), testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(a) != "x264 x264 x264 x264" || a.HW != (encoder.Hardware{}) || len(a.Moved) != 0 {
		t.Errorf("admission = %+v", a)
	}
	if !slices.Equal(a.Notes, []string{"auto resolved to x264: no GPU found"}) {
		t.Errorf("notes = %q", a.Notes)
	}

	// A ladder that names nvenc falls back, and says why, per rung.
	a, err = s.Admit("j", testLadder("nvenc", "x264", nil), testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Moved) != 4 || a.Moved[0] != (Move{Rung: "1080p", Wanted: "nvenc", To: "x264", Reason: "no GPU found"}) {
		t.Errorf("moved = %+v", a.Moved)
	}
	_, err = s.Admit("j", testLadder("nvenc", "none", nil), testPlan(), h264Source)
	if !errors.Is(err, ErrNoEncoder) || !strings.Contains(err.Error(), `rung "1080p" wants nvenc and ladder "t" says fallback: none: no GPU found`) {
		t.Errorf("fallback none: %v", err)
	}
	if len(s.Sessions()) != 0 {
		t.Errorf("sessions = %+v", s.Sessions())
	}
}

func TestAdmitUnprobed(t *testing.T) {
	s := NewService(Prober{}, zerolog.Nop())
	a, err := s.Admit("j", testLadder("auto", "x264", nil), testPlan(), h264Source)
	if err != nil || encoders(a) != "x264 x264 x264 x264" || !slices.Equal(a.Notes, []string{"auto resolved to x264: the hardware has not been probed"}) {
		t.Errorf("admission %+v, %v", a, err)
	}
}

func TestAdmitSessionBudget(t *testing.T) {
	s := service(geforceCaps(3))
	a, err := s.Admit("a", testLadder("auto", "x264", nil), testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(a) != "nvenc nvenc nvenc x264" {
		t.Errorf("encoders = %s", encoders(a))
	}
	if a.HW != (encoder.Hardware{Type: encoder.FramesCUDA, Device: "0", Decode: true}) || a.Device != "renderD128" || !slices.Equal(a.Env(), []string{"CUDA_DEVICE_ORDER=PCI_BUS_ID"}) {
		t.Errorf("hw = %+v device %q env %q", a.HW, a.Device, a.Env())
	}
	if len(a.Moved) != 1 || a.Moved[0].Rung != "360p" || a.Moved[0].Wanted != "auto" ||
		a.Moved[0].Reason != "no nvenc session left on NVIDIA GeForce RTX 3060 (0000:01:00.0, renderD128): 3 of 3 in use" {
		t.Errorf("moved = %+v", a.Moved)
	}
	if got := a.String(); got != "1080p=nvenc 720p=nvenc 480p=nvenc 360p=x264 on renderD128 (cuda:0, decode)" {
		t.Errorf("String() = %q", got)
	}

	// Every session is held: a ladder that allows no fallback is refused, one
	// that does runs on x264 with the GPU decoding for it.
	_, err = s.Admit("b", testLadder("nvenc", "none", nil), testPlan(), h264Source)
	if !errors.Is(err, ErrNoSession) || !strings.Contains(err.Error(), "3 of 3 in use") {
		t.Errorf("b: %v", err)
	}
	c, err := s.Admit("c", testLadder("auto", "x264", nil), testPlan(), ladder.SourceInfo{HasVideo: true, VideoCodec: "hevc"})
	if err != nil {
		t.Fatal(err)
	}
	if encoders(c) != "x264 x264 x264 x264" || len(c.Moved) != 4 || c.HW != (encoder.Hardware{}) {
		t.Errorf("c = %+v (an HEVC source: the trial proved H.264 decoding only)", c)
	}
	pools := s.Sessions()
	if len(pools) != 1 || pools[0].Pool != "nvenc" || pools[0].Capacity != 3 || pools[0].InUse != 3 || !slices.Equal(pools[0].Jobs, []string{"a"}) {
		t.Errorf("pools = %+v", pools)
	}

	s.Release("a")
	s.Release("a")
	b, err := s.Admit("b", testLadder("nvenc", "none", map[string]string{"360p": "x264"}), testPlan(), h264Source)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	if encoders(b) != "nvenc nvenc nvenc x264" || len(b.Moved) != 0 {
		t.Errorf("b = %+v (360p is pinned to x264: not a move)", b)
	}

	// A re-probe while b holds 3 sessions measures 0 free: the capacity stays 3.
	re := geforceCaps(0)
	re.Devices[0].Encoders[0].SessionsError = "[h264_nvenc @ 0x5581e4b0f240] OpenEncodeSessionEx failed: out of memory (10): (no details)"
	s.SetCapabilities(re)
	if p := s.Sessions(); p[0].Capacity != 3 || p[0].InUse != 3 {
		t.Errorf("after re-probe: %+v", p)
	}
}

// TestPlace: Place says how a job would run, as Admit would place it now, holding
// nothing, with the CPU its hardware rungs take as the trial measured it.
func TestPlace(t *testing.T) {
	caps := geforceCaps(3)
	caps.Devices[0].Encoders[0].CPUPerMpx = 0.004
	s := service(caps)
	l := testLadder("auto", "x264", nil)
	for range 2 { // nothing held: the second sees the same three sessions free
		p := s.Place(l, testPlan(), h264Source)
		if encoders(p) != "nvenc nvenc nvenc x264" || p.CPUPerMpx != 0.004 || p.Device != "renderD128" {
			t.Errorf("placed %+v", p)
		}
	}
	if pools := s.Sessions(); pools[0].InUse != 0 {
		t.Errorf("Place held sessions: %+v", pools)
	}
	a, err := s.Admit("a", l, testPlan(), h264Source)
	if err != nil || encoders(a) != "nvenc nvenc nvenc x264" || a.CPUPerMpx != 0.004 {
		t.Fatalf("admitted %+v, %v", a, err)
	}
	// Every session is held now: the next job would run on x264, and a ladder
	// that allows no fallback is placed on x264 too (Admit refuses it).
	for _, l := range []*ladder.Ladder{l, testLadder("nvenc", "none", nil)} {
		if p := s.Place(l, testPlan(), h264Source); encoders(p) != "x264 x264 x264 x264" || p.CPUPerMpx != 0 {
			t.Errorf("placed beside a: %+v", p)
		}
	}
}

func TestAdmitReAdmitReleasesFirst(t *testing.T) {
	s := service(geforceCaps(3))
	for range 3 {
		if _, err := s.Admit("a", testLadder("nvenc", "none", map[string]string{"360p": "x264"}), testPlan(), h264Source); err != nil {
			t.Fatal(err)
		}
	}
	if p := s.Sessions(); p[0].InUse != 3 {
		t.Errorf("in use = %d after admitting the same job three times", p[0].InUse)
	}
}

func TestAdmitDatacenterGPU(t *testing.T) {
	s := service(h100Caps())
	a, err := s.Admit("j", testLadder("auto", "x264", nil), testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(a) != "x264 x264 x264 x264" || a.HW != (encoder.Hardware{Type: encoder.FramesCUDA, Device: "0", Decode: true}) {
		t.Errorf("admission = %+v, want x264 with the H100 decoding and scaling", a)
	}
	if !slices.Contains(a.Notes, "x264 encodes; NVIDIA H100 80GB HBM3 (0000:19:00.0, renderD128) decodes and scales") {
		t.Errorf("notes = %q", a.Notes)
	}

	// Pinned to x264 everywhere: the software path exactly, no GPU.
	a, err = s.Admit("j", testLadder("x264", "x264", nil), testPlan(), h264Source)
	if err != nil || a.HW != (encoder.Hardware{}) || len(a.Notes) != 0 {
		t.Errorf("x264 ladder = %+v, %v", a, err)
	}

	_, err = s.Admit("j", testLadder("nvenc", "none", nil), testPlan(), h264Source)
	if !errors.Is(err, ErrNoEncoder) || !strings.Contains(err.Error(), "h264_nvenc: [h264_nvenc @ 0x55f1c3a2e6c0] OpenEncodeSessionEx failed: unsupported device (2)") {
		t.Errorf("nvenc, fallback none: %v", err)
	}
}

// TestAdmitScalerFollowsFrames: with a build that has scale_npp but not
// scale_cuda, a CUDA job scales with scale_npp, and a VAAPI job keeps its own
// scaler: scale_npp on VAAPI frames fails the job's argv.
func TestAdmitScalerFollowsFrames(t *testing.T) {
	npp := Build{Filters: []string{"scale_npp", "scale_vaapi", "hwupload", "hwdownload"}}
	tests := []struct {
		name string
		caps Capabilities
		want encoder.Hardware
	}{
		{name: "cuda", caps: geforceCaps(4), want: encoder.Hardware{Type: encoder.FramesCUDA, Device: "0", Decode: true, Scaler: "scale_npp"}},
		{name: "vaapi", caps: amdCaps(), want: encoder.Hardware{Type: encoder.FramesVAAPI, Device: node129}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.caps.FFmpeg = npp
			a, err := service(tt.caps).Admit("j", testLadder("auto", "none", nil), testPlan(), h264Source)
			if err != nil {
				t.Fatal(err)
			}
			if a.HW != tt.want {
				t.Errorf("hardware = %+v, want %+v", a.HW, tt.want)
			}
			if err := a.HW.Validate(); err != nil {
				t.Errorf("the admission's hardware cannot build an argv: %v", err)
			}
		})
	}
}

func TestAdmitVCE(t *testing.T) {
	s := service(amdCaps())
	a, err := s.Admit("j", testLadder("vce", "none", map[string]string{"1080p": "vaapi"}), testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(a) != "vaapi vaapi vaapi vaapi" || a.HW != (encoder.Hardware{Type: encoder.FramesVAAPI, Device: node129}) {
		t.Errorf("admission = %+v", a)
	}
	// Not limited: a second and third job fit.
	for _, id := range []string{"k", "l"} {
		if _, err := s.Admit(id, testLadder("vce", "none", nil), testPlan(), h264Source); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	if p := s.Sessions(); p[0].Capacity != -1 || p[0].InUse != 12 {
		t.Errorf("pools = %+v", p)
	}

	// vce on a machine without AMD GPU.
	s = service(geforceCaps(3))
	_, err = s.Admit("j", testLadder("vce", "none", nil), testPlan(), h264Source)
	if !errors.Is(err, ErrNoEncoder) || !strings.Contains(err.Error(), "no GPU here has vaapi or amf") {
		t.Errorf("vce on NVIDIA: %v", err)
	}
	// A rung that asks for another GPU kind than the job's.
	a, err = s.Admit("j", testLadder("nvenc", "x264", map[string]string{"360p": "qsv"}), testPlan(), h264Source)
	if err != nil || encoders(a) != "nvenc nvenc nvenc x264" || len(a.Moved) != 1 || !strings.Contains(a.Moved[0].Reason, "has no qsv") {
		t.Errorf("qsv rung on NVIDIA = %+v, %v", a, err)
	}
}

func readLines(t *testing.T, name string, subst ...string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	for i := 0; i+1 < len(subst); i += 2 {
		s = strings.ReplaceAll(s, subst[i], subst[i+1])
	}
	return strings.Split(strings.TrimSpace(s), "\n")
}

// diagnosed are the admissions TestDiagnose reads failures of: every rung on
// nvenc, nvenc but for 720p, and software only.
func diagnosed(t *testing.T) (nv, mixed, soft Admission) {
	t.Helper()
	s := service(geforceCaps(8))
	var errs [3]error
	nv, errs[0] = s.Admit("j", testLadder("nvenc", "x264", nil), testPlan(), h264Source)
	mixed, errs[1] = s.Admit("m", testLadder("nvenc", "x264", map[string]string{"720p": "x264"}), testPlan(), h264Source)
	soft, errs[2] = service(Capabilities{}).Admit("s", testLadder("x264", "x264", nil), testPlan(), h264Source)
	if err := errors.Join(errs[:]...); err != nil {
		t.Fatal(err)
	}
	return nv, mixed, soft
}

func TestDiagnose(t *testing.T) {
	nv, mixed, soft := diagnosed(t)
	tests := []struct {
		name   string
		a      Admission
		stderr []string
		want   *Failure // nil: not the hardware's failure
	}{
		{
			name: "session limit at the third output", a: nv, stderr: readLines(t, "ffmpeg/nvenc-session-limit.txt", "%d", "2"),
			want: &Failure{Kind: kindSessionLimit, Line: "[h264_nvenc @ 0x5581e4b0f240] OpenEncodeSessionEx failed: out of memory (10): (no details)", Rungs: []string{"480p", "360p"}},
		},
		{
			name: "session limit skips the x264 rungs", a: mixed, stderr: readLines(t, "ffmpeg/nvenc-session-limit.txt", "%d", "0"),
			want: &Failure{Kind: kindSessionLimit, Line: "[h264_nvenc @ 0x5581e4b0f240] OpenEncodeSessionEx failed: out of memory (10): (no details)", Rungs: []string{"1080p", "480p", "360p"}},
		},
		{
			name: "no libcuda: the device goes", a: nv, stderr: readLines(t, "ffmpeg/cuda-no-libcuda.txt"),
			want: &Failure{Kind: kindNoLibrary, Line: "[AVHWDeviceContext @ 0x55bd4ea44a00] Cannot load libcuda.so.1", Rungs: []string{"1080p", "720p", "480p", "360p"}, NoDevice: true},
		},
		{
			name: "no NVENC on the first output", a: nv, stderr: readLines(t, "ffmpeg/nvenc-unsupported-device.txt"),
			want: &Failure{Kind: kindNoEncoder, Line: "[h264_nvenc @ 0x55f1c3a2e6c0] OpenEncodeSessionEx failed: unsupported device (2): (no details)", Rungs: []string{"1080p", "720p", "480p", "360p"}},
		},
		{
			name: "mid-stream", a: nv, stderr: readLines(t, "ffmpeg/nvenc-runtime-cuda-error.txt"),
			want: &Failure{Kind: kindRuntime, Line: "[h264_nvenc @ 0x55d0a8c4e1c0] EncodePicture failed!: unknown error (20): (no details)", Rungs: []string{"1080p", "720p", "480p", "360p"}, NoDevice: true},
		},
		{
			name: "decoder cannot start", a: nv, stderr: readLines(t, "ffmpeg/cuda-hwaccel-failed.txt"),
			want: &Failure{Kind: kindDecode, Line: "[h264 @ 0x55e3b7c1d980] Failed setup for format cuda: hwaccel initialisation returned error.", NoDecode: true},
		},
		{
			name: "frames never reached the device", a: nv, stderr: readLines(t, "ffmpeg/vaapi-function-not-implemented.txt"),
			want: &Failure{Kind: kindFrames, Line: "Impossible to convert between the formats supported by the filter 'Parsed_null_0' and the filter 'auto_scale_0'", Rungs: []string{"1080p", "720p", "480p", "360p"}, NoDevice: true},
		},
		{name: "the source went away", a: nv, stderr: []string{"[rtmp @ 0x55d] Cannot open connection tcp://127.0.0.1:1935", "rtmp://127.0.0.1:1935/live/cam: Connection refused"}},
		{name: "software job", a: soft, stderr: readLines(t, "ffmpeg/nvenc-no-libcuda.txt")},
		{name: "nothing said", a: nv},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := Diagnose(tt.a, tt.stderr)
			if tt.want == nil {
				if ok {
					t.Errorf("Diagnose = %+v, want not the hardware's", f)
				}
				return
			}
			if !ok || f.Kind != tt.want.Kind || f.Line != tt.want.Line || !slices.Equal(f.Rungs, tt.want.Rungs) ||
				f.NoDecode != tt.want.NoDecode || f.NoDevice != tt.want.NoDevice {
				t.Errorf("Diagnose = %+v, %v\nwant %+v", f, ok, *tt.want)
			}
		})
	}
}

func TestFallback(t *testing.T) {
	s := service(geforceCaps(8))
	l := testLadder("nvenc", "x264", nil)
	a, err := s.Admit("j", l, testPlan(), h264Source)
	if err != nil {
		t.Fatal(err)
	}
	f, ok := Diagnose(a, readLines(t, "ffmpeg/nvenc-session-limit.txt", "%d", "2"))
	if !ok {
		t.Fatal("not diagnosed")
	}
	next, err := s.Fallback("j", l, a, f)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(next) != "nvenc nvenc x264 x264" || next.HW != a.HW || encoders(a) != "nvenc nvenc nvenc nvenc" {
		t.Errorf("next = %s %+v (and the old admission must not change: %s)", encoders(next), next.HW, encoders(a))
	}
	if len(next.Moved) != 2 || next.Moved[0] != (Move{Rung: "480p", Wanted: "nvenc", From: "nvenc", To: "x264",
		Reason: "nvenc failed (session-limit): [h264_nvenc @ 0x5581e4b0f240] OpenEncodeSessionEx failed: out of memory (10): (no details)"}) {
		t.Errorf("moved = %+v", next.Moved)
	}
	p := s.Sessions()[0]
	if p.Capacity != 2 || p.InUse != 2 || !strings.Contains(p.Learned, "a job hit the session limit at runtime with 2 open") {
		t.Errorf("pool = %+v, want the learned limit", p)
	}
	// The learned limit holds for the next job until a probe.
	other, err := s.Admit("k", l, testPlan(), h264Source)
	if err != nil || encoders(other) != "x264 x264 x264 x264" {
		t.Errorf("next job = %s, %v", encoders(other), err)
	}

	// The GPU fails as a device: everything to x264, no GPU left in the job.
	f, _ = Diagnose(next, readLines(t, "ffmpeg/nvenc-runtime-cuda-error.txt"))
	last, err := s.Fallback("j", l, next, f)
	if err != nil {
		t.Fatal(err)
	}
	if encoders(last) != "x264 x264 x264 x264" || last.HW != (encoder.Hardware{}) || last.Device != "" || len(last.Moved) != 4 {
		t.Errorf("last = %+v", last)
	}
	if p := s.Sessions()[0]; p.InUse != 0 {
		t.Errorf("sessions still held: %+v", p)
	}

	// fallback: none fails the job with ffmpeg's line...
	strict := testLadder("nvenc", "none", nil)
	s = service(geforceCaps(8))
	a, _ = s.Admit("j", strict, testPlan(), h264Source)
	f, _ = Diagnose(a, readLines(t, "ffmpeg/nvenc-runtime-cuda-error.txt"))
	if _, err := s.Fallback("j", strict, a, f); !errors.Is(err, ErrHardwareFailed) || !strings.Contains(err.Error(), "EncodePicture failed!") {
		t.Errorf("fallback none: %v", err)
	}
	// ...but may still stop decoding on the GPU: no rung changes encoder.
	f, _ = Diagnose(a, readLines(t, "ffmpeg/cuda-hwaccel-failed.txt"))
	next, err = s.Fallback("j", strict, a, f)
	if err != nil || next.HW.Decode || next.HW.Type != encoder.FramesCUDA || encoders(next) != "nvenc nvenc nvenc nvenc" {
		t.Errorf("decode off = %+v, %v", next, err)
	}
}

func TestFallbackDropsUnneededDevice(t *testing.T) {
	// A job decoding on the GPU for x264 rungs whose GPU fails: software only.
	s := service(h100Caps())
	l := testLadder("auto", "none", nil)
	a, err := s.Admit("j", l, testPlan(), h264Source)
	if err != nil || a.HW.Type != encoder.FramesCUDA {
		t.Fatalf("%+v %v", a, err)
	}
	f, ok := Diagnose(a, readLines(t, "ffmpeg/cuda-no-libcuda.txt"))
	if !ok || len(f.Rungs) != 0 || !f.NoDevice {
		t.Fatalf("diagnose = %+v %v", f, ok)
	}
	next, err := s.Fallback("j", l, a, f)
	if err != nil || next.HW != (encoder.Hardware{}) || encoders(next) != "x264 x264 x264 x264" {
		t.Errorf("next = %+v, %v", next, err)
	}
}

// A tune reaches a hardware rung as the backend's own options or is ignored,
// and the job's notes say which: never silently.
func TestAdmitTuneNotes(t *testing.T) {
	s := service(geforceCaps(8))
	for _, tt := range []struct{ tune, want string }{
		{"zerolatency", "rung 720p: nvenc: tune zerolatency as -tune ll -zerolatency 1 and no B-frames"},
		{"film", "rung 720p: nvenc: tune film applies to x264 only: ignored"},
	} {
		p := testPlan()
		for i := range p.Video {
			p.Video[i].Tune = tt.tune
		}
		a, err := s.Admit("j", testLadder("nvenc", "x264", map[string]string{"360p": "x264"}), p, h264Source)
		if err != nil {
			t.Fatal(err)
		}
		tuneNotes := 0
		for _, n := range a.Notes {
			if strings.Contains(n, "tune "+tt.tune) {
				tuneNotes++
			}
		}
		if encoders(a) != "nvenc nvenc nvenc x264" || !slices.Contains(a.Notes, tt.want) || tuneNotes != 3 {
			t.Errorf("tune %s: encoders %s, notes %q; want one note per nvenc rung, among them %q", tt.tune, encoders(a), a.Notes, tt.want)
		}
	}
}
