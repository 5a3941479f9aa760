package gpu

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/transcoderd/transcoderd/internal/encoder"
)

// GPUs of the fake sysfs trees.
var (
	geforce = sysDev{node: "renderD128", pci: "0000:01:00.0", vendor: "0x10de", device: "0x2504", driver: "nvidia"}
	h100    = sysDev{node: "renderD128", pci: "0000:19:00.0", vendor: "0x10de", device: "0x2330", driver: "nvidia"}
	iris    = sysDev{node: "renderD128", pci: "0000:00:02.0", vendor: "0x8086", device: "0x46a6", driver: "i915"}
	radeon  = sysDev{node: "renderD129", pci: "0000:03:00.0", vendor: "0x1002", device: "0x73ff", driver: "amdgpu"}
)

const (
	node128 = "/dev/dri/renderD128"
	node129 = "/dev/dri/renderD129"
)

func runProbe(t *testing.T, sc scenario, devs ...sysDev) (Capabilities, []fakeRun) {
	t.Helper()
	ff, smi, log := fake(t, sc)
	p := Prober{FFmpeg: ff, NvidiaSMI: smi, Root: fakeSysfs(t, devs...), TempDir: t.TempDir(), Timeout: 20 * time.Second}
	c := p.Probe(context.Background())
	if _, err := json.Marshal(c); err != nil {
		t.Fatalf("capabilities do not encode: %v", err)
	}
	return c, runs(t, log)
}

func encoderOf(t *testing.T, d Device, backend string) EncoderResult {
	t.Helper()
	r := d.encoder(backend)
	if r == nil {
		t.Fatalf("%s: no %s result in %+v", d.ID, backend, d.Encoders)
	}
	return *r
}

// trials counts the runs that encoded (not listings, not driver queries, not
// the decode clip).
func trials(rs []fakeRun) int {
	n := 0
	for _, r := range rs {
		if r.Tool == "ffmpeg" && slices.Contains(r.Args, "-filter_complex") {
			n++
		}
	}
	return n
}

func TestProbeNoGPU(t *testing.T) {
	c, rs := runProbe(t, scenario{})
	if len(c.Devices) != 0 {
		t.Errorf("devices = %+v, want none", c.Devices)
	}
	if c.Auto.Encoder != encoder.X264 || c.Auto.Reason != "no GPU found" {
		t.Errorf("auto = %+v, want x264 because no GPU", c.Auto)
	}
	if c.NvidiaSMI != "not found" {
		t.Errorf("nvidia_smi = %q", c.NvidiaSMI)
	}
	// This is Debian's ffmpeg 5.1: the hardware encoders are compiled in.
	for _, want := range []string{"libx264", "h264_nvenc", "h264_qsv", "h264_vaapi"} {
		if !slices.Contains(c.FFmpeg.Encoders, want) {
			t.Errorf("build encoders %q lack %s", c.FFmpeg.Encoders, want)
		}
	}
	if slices.Contains(c.FFmpeg.Encoders, "h264_amf") {
		t.Error("Debian's ffmpeg has no h264_amf")
	}
	for _, want := range []string{"scale_cuda", "vpp_qsv", "scale_vaapi", "hwupload", "hwdownload"} {
		if !slices.Contains(c.FFmpeg.Filters, want) {
			t.Errorf("build filters %q lack %s", c.FFmpeg.Filters, want)
		}
	}
	if !slices.Equal(c.FFmpeg.HWAccels, []string{"vdpau", "cuda", "vaapi", "qsv", "drm", "opencl", "vulkan"}) {
		t.Errorf("hwaccels = %q", c.FFmpeg.HWAccels)
	}
	if n := trials(rs); n != 0 {
		t.Errorf("%d trial encodes without a GPU", n)
	}
	if len(rs) != 3 {
		t.Errorf("%d ffmpeg runs, want the 3 listings", len(rs))
	}
	if len(c.Problems) > 0 {
		t.Errorf("problems: %q", c.Problems)
	}
}

func TestProbeNVENCListedButNotWorking(t *testing.T) {
	// A GeForce whose user-space driver is missing: ffmpeg lists h264_nvenc,
	// the trial cannot even open CUDA. This is the real output of this machine.
	c, _ := runProbe(t, scenario{
		SMI:     "nvidia-smi-rtx3060.csv",
		Devices: map[string]fakeDevice{"cuda:0": {Init: "ffmpeg/cuda-no-libcuda.txt"}},
	}, geforce)
	if len(c.Devices) != 1 {
		t.Fatalf("devices = %+v", c.Devices)
	}
	d := c.Devices[0]
	if d.ID != "renderD128" || d.Vendor != encoder.VendorNVIDIA || d.PCI != "0000:01:00.0" || d.KernelDriver != "nvidia" ||
		d.Name != "NVIDIA GeForce RTX 3060" || d.Driver != "NVIDIA 535.183.01" || d.CUDAIndex == nil || *d.CUDAIndex != 0 {
		t.Errorf("device = %+v", d)
	}
	r := encoderOf(t, d, encoder.NVENC)
	if r.Working || r.Kind != kindNoLibrary || !strings.Contains(r.Error, "] Cannot load libcuda.so.1") {
		t.Errorf("nvenc = %+v, want not working because libcuda cannot load, with ffmpeg's line", r)
	}
	if r.Trial == nil || len(r.Trial.Args) == 0 || !slices.Contains(r.Trial.Args, "h264_nvenc") {
		t.Errorf("trial argv not kept: %+v", r.Trial)
	}
	if d.Status != statusNoEncoder || !strings.Contains(d.Summary, "GPU present, no encoder: h264_nvenc: [AVHWDeviceContext @ ") {
		t.Errorf("status %q, summary %q", d.Status, d.Summary)
	}
	if d.Decode == nil || d.Decode.OK {
		t.Errorf("decode = %+v, want a failed decode trial", d.Decode)
	}
	if c.Auto.Encoder != encoder.X264 || c.Auto.DecodeOn != "" {
		t.Errorf("auto = %+v, want x264 without GPU decoding", c.Auto)
	}
}

func TestProbeNVENCSessionCap(t *testing.T) {
	c, rs := runProbe(t, scenario{
		SMI: "nvidia-smi-rtx3060.csv",
		Devices: map[string]fakeDevice{"cuda:0": {Encoders: map[string]fakeEncoder{
			"h264_nvenc": {Sessions: 3, CPUMS: 200},
		}}},
	}, geforce)
	d := c.Devices[0]
	r := encoderOf(t, d, encoder.NVENC)
	if !r.Working || r.Sessions != 3 || r.SessionsAtLeast {
		t.Errorf("nvenc = %+v, want working with 3 sessions", r)
	}
	// The trial's ffmpeg spun 200 ms of CPU (and started up) for 30 frames of 720p:
	// 27.6 megapixels.
	if r.Trial == nil || r.Trial.CPUMS < 200 || r.Trial.CPUMS > 500 {
		t.Errorf("trial cpu_ms = %+v, want the 200 ms the fake spun, and its start-up", r.Trial)
	}
	if mpx := 1280 * 720 * 30 / 1e6; r.CPUPerMpx < 0.2/mpx || r.CPUPerMpx > 0.5/mpx {
		t.Errorf("cpu_per_mpx = %.5f, want %.5f to %.5f", r.CPUPerMpx, 0.2/mpx, 0.5/mpx)
	}
	if !strings.Contains(r.SessionsError, "OpenEncodeSessionEx failed: out of memory (10)") {
		t.Errorf("sessions error = %q, want ffmpeg's session-limit line", r.SessionsError)
	}
	if r.Trial == nil || r.Trial.Frames != 30 || !slices.Equal(r.Trial.Keyframes, []int{0, 15}) {
		t.Errorf("trial = %+v, want 30 frames with keyframes at 0 and 15", r.Trial)
	}
	if d.Decode == nil || !d.Decode.OK {
		t.Errorf("decode = %+v, want it working", d.Decode)
	}
	if d.Status != statusEncoder || !strings.Contains(d.Summary, "nvenc works, 3 sessions at once") {
		t.Errorf("status %q, summary %q", d.Status, d.Summary)
	}
	if c.Auto.Encoder != encoder.NVENC || c.Auto.Device != "renderD128" {
		t.Errorf("auto = %+v", c.Auto)
	}
	// The search: 1 (trial), 2 ok, 4 fails, 3 ok.
	var outputs []int
	for _, run := range rs {
		if n := strings.Count(strings.Join(run.Args, " "), "-c:v h264_nvenc"); n > 0 && !slices.Contains(run.Args, "-hwaccel") {
			outputs = append(outputs, n)
		}
		if slices.Contains(run.Args, "-init_hw_device") && run.CUDADeviceOrder != "PCI_BUS_ID" {
			t.Errorf("ffmpeg ran on CUDA without CUDA_DEVICE_ORDER=PCI_BUS_ID: %q", run.Args)
		}
	}
	if !slices.Equal(outputs, []int{1, 2, 4, 3}) {
		t.Errorf("nvenc outputs per run = %v, want [1 2 4 3]", outputs)
	}
}

func TestProbeDatacenterGPUWithoutNVENC(t *testing.T) {
	c, _ := runProbe(t, scenario{
		SMI: "nvidia-smi-h100.csv",
		Devices: map[string]fakeDevice{"cuda:0": {Encoders: map[string]fakeEncoder{
			"h264_nvenc": {Fail: "ffmpeg/nvenc-unsupported-device.txt"},
		}}},
	}, h100)
	d := c.Devices[0]
	r := encoderOf(t, d, encoder.NVENC)
	if r.Working || r.Kind != kindNoEncoder || !strings.HasSuffix(r.Error, "OpenEncodeSessionEx failed: unsupported device (2): (no details)") {
		t.Errorf("nvenc = %+v", r)
	}
	if d.Status != statusNoEncoder {
		t.Errorf("status = %q", d.Status)
	}
	for _, want := range []string{"NVIDIA H100 80GB HBM3 (0000:19:00.0, renderD128, NVIDIA 550.54.15): GPU present, no encoder: h264_nvenc: ",
		"(this model has no NVENC)", "decoding and scaling on the GPU work"} {
		if !strings.Contains(d.Summary, want) {
			t.Errorf("summary %q lacks %q", d.Summary, want)
		}
	}
	if d.Decode == nil || !d.Decode.OK || d.SessionsInUse != 0 {
		t.Errorf("decode = %+v, sessions in use %d", d.Decode, d.SessionsInUse)
	}
	if c.Auto.Encoder != encoder.X264 || c.Auto.DecodeOn != "renderD128" {
		t.Errorf("auto = %+v, want x264 with the GPU decoding", c.Auto)
	}
}

func TestProbeVAAPIWrongDriver(t *testing.T) {
	// libva was told to load i965 on a GPU it does not drive.
	c, rs := runProbe(t, scenario{
		VAAPI: map[string]string{node128: "ffmpeg/vaapi-init-failed.txt"},
	}, iris)
	d := c.Devices[0]
	if d.Vendor != encoder.VendorIntel || d.KernelDriver != "i915" || d.Driver != "" ||
		!strings.HasSuffix(d.DriverError, "Failed to initialise VAAPI connection: -1 (unknown libva error).") {
		t.Errorf("device = %+v", d)
	}
	for _, b := range []string{encoder.QSV, encoder.VAAPI} {
		r := encoderOf(t, d, b)
		if r.Working || r.Kind != kindDriver || r.Error != d.DriverError {
			t.Errorf("%s = %+v, want the driver error", b, r)
		}
	}
	if n := trials(rs); n != 0 {
		t.Errorf("%d trial encodes on a device whose driver failed", n)
	}
	if d.Status != statusNoEncoder || c.Auto.Encoder != encoder.X264 {
		t.Errorf("status %q, auto %+v", d.Status, c.Auto)
	}
}

func TestProbeIntelIHD(t *testing.T) {
	c, _ := runProbe(t, scenario{
		VAAPI: map[string]string{node128: "ffmpeg/vaapi-driver-ihd.txt"},
		Devices: map[string]fakeDevice{
			"qsv:" + node128:   {Encoders: map[string]fakeEncoder{"h264_qsv": {}}},
			"vaapi:" + node128: {Encoders: map[string]fakeEncoder{"h264_vaapi": {}}},
		},
	}, iris)
	d := c.Devices[0]
	if d.Driver != "Intel iHD" || !strings.Contains(d.DriverLine, "VAAPI driver: Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ().") {
		t.Errorf("driver %q, line %q", d.Driver, d.DriverLine)
	}
	for _, b := range []string{encoder.QSV, encoder.VAAPI} {
		r := encoderOf(t, d, b)
		if !r.Working || r.Sessions != defaultMaxSessions || !r.SessionsAtLeast {
			t.Errorf("%s = %+v, want working, at least %d sessions", b, r, defaultMaxSessions)
		}
	}
	if d.Decode == nil || !d.Decode.OK || !strings.Contains(strings.Join(d.Decode.Args, " "), "-hwaccel vaapi") {
		t.Errorf("decode = %+v", d.Decode)
	}
	if c.Auto.Encoder != encoder.QSV {
		t.Errorf("auto = %+v, want qsv before vaapi on Intel", c.Auto)
	}
}

func TestProbeAMDMesa(t *testing.T) {
	c, _ := runProbe(t, scenario{
		VAAPI:   map[string]string{node129: "ffmpeg/vaapi-driver-mesa.txt"},
		Devices: map[string]fakeDevice{"vaapi:" + node129: {Encoders: map[string]fakeEncoder{"h264_vaapi": {Sessions: 5}}}},
	}, radeon)
	d := c.Devices[0]
	if d.Driver != "Mesa Gallium" || d.Vendor != encoder.VendorAMD {
		t.Errorf("device = %+v", d)
	}
	if r := encoderOf(t, d, encoder.VAAPI); !r.Working || r.Sessions != 5 {
		t.Errorf("vaapi = %+v", r)
	}
	if r := encoderOf(t, d, encoder.AMF); r.Working || r.Kind != kindNotInBuild || r.Error != "this ffmpeg has no h264_amf encoder" {
		t.Errorf("amf = %+v", r)
	}
	if c.Auto.Encoder != encoder.VAAPI || c.Auto.Device != "renderD129" {
		t.Errorf("auto = %+v", c.Auto)
	}
}

func TestProbeVAAPIWithoutH264Encoding(t *testing.T) {
	c, _ := runProbe(t, scenario{
		VAAPI: map[string]string{node129: "ffmpeg/vaapi-driver-mesa.txt"},
		Devices: map[string]fakeDevice{"vaapi:" + node129: {Encoders: map[string]fakeEncoder{
			"h264_vaapi": {Fail: "ffmpeg/vaapi-no-entrypoint.txt"},
		}}},
	}, radeon)
	d := c.Devices[0]
	r := encoderOf(t, d, encoder.VAAPI)
	if r.Working || r.Kind != kindNoEncoder || !strings.Contains(r.Error, "No usable encoding entrypoint found for profile VAProfileH264Main (6).") {
		t.Errorf("vaapi = %+v", r)
	}
	// The decode trial needs no encoder: it proves decoding and scaling for x264.
	if d.Status != statusNoEncoder || d.Decode == nil || !d.Decode.OK || c.Auto.DecodeOn != "renderD129" {
		t.Errorf("status %q decode %+v auto %+v", d.Status, d.Decode, c.Auto)
	}
}

func TestProbeIgnoredKeyframes(t *testing.T) {
	c, _ := runProbe(t, scenario{
		SMI: "nvidia-smi-rtx3060.csv",
		Devices: map[string]fakeDevice{"cuda:0": {Encoders: map[string]fakeEncoder{
			"h264_nvenc": {NoForcedKeyframes: true},
		}}},
	}, geforce)
	r := encoderOf(t, c.Devices[0], encoder.NVENC)
	if r.Working || r.Kind != kindKeyframes || r.Error != "nvenc ignored forced keyframes: no keyframe at frame 15 (keyframes at 0)" {
		t.Errorf("nvenc = %+v", r)
	}
	if c.Auto.Encoder != encoder.X264 {
		t.Errorf("auto = %+v", c.Auto)
	}
}

func TestProbeContainerWithoutDRMNode(t *testing.T) {
	// nvidia-smi sees the GPU; sysfs shows no render node for it.
	c, _ := runProbe(t, scenario{
		SMI:     "nvidia-smi-two-geforce.csv",
		Devices: map[string]fakeDevice{"cuda:0": {Encoders: map[string]fakeEncoder{"h264_nvenc": {Sessions: 8}}}, "cuda:1": {Init: "ffmpeg/cuda-no-libcuda.txt"}},
	})
	if len(c.Devices) != 2 || c.Devices[0].ID != "nvidia-smi:0" || c.Devices[1].ID != "nvidia-smi:1" {
		t.Fatalf("devices = %+v", c.Devices)
	}
	if c.Devices[0].SessionsInUse != 1 || c.Devices[1].PCI != "0000:02:00.0" {
		t.Errorf("devices = %+v", c.Devices)
	}
	if r := encoderOf(t, c.Devices[0], encoder.NVENC); !r.Working || r.Sessions != 8 {
		t.Errorf("nvenc on 0 = %+v", r)
	}
	if r := encoderOf(t, c.Devices[1], encoder.NVENC); r.Working {
		t.Errorf("nvenc on 1 = %+v", r)
	}
	if c.Auto.Encoder != encoder.NVENC || c.Auto.Device != "nvidia-smi:0" {
		t.Errorf("auto = %+v", c.Auto)
	}
}

func TestProbeNvidiaSMIFailsAndBuildLacksScaler(t *testing.T) {
	c, rs := runProbe(t, scenario{
		SMIFail: "ffmpeg/hwaccels.txt", // any text; the exit status is what counts
		Drop:    []string{"scale_cuda"},
	}, geforce)
	if !strings.HasPrefix(c.NvidiaSMI, "nvidia-smi: exit status 9") {
		t.Errorf("nvidia_smi = %q", c.NvidiaSMI)
	}
	d := c.Devices[0]
	if d.CUDAIndex == nil || *d.CUDAIndex != 0 {
		t.Errorf("without nvidia-smi the CUDA index follows PCI order: %+v", d.CUDAIndex)
	}
	r := encoderOf(t, d, encoder.NVENC)
	if r.Working || r.Kind != kindNotInBuild || r.Error != "this ffmpeg lacks the scale_cuda or scale_npp filter" {
		t.Errorf("nvenc = %+v", r)
	}
	if n := trials(rs); n != 0 {
		t.Errorf("%d trials with a build that cannot scale on CUDA", n)
	}
}

func TestProbeMixedMachine(t *testing.T) {
	// An Intel iGPU that works and an H100 that cannot encode: auto takes QSV
	// and says why; both devices are reported.
	h := h100
	h.node = "renderD129"
	c, _ := runProbe(t, scenario{
		SMI:   "nvidia-smi-h100.csv",
		VAAPI: map[string]string{node128: "ffmpeg/vaapi-driver-ihd.txt"},
		Devices: map[string]fakeDevice{
			"cuda:0":           {Encoders: map[string]fakeEncoder{"h264_nvenc": {Fail: "ffmpeg/nvenc-unsupported-device.txt"}}},
			"qsv:" + node128:   {Encoders: map[string]fakeEncoder{"h264_qsv": {}}},
			"vaapi:" + node128: {Encoders: map[string]fakeEncoder{"h264_vaapi": {}}},
		},
	}, iris, h)
	if len(c.Devices) != 2 || c.Devices[0].Status != statusEncoder || c.Devices[1].Status != statusNoEncoder {
		t.Fatalf("devices = %+v", c.Devices)
	}
	if c.Auto.Encoder != encoder.QSV || c.Auto.Device != "renderD128" {
		t.Errorf("auto = %+v", c.Auto)
	}
	if len(c.Summary) != 3 || !strings.HasPrefix(c.Summary[2], "auto: qsv: ") {
		t.Errorf("summary = %q", c.Summary)
	}
}

func TestReadFrameCRC(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		data    string
		frames  int
		keys    []int
		wantErr string
	}{
		{name: "every 15", data: frameCRC(30, 15), frames: 30, keys: []int{0, 15}},
		{name: "first only", data: frameCRC(30, 0), frames: 30, keys: []int{0}},
		{
			// libx264 at 1/30 with B-frames, as this machine's ffmpeg wrote it.
			name: "real x264 with B-frames",
			data: "#tb 0: 1/30\n0,         -2,          0,        1,     4603, 0xcc1e6b98, S=1,        8\n" +
				"0,         -1,          3,        1,     1759, 0xa7206151, F=0x0, S=1,        8\n" +
				"0,          0,          1,        1,      875, 0xac3fbf9a, F=0x0, S=1,        8\n" +
				"0,         13,         15,        1,     5165, 0xea901c81, S=1,        8\n",
			frames: 4, keys: []int{0, 15},
		},
		{name: "90k time base", data: "#tb 0: 1/90000\n0, 0, 0, 3000, 10, 0x1\n0, 3000, 45000, 3000, 10, 0x2\n0, 6000, 3000, 3000, 10, 0x3, F=0x0\n", frames: 3, keys: []int{0, 15}},
		{name: "other streams ignored", data: "#tb 0: 1/30\n1, 0, 0, 1, 10, 0x1\n0, 0, 0, 1, 10, 0x1\n", frames: 1, keys: []int{0}},
		{name: "bad time base", data: "#tb 0: 0/0\n", wantErr: "bad time base"},
		{name: "bad pts", data: "0, 0, x, 1, 10, 0x1\n", wantErr: "bad pts"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := dir + "/" + string(rune('a'+i)) + ".crc"
			if err := writeFile(path, tt.data); err != nil {
				t.Fatal(err)
			}
			frames, keys, err := readFrameCRC(path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if frames != tt.frames || !slices.Equal(keys, tt.keys) {
				t.Errorf("frames %d keys %v, want %d %v", frames, keys, tt.frames, tt.keys)
			}
		})
	}
	if _, _, err := readFrameCRC(dir + "/missing.crc"); err == nil || !strings.Contains(err.Error(), "no output") {
		t.Errorf("missing file: %v", err)
	}
}

func TestParseSMI(t *testing.T) {
	gpus, err := parseSMI([]byte("0, NVIDIA GeForce RTX 3060, 00000000:01:00.0, 535.183.01, 2\n1, Tesla T4, 00000001:AF:00.0, 535.183.01, [N/A]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(gpus) != 2 || gpus[0].pci != "0000:01:00.0" || gpus[0].sessions != 2 || gpus[1].pci != "0001:af:00.0" || gpus[1].name != "Tesla T4" {
		t.Errorf("gpus = %+v", gpus)
	}
	if _, err := parseSMI([]byte("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\n")); err == nil {
		t.Error("parseSMI accepted a failure message")
	}
}
